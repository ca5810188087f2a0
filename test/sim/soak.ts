// The soak: many random simulated runs (3 and 5 nodes mixed, every profile; every fourth run under storage faults)
// on two child processes, one per core.
// `npm run sim:soak [-- --runs 100000] [--seed BASE] [--workers 2] [--steps-max 250] [--profile mix|PROFILE]`
// (a profile of schedule.ts, `storage` or `membership` say: every run of that profile). Prints how many ran and
// failed and the replay command of each failure; exits non-zero on any failure.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { helpOption, parsedOrExit } from '../support/tool-args.js';
import { replayCommand, runSimulation, SimulationFailure } from './run.js';
import { isProfileName, profileNames, type ProfileName } from './schedule.js';

interface SoakPlan {
  base: number;
  runs: number;
  workers: number;
  stepsMin: number;
  stepsMax: number;
  /** 'mix': every fourth run under storage faults, the others a profile the seed picks; a profile: every run. */
  profile: 'mix' | ProfileName;
}

interface Progress {
  ran: number;
  failures: { replay: string; message: string }[];
  done: boolean;
}

/**
 * The seed, size, length and profile of run i: a pure function of the base seed, so any run can be found again.
 * Mixed, every fourth run is under storage faults (the 'storage' profile) and the others let the seed pick a profile;
 * with a profile, every run is of it.
 */
export function soakRun(plan: Pick<SoakPlan, 'base' | 'stepsMin' | 'stepsMax' | 'profile'>, i: number): { seed: number; nodes: number; steps: number; profile: ProfileName | 'random' } {
  let h = Math.imul((plan.base ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15), 0x27d4eb2d) >>> 0;
  const seed = (h ^ (h >>> 13)) >>> 1;
  const profile = plan.profile !== 'mix' ? plan.profile : i % 4 === 3 ? 'storage' : 'random';
  return { seed, nodes: i % 2 === 0 ? 3 : 5, steps: plan.stepsMin + (seed % (plan.stepsMax - plan.stepsMin + 1)), profile };
}

async function runWorker(plan: SoakPlan, worker: number): Promise<void> {
  const send = (p: Progress): void => {
    process.send?.(p);
  };
  let ran = 0;
  let failures: Progress['failures'] = [];
  for (let i = worker; i < plan.runs; i += plan.workers) {
    const r = soakRun(plan, i);
    try {
      await runSimulation(r);
    } catch (err) {
      const replay = err instanceof SimulationFailure ? err.replay : replayCommand(r);
      failures.push({ replay, message: err instanceof Error ? err.message.split('\n')[0]! : String(err) });
    }
    ran++;
    if (ran % 200 === 0) {
      send({ ran, failures, done: false });
      ran = 0;
      failures = [];
    }
  }
  send({ ran, failures, done: true });
}

async function coordinate(plan: SoakPlan): Promise<number> {
  console.log(`soak: ${plan.runs} runs, base seed ${plan.base}, ${plan.workers} workers, ${plan.stepsMin}-${plan.stepsMax} steps, profile ${plan.profile}`);
  const started = performance.now();
  let ran = 0;
  const failures: Progress['failures'] = [];
  const self = fileURLToPath(import.meta.url);
  const timer = setInterval(() => {
    console.log(`  ${ran} ran, ${failures.length} failed, ${Math.round((performance.now() - started) / 1000)} s`);
  }, 15_000);
  const args = ['--seed', String(plan.base), '--runs', String(plan.runs), '--workers', String(plan.workers)];
  args.push('--steps-min', String(plan.stepsMin), '--steps-max', String(plan.stepsMax), '--profile', plan.profile);
  const exits = Array.from({ length: plan.workers }, (_, w) => {
    const child = fork(self, [...args, '--worker', String(w)], { execArgv: process.execArgv });
    child.on('message', (p: Progress) => {
      ran += p.ran;
      for (const f of p.failures) {
        failures.push(f);
        console.log(`FAIL ${f.message}\n  replay: ${f.replay}`);
      }
    });
    return new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  });
  const codes = await Promise.all(exits);
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  console.log(`soak: ${ran} ran, ${failures.length} failed in ${seconds.toFixed(1)} s (${Math.round(ran / seconds)} runs/s)`);
  for (const f of failures) console.log(`  ${f.replay}`);
  if (codes.some((c) => c !== 0)) console.log(`a worker exited abnormally: ${codes.join(', ')}`);
  return failures.length === 0 && ran === plan.runs && codes.every((c) => c === 0) ? 0 : 1;
}

const usage = `usage: npm run sim:soak -- [--runs N (100000)] [--seed N] [--workers N (2)] [--steps-min N] [--steps-max N] [--profile mix|${profileNames.join('|')}]`;

async function main(): Promise<number> {
  const parsed = parsedOrExit(() => parseArgs({
    options: {
      ...helpOption,
      runs: { type: 'string', default: '100000' },
      seed: { type: 'string' },
      workers: { type: 'string', default: '2' },
      'steps-min': { type: 'string', default: '50' },
      'steps-max': { type: 'string', default: '250' },
      worker: { type: 'string' },
      profile: { type: 'string', default: 'mix' },
    },
  }), usage);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  // Checked as sim's cli.ts checks its own: Number('two') is NaN, and a NaN worker count once ran nothing ("0 ran").
  const bad = [
    !/^[1-9][0-9]*$/.test(values.runs) && `--runs: expected an integer >= 1, got ${values.runs}`,
    !/^[1-9][0-9]*$/.test(values.workers) && `--workers: expected an integer >= 1, got ${values.workers}`,
    values.seed !== undefined && !/^[0-9]+$/.test(values.seed) && `--seed: expected an integer >= 0, got ${values.seed}`,
    !/^[1-9][0-9]*$/.test(values['steps-min']) && `--steps-min: expected an integer >= 1, got ${values['steps-min']}`,
    !/^[1-9][0-9]*$/.test(values['steps-max']) && `--steps-max: expected an integer >= 1, got ${values['steps-max']}`,
  ].filter((p): p is string => p !== false);
  if (bad.length > 0) {
    console.error(`${bad.join('\n')}\n${usage}`);
    return 2;
  }
  const profile = values.profile;
  if (profile !== 'mix' && !isProfileName(profile)) {
    console.error(`unknown soak profile ${profile} (mix, ${profileNames.join(', ')})`);
    return 2;
  }
  const plan: SoakPlan = {
    // Each soak explores new schedules unless --seed pins it; every failure prints its own replay command anyway.
    base: values.seed === undefined ? Math.floor(Math.random() * 0x7fffffff) : Number(values.seed),
    runs: Number(values.runs),
    workers: Number(values.workers),
    stepsMin: Number(values['steps-min']),
    stepsMax: Math.max(Number(values['steps-min']), Number(values['steps-max'])),
    profile,
  };
  if (values.worker !== undefined) {
    await runWorker(plan, Number(values.worker));
    return 0;
  }
  return coordinate(plan);
}

process.exitCode = await main();
