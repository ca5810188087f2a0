// The task and worker half of the managers' API: submissions, stops and worker traffic become proposals, reads wait
// for a linearizable barrier. Works the same on every manager (the Raft core forwards a follower's proposals).
//
// Heartbeats and Raft writes: a heartbeat is proposed only when it changes something, namely a task state the
// worker reports differently from the record, a worker that is not 'ready', or liveness older than
// livenessCommitMs = max(heartbeat interval, workerTtlMs / 3). So a quiet worker costs one small write every
// livenessCommitMs (not one per task per beat), and lastHeartbeatAt in GET /v1/workers is the same on every manager
// and at most livenessCommitMs behind the worker's latest beat. The leader judges silence by when it applied the
// worker's last heartbeat (its own clock), well inside workerTtlMs.
import type { Logger } from 'pino';
import type { Page, ReadConsistency, RequestContext, TaskListQuery, TasksService } from '../contracts/services.js';
import type { Assignment, HeartbeatRequest, HeartbeatResponse, RegisterRequest, WorkerReplacedDetails } from '../contracts/worker.js';
import type { Command, EntryPrincipal } from '../kv/commands.js';
import type { ApplyResult } from '../kv/state-machine.js';
import { engineReasonCharsMax, type TaskCommand } from '../kv/task-commands.js';
import { finalTaskStates, type StoredWorker, type TaskRecord, type TaskSpec, type WorkerAvailability, type WorkerRecord } from '../contracts/task-model.js';
import { stopWanted } from '../kv/task-rules.js';
import { replacedBy, type TaskStore } from '../kv/task-store.js';
import type { TasksConfig } from '../config/cluster.js';
import { endpointKey } from '../lib/address.js';
import { retryAtMs } from '../lib/backoff.js';
import { setIntervalOn, sleepOn, type Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import { changedReports, namesUnappliedPlacement } from './observations.js';
import { TaskIdGenerator } from './task-ids.js';
import { managerHoldingId } from './node-ids.js';
import type { WorkerApi } from './worker-client.js';

export interface Proposer {
  /** principal: who asked (ctx.principal), carried in the entry for the audit log. */
  proposeCommand(cmd: Command, deadlineMs: number, requestId: string, principal?: EntryPrincipal, traceparent?: string): Promise<ApplyResult>;
  /** Resolves once this manager has applied everything committed before the call. */
  barrier(deadlineMs: number): Promise<void>;
}

export interface TaskServiceOptions {
  store: TaskStore;
  raft: Proposer;
  tasks: TasksConfig;
  workers: WorkerApi;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Told of every heartbeat this manager answers (the leader's health loop counts it as a sign of life). */
  onHeartbeat?: (workerId: string) => void;
  /** The managers' API addresses, told to workers in each heartbeat's answer (HeartbeatResponse.managers). */
  managers?: () => readonly string[];
  /** The managers of the configuration with their addresses: a worker may register at none of them. */
  managerAddresses?: () => readonly ManagerAddresses[];
  /** The ids of the configuration's managers (voters and learners, the latest in the log): a worker may take none. */
  managerIds?: () => readonly string[];
}

export interface ManagerAddresses {
  readonly id: string;
  readonly raftAddress: string;
  readonly apiAddress: string;
}

/** How often a worker's uncommitted engine state is warned of, and for at most how many workers it is remembered. */
const engineWarnEveryMs = 60_000;
const engineWarnedMax = 10_000;

export class TaskServiceImpl implements TasksService {
  private readonly ids: TaskIdGenerator;
  /** Workers with a worker.engine proposal in flight (noteEngine). */
  private readonly engineProposing = new Set<string>();
  /** When each worker's uncommitted engine state was last warned of (monotonic ms); bounded by engineWarnedMax. */
  private readonly engineWarnedMs = new Map<string, number>();

  constructor(private readonly o: TaskServiceOptions) {
    this.ids = new TaskIdGenerator(o.clock);
  }

  /**
   * Read at each heartbeat, not kept: a reload lowers workerTtlMs in place, and a record committed at the old pace
   * (a third of the old TTL) would leave the leader hearing of live workers too late for the new one.
   */
  get livenessCommitMs(): number {
    return Math.max(this.o.tasks.workerHeartbeatIntervalMs, Math.floor(this.o.tasks.workerTtlMs / 3));
  }

  // ---- tasks ----

  async submitTask(spec: TaskSpec, idempotencyKey: string | undefined, ctx: RequestContext): Promise<TaskRecord> {
    const key = scopedIdempotencyKey(idempotencyKey, ctx);
    if (key !== undefined) this.refuseKeyOfOtherShape(key, null);
    const cmd: TaskCommand = { op: 'task.submit', taskId: this.ids.next(), spec, atMs: this.o.clock.nowMs(), ...(key === undefined ? {} : { idempotencyKey: key }) };
    const id = await this.proposeOk(cmd, ctx);
    return this.taskOrThrow(id);
  }

  async submitTasks(specs: readonly TaskSpec[], idempotencyKey: string | undefined, ctx: RequestContext): Promise<TaskRecord[]> {
    // A space cannot occur in an Idempotency-Key header, so these never meet a single submission's key.
    const key = scopedIdempotencyKey(idempotencyKey, ctx);
    if (key !== undefined) this.refuseKeyOfOtherShape(key, specs.length);
    const tasks = specs.map((spec, i) => ({ taskId: this.ids.next(), spec, ...(key === undefined ? {} : { idempotencyKey: `${key} ${i}` }) }));
    await this.proposeOk({ op: 'task.submitBatch', atMs: this.o.clock.nowMs(), tasks }, ctx);
    return tasks.map((t) => this.taskOrThrow(this.o.store.submitted(t) ?? t.taskId));
  }

  /**
   * The store answers a retry with what its key created, position by position, and refuses another spec under a used
   * key; this refuses what it cannot see: a key used by the other route (a single submission's for a batch, or the
   * reverse), or for a batch of another length (a longer retry would create the tasks past the first batch's end).
   * Read from this manager's view, without a barrier: every `task run` carries a key, and a ReadIndex round for each
   * would cost every submission; a retry sent before its first submission was applied here is not caught (nor would
   * a barrier catch one whose first is not committed yet). `count`: the batch's length; null: a single submission.
   */
  private refuseKeyOfOtherShape(key: string, count: number | null): void {
    const store = this.o.store;
    const shown = JSON.stringify(key.slice(key.lastIndexOf('\n') + 1));
    const reused = (what: string): MinkubeError =>
      new MinkubeError('IDEMPOTENCY_KEY_REUSED', `the Idempotency-Key ${shown} was used for ${what}; use a new key for a new request`);
    if (count === null) {
      if (store.taskOfKey(`${key} 0`) !== undefined) throw reused('a batch (POST /v1/tasks/batch), not a single task');
      return;
    }
    if (store.taskOfKey(key) !== undefined) throw reused('a single task (POST /v1/tasks), not a batch');
    if (store.taskOfKey(`${key} 0`) === undefined) return;
    // The first batch's length: its keys are 0..n-1 (at most the batch bound).
    let first = 1;
    while (first < limits.taskBatchMax && store.taskOfKey(`${key} ${first}`) !== undefined) first++;
    if (first !== count) throw reused(`a batch of ${first} tasks, not ${count}`);
  }

  async getTask(id: string, consistency: ReadConsistency, ctx: RequestContext): Promise<TaskRecord> {
    await this.read(consistency, ctx);
    return this.taskOrThrow(id);
  }

  async listTasks(q: TaskListQuery, ctx: RequestContext): Promise<Page<TaskRecord>> {
    await this.read(q.consistency, ctx);
    const opts: Parameters<TaskStore['listTasks']>[0] = { limit: q.limit, scanMax: limits.taskListScanMax };
    if (q.state !== undefined) opts.state = q.state;
    if (q.workerId !== undefined) opts.workerId = q.workerId;
    if (q.name !== undefined) opts.nameContains = q.name;
    if (q.cursor !== undefined) opts.after = q.cursor;
    const { items, more, lastSeen } = this.o.store.listTasks(opts);
    return { items, nextCursor: more ? lastSeen : null };
  }

  async stopTask(id: string, ctx: RequestContext): Promise<TaskRecord> {
    await this.proposeOk({ op: 'task.stop', taskId: id, atMs: this.o.clock.nowMs() }, ctx);
    return this.taskOrThrow(id);
  }

  async taskLogs(id: string, tailLines: number, ctx: RequestContext): Promise<string> {
    await this.read('linearizable', ctx);
    const target = this.logsTargetOf(this.taskForLogs(id));
    if (target === null) return '';
    try {
      return await this.o.workers.logs(target.apiAddress, id, tailLines, { workerId: target.workerId, timeoutMs: Math.max(1, ctx.deadlineMs - this.o.clock.monoMs()) });
    } catch (err) {
      throw logsError(err, id, target.workerId);
    }
  }

  async followTaskLogs(id: string, tailLines: number, ctx: RequestContext, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    await this.read('linearizable', ctx);
    const task = this.taskForLogs(id);
    if (task.state === 'running' || finalTaskStates.has(task.state)) return this.openFollow(id, tailLines, signal, ctx.deadlineMs);
    // Not running yet (pending, placed, lost and waiting for its retry): the answer starts now, its output once it runs.
    return this.followOnceRunning(id, tailLines, signal);
  }

  private async *followOnceRunning(id: string, tailLines: number, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const { store, clock } = this.o;
    while (!signal.aborted) {
      const t = store.task(id);
      if (t === undefined) return;
      if (t.state === 'running' || finalTaskStates.has(t.state)) {
        yield* await this.openFollow(id, tailLines, signal, clock.monoMs() + limits.requestTimeoutMsDefault);
        return;
      }
      await sleepOn(clock, followStartPollMs, signal);
    }
  }

  /** The worker's follow of the task's latest attempt, relayed; errors before its first byte are thrown. */
  private async openFollow(id: string, tailLines: number, signal: AbortSignal, deadlineMs: number): Promise<AsyncIterable<Uint8Array>> {
    const target = this.logsTargetOf(this.taskForLogs(id));
    if (target === null) return noChunks();
    const upstream = new AbortController();
    const onAbort = (): void => upstream.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let body: AsyncIterable<Uint8Array>;
    try {
      body = await this.o.workers.followLogs(target.apiAddress, id, tailLines, { workerId: target.workerId, timeoutMs: Math.max(1, deadlineMs - this.o.clock.monoMs()), signal: upstream.signal });
    } catch (err) {
      signal.removeEventListener('abort', onAbort);
      throw logsError(err, id, target.workerId);
    }
    return this.relayWhileRunning(id, target, body, upstream, () => signal.removeEventListener('abort', onAbort));
  }

  /**
   * The worker's stream as it comes. It ends by itself when the container has exited; should it not (a worker cut off
   * from this manager keeps the connection open), it is cut (an error: the caller's answer is cut, never ended) once
   * the record has shown for logFollowDrainMs that the attempt followed is no longer placed or running (lost, ended,
   * or replaced by a later attempt): the output that reached the reader may not be all of it, and a clean end would
   * say it was. It is cut too when this manager no longer reaches the worker (a worker cut off from this manager
   * alone, still heartbeating to the leader, never ends the stream): after logFollowProbeIdleMs with nothing from
   * the stream, the worker is asked for a tail of no lines, and two questions in a row unanswered cut it.
   */
  private async *relayWhileRunning(id: string, target: { workerId: string; apiAddress: string; attempt: number }, body: AsyncIterable<Uint8Array>, upstream: AbortController, done: () => void): AsyncGenerator<Uint8Array> {
    const { store, clock } = this.o;
    const { attempt } = target;
    let overSinceMs: number | null = null;
    // Set by the watch (a closure), read after the stream: a holder, so the compiler does not take it for always null.
    const cut: { as: MinkubeError | null } = { as: null };
    // Monotonic: a wall-clock step must neither cut a live stream (forward) nor keep a dead one (back).
    let heardMs = clock.monoMs();
    let probing = false;
    let probesFailed = 0;
    const probe = (): void => {
      probing = true;
      this.o.workers.logs(target.apiAddress, id, 0, { workerId: target.workerId, timeoutMs: limits.logFollowProbeTimeoutMs }).then(
        () => {
          probesFailed = 0;
          heardMs = clock.monoMs();
        },
        (err: unknown) => {
          // The worker's own answer (it no longer keeps the attempt, say) says it is reached; the stream ends by itself.
          if (!(err instanceof MinkubeError) || (err.code !== 'WORKER_UNAVAILABLE' && err.code !== 'TIMEOUT')) {
            heardMs = clock.monoMs();
            return;
          }
          if (upstream.signal.aborted || ++probesFailed < 2) return;
          cut.as = new MinkubeError('WORKER_UNAVAILABLE', `this manager no longer reaches worker ${target.workerId} (${err.message}): the output of task ${id}'s attempt ${attempt} is cut here; another manager may reach it`);
          upstream.abort();
        },
      ).finally(() => {
        probing = false;
      });
    };
    const watch = setIntervalOn(clock, () => {
      const t = store.task(id);
      const over = t === undefined || t.attempt !== attempt || (t.state !== 'scheduled' && t.state !== 'running');
      if (!over) {
        overSinceMs = null;
        if (!probing && cut.as === null && clock.monoMs() - heardMs >= limits.logFollowProbeIdleMs) probe();
        return;
      }
      overSinceMs ??= clock.monoMs();
      if (clock.monoMs() - overSinceMs < limits.logFollowDrainMs) return;
      const overAs = t === undefined ? 'removed' : t.attempt !== attempt ? `replaced by attempt ${t.attempt}` : t.state;
      cut.as = new MinkubeError('UNREACHABLE', `the worker stopped sending the output of task ${id}'s attempt ${attempt}, which the record shows ${overAs}: its output is cut here`);
      upstream.abort();
    }, limits.logFollowCheckIntervalMs);
    try {
      for await (const chunk of body) {
        heardMs = clock.monoMs();
        yield chunk;
      }
      if (cut.as !== null) throw cut.as;
    } catch (err) {
      if (cut.as !== null) throw cut.as;
      // Ended on purpose by the caller (gone).
      if (upstream.signal.aborted) return;
      throw err;
    } finally {
      watch.cancel();
      upstream.abort();
      done();
    }
  }

  /** The task, or why its logs cannot be asked for: removed by retention (TASK_LOGS_GONE), unknown (TASK_NOT_FOUND). */
  private taskForLogs(id: string): TaskRecord {
    if (this.o.store.task(id) === undefined && this.o.store.wasRemoved(id)) {
      throw new MinkubeError('TASK_LOGS_GONE', `task ${id} ended and its record was removed (tasks.retention); its logs are gone`);
    }
    return this.taskOrThrow(id);
  }

  /** The worker that holds the output of the task's latest attempt (null: it never ran), or why it cannot be asked. */
  private logsTargetOf(task: TaskRecord): { workerId: string; apiAddress: string; attempt: number } | null {
    // A task waiting for its retry has no worker: its latest attempt's output is on the one it last ran on.
    const workerId = task.workerId ?? [...task.history].reverse().find((h) => h.workerId !== null)?.workerId ?? null;
    if (workerId === null) return null;
    const worker = this.o.store.storedWorker(workerId);
    if (worker === undefined) throw new MinkubeError('WORKER_NOT_FOUND', `the worker ${workerId} of task ${task.id} is no longer registered`);
    return { workerId, apiAddress: worker.apiAddress, attempt: task.attempt };
  }

  // ---- workers ----

  async registerWorker(req: RegisterRequest, ctx: RequestContext): Promise<WorkerRecord> {
    // One name, one node (node-ids.ts): checked in the turn the registration is queued; a member add meanwhile sees
    // it queued, and a leader appending it forwarded after such a change refuses it (validateCommand).
    const managersId = managerHoldingId(req.id, this.o.managerIds?.() ?? []);
    if (managersId !== null) throw managersId;
    // The leader sends a worker's assignments to its address: one registered at a live worker's address would have
    // that worker run them (a worker join token buys a certificate for any new id, and its holder names the address).
    const at = endpointKey(req.apiAddress);
    // Nor at a manager's: its assignments would go to that manager, and fail there (as the config check and
    // `worker --join` say before a worker starts).
    const manager = managerAt(this.o.managerAddresses?.() ?? [], at);
    if (manager !== null) {
      throw new MinkubeError('WORKER_ADDRESS_IN_USE', `${req.apiAddress} is manager ${manager.id}'s ${manager.key}: a worker needs an address of its own`);
    }
    const holder = this.o.store.allWorkers().find((w) => w.id !== req.id && w.state !== 'down' && endpointKey(w.apiAddress) === at);
    if (holder !== undefined) {
      throw new MinkubeError('WORKER_ADDRESS_IN_USE', `worker ${holder.id} is registered at ${holder.apiAddress} and is ${holder.state}; a worker may take its address once it is down`);
    }
    // The newest registration holds the id, at once: a restart (even with an emptied data directory, a new instance)
    // must not wait for its old record to go down. The instance it replaces is fenced off by its next heartbeat.
    const before = this.o.store.storedWorker(req.id);
    const id = await this.proposeOk({
      op: 'worker.register', workerId: req.id, apiAddress: req.apiAddress, runtime: req.runtime, atMs: this.o.clock.nowMs(),
      ...(req.labels === undefined ? {} : { labels: req.labels }), ...(req.capacity === undefined ? {} : { capacity: req.capacity }),
      ...(req.instance === undefined ? {} : { instance: req.instance }), ...(req.engine === undefined ? {} : { engine: req.engine }),
    }, ctx);
    if (before?.instance !== undefined && req.instance !== undefined && before.instance !== req.instance && before.state !== 'down') {
      this.o.logger.warn(
        { worker: req.id, instance: req.instance, apiAddress: req.apiAddress, replaced: before.instance, replacedAddress: before.apiAddress, replacedState: before.state },
        'another instance registered a live worker id: it holds the id now, and the one it replaced is refused (WORKER_REPLACED) at its next heartbeat',
      );
    }
    return this.workerOrThrow(id);
  }

  /**
   * The worker record, refusing an instance another registration replaced (WORKER_REPLACED). This manager's state may
   * trail the log: before refusing, it catches up, so an instance that registered through another manager a moment
   * ago is never refused for an older record here.
   */
  private async workerOf(id: string, instance: string | undefined, ctx: RequestContext): Promise<StoredWorker> {
    const { store } = this.o;
    let worker = store.storedWorker(id);
    if (worker === undefined || replacedBy(worker, instance) !== null) {
      // Registered (or re-registered) through another manager a moment ago: catch up before saying "unknown".
      await this.o.raft.barrier(ctx.deadlineMs);
      worker = store.storedWorker(id);
    }
    if (worker === undefined) throw new MinkubeError('WORKER_NOT_FOUND', `no worker ${id}; register first`);
    const replaced = replacedBy(worker, instance);
    if (replaced !== null) throw replacedError(replaced, worker);
    return worker;
  }

  async workerHeartbeat(id: string, req: HeartbeatRequest, ctx: RequestContext): Promise<HeartbeatResponse> {
    const { store, clock } = this.o;
    const worker = await this.workerOf(id, req.instance, ctx);
    const now = clock.nowMs();
    let reports = changedReports(store, id, req.tasks, (attempt) => this.retryAt(now, attempt));
    if (namesUnappliedPlacement(store, id, req.tasks)) {
      await this.o.raft.barrier(ctx.deadlineMs);
      reports = changedReports(store, id, req.tasks, (attempt) => this.retryAt(now, attempt));
    }
    // A time ahead of this manager's clock (written by a manager whose clock ran ahead) says nothing of how long ago
    // the last one was committed: commit, or the leader, hearing of this worker only through the log, finds it silent.
    const last = worker.lastHeartbeatAtMs;
    const livenessDue = worker.state !== 'ready' || last === null || last > now || now - last >= this.livenessCommitMs;
    this.o.onHeartbeat?.(id);
    this.noteEngine(worker, req, ctx);
    if (reports.length > 0 || livenessDue) {
      const [first, ...rest] = chunks(reports, limits.reportBatchMax);
      // The instance goes into the entry (checked again at apply, in log order) only once the id is held by one:
      // then every manager reads such entries (a registration with an instance was applied), and a heartbeat of a
      // worker that registered none stays an entry a manager that predates instances reads too.
      const fenced = req.instance !== undefined && worker.instance !== undefined;
      const beat: TaskCommand = { op: 'worker.heartbeat', workerId: id, atMs: now, stats: req.stats, reports: first ?? [], ...(fenced ? { instance: req.instance } : {}) };
      const proposals = [this.proposeOk(beat, ctx)];
      for (const batch of rest) proposals.push(this.proposeOk({ op: 'task.report', atMs: now, reports: batch }, ctx));
      await Promise.all(proposals);
    }
    const forget = req.tasks.filter((t) => t.state !== 'starting' && t.state !== 'running' && store.task(t.taskId) === undefined && store.wasRemoved(t.taskId)).map((t) => t.taskId);
    const managers = this.o.managers?.() ?? [];
    return { heartbeatIntervalMs: this.o.tasks.workerHeartbeatIntervalMs, ...(forget.length === 0 ? {} : { forget }), ...(managers.length === 0 ? {} : { managers }) };
  }

  /**
   * Commits what the worker says of its engine when it differs from the record (worker.engine), one proposal per
   * worker at a time. Not awaited: a leader that predates the command drops it, and the heartbeat (its liveness) must
   * not wait on that; the next heartbeat tries again.
   */
  private noteEngine(worker: StoredWorker, req: HeartbeatRequest, ctx: RequestContext): void {
    const said = req.engineUnreachable;
    const recorded = worker.engineUnreachable;
    const unreachable = said === undefined ? null : { reason: said.reason.slice(0, engineReasonCharsMax), sinceMs: said.sinceMs };
    if (unreachable?.reason === recorded?.reason && (unreachable === null || unreachable.sinceMs === recorded?.sinceMs)) return;
    if (this.engineProposing.has(worker.id)) return;
    this.engineProposing.add(worker.id);
    const fenced = req.instance !== undefined && worker.instance !== undefined;
    const cmd: TaskCommand = { op: 'worker.engine', workerId: worker.id, atMs: this.o.clock.nowMs(), unreachable, ...(fenced ? { instance: req.instance } : {}) };
    this.proposeOk(cmd, ctx).then(
      () => {
        if (unreachable === null) this.o.logger.info({ worker: worker.id }, 'the worker says its engine answers again: tasks may be placed on it');
        else this.o.logger.warn({ worker: worker.id, reason: unreachable.reason }, 'the worker says its engine does not answer: no new task is placed on it');
      },
      (err: unknown) => {
        // Once a minute per worker: in a cluster not all of whose managers understand it, every heartbeat tries again.
        const nowMs = this.o.clock.monoMs();
        if (nowMs - (this.engineWarnedMs.get(worker.id) ?? -Infinity) < engineWarnEveryMs) return;
        if (this.engineWarnedMs.size >= engineWarnedMax) this.engineWarnedMs.clear();
        this.engineWarnedMs.set(worker.id, nowMs);
        this.o.logger.warn({ worker: worker.id, err: (err as Error).message }, "the worker's engine state was not committed (a leader, or a cluster, that predates it refuses it); the next heartbeat tries again (said once a minute per worker)");
      },
    ).finally(() => this.engineProposing.delete(worker.id));
  }

  async workerAssignments(id: string, ctx: RequestContext, instance?: string): Promise<Assignment[]> {
    await this.o.raft.barrier(ctx.deadlineMs);
    const worker = this.o.store.storedWorker(id);
    if (worker === undefined) throw new MinkubeError('WORKER_NOT_FOUND', `no worker ${id}`);
    // The id's tasks are its holder's to run: a replaced instance would start copies of them beside the holder's.
    const replaced = replacedBy(worker, instance);
    if (replaced !== null) throw replacedError(replaced, worker);
    return this.o.store.activeOn(id).map(assignmentOf);
  }

  knownTaskIds(ids: readonly string[]): string[] {
    const { store } = this.o;
    return ids.filter((id) => store.task(id) !== undefined || store.wasRemoved(id));
  }

  async listWorkers(q: { limit: number; cursor?: string; consistency: ReadConsistency }, ctx: RequestContext): Promise<Page<WorkerRecord>> {
    await this.read(q.consistency, ctx);
    const { items, more } = this.o.store.listWorkers(q.cursor === undefined ? { limit: q.limit } : { limit: q.limit, after: q.cursor });
    return { items, nextCursor: more ? items.at(-1)!.id : null };
  }

  async getWorker(id: string, consistency: ReadConsistency, ctx: RequestContext): Promise<WorkerRecord> {
    await this.read(consistency, ctx);
    return this.workerOrThrow(id);
  }

  async removeWorker(id: string, ctx: RequestContext): Promise<{ id: string; removed: true }> {
    await this.proposeOk({ op: 'worker.remove', workerId: id, atMs: this.o.clock.nowMs(), revoke: true }, ctx);
    return { id, removed: true };
  }

  /** Drain, pause or activate a worker (worker.availability); answers the worker as GET /v1/workers/:id shows it. */
  async setWorkerAvailability(id: string, availability: WorkerAvailability, ctx: RequestContext): Promise<WorkerRecord> {
    // A drain is paced: a service's replicas leave the worker update.parallelism at a time (the service reconciler).
    const cmd = { op: 'worker.availability' as const, workerId: id, availability, atMs: this.o.clock.nowMs(), ...(availability === 'drain' ? { paced: true as const } : {}) };
    await this.proposeOk(cmd, ctx);
    return this.workerOrThrow(id);
  }

  // ---- helpers ----

  retryAt(nowMs: number, attempt: number): number {
    return retryAtMs(nowMs, attempt, { baseMs: this.o.tasks.backoffBaseMs, capMs: this.o.tasks.backoffCapMs }, this.o.random);
  }

  private async read(consistency: ReadConsistency, ctx: RequestContext): Promise<void> {
    if (consistency === 'linearizable') await this.o.raft.barrier(ctx.deadlineMs);
  }

  /** Proposes and answers the id the command was about, or throws the state machine's refusal. */
  private async proposeOk(cmd: TaskCommand, ctx: RequestContext): Promise<string> {
    const r = await this.o.raft.proposeCommand(cmd, ctx.deadlineMs, ctx.requestId, ctx.principal, ctx.traceparent);
    if (r.ok) return r.key;
    // A heartbeat refused at apply (a registration of another instance came first in the log): told as workerOf tells it.
    if (r.code === 'WORKER_REPLACED' && cmd.op === 'worker.heartbeat') throw replacedError(r.message, this.o.store.storedWorker(cmd.workerId));
    throw new MinkubeError(r.code, r.message);
  }

  private taskOrThrow(id: string): TaskRecord {
    const t = this.o.store.task(id);
    if (t === undefined) throw new MinkubeError('TASK_NOT_FOUND', `no task ${id}`);
    return t;
  }

  private workerOrThrow(id: string): WorkerRecord {
    const w = this.o.store.worker(id);
    if (w === undefined) throw new MinkubeError('WORKER_NOT_FOUND', `no worker ${id}`);
    return w;
  }
}

export function assignmentOf(t: TaskRecord): Assignment {
  // A drained worker's attempt is to stop there (it is placed again elsewhere once stopped).
  const a: Assignment = { taskId: t.id, attempt: t.attempt, term: t.term, spec: t.spec, desiredState: stopWanted(t) ? 'stop' : 'run' };
  // Its worker said it runs: a worker without it lost it (Assignment.started), and must not start it again.
  return t.state === 'running' ? { ...a, started: true } : a;
}

/**
 * WORKER_REPLACED, naming in its details the engine of the instance that holds the id (`holder`, the record now), when
 * it registered one: a replaced process on that same engine leaves the containers, which the holder adopted, running.
 */
function replacedError(message: string, holder: StoredWorker | undefined): MinkubeError {
  const details: WorkerReplacedDetails | undefined = holder?.engine === undefined ? undefined : { engine: holder.engine };
  return new MinkubeError('WORKER_REPLACED', message, details === undefined ? {} : { details });
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A worker's failure to answer logs, as the caller should see it. */
function logsError(err: unknown, id: string, workerId: string): unknown {
  if (err instanceof MinkubeError && err.code === 'TASK_NOT_FOUND') {
    // The worker forgot the attempt (workers[].containerRetentionS after it ended, or a restart): gone, not unknown.
    return new MinkubeError('TASK_LOGS_GONE', `worker ${workerId} no longer keeps the output of task ${id} (workers[].containerRetentionS)`);
  }
  if (err instanceof MinkubeError && err.code === 'TIMEOUT') return new MinkubeError('WORKER_UNAVAILABLE', err.message, { cause: err });
  return err;
}

async function* noChunks(): AsyncGenerator<Uint8Array> {}

/** How often a follow of a task not running yet looks at its record. */
const followStartPollMs = 200;

/** The manager (and which of its addresses) at an endpoint (endpointKey), or null. */
function managerAt(managers: readonly ManagerAddresses[], at: string): { id: string; key: 'apiAddress' | 'raftAddress' } | null {
  for (const m of managers) {
    if (endpointKey(m.apiAddress) === at) return { id: m.id, key: 'apiAddress' };
    if (endpointKey(m.raftAddress) === at) return { id: m.id, key: 'raftAddress' };
  }
  return null;
}

/**
 * An Idempotency-Key as the store keeps it: scoped to who sent it ("<principal>\n<key>"; a newline cannot occur in
 * the header), so two clients that happen to pick the same key neither get each other's task nor a 422. Without
 * authentication (insecure) every client is one, and the key is kept as sent.
 */
export function scopedIdempotencyKey(key: string | undefined, ctx: RequestContext): string | undefined {
  const p = ctx.principal;
  if (key === undefined || p === undefined) return key;
  return `${'a' in p ? `a:${p.a}` : `n:${p.n}`}\n${key}`;
}
