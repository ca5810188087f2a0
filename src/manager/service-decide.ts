// The service reconciler's decision: a pure function from one service and its replicas to the replicas to start
// and stop and the rollout's next state. No clock, no I/O: the leader's loop (service-loop.ts) feeds it the applied
// state and proposes what it answers; test/services/decide.property.test.ts runs it against a simulated cluster.
//
// Invariants it keeps: it starts a copy only while there are fewer than `replicas + parallelism` (replicas not yet
// ended, stopping ones included), and none beyond the room its namespace's quota leaves (a scale down's stopping
// copies count until they end, so right after one there may be more, never more than before it); during a rollout it
// stops a healthy replica only while at least `replicas - parallelism` would stay healthy; a batch of the new version must stay healthy for monitorS (plus
// delayS) before the next one starts; a replica of an update that fails or turns unhealthy triggers the failure
// action (rollback: back to the previous version; pause). A rollback goes on through failures: it returns to a
// version that ran, and its failing replicas are restarted like any other. A drain moves the replicas on a drained
// worker `parallelism` at a time (drainNext).
import type { Rollout, ServiceRecord } from '../contracts/service-model.js';
import type { DesiredState, TaskError, TaskRecord, TaskState } from '../contracts/task-model.js';
import { finalTaskStates } from '../contracts/task-model.js';
import { limits } from '../lib/limits.js';
import { movedByDrain } from '../kv/task-rules.js';

export interface ReplicaState {
  readonly id: string;
  readonly version: number;
  readonly state: TaskState;
  readonly desiredState: DesiredState;
  /** Running, and its health check passed (or it has none). */
  readonly healthy: boolean;
  readonly unhealthy: boolean;
  /** It failed at least once by itself (restarted for a crash, an exit or a failing health check). */
  readonly failed: boolean;
  /** Why it last failed, for the rollout's message. */
  readonly reason: string | null;
  readonly createdAtMs: number;
  /** Where it runs or is placed (null or absent: nowhere yet): the least useful of equals is on the most crowded worker. */
  readonly workerId?: string | null;
  /** Marked draining: being stopped on its drained worker, to be placed again elsewhere as its next attempt. */
  readonly draining?: boolean;
  /** Its current attempt follows one a drain of its worker ended, and it has not failed since. */
  readonly movedByDrain?: boolean;
  /** Placed on a worker being drained, and not marked draining yet (the leader's loop says, from the worker's record). */
  readonly onDrainedWorker?: boolean;
  /** It waits to be placed and no worker can take it now (the leader's loop says, as `task why` would). */
  readonly unplaceable?: boolean;
}

export interface Decision {
  /** New replicas of the current version. */
  readonly create: number;
  readonly stop: readonly string[];
  readonly rollout?: Rollout;
  /** Back to the previous version (the rollout says why). */
  readonly revert?: boolean;
  /** Replicas on drained workers to mark draining now (absent: none). */
  readonly drain?: readonly string[];
  /** Decide again at this time even if nothing changes (a monitoring window ends), or null. */
  readonly wakeAtMs: number | null;
}

const nothing: Decision = { create: 0, stop: [], wakeAtMs: null };

export function isAlive(r: Pick<ReplicaState, 'state' | 'desiredState'>): boolean {
  return r.desiredState === 'run' && !finalTaskStates.has(r.state);
}

/** A replica as the decision reads it, from its task record. */
export function replicaState(t: TaskRecord): ReplicaState {
  const hasCheck = t.spec.healthCheck !== undefined;
  return {
    id: t.id, version: t.service?.version ?? 0, state: t.state, desiredState: t.desiredState,
    // A replica its worker's drain is stopping is on its way out (out of DNS already): no rollout counts on it.
    healthy: t.state === 'running' && t.draining !== true && (!hasCheck || t.health === 'healthy'),
    unhealthy: t.health === 'unhealthy',
    failed: t.attempt > 1 && (t.error === null || isOwnFailure(t.error)),
    reason: failureReason(t),
    createdAtMs: Date.parse(t.createdAt),
    workerId: t.workerId,
    draining: t.draining === true,
    movedByDrain: movedByDrain(t),
  };
}

