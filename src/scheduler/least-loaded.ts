// Least-loaded placement: each task goes to the ready worker with the fewest active tasks, CPU utilisation breaking
// ties (then id order). An example of a second policy behind the same interface; the cursor is left as it is.
import type { PlacementDecision, PlacementInput, PlacementPolicy } from './policy.js';

export const leastLoaded: PlacementPolicy = {
  name: 'least-loaded',
  place(input: PlacementInput): PlacementDecision {
    if (input.workers.length === 0) return { placements: [], cursor: input.cursor };
    const load = input.workers.map((w) => ({ id: w.id, tasks: w.activeTasks, cpu: w.cpuUtilization ?? 0 }));
    const placements: { taskId: string; attempt: number; workerId: string }[] = [];
    for (const t of input.tasks) {
      let best: (typeof load)[number] | undefined;
      for (const w of load) {
        if (w.id === t.avoidWorkerId && load.length > 1) continue;
        if (best === undefined || w.tasks < best.tasks || (w.tasks === best.tasks && w.cpu < best.cpu)) best = w;
      }
      best!.tasks++;
      placements.push({ taskId: t.id, attempt: t.attempt, workerId: best!.id });
    }
    return { placements, cursor: input.cursor };
  },
};
