// The fault test from the command line: `npm run chaos -- --duration S --seed N [--managers 3|5] [--workers N]
// [--out DIR] [--clients N] [--keys N] [--faults KIND,...] [--stale-reads] [--insecure]`. Without --seed a random one
// is drawn and printed; the cluster runs with TLS and tokens unless --insecure; exit code 0 when every check passes,
// 1 otherwise.
import { parseArgs } from 'node:util';
import { helpOption, parsedOrExit } from '../support/tool-args.js';
import { faultKinds, isFaultKind } from './nemesis.js';
import { randomSeed, runChaos } from './run.js';

async function main(): Promise<number> {
  const parsed = parsedOrExit(() => parseArgs({
    options: {
      ...helpOption,
      duration: { type: 'string', default: '60' },
      seed: { type: 'string' },
      managers: { type: 'string', default: '3' },
      workers: { type: 'string', default: '2' },
      out: { type: 'string' },
      clients: { type: 'string' },
      keys: { type: 'string' },
      faults: { type: 'string' },
      'stale-reads': { type: 'boolean', default: false },
      insecure: { type: 'boolean', default: false },
    },
  }), `usage: npm run chaos -- [--duration S (60)] [--seed N] [--managers 3|5] [--workers N (2)] [--clients N] [--keys N] [--faults ${faultKinds.join(',')}] [--stale-reads] [--insecure] [--out DIR]`);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const durationS = Number(values.duration);
  const managers = Number(values.managers);
  const workers = Number(values.workers);
  const seed = values.seed === undefined ? randomSeed() : Number(values.seed);
  const kinds = values.faults?.split(',').map((k) => k.trim());
  const unknownKinds = (kinds ?? []).filter((k) => !isFaultKind(k));
  const problems = [
    !(Number.isFinite(durationS) && durationS > 0) && '--duration must be a positive number of seconds',
    !(managers === 3 || managers === 5) && '--managers must be 3 or 5',
    !(Number.isInteger(workers) && workers >= 1 && workers <= 8) && '--workers must be 1..8',
    !(Number.isInteger(seed) && seed >= 0) && '--seed must be a non-negative integer',
    unknownKinds.length > 0 && `--faults: unknown ${unknownKinds.join(', ')} (known: ${faultKinds.join(', ')})`,
  ].filter((p) => p !== false);
  if (problems.length > 0) {
    for (const p of problems) console.error(`error: ${p}`);
    console.error('usage: npm run chaos -- [--duration S] [--seed N] [--managers 3|5] [--workers N] [--out DIR] [--clients N] [--keys N] [--faults K,...] [--stale-reads] [--insecure]');
    return 2;
  }
  const result = await runChaos({
    durationS,
    seed,
    managers,
    workers,
    ...(values.out === undefined ? {} : { outDir: values.out }),
    ...(values.clients === undefined ? {} : { clients: Number(values.clients) }),
    ...(values.keys === undefined ? {} : { keys: Number(values.keys) }),
    ...(kinds === undefined ? {} : { kinds: kinds.filter(isFaultKind) }),
    staleReads: values['stale-reads'],
    insecure: values.insecure,
  });
  return result.ok ? 0 : 1;
}

process.exitCode = await main();
