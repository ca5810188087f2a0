// Least-loaded placement: each task goes to the eligible ready worker with the fewest active tasks, CPU utilisation
// breaking ties (then id order). An example of a second policy behind the same interface; the cursor is left as it is.
import { ineligibility, reserve } from './eligibility.js';
import type { PlacementDecision, PlacementInput, PlacementPolicy, PlacementWorker } from './policy.js';

export const leastLoaded: PlacementPolicy = {
  name: 'least-loaded',
  place(input: PlacementInput): PlacementDecision {
    if (input.workers.length === 0) return { placements: [], cursor: input.cursor };
    const workers: PlacementWorker[] = [...input.workers];
    const placements: { taskId: string; attempt: number; workerId: string }[] = [];
    for (const t of input.tasks) {
      const eligible = workers.map((w, i) => ({ w, i })).filter(({ w }) => ineligibility(t, w) === null);
      let best: { w: PlacementWorker; i: number } | undefined;
      for (const c of eligible) {
        if (c.w.id === t.avoidWorkerId && eligible.length > 1) continue;
        const cpu = c.w.cpuUtilization ?? 0;
        if (best === undefined || c.w.activeTasks < best.w.activeTasks || (c.w.activeTasks === best.w.activeTasks && cpu < (best.w.cpuUtilization ?? 0))) best = c;
      }
      if (best === undefined) continue;
      const free = reserve(best.w.free, t);
      workers[best.i] = { ...best.w, activeTasks: best.w.activeTasks + 1, ...(free === undefined ? {} : { free }) };
      placements.push({ taskId: t.id, attempt: t.attempt, workerId: best.w.id });
    }
    return { placements, cursor: input.cursor };
  },
};
