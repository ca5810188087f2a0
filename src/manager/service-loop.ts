// The leader's service reconciler: a thin loop around decide() (service-decide.ts). Between start(term) and stop()
// it decides for every service whose service record or replicas changed (all of them at start: a full reconcile on
// becoming leader, and again every reconcileIntervalMs), and proposes each decision (replicas to start, to stop and to
// move off drained workers, the rollout's progress) as one service.reconcile command made on the service's revision,
// so a decision taken on an older view is dropped when applied.
import type { Logger } from 'pino';
import type { ServiceRecord } from '../contracts/service-model.js';
import { finalTaskStates, type TaskRecord } from '../contracts/task-model.js';
import type { QuotaStore } from '../kv/quota-store.js';
import { namespaceOf } from '../kv/quota-usage.js';
import { specOf, type ServiceStore } from '../kv/service-store.js';
import type { TaskStore } from '../kv/task-store.js';
import { LocalDueTimes, type Clock, type Timer } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import { decide, replicaState, type Decision, type ReplicaState } from './service-decide.js';
import { verdictsFor } from './placement-input.js';
import { TaskIdGenerator } from './task-ids.js';
import type { Proposer } from './task-service.js';

export interface ServiceLoopOptions {
  services: ServiceStore;
  tasks: TaskStore;
  /** The namespaces' quotas: no decision starts more replicas than the service's namespace has room for (none: no limit). */
  quotas?: QuotaStore;
  raft: Proposer;
  clock: Clock;
  logger: Logger;
  proposalTimeoutMs: number;
  /** A full pass over every service this often. */
  reconcileIntervalMs: number;
  /** Services decided at once (one proposal each). */
  concurrency?: number;
}

interface Session {
  readonly term: number;
  stopped: boolean;
}

export class ServiceLoop {
  private session: Session | null = null;
  private readonly dirty = new Set<string>();
  private readonly inflight = new Set<string>();
  private scheduled = false;
  private running = false;
  private seq = 0;
  private periodic: Timer | null = null;
  /** The earliest wake-up any service waits for, due at dueMonoMs (clock.monoMs()). */
  private wake: { timer: Timer; dueMonoMs: number } | null = null;
  /**
   * The stored times rollouts wait for (a batch's monitorUntilMs, the delay after it), as this leader counts them:
   * measured once against its wall clock, at most the wait the record asked for, then on the monotonic clock.
   */
  private readonly due: LocalDueTimes;
  /** The service revision each of due's times was measured at (a new revision's rollout has times of its own). */
  private readonly heldRevision = new Map<string, number>();
  private readonly ids: TaskIdGenerator;
  private readonly concurrency: number;
  /**
   * What the replicas of decisions in flight (proposed, not yet answered) will hold in each namespace: counted as
   * used when another service of the namespace is decided meanwhile, so two decisions do not both take the same room.
   */
  private readonly reserved = new Map<string, { tasks: number; cpus: number; memoryMb: number }>();
  /** Decisions proposed and decide() calls, for the benchmark. */
  readonly counters = { passes: 0, decisions: 0, proposals: 0, created: 0, stopped: 0, drained: 0 };

  constructor(private readonly o: ServiceLoopOptions) {
    this.ids = new TaskIdGenerator(o.clock);
    this.due = new LocalDueTimes(o.clock, limits.leaderDueTimesMax);
    this.concurrency = o.concurrency ?? 32;
  }

  get active(): boolean {
    return this.session !== null;
  }

  start(term: number): void {
    this.stop();
    this.session = { term, stopped: false };
    this.markAll();
    this.armPeriodic();
  }

  stop(): void {
    if (this.session !== null) this.session.stopped = true;
    this.session = null;
    this.dirty.clear();
    this.periodic?.cancel();
    this.periodic = null;
    this.wake?.timer.cancel();
    this.wake = null;
    this.pendingWake.clear();
    this.due.clear();
    this.heldRevision.clear();
  }

  /** A service's record or one of its replicas changed (called as entries apply, on every manager). */
  touch(name: string): void {
    if (this.session === null) return;
    this.dirty.add(name);
    this.kick();
  }

  private markAll(): void {
    for (const s of this.o.services.services()) this.dirty.add(s.name);
    this.kick();
  }

  private armPeriodic(): void {
    this.periodic = this.o.clock.setTimeout(() => {
      if (this.session === null) return;
      this.markAll();
      this.armPeriodic();
    }, this.o.reconcileIntervalMs);
  }

