// The leader's scheduling loop: places pending tasks through the placement policy (one Raft command per batch, with
// the new cursor), then sends each committed assignment and each stop to its worker with bounded concurrency, and
// turns the answers into task reports. Runs only between start(term) and stop(); stop() cancels everything in flight.
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { Assignment, WorkerTaskStatus } from '../contracts/worker.js';
import type { TaskReport } from '../kv/task-commands.js';
import type { TaskRecord } from '../contracts/task-model.js';
import { isActiveState, stopWanted } from '../kv/task-rules.js';
import type { TaskStore } from '../kv/task-store.js';
import type { TasksConfig } from '../config/cluster.js';
import { retryAtMs } from '../lib/backoff.js';
import { LocalDueTimes, setIntervalOn, type Clock, type Timer } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { PlacementPolicy, PlacementTask, PlacementWorker } from '../scheduler/policy.js';
import { reserve } from '../scheduler/eligibility.js';
import { planPreemption } from '../scheduler/preemption.js';
import { priorityOf } from '../scheduler/priority.js';
import { addSpreadCounts, compareQueueKeys, placementTask, preemptibleOn, PriorityIndex, queueKey, readyWorkers, type QueueKey } from './placement-input.js';
import { reportsOf } from './observations.js';
import { assignmentOf, type Proposer } from './task-service.js';
import { classifyAssignError, type WorkerApi } from './worker-client.js';

export interface SchedulerLoopOptions {
  store: TaskStore;
  raft: Proposer;
  workers: WorkerApi;
  tasks: TasksConfig;
  policy: PlacementPolicy;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** How long the loop's own proposals may take. */
  proposalTimeoutMs: number;
  concurrency?: number;
  queueMax?: number;
  batchMax?: number;
  /** Assignments to one worker in one call. */
  assignBatchMax?: number;
  /** scheduler.preemption: a high-priority task with no room stops low-priority ones to make room. */
  preemption?: boolean;
  /** Pending tasks a pass looks at (limits.placementScanMax), the first headMax of them at the head of the queue. */
  scan?: { max: number; headMax: number };
}

type Work = 'assign' | 'stop';

/** One assignment or stop, ready to send. */
interface Prepared {
  readonly id: string;
  readonly work: Work;
  readonly worker: { readonly id: string; readonly apiAddress: string };
  readonly a: Assignment;
}

interface Session {
  readonly term: number;
  readonly abort: AbortController;
  /** Scheduled tasks whose assignment a worker has answered in this leadership (id -> token): not sent again. */
  readonly delivered: Map<string, string>;
}

export class SchedulerLoop {
  private session: Session | null = null;
  private placing = false;
  private placeAgain = false;
  private placeScheduled = false;
  /** The next placement pass for a retry's backoff, due at dueMonoMs (clock.monoMs()). */
  private placeTimer: { cancel(): void; dueMonoMs: number } | null = null;
  private reconcileTimer: Timer | null = null;
  private readonly queue = new Map<string, Work>();
  private readonly inflight = new Set<string>();
  /** Calls to workers in flight (each carries one or more tasks of `inflight`). */
  private calls = 0;
  private reports: TaskReport[] = [];
  private flushing = false;
  private pumpScheduled = false;
  private seq = 0;
  private dropped = 0;
  private passes = 0;
  private readonly concurrency: number;
  private readonly queueMax: number;
  private readonly batchMax: number;
  private readonly assignBatchMax: number;
  private readonly scanMax: number;
  private readonly scanHeadMax: number;
  /** Pending tasks of high and low priority: the queue is served by priority, then age. */
  private readonly priorities = new PriorityIndex();
  /**
   * Where the next pass goes on beyond the head of the queue: the last task the previous pass looked at there, or
   * null for right after the head. The leader's own (a new leader starts after the head), deterministic as the
   * placements it leads to.
   */
  private scanCursor: QueueKey | null = null;
  /**
   * Pending tasks' notBeforeMs (a wall time in the record) as this leader waits on it: measured once, at most the
   * maximum backoff, then counted on the monotonic clock (a wall-clock step back does not hold a retry back).
   */
  private readonly notBefore: LocalDueTimes;