/**
 * Whether an attempt ended by the replica's own doing, which judges its version: it exited (a permanent failure: an
 * exit code, an image that is not there, a spec the runtime refuses) or failed its health check. A transient failure
 * of the machinery (its worker lost or unreachable, an assignment that could not be delivered, a preemption, the
 * runtime's daemon unavailable) says nothing of the version: the replica is only placed again, and a rollout goes on.
 */
function isOwnFailure(error: TaskError): boolean {
  return error.class === 'permanent' || error.message.startsWith('unhealthy');
}

/**
 * Why a replica last failed. While it runs, the record keeps no error for its current attempt: an unhealthy verdict's
 * reason (`unhealthy: http 503 from /`) is in that attempt's history. Otherwise the error of its last attempt.
 */
function failureReason(t: TaskRecord): string | null {
  if (t.health === 'unhealthy') {
    for (let i = t.history.length - 1; i >= 0 && t.history[i]!.attempt === t.attempt; i--) {
      const reason = t.history[i]!.reason;
      if (reason?.startsWith('unhealthy') === true) return reason;
    }
  }
  return t.error?.message ?? null;
}

/**
 * `room`: how many more replicas of the current version its namespace's quota takes now (the leader's loop says;
 * Infinity without a quota). No decision starts more than that, so neither a rollout's surge nor a replacement takes
 * the namespace past its quota: a `start-first` rollout with no room goes stop-first, and a replacement waits for
 * the copies it replaces to end.
 */
export function decide(s: ServiceRecord, replicas: readonly ReplicaState[], nowMs: number, room = Number.POSITIVE_INFINITY): Decision {
  const d = decideCopies(s, replicas, nowMs, room);
  const drain = drainNext(s, replicas, d.stop);
  return drain.length === 0 ? d : { ...d, drain };
}

/**
 * The replicas on drained workers to mark draining now, so that at most `parallelism` of the service's are moving at
 * once. A replica is moving from when it is marked until its next attempt runs healthy on another worker (running,
 * without a health check); it stops counting sooner when that attempt cannot be placed now (no worker can take it)
 * or fails by its own doing (it turns unhealthy, exits, cannot start), since waiting for it would not end: a drain
 * always ends. Those `stopping` (this decision stops them) are not moved. Of those on drained workers, the least
 * useful go first, as for a scale down.
 */
export function drainNext(s: ServiceRecord, replicas: readonly ReplicaState[], stopping: readonly string[]): string[] {
  const alive = replicas.filter((r) => isAlive(r) && !stopping.includes(r.id));
  const room = s.update.parallelism - alive.filter(isMoving).length;
  if (room <= 0) return [];
  const next = alive.filter((r) => r.onDrainedWorker === true && r.draining !== true);
  return next.length === 0 ? [] : byUselessness(next).slice(0, room).map((r) => r.id);
}

function isMoving(r: ReplicaState): boolean {
  if (r.draining === true) return true;
  return r.movedByDrain === true && !r.healthy && !r.unhealthy && r.unplaceable !== true;
}

