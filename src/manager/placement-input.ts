// What the leader feeds the placement policy, read from the task store: ready, active workers with their labels and free
// room (capacity minus what their scheduled and running tasks reserve), pending tasks in queue order (priority,
// then age), and the low-priority tasks preemption may stop. Also `task why`'s per-worker verdicts.
import { availabilityOf, type StoredWorker, type TaskRecord } from '../contracts/task-model.js';
import type { TaskStore } from '../kv/task-store.js';
import { parseConstraint, type Constraint } from '../lib/constraints.js';
import { explainPlacement, type ExplainWorker, type WorkerVerdict } from '../scheduler/explain.js';
import type { PlacementTask, PlacementWorker, Resources } from '../scheduler/policy.js';
import type { PreemptibleTask } from '../scheduler/preemption.js';
import { priorityOf } from '../scheduler/priority.js';

/** Every worker as placement sees it (ready or not), in id order. */
export function explainWorkers(store: TaskStore): ExplainWorker[] {
  return store.allWorkers().map((w) => ({
    ...placementWorker(store, w), state: w.state, availability: availabilityOf(w),
    ...(w.engineUnreachable === undefined ? {} : { engineUnreachable: engineUnreachableText(w.engineUnreachable) }),
  }));
}

/**
 * The workers the leader may place on: ready, neither drained nor paused by an operator, and not saying that their
 * engine does not answer (a task sent there would only fail, costing an attempt, or wait out the call deadline).
 */
export function readyWorkers(store: TaskStore): PlacementWorker[] {
  return store.allWorkers().filter((w) => w.state === 'ready' && availabilityOf(w) === 'active' && w.engineUnreachable === undefined).map((w) => placementWorker(store, w));
}

/** "engine unreachable: <reason> since <ISO time>", as `task why` and `worker ls` say it. */
export function engineUnreachableText(e: { readonly reason: string; readonly sinceMs: number }): string {
  return `engine unreachable: ${e.reason} since ${new Date(e.sinceMs).toISOString()}`;
}

function placementWorker(store: TaskStore, w: StoredWorker): PlacementWorker {
  const out: { -readonly [K in keyof PlacementWorker]: PlacementWorker[K] } = { id: w.id, activeTasks: store.activeCount(w.id), cpuUtilization: w.stats?.cpuUtilization ?? null };
  if (w.labels !== undefined) out.labels = w.labels;
  if (w.capacity !== undefined) out.free = freeOn(store, w.id, w.capacity);
  return out;
}

/** Capacity minus the resources of the worker's scheduled and running tasks. */
export function freeOn(store: TaskStore, workerId: string, capacity: Resources): Resources {
  let cpus = capacity.cpus;
  let memoryMb = capacity.memoryMb;
  for (const id of store.activeIdsOn(workerId)) {
    const r = store.task(id)?.spec.resources;
    cpus -= r?.cpus ?? 0;
    memoryMb -= r?.memoryMb ?? 0;
  }
  return { cpus, memoryMb };
}

/** The low-priority tasks on a worker that preemption may stop (placed, meant to run), with what they reserve. */
export function preemptibleOn(store: TaskStore, workerId: string): PreemptibleTask[] {
  const out: PreemptibleTask[] = [];
  for (const id of store.activeIdsOn(workerId)) {
    const t = store.task(id);
    if (t === undefined || t.desiredState !== 'run' || priorityOf(t.spec) !== 'low') continue;
    out.push({ id, cpus: t.spec.resources?.cpus ?? 0, memoryMb: t.spec.resources?.memoryMb ?? 0 });
  }
  return out;
}

export function placementTask(t: TaskRecord): PlacementTask {
  // The worker of the previous attempt (history's last entry with a worker) is avoided by a retry; firmly when the
  // attempt before it ran there too.
  let avoid: string | null = null;
  let firmly = false;
  if (t.attempt > 1) {
    const previous = workerOfAttempt(t, t.attempt - 1);
    avoid = previous ?? workerOfAttempt(t);
    firmly = previous !== null && t.attempt > 2 && workerOfAttempt(t, t.attempt - 2) === previous;
  }
  const p: { -readonly [K in keyof PlacementTask]: PlacementTask[K] } = { id: t.id, attempt: t.attempt, avoidWorkerId: avoid };
  if (firmly) p.avoidFirmly = true;
  if (t.spec.resources?.cpus !== undefined) p.cpus = t.spec.resources.cpus;
  if (t.spec.resources?.memoryMb !== undefined) p.memoryMb = t.spec.resources.memoryMb;
  if (t.spec.constraints !== undefined && t.spec.constraints.length > 0) p.constraints = parsedConstraints(t.spec.constraints);
  if (t.service !== undefined) p.spreadGroup = t.service.name;
  return p;
}

