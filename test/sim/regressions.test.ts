// Runs the soak found failing while the simulator moved to the real manager driver, kept so they stay fixed. Each
// is one exact replay (`npm run sim -- --seed N --steps M --nodes K`); the comment says what broke.
import { describe, expect, it } from 'vitest';
import { runSimulation, type RunOptions } from './run.js';

const regressions: readonly (RunOptions & { what: string })[] = [
  { seed: 2, steps: 150, nodes: 5, what: 'a snapshot decoded by msgpackr hands the state as a Buffer view; restoring it read the whole pool' },
  {
    seed: 1314768533,
    steps: 247,
    nodes: 5,
    what: 'a second snapshot stepped into the core while the first was being written: the install must be reported with its own metadata (onRestored(meta))',
  },
  { seed: 1832870044, steps: 138, nodes: 3, what: 'a joiner that knew only the bootstrap voters could not answer a leader that joined after them' },
  { seed: 1354013680, steps: 144, nodes: 3, what: 'the same, with two removals' },
  { seed: 1443403307, steps: 247, nodes: 5, what: 'the same, with seven members' },
  { seed: 1047, steps: 150, nodes: 5, what: 'a voter restarted after missing the config entry that added the current leader could not answer it' },
];

describe('simulator regressions', () => {
  for (const r of regressions) {
    it(`seed ${r.seed}, ${r.steps} steps, ${r.nodes} nodes: ${r.what}`, async () => {
      const result = await runSimulation(r);
      expect(result.commitIndex).toBeGreaterThan(0);
    });
  }
});
