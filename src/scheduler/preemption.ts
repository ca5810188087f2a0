// Preemption: a high-priority task that fits nowhere may stop low-priority tasks to make room. Pure: among the ready
// workers whose labels satisfy the task, the one where the fewest low-priority tasks (largest first) free enough
// room; ties go to the worker first in id order. Null when no worker can be freed enough.
import { noRoom, unmetConstraint } from './eligibility.js';
import type { PlacementTask, PlacementWorker } from './policy.js';

export interface PreemptibleTask {
  readonly id: string;
  readonly cpus: number;
  readonly memoryMb: number;
}

export interface PreemptionPlan {
  readonly workerId: string;
  /** The tasks to stop, in the order chosen. */
  readonly victims: readonly string[];
}

export function planPreemption(
  task: PlacementTask,
  workers: readonly PlacementWorker[],
  lowOn: (workerId: string) => readonly PreemptibleTask[],
): PreemptionPlan | null {
  let best: PreemptionPlan | null = null;
  for (const w of workers) {
    if (w.free === undefined || unmetConstraint(task, w) !== null) continue;
    // Largest first: the fewest stops for the room the task needs.
    const low = [...lowOn(w.id)].sort((a, b) => b.cpus - a.cpus || b.memoryMb - a.memoryMb || (a.id < b.id ? -1 : 1));
    let free = w.free;
    const victims: string[] = [];
    for (const v of low) {
      if (noRoom(task, free) === null) break;
      if (best !== null && victims.length + 1 >= best.victims.length) break;
      free = { cpus: free.cpus + v.cpus, memoryMb: free.memoryMb + v.memoryMb };
      victims.push(v.id);
    }
    if (victims.length === 0 || noRoom(task, free) !== null) continue;
    if (best === null || victims.length < best.victims.length) best = { workerId: w.id, victims };
  }
  return best;
}