  constructor(private readonly o: SchedulerLoopOptions) {
    this.concurrency = o.concurrency ?? limits.assignConcurrencyMax;
    this.queueMax = o.queueMax ?? limits.assignQueueMax;
    this.batchMax = o.batchMax ?? limits.placementBatchMax;
    this.assignBatchMax = o.assignBatchMax ?? limits.assignBatchMax;
    this.scanMax = o.scan?.max ?? limits.placementScanMax;
    this.scanHeadMax = o.scan?.headMax ?? limits.placementScanHeadMax;
    this.notBefore = new LocalDueTimes(o.clock, limits.leaderDueTimesMax);
  }

  get running(): boolean {
    return this.session !== null;
  }

  /** Reconcile passes run so far, in every leadership: a test waits on it to know a pass has been and gone. */
  get reconcilePasses(): number {
    return this.passes;
  }

  /** Begins a leadership: a full reconcile pass now, then one every reconcileIntervalMs. */
  start(term: number): void {
    this.stop();
    this.session = { term, abort: new AbortController(), delivered: new Map() };
    // Every call in flight listens on the session's signal.
    setMaxListeners(this.concurrency + 16, this.session.abort.signal);
    this.priorities.rebuild(this.o.store);
    this.scanCursor = null;
    this.reconcile();
    this.reconcileTimer = setIntervalOn(this.o.clock, () => this.reconcile(), this.o.tasks.reconcileIntervalMs);
  }

  stop(): void {
    const s = this.session;
    if (s === null) return;
    this.session = null;
    s.abort.abort();
    this.reconcileTimer?.cancel();
    this.reconcileTimer = null;
    this.placeTimer?.cancel();
    this.placeTimer = null;
    this.notBefore.clear();
    this.queue.clear();
    this.reports = [];
  }

  /** From the store's listener, as entries are applied: wake whatever the change calls for. */
  onTaskChanged(t: TaskRecord, prev: TaskRecord | null): void {
    const s = this.session;
    if (s === null) return;
    this.priorities.note(t);
    if (t.state !== 'pending') this.notBefore.forget(t.id);
    // Only scheduled tasks are looked up in `delivered`: it stays as small as the number of tasks placed but not running.
    if (t.state !== 'scheduled') s.delivered.delete(t.id);
    if (t.state === 'pending') {
      this.kickPlacement();
    } else if (isActiveState(t.state)) {
      if (stopWanted(t)) this.enqueue(t.id, 'stop');
      else if (t.state === 'scheduled' && (prev === null || prev.state !== 'scheduled')) this.enqueue(t.id, 'assign');
    }
  }

  onWorkerReady(): void {
    this.kickPlacement();
  }

  /** Every placed task not yet delivered, every stop not yet confirmed, and any pending task. */
  private reconcile(): void {
    const s = this.session;
    if (s === null) return;
    this.passes++;
    const { store } = this.o;
    for (const w of store.allWorkers()) {
      for (const id of store.activeIdsOn(w.id)) {
        if (this.inflight.has(id) || this.queue.has(id)) continue;
        const t = store.task(id)!;
        if (stopWanted(t)) this.enqueue(id, 'stop');
        else if (t.state === 'scheduled' && s.delivered.get(id) !== tokenKey(t)) this.enqueue(id, 'assign');
      }
    }
    this.kickPlacement();
  }

  // ---- placement ----

  private kickPlacement(): void {
    if (this.session === null) return;
    if (this.placing) {
      this.placeAgain = true;
      return;
    }
    if (this.placeScheduled) return;
    this.placeScheduled = true;
    // Coalesce: a burst of submissions applied in one ready becomes one placement command.
    setImmediate(() => {
      this.placeScheduled = false;
      void this.placeLoop();
    });
  }

  private async placeLoop(): Promise<void> {
    const s = this.session;
    if (s === null || this.placing) return;
    this.placing = true;
    try {
      do {
        this.placeAgain = false;
        if (await this.placeOnce(s)) this.placeAgain = true;
      } while (this.placeAgain && this.session === s);
    } catch (err) {
      this.o.logger.warn({ err }, 'placement failed; retrying shortly');
      this.armPlacementTimer(200);
    } finally {
      this.placing = false;
    }
  }

