// The fault test in CI: real managers and workers under a seeded nemesis for MINKUBE_CHAOS_DURATION_S seconds
// (default 60), then every check must pass, with TLS and tokens on (the cluster's default). The seed is printed first;
// a failure prints the command that replays it.
import { describe, expect, it } from 'vitest';
import { randomSeed, replayCommand, runChaos, type ChaosOptions } from './run.js';

const durationS = Number(process.env.MINKUBE_CHAOS_DURATION_S ?? 60);
const seed = process.env.MINKUBE_CHAOS_SEED === undefined ? randomSeed() : Number(process.env.MINKUBE_CHAOS_SEED);

describe('fault test', () => {
  it(
    `keeps the key-value history linearizable, loses no acknowledged write or task, runs no task twice at once, and converges (seed ${seed})`,
    async () => {
      // The run's lines are printed at the end in one block (vitest heads every console.log with the test's name).
      const lines: string[] = [];
      const options: ChaosOptions = { durationS, seed, managers: 3, workers: 2, log: (line) => lines.push(line) };
      console.log(`chaos: seed ${seed}; replay with: ${replayCommand(options)}`);
      const result = await runChaos(options).finally(() => console.log(lines.join('\n')));
      expect(result.failures, `seed ${seed}; replay with: ${result.replay}; history: ${result.historyPath}`).toEqual([]);
      expect(result.stats.writesAcked).toBeGreaterThan(0);
    },
    (durationS + 120) * 1000,
  );
});
