// `npm run bench`: a small registry of named benchmarks. Each runs in its own process (a clean heap, its own
// flags), prints its table, and ends with a JSON line that is collected into bench/results/latest.json.
// `npm run bench [-- --only raft-core,storage] [--all] [--quick] [--list]`
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface Benchmark {
  readonly name: string;
  readonly file: string;
  readonly description: string;
  /** Run when no --only is given; the others need Docker, real processes or minutes. */
  readonly byDefault: boolean;
  readonly args: readonly string[];
  readonly quickArgs: readonly string[];
}

const registry: readonly Benchmark[] = [
  {
    name: 'raft-core',
    file: 'raft-core.ts',
    description: 'the Raft core in the simulator: entries/s and heap bytes/entry at batch 1, 16, 256',
    byDefault: true,
    args: [],
    quickArgs: ['--quick'],
  },
  { name: 'storage', file: 'storage.ts', description: 'synced saves on classic-level', byDefault: false, args: [], quickArgs: ['--saves', '100', '--batches', '50'] },
  { name: 'transport', file: 'transport.ts', description: 'appends over loopback TCP', byDefault: false, args: [], quickArgs: ['--seconds', '1'] },
  { name: 'kv-write', file: 'kv-write.ts', description: 'KV writes and reads over HTTP, 3 managers', byDefault: false, args: [], quickArgs: ['--quick'] },
  { name: 'failover', file: 'failover.ts', description: 'unavailability after SIGKILL of the leader', byDefault: false, args: [], quickArgs: ['--runs', '1'] },
  { name: 'placement', file: 'placement.ts', description: 'tasks accepted and placed per second, 3 managers + 2 workers', byDefault: false, args: [], quickArgs: ['--quick'] },
  { name: 'containers', file: 'containers.ts', description: '50 busybox tasks through Minkube until running, vs docker run in a row', byDefault: false, args: [], quickArgs: ['--count', '10'] },
  { name: 'manager-rss', file: 'manager-rss.ts', description: 'manager RSS holding 100,000 keys, and restart time', byDefault: false, args: [], quickArgs: ['--keys', '10000'] },
  { name: 'docker-start', file: 'docker-start.ts', description: 'starting busybox containers', byDefault: false, args: [], quickArgs: ['--count', '10'] },
];

const benchDir = dirname(fileURLToPath(import.meta.url));

/** Runs one benchmark in a child process with this process's loader flags; resolves with its last JSON line. */
function runOne(b: Benchmark, quick: boolean): Promise<{ ok: boolean; result: unknown; seconds: number }> {
  const started = performance.now();
  const args = [...process.execArgv, join(benchDir, b.file), ...(quick ? b.quickArgs : b.args)];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    child.on('close', (code) => {
      const json = out
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      let result: unknown = null;
      try {
        result = json === undefined ? null : JSON.parse(json);
      } catch {
        result = null;
      }
      resolve({ ok: code === 0 && result !== null, result, seconds: (performance.now() - started) / 1000 });
    });
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      all: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const b of registry) console.log(`${b.name.padEnd(14)} ${b.byDefault ? '(default) ' : ''}${b.description}`);
    return 0;
  }
  const wanted = values.only?.split(',').map((s) => s.trim()) ?? null;
  const unknown = wanted?.filter((w) => !registry.some((b) => b.name === w)) ?? [];
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${registry.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const selected = registry.filter((b) => (wanted === null ? values.all || b.byDefault : wanted.includes(b.name)));
  const results: Record<string, unknown> = {};
  const failed: string[] = [];
  for (const b of selected) {
    console.log(`\n=== ${b.name}${values.quick ? ' (quick)' : ''}: ${b.description}`);
    const r = await runOne(b, values.quick);
    results[b.name] = { ok: r.ok, seconds: Math.round(r.seconds * 10) / 10, result: r.result };
    if (!r.ok) failed.push(b.name);
  }
  const report = {
    at: new Date().toISOString(),
    quick: values.quick,
    node: process.version,
    cpus: cpus().length,
    loadAverage: loadavg().map((l) => Math.round(l * 10) / 10),
    results,
  };
  const out = join(benchDir, 'results', 'latest.json');
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${out}${failed.length > 0 ? `; failed: ${failed.join(', ')}` : ''}`);
  return failed.length === 0 ? 0 : 1;
}

process.exitCode = await main();
