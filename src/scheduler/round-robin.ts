// Round-robin placement: each task goes to the next eligible ready worker after the cursor (the last worker chosen),
// in id order, so a new leader reading the replicated cursor continues the rotation where the old one stopped. A
// worker is eligible when the task's constraints hold there and its resources fit in what is still free (this
// decision's own placements included); a task no worker can take is left pending. A service's replica (a task with a
// spreadGroup) goes to the eligible worker holding the fewest of its service's replicas, the first of those in the
// rotation: a replacement fills the worker that lost one instead of piling onto whichever is next. A retry goes to
// another worker than its previous attempt's when one is eligible; a replica's retry does so only where that keeps the
// spread as even (the previous worker loses ties), unless its last two attempts both ran there (then it is avoided as
// any task's retry is): one failure does not pile a service onto the other workers, a worker that fails it twice does.
import { ineligibility, reserve } from './eligibility.js';
import type { PlacementDecision, PlacementInput, PlacementPolicy, PlacementWorker } from './policy.js';

export const roundRobin: PlacementPolicy = {
  name: 'round-robin',
  place(input: PlacementInput): PlacementDecision {
    const { tasks } = input;
    const workers: PlacementWorker[] = [...input.workers];
    if (workers.length === 0 || tasks.length === 0) return { placements: [], cursor: input.cursor };
    let next = firstAfter(workers, input.cursor);
    const placements: { taskId: string; attempt: number; workerId: string }[] = [];
    const spread = new Spread(input.spread);
    for (const t of tasks) {
      // The first eligible worker from the rotation's position (with the fewest of the task's group, if it has one);
      // a retry skips the worker its last attempt ran on when another one is eligible, and the rotation carries on
      // from the one it took.
      let chosen = -1;
      let chosenCount = Infinity;
      let chosenAvoided = false;
      let avoided = -1;
      for (let k = 0; k < workers.length; k++) {
        const i = (next + k) % workers.length;
        if (ineligibility(t, workers[i]!) !== null) continue;
        const isAvoided = workers[i]!.id === t.avoidWorkerId;
        if (isAvoided && (t.spreadGroup === undefined || t.avoidFirmly === true)) {
          if (avoided === -1) avoided = i;
          continue;
        }
        if (t.spreadGroup === undefined) {
          chosen = i;
          break;
        }
        const count = spread.count(t.spreadGroup, workers[i]!.id);
        if (count < chosenCount || (count === chosenCount && chosenAvoided && !isAvoided)) {
          chosen = i;
          chosenCount = count;
          chosenAvoided = isAvoided;
          if (count === 0 && !isAvoided) break;
        }
      }
      if (chosen === -1) chosen = avoided;
      if (chosen === -1) continue;
      const w = workers[chosen]!;
      const free = reserve(w.free, t);
      workers[chosen] = { ...w, activeTasks: w.activeTasks + 1, ...(free === undefined ? {} : { free }) };
      if (t.spreadGroup !== undefined) spread.add(t.spreadGroup, w.id);
      placements.push({ taskId: t.id, attempt: t.attempt, workerId: w.id });
      next = (chosen + 1) % workers.length;
    }
    return { placements, cursor: placements.at(-1)?.workerId ?? input.cursor };
  },
};

/** The groups' copies per worker: the input's counts plus this decision's placements (copied on first change). */
class Spread {
  private readonly added = new Map<string, Map<string, number>>();

  constructor(private readonly base: PlacementInput['spread']) {}

  count(group: string, workerId: string): number {
    return (this.base?.get(group)?.get(workerId) ?? 0) + (this.added.get(group)?.get(workerId) ?? 0);
  }

  add(group: string, workerId: string): void {
    let m = this.added.get(group);
    if (m === undefined) this.added.set(group, (m = new Map<string, number>()));
    m.set(workerId, (m.get(workerId) ?? 0) + 1);
  }
}

/** The index of the first worker whose id sorts after the cursor, wrapping to 0. */
function firstAfter(workers: PlacementInput['workers'], cursor: string | null): number {
  if (cursor === null) return 0;
  const i = workers.findIndex((w) => w.id > cursor);
  return i === -1 ? 0 : i;
}