  /** Proposes one batch of placements; answers whether a full batch went (more may be waiting). */
  private async placeOnce(s: Session): Promise<boolean> {
    const { store, clock } = this.o;
    const now = clock.nowMs();
    const backoffMaxMs = this.o.tasks.backoffCapMs;
    let workers = readyWorkers(store);
    if (workers.length === 0) return false;
    // The queue in order (priority, then age), a batch at a time; a task no worker can take now is passed over, so
    // it never holds back the ones behind it. Which tasks a pass looks at: see lookAt.
    let earliestInMs = Infinity;
    let cursor = store.cursor;
    const placements: { taskId: string; attempt: number; workerId: string }[] = [];
    const unplacedHigh: PlacementTask[] = [];
    let chunk: PlacementTask[] = [];
    // Service replicas per worker, for spreading: read once per service, then counted on as this pass places them.
    const spread = new Map<string, Map<string, number>>();
    const placeChunk = (): void => {
      addSpreadCounts(store, chunk, spread);
      const decision = this.o.policy.place({ tasks: chunk, workers, cursor, spread });
      const placed = new Map(decision.placements.map((p) => [p.taskId, p.workerId]));
      const byId = new Map(workers.map((w, i) => [w.id, i]));
      for (const t of chunk) {
        const w = placed.get(t.id);
        if (w === undefined) {
          if (this.o.preemption === true && priorityOf(store.task(t.id)!.spec) === 'high') unplacedHigh.push(t);
          continue;
        }
        const i = byId.get(w)!;
        if (t.spreadGroup !== undefined) {
          const counts = spread.get(t.spreadGroup)!;
          counts.set(w, (counts.get(w) ?? 0) + 1);
        }
        const free = reserve(workers[i]!.free, t);
        workers[i] = { ...workers[i]!, activeTasks: workers[i]!.activeTasks + 1, ...(free === undefined ? {} : { free }) };
      }
      workers = [...workers];
      placements.push(...decision.placements);
      cursor = decision.cursor;
      chunk = [];
    };
    const due = (t: TaskRecord): boolean => {
      if (t.state !== 'pending' || t.desiredState !== 'run') return false;
      if (t.notBeforeMs === 0) return true;
      const waitMs = this.notBefore.remainingMs(t.id, t.notBeforeMs, backoffMaxMs);
      if (waitMs > 0) earliestInMs = Math.min(earliestInMs, waitMs);
      return waitMs <= 0;
    };
    for (const t of this.lookAt(due)) {
      chunk.push(placementTask(t));
      if (chunk.length >= this.batchMax) placeChunk();
      if (placements.length >= this.batchMax) break;
    }
    if (chunk.length > 0) placeChunk();
    if (earliestInMs !== Infinity) this.armPlacementTimer(earliestInMs);
    if (unplacedHigh.length > 0) await this.preempt(s, unplacedHigh, workers, now);
    if (placements.length === 0) return false;
    const r = await this.o.raft.proposeCommand(
      { op: 'task.place', term: s.term, atMs: placeAtMs(store, placements, now), cursor, placements },
      clock.monoMs() + this.o.proposalTimeoutMs,
      `leader-${s.term}-place-${++this.seq}`,
    );
    if (!r.ok) this.o.logger.warn({ code: r.code, reason: r.message }, 'placement refused');
    return placements.length >= this.batchMax;
  }

  /**
   * The pending tasks `due` accepts that one pass looks at, in queue order: the first scanHeadMax (so a new task of
   * high priority is looked at at once), then up to scanMax - scanHeadMax more, going on after the last the previous
   * pass looked at beyond the head, and back to just after the head once the end is reached. So however many tasks
   * that fit nowhere wait in front of it, a task is looked at within ceil((pending - scanHeadMax) / (scanMax -
   * scanHeadMax)) + 1 passes.
   * A pass that stops early (a full batch) moves the cursor only past what it looked at.
   */
  private *lookAt(due: (t: TaskRecord) => boolean): Generator<TaskRecord> {
    const { store } = this.o;
    let headEnd: QueueKey | null = null;
    let n = 0;
    for (const id of this.priorities.queue(store)) {
      const t = store.task(id);
      if (t === undefined || !due(t)) continue;
      yield t;
      if (++n >= this.scanHeadMax) {
        headEnd = queueKey(t);
        break;
      }
    }
    if (headEnd !== null) {
      const from = this.scanCursor !== null && compareQueueKeys(this.scanCursor, headEnd) > 0 ? this.scanCursor : headEnd;
      n = 0;
      for (const id of this.priorities.queue(store, from)) {
        const t = store.task(id);
        if (t === undefined || !due(t)) continue;
        this.scanCursor = queueKey(t);
        yield t;
        if (++n >= this.scanMax - this.scanHeadMax) return;
      }
    }
    // The end of the queue: the next pass starts again right after the head.
    this.scanCursor = null;
  }

