// 2,000 random simulated schedules (3 and 5 nodes, every fault profile) in the normal test suite, with every checker
// on. A failure names the seed and the command that replays it. SIM_RANDOM_BASE=N explores other seeds.
import { describe, expect, it } from 'vitest';
import { runSimulation, SimulationFailure } from './run.js';

const base = Number(process.env.SIM_RANDOM_BASE ?? 1_000_000);
const cases = 8;
const runsPerCase = 250;
/** Modest fault phases keep the file fast; the soak (npm run sim:soak) runs longer ones. */
const steps = 80;

describe('random schedules', () => {
  for (let k = 0; k < cases; k++) {
    const first = base + k * runsPerCase;
    it(`runs ${runsPerCase} random schedules from seed ${first} safely to convergence`, async () => {
      const failures: string[] = [];
      for (let seed = first; seed < first + runsPerCase && failures.length < 5; seed++) {
        try {
          await runSimulation({ seed, steps, nodes: seed % 2 === 0 ? 3 : 5 });
        } catch (err) {
          if (!(err instanceof SimulationFailure)) throw err;
          failures.push(err.message);
        }
      }
      expect(failures, `failed runs:\n${failures.join('\n')}`).toEqual([]);
      // Each run drives five managers' drivers: generous, for a machine the whole team shares.
    }, 900_000);
  }
});
