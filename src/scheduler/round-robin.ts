// Round-robin placement: each task goes to the next ready worker after the cursor (the last worker chosen), in id
// order, so a new leader reading the replicated cursor continues the rotation where the old one stopped.
import type { PlacementDecision, PlacementInput, PlacementPolicy } from './policy.js';

export const roundRobin: PlacementPolicy = {
  name: 'round-robin',
  place(input: PlacementInput): PlacementDecision {
    const { tasks, workers } = input;
    if (workers.length === 0 || tasks.length === 0) return { placements: [], cursor: input.cursor };
    let next = firstAfter(workers, input.cursor);
    const placements: { taskId: string; attempt: number; workerId: string }[] = [];
    for (const t of tasks) {
      let chosen = workers[next]!;
      // A retry skips the worker its last attempt ran on, and the rotation carries on from the one it took.
      if (chosen.id === t.avoidWorkerId && workers.length > 1) {
        next = (next + 1) % workers.length;
        chosen = workers[next]!;
      }
      placements.push({ taskId: t.id, attempt: t.attempt, workerId: chosen.id });
      next = (next + 1) % workers.length;
    }
    return { placements, cursor: placements.at(-1)!.workerId };
  },
};

/** The index of the first worker whose id sorts after the cursor, wrapping to 0. */
function firstAfter(workers: PlacementInput['workers'], cursor: string | null): number {
  if (cursor === null) return 0;
  const i = workers.findIndex((w) => w.id > cursor);
  return i === -1 ? 0 : i;
}