  /**
   * Preemption: for each high-priority task that found no room, the fewest low-priority tasks on one worker whose
   * room makes it fit are sent back to pending (a leader's report of a transient failure: they are retried as any
   * such failure is, using one of their attempts). The freed room goes to the high task at the next pass.
   */
  private async preempt(s: Session, tasks: readonly PlacementTask[], workers: readonly PlacementWorker[], now: number): Promise<void> {
    const { store } = this.o;
    const taken = new Set<string>();
    const reports: TaskReport[] = [];
    for (const t of tasks) {
      const plan = planPreemption(t, workers, (w) => preemptibleOn(store, w).filter((v) => !taken.has(v.id)));
      if (plan === null) continue;
      for (const id of plan.victims) {
        taken.add(id);
        const v = store.task(id)!;
        reports.push({
          taskId: id, workerId: v.workerId!, attempt: v.attempt, term: v.term, state: 'failed', containerId: v.containerId, exitCode: null,
          error: { class: 'transient', message: `preempted by high-priority task ${t.id}` }, retryAtMs: now,
        });
      }
      // The room is counted as taken by this task until the next pass sees the victims gone.
      workers = workers.map((w) => (w.id === plan.workerId ? { ...w, free: { cpus: -Infinity, memoryMb: -Infinity } } : w));
      this.o.logger.info({ task: t.id, worker: plan.workerId, victims: plan.victims }, 'preempting low-priority tasks');
    }
    if (reports.length === 0) return;
    const r = await this.o.raft.proposeCommand({ op: 'task.report', atMs: now, reports }, this.o.clock.monoMs() + this.o.proposalTimeoutMs, `leader-${s.term}-preempt-${++this.seq}`);
    if (!r.ok) this.o.logger.warn({ code: r.code, reason: r.message }, 'preemption refused');
  }

  /** A placement pass in delayMs, unless one is due sooner. */
  private armPlacementTimer(delayMs: number): void {
    const dueMonoMs = this.o.clock.monoMs() + delayMs;
    if (this.session === null || (this.placeTimer !== null && this.placeTimer.dueMonoMs <= dueMonoMs)) return;
    this.placeTimer?.cancel();
    const t = this.o.clock.setTimeout(() => {
      this.placeTimer = null;
      this.kickPlacement();
    }, delayMs);
    this.placeTimer = { cancel: () => t.cancel(), dueMonoMs };
  }

  // ---- assignments and stops ----