/** The worker of the history's last entry with one (of `attempt` only, when given), or null. */
function workerOfAttempt(t: TaskRecord, attempt?: number): string | null {
  for (let i = t.history.length - 1; i >= 0; i--) {
    const h = t.history[i]!;
    if (h.workerId !== null && (attempt === undefined || h.attempt === attempt)) return h.workerId;
  }
  return null;
}

/**
 * Adds to `into` (group -> worker -> copies) the placed replicas of the services the tasks belong to that it lacks:
 * those scheduled or running and meant to run (a stopping copy is on its way out).
 */
export function addSpreadCounts(store: TaskStore, tasks: readonly PlacementTask[], into: Map<string, Map<string, number>>): void {
  for (const t of tasks) {
    const group = t.spreadGroup;
    if (group === undefined || into.has(group)) continue;
    const counts = new Map<string, number>();
    for (const id of store.idsOfService(group)) {
      const r = store.task(id);
      if (r === undefined || r.workerId === null || r.desiredState !== 'run' || (r.state !== 'scheduled' && r.state !== 'running')) continue;
      counts.set(r.workerId, (counts.get(r.workerId) ?? 0) + 1);
    }
    into.set(group, counts);
  }
}

const parsedCache = new Map<string, Constraint>();

/** Constraints were checked before the log; one that does not parse here (an older rule) is ignored. */
function parsedConstraints(texts: readonly string[]): Constraint[] {
  const out: Constraint[] = [];
  for (const text of texts) {
    let c = parsedCache.get(text);
    if (c === undefined) {
      const parsed = parseConstraint(text);
      if (typeof parsed === 'string') continue;
      if (parsedCache.size > 10_000) parsedCache.clear();
      parsedCache.set(text, (c = parsed));
    }
    out.push(c);
  }
  return out;
}

/**
 * The pending tasks that are not of normal priority, kept by the leader's loop as tasks change, so the queue is
 * served high first, then normal (the store's pending index, in age order), then low, without sorting the whole
 * queue on every pass.
 */
export class PriorityIndex {
  private readonly high = new Set<string>();
  private readonly low = new Set<string>();

  rebuild(store: TaskStore): void {
    this.high.clear();
    this.low.clear();
    for (const id of store.idsIn('pending')) this.note(store.task(id)!);
  }

  note(t: TaskRecord): void {
    const p = priorityOf(t.spec);
    if (p === 'normal') return;
    const set = p === 'high' ? this.high : this.low;
    if (t.state === 'pending') set.add(t.id);
    else set.delete(t.id);
  }

  /**
   * Pending ids in queue order: high, then normal, then low; each oldest first. After `after` (a queue position) when
   * given. Do not apply while iterating.
   */
  *queue(store: TaskStore, after: QueueKey | null = null): Generator<string> {
    const rank = after?.rank ?? 0;
    if (rank === 0) yield* idsAfter(this.high, after?.id);
    if (rank <= 1) {
      for (const id of store.idsIn('pending', rank === 1 ? after!.id : undefined)) if (priorityOf(store.task(id)!.spec) === 'normal') yield id;
    }
    yield* idsAfter(this.low, rank === 2 ? after!.id : undefined);
  }
}

/** A task's place in the pending queue: its priority's rank (high 0, normal 1, low 2), then its id (creation order). */
export interface QueueKey {
  readonly rank: 0 | 1 | 2;
  readonly id: string;
}

export function queueKey(t: TaskRecord): QueueKey {
  const p = priorityOf(t.spec);
  return { rank: p === 'high' ? 0 : p === 'normal' ? 1 : 2, id: t.id };
}

/** Negative when `a` comes before `b` in the queue. */
export function compareQueueKeys(a: QueueKey, b: QueueKey): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function idsAfter(ids: ReadonlySet<string>, after: string | undefined): string[] {
  const sorted = [...ids].sort();
  return after === undefined ? sorted : sorted.filter((id) => id > after);
}

/** `task why` for one task: its verdict per worker. */
export function verdictsFor(store: TaskStore, t: TaskRecord): WorkerVerdict[] {
  return explainPlacement(placementTask(t), explainWorkers(store));
}