  private kick(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // Not now: touch() runs inside the Raft ready loop; a burst of changes becomes one pass.
    setImmediate(() => {
      this.scheduled = false;
      void this.pass();
    });
  }

  /** Decides for every dirty service, `concurrency` proposals at a time, until none is left. */
  private async pass(): Promise<void> {
    const s = this.session;
    if (s === null || this.running) return;
    this.running = true;
    try {
      while (this.session === s && this.dirty.size > 0) {
        const batch: string[] = [];
        for (const name of this.dirty) {
          if (batch.length >= this.concurrency) break;
          this.dirty.delete(name);
          if (!this.inflight.has(name)) batch.push(name);
        }
        if (batch.length === 0) break;
        this.counters.passes++;
        await Promise.all(batch.map((name) => this.reconcileOne(s, name)));
      }
    } finally {
      this.running = false;
    }
    // Changes that arrived for services in flight.
    if (this.session === s && this.dirty.size > 0) this.kick();
  }

  /** Decides for one service on the applied state; answers the decision (for tests and the benchmark). */
  decideNow(name: string): Decision | null {
    return this.decideHere(name)?.decision ?? null;
  }

  /**
   * decide() at this leader's time: its wall time; or, when the rollout waits for a stored time (a batch's monitor
   * window, the delay after it) that this leader has already waited out on its monotonic clock, that stored time, so
   * that a step of the wall clock back does not hold the rollout for the length of the step. atMs is the time decided
   * at (the command's), wakeInMs how long until the next look (null: none asked for).
   */
  private decideHere(name: string): { decision: Decision; atMs: number; wakeInMs: number | null } | null {
    const service = this.o.services.service(name);
    if (service === undefined) {
      this.due.forget(name);
      this.heldRevision.delete(name);
      return null;
    }
    const replicas = [];
    for (const id of this.o.tasks.idsOfService(name)) {
      const t = this.o.tasks.task(id);
      if (t !== undefined && !finalTaskStates.has(t.state)) replicas.push(replicaIn(this.o.tasks, t));
    }
    this.counters.decisions++;
    const wallMs = this.o.clock.nowMs();
    // A stored time of this rollout (its revision unchanged) that the wall clock has passed but this leader has not
    // waited out on its monotonic clock: the wall clock stepped forward. Decided at the time it would be without the
    // step, so the monitor window and the delay after it are not cut short.
    const held = this.due.pending(name);
    const nowMs = held !== undefined && held.remainingMs > 0 && held.atMs <= wallMs && this.heldRevision.get(name) === service.revision ? held.atMs - held.remainingMs : wallMs;
    const room = this.roomFor(service);
    const decision = decide(service, replicas, nowMs, room);
    if (decision.wakeAtMs === null) {
      this.due.forget(name);
      this.heldRevision.delete(name);
      return { decision, atMs: nowMs, wakeInMs: null };
    }
    const wakeInMs = this.due.remainingMs(name, decision.wakeAtMs, requestedWaitMs(service, decision.wakeAtMs));
    this.heldRevision.set(name, service.revision);
    if (wakeInMs > 0 || decision.wakeAtMs <= nowMs) return { decision, atMs: nowMs, wakeInMs };
    const atMs = decision.wakeAtMs;
    return { decision: decide(service, replicas, atMs, room), atMs, wakeInMs: null };
  }

  /** Replicas of the service's current version its namespace's quota takes now, beside the decisions in flight. */
  private roomFor(service: ServiceRecord): number {
    if (this.o.quotas === undefined) return Number.POSITIVE_INFINITY;
    return this.o.quotas.room(specOf(service, service.version), (ns) => {
      const u = this.o.tasks.usage.of(ns);
      const r = this.reserved.get(ns);
      return r === undefined ? u : { tasks: u.tasks + r.tasks, cpus: u.cpus + r.cpus, memoryMb: u.memoryMb + r.memoryMb };
    });
  }

  /** Counts (sign 1) or stops counting (-1) `n` replicas of the service's current version as held by its namespace. */
  private reserve(service: ServiceRecord, n: number, sign: 1 | -1): void {
    if (n === 0 || this.o.quotas === undefined) return;
    const spec = specOf(service, service.version);
    const ns = namespaceOf(spec);
    const r = this.reserved.get(ns) ?? { tasks: 0, cpus: 0, memoryMb: 0 };
    r.tasks += sign * n;
    r.cpus += sign * n * (spec.resources?.cpus ?? 0);
    r.memoryMb += sign * n * (spec.resources?.memoryMb ?? 0);
    if (r.tasks <= 0) this.reserved.delete(ns);
    else this.reserved.set(ns, r);
  }

