// Whether a worker can take a task: its constraints hold on the worker's labels, and its resources fit in what the
// worker has free. Pure; the policies, `task why` and preemption all judge by these.
import { satisfies, unmetText } from '../lib/constraints.js';
import { limits } from '../lib/limits.js';
import type { PlacementTask, PlacementWorker, Resources } from './policy.js';

/** Why the worker cannot take the task ("label zone!=a (it is b)", "no room: cpus 2 > 1.5 free"), or null. */
export function ineligibility(task: PlacementTask, worker: PlacementWorker): string | null {
  return unmetConstraint(task, worker) ?? noRoom(task, worker.free) ?? full(worker);
}

/** A worker holds at most limits.workerTasksMax tasks (it refuses more): "full: 1000 tasks scheduled or running". */
function full(worker: Pick<PlacementWorker, 'activeTasks'>): string | null {
  return worker.activeTasks >= limits.workerTasksMax ? `full: ${worker.activeTasks} tasks scheduled or running, the most a worker holds` : null;
}

export function unmetConstraint(task: PlacementTask, worker: Pick<PlacementWorker, 'labels'>): string | null {
  const labels = worker.labels ?? {};
  for (const c of task.constraints ?? []) if (!satisfies(labels, c)) return unmetText(labels, c);
  return null;
}

/** "no room: cpus 2 > 1.5 free" when the task's resources do not fit in `free`; null when they do (or no limit). */
export function noRoom(task: Pick<PlacementTask, 'cpus' | 'memoryMb'>, free: Resources | undefined): string | null {
  if (free === undefined) return null;
  if (task.cpus !== undefined && task.cpus > free.cpus + 1e-9) return `no room: cpus ${round(task.cpus)} > ${round(Math.max(0, free.cpus))} free`;
  if (task.memoryMb !== undefined && task.memoryMb > free.memoryMb + 1e-9) return `no room: memoryMb ${round(task.memoryMb)} > ${round(Math.max(0, free.memoryMb))} free`;
  return null;
}

/** What is left after reserving the task's resources (no limit stays no limit). */
export function reserve(free: Resources | undefined, task: Pick<PlacementTask, 'cpus' | 'memoryMb'>): Resources | undefined {
  if (free === undefined) return undefined;
  return { cpus: free.cpus - (task.cpus ?? 0), memoryMb: free.memoryMb - (task.memoryMb ?? 0) };
}

function round(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}