function decideCopies(s: ServiceRecord, replicas: readonly ReplicaState[], nowMs: number, room: number): Decision {
  const R = s.replicas;
  const P = s.update.parallelism;
  const alive = replicas.filter(isAlive);
  const copies = replicas.filter((r) => !finalTaskStates.has(r.state)).length;
  const cur = alive.filter((r) => r.version === s.version);
  const old = alive.filter((r) => r.version !== s.version);
  const rolling = s.rollout.state === 'updating' || s.rollout.state === 'rolling-back';

  // An automatic rollback (it carries the failed update's message) goes back to the version that ran before that
  // update: a replica failing on the way is replaced, not a reason to stop. A rollback asked for goes to the previous
  // version, whatever it is (after an automatic rollback, the one that failed): it fails as an update does, and pauses,
  // since a rollback is never reverted (onFailure).
  if (s.rollout.state === 'updating' || (s.rollout.state === 'rolling-back' && s.rollout.message === null)) {
    const failure = cur.find((r) => r.createdAtMs >= s.rollout.startedAtMs && (r.failed || r.unhealthy));
    if (failure !== undefined) return onFailure(s, failure, nowMs);
  }
  if (s.rollout.state === 'paused') return keepCount(R, R + P, cur, old, copies, room);

  const stop: string[] = [];
  let create = 0;
  // Too many of the current version (a scale down): the least useful go first.
  if (cur.length > R) stop.push(...byUselessness(cur).slice(0, cur.length - R).map((r) => r.id));
  const curKept = Math.min(cur.length, R);
  // No room in the namespace for a copy more: the old replicas go first, as with stop-first.
  const startFirst = s.update.order === 'start-first' && room > 0;
  // Old replicas beyond what is needed: with start-first, each healthy new one retires an old one.
  const healthyCur = cur.filter((r) => r.healthy).length;
  const oldSurplus = startFirst ? Math.min(old.length, Math.max(0, Math.min(healthyCur, R) + old.length - R)) : Math.max(0, curKept + old.length - R);
  const oldOrder = byUselessness(old);
  stop.push(...oldOrder.slice(0, oldSurplus).map((r) => r.id));
  let oldLeft = oldOrder.slice(oldSurplus);
  // Replicas missing (ended, or never started): replaced at once, batches or not.
  const deficit = R - curKept - oldLeft.length;
  if (deficit > 0) create += deficit;

  let rollout: Rollout | undefined;
  let wakeAtMs: number | null = null;
  if (oldLeft.length > 0 || rolling) {
    // A replacement not yet made (waiting for room) is part of its batch: the batch is not healthy without it.
    const allHealthy = deficit <= 0 && cur.every((r) => r.healthy);
    // null: the batch under way is not healthy yet; with no replica of the version at all there is nothing to watch.
    const monitor = s.rollout.monitorUntilMs ?? (cur.length === 0 ? 0 : null);
    if (allHealthy && monitor === null && cur.length > 0) {
      // The batch is healthy: watch it for monitorS before the next one (or the end).
      rollout = { ...s.rollout, monitorUntilMs: nowMs + s.update.monitorS * 1000 };
      wakeAtMs = rollout.monitorUntilMs;
    } else if (allHealthy && monitor !== null && oldLeft.length > 0) {
      const nextAtMs = monitor + s.update.delayS * 1000;
      if (nowMs < nextAtMs) {
        wakeAtMs = nextAtMs;
      } else {
        const batch = nextBatch(s, startFirst, oldLeft, alive, stop, copies + create);
        stop.push(...batch.stop);
        oldLeft = oldLeft.filter((r) => !batch.stop.includes(r.id));
        create += batch.create;
        if (batch.create > 0 || batch.stop.length > 0) rollout = { ...s.rollout, monitorUntilMs: null };
      }
    } else if (allHealthy && monitor !== null && oldLeft.length === 0 && cur.length >= R && rolling) {
      if (nowMs >= monitor) rollout = { ...s.rollout, state: s.rollout.state === 'rolling-back' && s.rollout.message !== null ? 'rolled-back' : 'stable', monitorUntilMs: null };
      else wakeAtMs = monitor;
    }
  }
  create = Math.max(0, Math.min(create, R + P - copies, room));
  if (create === 0 && stop.length === 0 && rollout === undefined) return wakeAtMs === null ? nothing : { ...nothing, wakeAtMs };
  return { create, stop, wakeAtMs, ...(rollout === undefined ? {} : { rollout }) };
}

/**
 * The next batch: up to `parallelism` old replicas replaced, keeping `replicas - parallelism` healthy. Stop-first stops
 * them even while the previous batch's old copies are still stopping (their stop grace can be long) and starts the
 * replacements as room frees under `replicas + parallelism` copies, rather than waiting out every stop in turn.
 */