  private async reconcileOne(s: Session, name: string): Promise<void> {
    const service = this.o.services.service(name);
    if (service === undefined) return;
    const here = this.decideHere(name);
    if (here === null) return;
    const { decision: d, atMs } = here;
    if (here.wakeInMs !== null) this.armWake(name, here.wakeInMs);
    const drainWanted = d.drain ?? [];
    if (d.create === 0 && d.stop.length === 0 && d.rollout === undefined && d.revert !== true && drainWanted.length === 0) return;
    const create = Array.from({ length: Math.min(d.create, limits.serviceReconcileBatchMax) }, () => this.ids.next());
    const stop = d.stop.slice(0, limits.serviceReconcileBatchMax);
    const drain = drainWanted.slice(0, limits.serviceReconcileBatchMax);
    const cmd = {
      op: 'service.reconcile' as const, name, atMs, ifRevision: service.revision, create, stop,
      ...(d.rollout === undefined ? {} : { rollout: d.rollout }), ...(d.revert === true ? { revert: true as const } : {}),
      ...(drain.length === 0 ? {} : { drain }),
    };
    this.inflight.add(name);
    this.reserve(service, create.length, 1);
    try {
      const r = await this.o.raft.proposeCommand(cmd, this.o.clock.monoMs() + this.o.proposalTimeoutMs, `leader-${s.term}-service-${++this.seq}`);
      this.counters.proposals++;
      if (!r.ok) this.o.logger.warn({ service: name, code: r.code, reason: r.message }, 'service reconcile refused');
      else {
        this.counters.created += create.length;
        this.counters.stopped += stop.length;
        this.counters.drained += drain.length;
        if (d.revert === true || d.rollout?.state === 'paused') this.o.logger.warn({ service: name, reason: d.rollout?.message }, 'service rollout failed');
      }
    } catch (err) {
      this.o.logger.warn({ service: name, err }, 'service reconcile not committed; retrying at the next pass');
    } finally {
      this.inflight.delete(name);
      this.reserve(service, create.length, -1);
    }
    // What was cut by the batch bound, or changed while in flight, goes again.
    if (this.session === s && (create.length < d.create || stop.length < d.stop.length || drain.length < drainWanted.length)) this.dirty.add(name);
  }

  /** Decides for `name` again in delayMs (with every service that waits for the same wake-up or an earlier one). */
  private armWake(name: string, delayMs: number): void {
    const dueMonoMs = this.o.clock.monoMs() + delayMs;
    if (this.wake !== null && this.wake.dueMonoMs <= dueMonoMs) {
      this.pendingWake.add(name);
      return;
    }
    this.wake?.timer.cancel();
    this.pendingWake.add(name);
    const timer = this.o.clock.setTimeout(() => {
      this.wake = null;
      for (const n of this.pendingWake) this.dirty.add(n);
      this.pendingWake.clear();
      this.kick();
    }, delayMs + 1);
    this.wake = { timer, dueMonoMs };
  }

  private readonly pendingWake = new Set<string>();
}

/**
 * A replica as decide() reads it, with what the record alone does not say and a drain needs: whether its worker is
 * being drained (and it is not marked yet), and whether no worker can take it now (asked only of a replica a drain
 * moved that waits to be placed, which is rare: it weighs every worker).
 */
export function replicaIn(tasks: TaskStore, t: TaskRecord): ReplicaState {
  const r = replicaState(t);
  const onDrainedWorker = t.workerId !== null && r.draining !== true && tasks.storedWorker(t.workerId)?.availability === 'drain';
  const unplaceable = r.movedByDrain === true && t.state === 'pending' && !verdictsFor(tasks, t).some((v) => v.eligible);
  return onDrainedWorker || unplaceable ? { ...r, onDrainedWorker, unplaceable } : r;
}

/**
 * The longest a rollout may wait for `wakeAtMs`, as its record asked when the time was written: a batch's monitor
 * window (monitorS) for the window's end, and the window plus the delay (delayS) for the next batch.
 */
function requestedWaitMs(s: ServiceRecord, wakeAtMs: number): number {
  const monitorMs = s.update.monitorS * 1000;
  return wakeAtMs === s.rollout.monitorUntilMs ? monitorMs : monitorMs + s.update.delayS * 1000;
}