  private enqueue(id: string, work: Work): void {
    if (this.session === null) return;
    if (!this.queue.has(id) && this.queue.size >= this.queueMax) {
      // The reconcile pass finds it again; say so once per burst.
      if (this.dropped++ === 0) this.o.logger.warn({ queueMax: this.queueMax }, 'the assignment queue is full; the reconcile pass will retry');
      return;
    }
    this.queue.set(id, work === 'stop' || this.queue.get(id) === 'stop' ? 'stop' : 'assign');
    // Not now: enqueue runs inside the Raft ready loop (as entries apply), which must not wait on sockets.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /**
   * Sends queued work, at most `concurrency` calls at once. Assignments to one worker go together, up to
   * assignBatchMax per call: at low load each leaves alone at once, under load what queued meanwhile shares a call.
   */
  private pump(): void {
    const s = this.session;
    if (s === null) return;
    const buckets = new Map<string, Prepared[]>();
    for (const [id, work] of this.queue) {
      if (this.calls + buckets.size >= this.concurrency) break;
      // One call per task at a time: a stop never overtakes the assignment it cancels.
      if (this.inflight.has(id)) continue;
      this.queue.delete(id);
      const p = this.prepare(s, id, work);
      if (p === null) continue;
      this.inflight.add(id);
      if (work === 'stop') {
        this.dispatch(s, [p]);
        continue;
      }
      const bucket = buckets.get(p.worker.id) ?? [];
      bucket.push(p);
      buckets.set(p.worker.id, bucket);
      if (bucket.length >= this.assignBatchMax) {
        buckets.delete(p.worker.id);
        this.dispatch(s, bucket);
      }
    }
    for (const bucket of buckets.values()) this.dispatch(s, bucket);
    if (this.queue.size === 0) this.dropped = 0;
  }

  /** The assignment or stop to send for `id` now, or null when the task has moved on. */
  private prepare(s: Session, id: string, work: Work): Prepared | null {
    const { store } = this.o;
    const t = store.task(id);
    if (t === undefined || !isActiveState(t.state) || t.workerId === null) return null;
    if (work === 'assign' ? t.state !== 'scheduled' || stopWanted(t) : !stopWanted(t)) return null;
    if (work === 'assign' && s.delivered.get(id) === tokenKey(t)) return null;
    const worker = store.storedWorker(t.workerId);
    if (worker === undefined) return null;
    return { id, work, worker: { id: worker.id, apiAddress: worker.apiAddress }, a: assignmentOf(t) };
  }

  private dispatch(s: Session, ps: readonly Prepared[]): void {
    this.calls++;
    void this.call(s, ps).finally(() => {
      this.calls--;
      for (const p of ps) this.inflight.delete(p.id);
      this.pump();
    });
  }

  private async call(s: Session, ps: readonly Prepared[]): Promise<void> {
    const { worker, work } = ps[0]!;
    // A stop is answered once the task has ended: its own stopTimeoutS (else the config's) and some slack.
    const stopS = ps[0]!.a.spec.stopTimeoutS;
    const timeoutMs = work === 'assign' ? this.o.tasks.assignTimeoutMs : (stopS === undefined ? this.o.tasks.stopTimeoutMs : stopS * 1000) + 5000;
    const opts = { workerId: worker.id, timeoutMs, signal: s.abort.signal };
    let answers: (WorkerTaskStatus | Error)[];
    try {
      answers = ps.length === 1
        ? [await this.o.workers.assign(worker.apiAddress, ps[0]!.a, opts)]
        : await this.o.workers.assignMany(worker.apiAddress, ps.map((p) => p.a), opts);
    } catch (err) {
      answers = ps.map(() => (err instanceof Error ? err : new Error(String(err))));
    }
    if (this.session !== s) return;
    for (const [i, p] of ps.entries()) {
      const answer = answers[i];
      if (answer === undefined || answer instanceof Error) this.onFailure(s, p, answer ?? new Error('no answer'));
      else this.onAnswer(s, p, answer);
    }
  }

  private onAnswer(s: Session, p: Prepared, status: WorkerTaskStatus): void {
    const { a, work, worker } = p;
    if (status.attempt !== a.attempt || status.term !== a.term) return;
    const current = this.o.store.task(p.id);
    if (current === undefined) return;
    if (work === 'assign' && current.state === 'scheduled' && tokenKey(current) === tokenKey(a)) s.delivered.set(p.id, tokenKey(a));
    for (const report of reportsOf(current, worker.id, status, this.retryAt(a.attempt))) this.addReport(report);
  }

  /** When each worker's address last answered with another node's certificate (a warn line each minute at most). */
  private readonly refusedCertificateAtMs = new Map<string, number>();

  /** Whether a refused certificate at `workerId`'s address is to be logged at warn now. */
  private noteRefusedCertificate(workerId: string): boolean {
    const nowMs = this.o.clock.monoMs();
    const lastMs = this.refusedCertificateAtMs.get(workerId);
    if (lastMs !== undefined && nowMs - lastMs < 60_000) return false;
    if (lastMs === undefined && this.refusedCertificateAtMs.size >= limits.workersMax) this.refusedCertificateAtMs.clear();
    this.refusedCertificateAtMs.set(workerId, nowMs);
    return true;
  }

  private onFailure(s: Session, p: Prepared, err: Error): void {
    const { a, work, worker } = p;
    const failure = classifyAssignError(err);
    if (failure === 'deferred') {
      // It surely did not run there: the worker is full (finished tasks not yet acknowledged included), or its
      // connection was refused (it is restarting, or gone). The task stays placed there, not delivered, and costs no
      // attempt: the next reconcile pass sends it again, and the worker's own reconcile starts it once it can. The
      // leader never places more on a worker than it may hold (eligibility.ts); a worker that is gone is found down
      // after workerTtlMs + lostGraceMs, and its tasks are placed again then. Burning the attempts here failed tasks
      // submitted while their worker restarted (three refusals in 1.5 s), and rolled back service updates.
      // Something answering at the worker's address with another node's certificate is worth an operator's eye
      // (an impersonation, or a worker restarted at another's address): warn, once a minute per worker.
      if (err.message.includes("the server's certificate is refused") && this.noteRefusedCertificate(worker.id)) {
        this.o.logger.warn({ worker: worker.id, address: worker.apiAddress, reason: err.message }, `the server at worker ${worker.id}'s address is not worker ${worker.id}: its assignments wait (said at most once a minute)`);
      } else this.o.logger.debug({ task: p.id, worker: worker.id, reason: err.message }, 'assignment deferred');
      return;
    }
    this.o.logger.warn({ task: p.id, worker: worker.id, work, failure, reason: err.message }, `${work} failed`);
    // A failed stop is sent again by the next reconcile pass; a failed assignment is retried elsewhere or fails.
    if (failure === 'stale' || work === 'stop') return;
    if (failure === 'unknown') {
      // It may be running there: taken as delivered, so it is neither sent again nor placed elsewhere. The worker
      // reports it in a heartbeat, or starts it when its reconcile pass asks for its assignments; a worker that is
      // gone is found down after workerTtlMs + lostGraceMs, and its tasks are retried then.
      s.delivered.set(p.id, tokenKey(a));
      return;
    }
    this.addReport({
      taskId: p.id, workerId: worker.id, attempt: a.attempt, term: a.term, state: 'failed', containerId: null, exitCode: null,
      error: { class: failure, message: `the assignment to worker ${worker.id} failed: ${err.message}` }, retryAtMs: this.retryAt(a.attempt),
    });
  }

  private retryAt(attempt: number): number {
    const { tasks, clock, random } = this.o;
    return retryAtMs(clock.nowMs(), attempt, { baseMs: tasks.backoffBaseMs, capMs: tasks.backoffCapMs }, random);
  }

  private addReport(r: TaskReport): void {
    // Bounded by the calls in flight; a report lost here comes back with the worker's next heartbeat.
    if (this.reports.length >= limits.reportBatchMax * 4) return;
    this.reports.push(r);
    if (!this.flushing) void this.flush();
  }

  /** One task.report command at a time; what arrives meanwhile goes into the next one. */
  private async flush(): Promise<void> {
    const s = this.session;
    if (s === null || this.flushing) return;
    this.flushing = true;
    try {
      await new Promise((r) => setImmediate(r));
      while (this.reports.length > 0 && this.session === s) {
        const batch = this.reports.splice(0, limits.reportBatchMax);
        const now = this.o.clock.nowMs();
        try {
          await this.o.raft.proposeCommand({ op: 'task.report', atMs: now, reports: batch }, this.o.clock.monoMs() + this.o.proposalTimeoutMs, `leader-${s.term}-report-${++this.seq}`);
        } catch (err) {
          this.o.logger.warn({ err, reports: batch.length }, 'could not commit task reports; the workers will report them again');
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

/**
 * The time a placement command carries: this leader's wall time, or a later notBeforeMs of a task it places, whose
 * wait this leader counted on its monotonic clock while its wall clock was stepped back. The state machine places no
 * task before its notBeforeMs (task-store.ts), and it must not refuse one whose backoff has passed here.
 */
function placeAtMs(store: TaskStore, placements: readonly { taskId: string }[], nowMs: number): number {
  let atMs = nowMs;
  for (const p of placements) atMs = Math.max(atMs, store.task(p.taskId)?.notBeforeMs ?? 0);
  return atMs;
}

function tokenKey(t: { attempt: number; term: number }): string {
  return `${t.attempt}/${t.term}`;
}