function nextBatch(s: ServiceRecord, startFirst: boolean, oldLeft: readonly ReplicaState[], alive: readonly ReplicaState[], stopping: readonly string[], copies: number): { create: number; stop: string[] } {
  const R = s.replicas;
  const P = s.update.parallelism;
  const room = Math.max(0, R + P - copies);
  if (startFirst) {
    const n = Math.min(P, oldLeft.length, room);
    return { create: n, stop: [] };
  }
  const n = Math.min(P, oldLeft.length);
  if (n === 0) return { create: 0, stop: [] };
  const healthyNow = alive.filter((r) => r.healthy && !stopping.includes(r.id)).length;
  let healthyStoppable = Math.max(0, healthyNow - (R - P));
  const stop: string[] = [];
  for (const r of byUselessness(oldLeft)) {
    if (stop.length === n) break;
    if (r.healthy) {
      if (healthyStoppable === 0) continue;
      healthyStoppable--;
    }
    stop.push(r.id);
  }
  return { create: Math.min(stop.length, room), stop };
}

/**
 * What a replica failed of by its own doing, as a rollout judges it (failed, or unhealthy now): its reason, bounded
 * (a health check's or runtime's text is not), or null when it did not fail.
 */
export function failureOf(r: ReplicaState): string | null {
  if (!r.failed && !r.unhealthy) return null;
  if (r.reason === null) return r.unhealthy ? 'it turned unhealthy' : 'no reason was recorded';
  const max = limits.rolloutReasonCharsMax;
  return r.reason.length > max ? `${[...r.reason].slice(0, max - 1).join('')}…` : r.reason;
}

function onFailure(s: ServiceRecord, r: ReplicaState, nowMs: number): Decision {
  // As README shows it: `replica t... of version 2 failed: unhealthy: http 503 from /`, the reason bounded.
  const reason = r.reason === null ? null : failureOf(r);
  const why = `replica ${r.id} of version ${r.version} ${reason !== null ? `failed: ${reason}` : r.unhealthy ? 'turned unhealthy' : 'failed'}`;
  if (s.rollout.state === 'updating' && s.update.failureAction === 'rollback' && s.previousVersion !== null) {
    return { create: 0, stop: [], revert: true, wakeAtMs: null, rollout: { ...s.rollout, message: `rolled back: ${why}` } };
  }
  return { create: 0, stop: [], wakeAtMs: null, rollout: { ...s.rollout, state: 'paused', monitorUntilMs: null, message: `paused: ${why}`, startedAtMs: nowMs } };
}

/** A paused rollout: no batches; only the count of replicas is kept (new ones of the current version). */
function keepCount(R: number, copiesMax: number, cur: readonly ReplicaState[], old: readonly ReplicaState[], copies: number, room: number): Decision {
  const all = [...old, ...cur];
  if (all.length > R) return { create: 0, stop: byUselessness(all).slice(0, all.length - R).map((r) => r.id), wakeAtMs: null };
  const create = Math.max(0, Math.min(R - all.length, copiesMax - copies, room));
  return create === 0 ? nothing : { create, stop: [], wakeAtMs: null };
}

/** Replicas in the order they are best stopped: not yet running, then unhealthy, then starting, then the newest. */
function byUselessness(rs: readonly ReplicaState[]): ReplicaState[] {
  const rank = (r: ReplicaState): number => (r.state !== 'running' ? 0 : r.unhealthy ? 1 : !r.healthy ? 2 : 3);
  const plain = (a: ReplicaState, b: ReplicaState): number => rank(a) - rank(b) || b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : -1);
  // Of equals, one on the worker holding most of them goes first, so a scale down keeps the spread (6 to 2 left both
  // on one worker): a worker's k-th replica in that order is picked while it still holds (its count - k).
  const byWorker = new Map<string, ReplicaState[]>();
  for (const r of rs) if (r.workerId != null) (byWorker.get(r.workerId) ?? byWorker.set(r.workerId, []).get(r.workerId)!).push(r);
  const holds = new Map<string, number>();
  for (const list of byWorker.values()) list.sort(plain).forEach((r, k) => holds.set(r.id, list.length - k));
  const crowd = (r: ReplicaState): number => holds.get(r.id) ?? 0;
  return [...rs].sort((a, b) => rank(a) - rank(b) || crowd(b) - crowd(a) || plain(a, b));
}
