// The task and worker half of the replicated state machine: records, the indexes the scheduler and the API read
// (by state, by worker, active per worker), the scheduler's cursor and the idempotency keys. Deterministic: every
// time, id and retry time comes from the command; every eviction follows id or insertion order.
import { assert } from '../lib/assert.js';
import { isoAt } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import { SortedKeys } from './sorted-keys.js';
import type {
  TaskCommand, TaskPlaceCommand, TaskReport, TaskStopCommand, TaskSubmitBatchCommand, TaskSubmitCommand, TaskSubmission,
  WorkerHeartbeatCommand, WorkerRegisterCommand,
  WorkerStateCommand,
  WorkerEngineCommand,
  WorkerRemoveCommand,
  WorkerAvailabilityCommand,
} from './task-commands.js';
import {
  availabilityOf, canTransition, finalTaskStates, type StoredWorker, type TaskRecord, type TaskServiceRef, type TaskSpec, type TaskState, type WorkerRecord,
} from '../contracts/task-model.js';

export type { StoredWorker } from '../contracts/task-model.js';
import { isActiveState, lostOutcome, reportOutcome, stoppedBeforePlacedReason, type ReportOutcome } from './task-rules.js';
import { normaliseSpec, specFingerprint } from './task-spec.js';
import { UsageByNamespace } from './quota-usage.js';
import { internSpec, StringPool } from './string-pool.js';
import { compactInto } from './compact.js';
import {
  decodeIdempotencyRow, decodeTaskRow, decodeTaskSnapshot, encodeTaskSnapshot, rowOf, scanTaskSnapshot, type IdempotencyRecord, type ScannedTask, type TaskSnapshot,
  type TaskSnapshotSource,
} from './task-snapshot.js';
import type { SlicedUnpacker } from './sliced-unpack.js';

export type TaskApplyErrorCode = 'TASK_NOT_FOUND' | 'WORKER_NOT_FOUND' | 'TASK_ALREADY_FINAL' | 'QUEUE_FULL' | 'IDEMPOTENCY_KEY_REUSED' | 'WORKER_REPLACED' | 'WORKER_NOT_DOWN';

/** `id` names the task or worker the command was about ('' for batches); `changed` counts the records it changed. */
export type TaskApplyResult =
  | { readonly ok: true; readonly id: string; readonly changed: number }
  | { readonly ok: false; readonly code: TaskApplyErrorCode; readonly message: string };

/** Told of every change as it is applied (the leader's loops listen); must not throw or change the store. */
export interface TaskStoreListener {
  taskChanged(task: TaskRecord, previous: TaskRecord | null): void;
  /** A register or heartbeat of this worker was applied. */
  workerSeen(workerId: string): void;
  workerChanged(worker: StoredWorker): void;
  /** A retired worker's record was forgotten (worker.remove). */
  workerRemoved?(workerId: string): void;
  /** A final task's record was forgotten (retention, or room made for new tasks). */
  taskRemoved?(task: TaskRecord): void;
}

export interface TaskStoreOptions {
  tasksMax?: number;
  idempotencyKeysMax?: number;
  workersMax?: number;
  historyMax?: number;
  removedWorkersMax?: number;
}

export interface TaskListOptions {
  state?: TaskState;
  workerId?: string;
  /** Only tasks whose spec's name contains this. */
  nameContains?: string;
  /** Exclusive: the last id of the previous page. */
  after?: string;
  limit: number;
  /** Records to look at before the page ends early (then `more` and `lastSeen` say where to go on); no bound without it. */
  scanMax?: number;
}

export class TaskStore {
  /**
   * Id -> record; or, for a record restored lazily (prepareRestore) and not read since, where its row starts in
   * `lazyRows`: it is decoded the first time anything reads it (record()), and replaces its number here.
   */
  private tasks = new Map<string, TaskRecord | number>();
  /** The rows of the records restored lazily (a view of the snapshot's task rows); null once none is left. */
  private lazyRows: Uint8Array | null = null;
  /** How many of `tasks` are still rows in `lazyRows`. */
  private lazyLeft = 0;
  private ids = new SortedKeys();
  private byState = new Map<TaskState, SortedKeys>();
  private byWorker = new Map<string, SortedKeys>();
  /** Service name -> the ids of its replicas the store keeps (any state). */
  private byService = new Map<string, Set<string>>();
  /** Scheduled and running tasks per worker: what GET assignments answers and what the worker's taskCount counts. */
  private active = new Map<string, Set<string>>();
  private workers = new Map<string, StoredWorker>();
  private workerIds = new SortedKeys();
  /**
   * Worker id -> when it was last removed (worker.remove's time, the proposer's clock), oldest removal first: a
   * certificate of that id issued at or before it is refused. In snapshots (KvStateMachine's removedWorkers section).
   */
  private removedWorkers = new Map<string, number>();
  private cursorValue: string | null = null;
  /** Idempotency-Key -> the task it created and its spec's fingerprint, oldest first. */
  private idempotency = new Map<string, IdempotencyRecord | number>();
  /** The rows of the idempotency records restored lazily (numbers in `idempotency`, as for `tasks`). */
  private lazyKeyRows: Uint8Array | null = null;
  private lazyKeysLeft = 0;
  /** Bumped by every restore and compaction: lazy numbers of one generation mean nothing in another. */
  private generation = 0;
  listener: TaskStoreListener | null = null;
  /** Live tasks and their resources per namespace (quotas are judged against it). */
  readonly usage = new UsageByNamespace();
  /** Ids of records removed here (retention, or room made), oldest first; not in snapshots (it only words an error). */
  private removedIds = new Set<string>();
  /** One copy of the strings records hold alike (images, commands, worker ids, reasons): see StringPool. */
  private readonly strings = new StringPool();
  private readonly tasksMax: number;
  private readonly idempotencyKeysMax: number;
  private readonly workersMax: number;
  private readonly historyMax: number;
  private readonly removedWorkersMax: number;

  constructor(o: TaskStoreOptions = {}) {
    this.tasksMax = o.tasksMax ?? limits.tasksRetainedMax;
    this.idempotencyKeysMax = o.idempotencyKeysMax ?? limits.idempotencyKeysMax;
    this.workersMax = o.workersMax ?? limits.workersMax;
    this.historyMax = o.historyMax ?? limits.taskHistoryMax;
    this.removedWorkersMax = o.removedWorkersMax ?? limits.removedWorkersMax;
    assert(this.tasksMax >= 1 && this.idempotencyKeysMax >= 1 && this.workersMax >= 1 && this.historyMax >= 1 && this.removedWorkersMax >= 1, 'task store bounds must be positive');
  }

  // ---- reads ----

  get taskCount(): number {
    return this.tasks.size;
  }

  /** The record of a task, decoding it first if it was restored lazily and not read since. */
  private record(id: string): TaskRecord | undefined {
    const v = this.tasks.get(id);
    if (typeof v !== 'number') return v;
    const t = decodeTaskRow(this.rowAt(v), this.strings);
    this.tasks.set(id, t);
    if (--this.lazyLeft === 0) this.lazyRows = null;
    return t;
  }

  /** The record of an Idempotency-Key, decoding it first if it was restored lazily and not read since. */
  private keyRecord(key: string): IdempotencyRecord | undefined {
    const v = this.idempotency.get(key);
    if (typeof v !== 'number') return v;
    const r = decodeIdempotencyRow(rowOf(this.lazyKeyRows!, v));
    this.idempotency.set(key, r);
    this.lazyKeyGone();
    return r;
  }

  /** One lazily restored idempotency row less (decoded, or its key forgotten). */
  private lazyKeyGone(): void {
    if (--this.lazyKeysLeft === 0) this.lazyKeyRows = null;
  }

  /** Forgets an Idempotency-Key. */
  private dropKey(key: string): void {
    if (typeof this.idempotency.get(key) === 'number') this.lazyKeyGone();
    this.idempotency.delete(key);
  }

  /** The bytes of a lazily restored row (see `tasks`). */
  private rowAt(at: number): Uint8Array {
    return rowOf(this.lazyRows!, at);
  }

  get cursor(): string | null {
    return this.cursorValue;
  }

  task(id: string): TaskRecord | undefined {
    return this.record(id);
  }

  countIn(state: TaskState): number {
    return this.byState.get(state)?.length ?? 0;
  }

  /** Task ids of one state in creation order (pending: the scheduler's queue), after `after` when given. Do not apply while iterating. */
  *idsIn(state: TaskState, after?: string): Generator<string> {
    const keys = this.byState.get(state);
    if (keys !== undefined) yield* after === undefined ? keys.from('') : keys.from(after, true);
  }

  /** The ids of the worker's scheduled and running tasks, in no particular order. Do not apply while iterating. */
  activeIdsOn(workerId: string): ReadonlySet<string> {
    return this.active.get(workerId) ?? emptySet;
  }

  /** The worker's scheduled and running tasks, in id order. */
  activeOn(workerId: string): TaskRecord[] {
    const ids = this.active.get(workerId);
    if (ids === undefined) return [];
    return [...ids].sort().map((id) => this.record(id)!);
  }

  /**
   * A page of tasks in id order after `after`. `lastSeen` is the last id looked at: the cursor of the next page, which
   * is past the last item when a filter skipped records (and the page may end early, even empty, at `scanMax`).
   */
  listTasks(o: TaskListOptions): { items: TaskRecord[]; more: boolean; lastSeen: string | null } {
    const source = o.workerId !== undefined ? this.byWorker.get(o.workerId) : o.state !== undefined ? this.byState.get(o.state) : this.ids;
    const items: TaskRecord[] = [];
    let lastSeen: string | null = null;
    if (source === undefined || o.limit <= 0) return { items, more: false, lastSeen };
    let scanned = 0;
    for (const id of o.after === undefined ? source.from('') : source.from(o.after, true)) {
      if (items.length === o.limit) return { items, more: true, lastSeen };
      if (o.scanMax !== undefined && scanned === o.scanMax) return { items, more: true, lastSeen };
      scanned++;
      lastSeen = id;
      const t = this.record(id)!;
      if (o.state !== undefined && t.state !== o.state) continue;
      if (o.nameContains !== undefined && !(t.spec.name ?? '').includes(o.nameContains)) continue;
      items.push(t);
    }
    return { items, more: false, lastSeen };
  }

  /** The ids of a service's replicas the store keeps, in no particular order. Do not apply while iterating. */
  idsOfService(name: string): ReadonlySet<string> {
    return this.byService.get(name) ?? emptySet;
  }

  /** Whether this store removed a record with this id (as far as it remembers: limits.removedTaskIdsMax). */
  wasRemoved(id: string): boolean {
    return this.removedIds.has(id);
  }

  storedWorker(id: string): StoredWorker | undefined {
    return this.workers.get(id);
  }

  worker(id: string): WorkerRecord | undefined {
    const w = this.workers.get(id);
    return w === undefined ? undefined : this.view(w);
  }

  /** Workers in id order after `after`. */
  listWorkers(o: { after?: string; limit: number }): { items: WorkerRecord[]; more: boolean } {
    const items: WorkerRecord[] = [];
    for (const id of o.after === undefined ? this.workerIds.from('') : this.workerIds.from(o.after, true)) {
      if (items.length === o.limit) return { items, more: true };
      items.push(this.view(this.workers.get(id)!));
    }
    return { items, more: false };
  }

  allWorkers(): StoredWorker[] {
    return this.workerIds.toArray().map((id) => this.workers.get(id)!);
  }

  activeCount(workerId: string): number {
    return this.active.get(workerId)?.size ?? 0;
  }

  private view(w: StoredWorker): WorkerRecord {
    return {
      id: w.id, apiAddress: w.apiAddress, state: w.state, runtime: w.runtime,
      registeredAt: new Date(w.registeredAtMs).toISOString(),
      lastHeartbeatAt: w.lastHeartbeatAtMs === null ? null : new Date(w.lastHeartbeatAtMs).toISOString(),
      stats: w.stats, taskCount: this.activeCount(w.id), availability: availabilityOf(w),
      ...(w.labels === undefined ? {} : { labels: w.labels }),
      ...(w.capacity === undefined ? {} : { capacity: w.capacity }),
      ...(w.instance === undefined ? {} : { instance: w.instance }),
      ...(w.engineUnreachable === undefined ? {} : { engineUnreachable: { reason: w.engineUnreachable.reason, since: new Date(w.engineUnreachable.sinceMs).toISOString() } }),
    };
  }

  // ---- apply ----

  apply(cmd: TaskCommand): TaskApplyResult {
    switch (cmd.op) {
      case 'task.submit':
        return this.submit(cmd);
      case 'task.submitBatch':
        return this.submitBatch(cmd);
      case 'task.place':
        return this.place(cmd);
      case 'task.report':
        return { ok: true, id: '', changed: this.applyReports(cmd.reports, cmd.atMs) };
      case 'task.stop':
        return this.stop(cmd);
      case 'task.remove':
        return { ok: true, id: '', changed: this.removeFinished(cmd.taskIds) };
      case 'worker.register':
        return this.register(cmd);
      case 'worker.heartbeat':
        return this.heartbeat(cmd);
      case 'worker.engine':
        return this.engineState(cmd);
      case 'worker.state':
        return this.workerState(cmd);
      case 'worker.remove':
        return this.removeWorker(cmd);
      case 'worker.availability':
        return this.setAvailability(cmd);
    }
  }

  private submit(cmd: TaskSubmitCommand): TaskApplyResult {
    const known = this.submitted(cmd);
    if (known !== undefined) return this.keyReused(cmd, '') ?? { ok: true, id: known, changed: 0 };
    if (!this.makeRoom(1)) return queueFull(this.tasks.size);
    return { ok: true, id: this.create(cmd, cmd.atMs), changed: 1 };
  }

  /** All or none: room for every new task is made (or found missing) before the first is created. */
  private submitBatch(cmd: TaskSubmitBatchCommand): TaskApplyResult {
    for (const [i, t] of cmd.tasks.entries()) {
      const reused = this.submitted(t) === undefined ? null : this.keyReused(t, `tasks[${i}]: `);
      if (reused !== null) return reused;
    }
    const fresh = cmd.tasks.filter((t) => this.submitted(t) === undefined);
    if (!this.makeRoom(fresh.length)) return queueFull(this.tasks.size);
    for (const t of fresh) this.create(t, cmd.atMs);
    return { ok: true, id: this.submitted(cmd.tasks[0]!) ?? '', changed: fresh.length };
  }

  /** The task an Idempotency-Key (as stored: scoped, a batch's with its position) created, while the task is kept. */
  taskOfKey(key: string): string | undefined {
    const id = this.keyRecord(key)?.taskId;
    return id !== undefined && this.tasks.has(id) ? id : undefined;
  }

  /** The task a submission already created (through its idempotency key, or its id), if any. */
  submitted(t: TaskSubmission): string | undefined {
    const known = t.idempotencyKey === undefined ? undefined : this.keyRecord(t.idempotencyKey)?.taskId;
    if (known !== undefined && this.tasks.has(known)) return known;
    return this.tasks.has(t.taskId) ? t.taskId : undefined;
  }

  /**
   * A submission whose key created a task from another spec is refused (422), not answered with that task. A key
   * kept from a snapshot written before fingerprints has none: such a retry is accepted, as it was then.
   */
  private keyReused(t: TaskSubmission, where: string): TaskApplyResult | null {
    const record = t.idempotencyKey === undefined ? undefined : this.keyRecord(t.idempotencyKey);
    if (record === undefined || record.fingerprint === null || !this.tasks.has(record.taskId)) return null;
    if (record.fingerprint === specFingerprint(normaliseSpec(t.spec))) return null;
    // A batch's keys are "<header key> <position>", and a key may be scoped "<principal>\n<key>" (see
    // scopedIdempotencyKey in manager/task-service.ts): name the header's key alone.
    const scoped = where === '' ? t.idempotencyKey! : t.idempotencyKey!.slice(0, t.idempotencyKey!.lastIndexOf(' '));
    const key = scoped.slice(scoped.lastIndexOf('\n') + 1);
    const message = `${where}the Idempotency-Key ${JSON.stringify(key)} was used for a different request (another spec); use a new key for a new request`;
    return { ok: false, code: 'IDEMPOTENCY_KEY_REUSED', message };
  }

  /** Evicts the oldest final tasks until `count` more fit; false (some evicted perhaps) when they cannot. */
  private makeRoom(count: number): boolean {
    while (this.tasks.size + count > this.tasksMax) if (!this.evictOldestFinal()) return false;
    return true;
  }

  /**
   * A service's new replicas (from the leader's reconcile command), all or none: false when the store cannot make
   * room for them. Their ids are fresh (the command was checked against the service's revision).
   */
  createReplicas(subs: readonly { taskId: string; spec: TaskSpec; service: TaskServiceRef; reason: string }[], atMs: number): boolean {
    const fresh = subs.filter((t) => !this.tasks.has(t.taskId));
    if (!this.makeRoom(fresh.length)) return false;
    for (const t of fresh) this.create(t, atMs, t.service, t.reason);
    return true;
  }

  /** Desired state stop for each task (as task.stop); answers how many changed. */
  stopMany(ids: readonly string[], atMs: number): number {
    let changed = 0;
    for (const taskId of ids) {
      const r = this.stop({ op: 'task.stop', taskId, atMs });
      if (r.ok) changed += r.changed;
    }
    return changed;
  }

  private create(t: TaskSubmission, atMs: number, service?: TaskServiceRef, reason = 'submitted'): string {
    const at = isoAt(atMs);
    const task: TaskRecord = {
      id: t.taskId, spec: internSpec(normaliseSpec(t.spec), this.strings), state: 'pending', desiredState: 'run', workerId: null, attempt: 1, term: 0,
      containerId: null, exitCode: null, error: null, notBeforeMs: 0, createdAt: at, updatedAt: at,
      history: [{ state: 'pending', attempt: 1, atMs, workerId: null, reason: this.strings.get(reason) }],
      service, ports: undefined, health: undefined, draining: undefined, drainedAttempts: undefined,
    };
    this.ids.insert(task.id);
    this.write(task, null);
    const key = t.idempotencyKey;
    if (key !== undefined) {
      this.dropKey(key);
      this.idempotency.set(key, { taskId: task.id, fingerprint: specFingerprint(task.spec) });
      if (this.idempotency.size > this.idempotencyKeysMax) this.dropKey(this.idempotency.keys().next().value!);
    }
    return task.id;
  }

  private place(cmd: TaskPlaceCommand): TaskApplyResult {
    let changed = 0;
    for (const p of cmd.placements) {
      const t = this.record(p.taskId);
      const w = this.workers.get(p.workerId);
      // In log order: a placement the scheduler chose before the worker was drained or paused does not land there.
      if (t === undefined || w === undefined || w.state !== 'ready' || w.availability !== undefined) continue;
      if (t.state !== 'pending' || t.desiredState !== 'run' || t.attempt !== p.attempt || t.notBeforeMs > cmd.atMs) continue;
      const next = this.moved(t, 'scheduled', cmd.atMs, { workerId: p.workerId, term: cmd.term, containerId: null }, `placed on ${p.workerId}`);
      if (next !== null) changed++;
    }
    // The cursor moves even when some placements were skipped: it only spreads load, it promises nothing.
    this.cursorValue = cmd.cursor;
    return { ok: true, id: '', changed };
  }

  private stop(cmd: TaskStopCommand): TaskApplyResult {
    const t = this.record(cmd.taskId);
    if (t === undefined) return { ok: false, code: 'TASK_NOT_FOUND', message: `no task ${cmd.taskId}` };
    if (t.state === 'stopped') return { ok: true, id: t.id, changed: 0 };
    if (finalTaskStates.has(t.state)) return { ok: false, code: 'TASK_ALREADY_FINAL', message: `task ${t.id} has already ${t.state}` };
    if (t.state === 'pending' || t.state === 'lost') {
      this.moved(t, 'stopped', cmd.atMs, { desiredState: 'stop' }, stoppedBeforePlacedReason);
      return { ok: true, id: t.id, changed: 1 };
    }
    if (t.desiredState === 'stop') return { ok: true, id: t.id, changed: 0 };
    const next = taskRecord(t, { desiredState: 'stop', updatedAt: isoAt(cmd.atMs) });
    this.write(next, t);
    return { ok: true, id: t.id, changed: 1 };
  }

  private register(cmd: WorkerRegisterCommand): TaskApplyResult {
    const current = this.workers.get(cmd.workerId);
    if (current === undefined && this.workers.size >= this.workersMax) {
      return { ok: false, code: 'QUEUE_FULL', message: `${this.workers.size} workers are registered (the limit)` };
    }
    // The newest registration holds the id, whichever instance held it before (a restart with an emptied data
    // directory is one): the previous instance's heartbeats are refused from here on (heartbeat below).
    const w: StoredWorker = {
      id: cmd.workerId, apiAddress: cmd.apiAddress, state: 'ready', runtime: cmd.runtime,
      registeredAtMs: current?.registeredAtMs ?? cmd.atMs, lastHeartbeatAtMs: cmd.atMs, stats: current?.stats ?? null,
      heartbeats: (current?.heartbeats ?? 0) + 1,
      ...placementOf(cmd, current),
      ...(cmd.instance === undefined ? {} : { instance: cmd.instance }),
      // As the instance: this registration's alone, none when it names none.
      ...(cmd.engine === undefined ? {} : { engine: cmd.engine }),
      // An operator's drain or pause outlives the worker's restarts.
      ...(current?.availability === undefined ? {} : { availability: current.availability }),
    };
    if (current === undefined) this.workerIds.insert(w.id);
    this.workers.set(w.id, w);
    this.listener?.workerChanged(w);
    this.listener?.workerSeen(w.id);
    return { ok: true, id: w.id, changed: 1 };
  }

  private heartbeat(cmd: WorkerHeartbeatCommand): TaskApplyResult {
    const current = this.workers.get(cmd.workerId);
    if (current === undefined) return { ok: false, code: 'WORKER_NOT_FOUND', message: `no worker ${cmd.workerId}; register first` };
    // In log order: a heartbeat of an instance that another's registration replaced changes nothing, its reports
    // (of copies the id's holder does not run) included.
    const replaced = replacedBy(current, cmd.instance);
    if (replaced !== null) return { ok: false, code: 'WORKER_REPLACED', message: replaced };
    const w: StoredWorker = {
      // The heartbeat's own time, not the later of it and the one before: a time a manager whose clock ran ahead wrote
      // would otherwise stay, in the future, until real time passed it.
      ...current, state: 'ready', lastHeartbeatAtMs: cmd.atMs, stats: cmd.stats, heartbeats: current.heartbeats + 1,
    };
    this.workers.set(w.id, w);
    if (current.state !== 'ready') this.listener?.workerChanged(w);
    this.listener?.workerSeen(w.id);
    // Reports are only about this worker's own attempts.
    const changed = this.applyReports(cmd.reports.filter((r) => r.workerId === cmd.workerId), cmd.atMs);
    return { ok: true, id: w.id, changed: changed + 1 };
  }

  /** What the worker says of its engine: while unreachable, placement passes it over (placement-input.ts). */
  private engineState(cmd: WorkerEngineCommand): TaskApplyResult {
    const current = this.workers.get(cmd.workerId);
    if (current === undefined) return { ok: false, code: 'WORKER_NOT_FOUND', message: `no worker ${cmd.workerId}` };
    const replaced = replacedBy(current, cmd.instance);
    if (replaced !== null) return { ok: false, code: 'WORKER_REPLACED', message: replaced };
    const { engineUnreachable: _old, ...rest } = current;
    const w: StoredWorker = cmd.unreachable === null ? rest : { ...rest, engineUnreachable: { reason: cmd.unreachable.reason, sinceMs: cmd.unreachable.sinceMs } };
    this.workers.set(w.id, w);
    this.listener?.workerChanged(w);
    return { ok: true, id: w.id, changed: 1 };
  }

  private workerState(cmd: WorkerStateCommand): TaskApplyResult {
    const current = this.workers.get(cmd.workerId);
    if (current === undefined) return { ok: false, code: 'WORKER_NOT_FOUND', message: `no worker ${cmd.workerId}` };
    // A heartbeat applied after the leader decided makes the verdict stale: the worker is back.
    if (current.heartbeats !== cmd.ifHeartbeats) return { ok: true, id: current.id, changed: 0 };
    if (cmd.state === 'unreachable' && current.state !== 'ready') return { ok: true, id: current.id, changed: 0 };
    let changed = 0;
    if (current.state !== cmd.state) {
      const w: StoredWorker = { ...current, state: cmd.state };
      this.workers.set(w.id, w);
      this.listener?.workerChanged(w);
      changed++;
    }
    if (cmd.state === 'down') {
      for (const l of cmd.lost) {
        const t = this.record(l.taskId);
        if (t === undefined || !isActiveState(t.state) || t.workerId !== cmd.workerId || t.attempt !== l.attempt) continue;
        const lost = this.moved(t, 'lost', cmd.atMs, {}, `worker ${cmd.workerId} lost`);
        if (lost === null) continue;
        // A drained worker's task is moved as a drained one whether or not its turn came: a paced drain leaves a
        // service's replicas unmarked until then (markDraining), and an unpaced one marked every task meant to run.
        const drained = t.draining === true || (current.availability === 'drain' && t.desiredState === 'run');
        this.settle(lost, lostOutcome(lost, cmd.workerId, drained), cmd.atMs, l.retryAtMs, null);
        changed++;
      }
    }
    return { ok: true, id: current.id, changed };
  }

  private removeWorker(cmd: WorkerRemoveCommand): TaskApplyResult {
    const current = this.workers.get(cmd.workerId);
    if (current === undefined) return { ok: false, code: 'WORKER_NOT_FOUND', message: `no worker ${cmd.workerId}` };
    if (current.state !== 'down') {
      return { ok: false, code: 'WORKER_NOT_DOWN', message: `worker ${cmd.workerId} is ${current.state}: only a down worker's record is removed (stop the worker for good first; it is down ${current.state === 'ready' ? 'once silent for tasks.workerTtlMs + tasks.lostGraceMs' : 'after tasks.lostGraceMs more'})` };
    }
    const placed = this.activeCount(cmd.workerId);
    if (placed > 0) {
      return { ok: false, code: 'WORKER_NOT_DOWN', message: `worker ${cmd.workerId} is down but ${placed} task(s) are still placed on it; the leader is making them lost (and placing them again): try again in a moment` };
    }
    this.workers.delete(cmd.workerId);
    this.workerIds.remove(cmd.workerId);
    this.active.delete(cmd.workerId);
    if (cmd.revoke === true) this.noteRemoved(cmd.workerId, cmd.atMs);
    this.listener?.workerRemoved?.(cmd.workerId);
    return { ok: true, id: cmd.workerId, changed: 1 };
  }

  /**
   * Remembers a removal, as the newest (a later one of the same id moves it, keeping the later time: the proposers'
   * clocks may disagree); past the bound the oldest is forgotten. Every manager does the same, in log order.
   */
  private noteRemoved(workerId: string, atMs: number): void {
    const before = this.removedWorkers.get(workerId);
    this.removedWorkers.delete(workerId);
    this.removedWorkers.set(workerId, Math.max(atMs, before ?? 0));
    if (this.removedWorkers.size > this.removedWorkersMax) this.removedWorkers.delete(this.removedWorkers.keys().next().value!);
  }

  /** When `workerId` was last removed (worker.remove), or undefined. */
  workerRemovedAtMs(workerId: string): number | undefined {
    return this.removedWorkers.get(workerId);
  }

  /** The removals remembered, oldest first: [id, removedAtMs] (a snapshot's removedWorkers section). */
  removedWorkerEntries(): [string, number][] {
    return [...this.removedWorkers];
  }

  /** Replaces the removals remembered with a snapshot's (restore and prepareRestore come with it; none in old snapshots). */
  loadRemovedWorkers(entries: readonly (readonly [string, number])[]): void {
    this.removedWorkers = new Map(entries.length > this.removedWorkersMax ? entries.slice(entries.length - this.removedWorkersMax) : entries);
  }

  /**
   * Sets a worker's availability. A drain marks every attempt placed there and meant to run as draining: the leader
   * sends each a stop (and the worker's own reconcile stops it, the assignment saying stop); once the worker says it
   * stopped, the task goes back to pending as its next attempt (task-rules.ts), and the worker holds no task once all
   * have. Activating it again leaves the drains under way to finish.
   */
  private setAvailability(cmd: WorkerAvailabilityCommand): TaskApplyResult {
    const current = this.workers.get(cmd.workerId);
    if (current === undefined) return { ok: false, code: 'WORKER_NOT_FOUND', message: `no worker ${cmd.workerId}` };
    let changed = 0;
    if (availabilityOf(current) !== cmd.availability) {
      const { availability: _old, ...rest } = current;
      const w: StoredWorker = cmd.availability === 'active' ? rest : { ...rest, availability: cmd.availability };
      this.workers.set(w.id, w);
      this.listener?.workerChanged(w);
      changed++;
    }
    if (cmd.availability === 'drain') {
      // In id order, so every manager writes the same records in the same order. A paced drain leaves a service's
      // replicas to the service reconciler, which marks them parallelism at a time (markDraining).
      for (const t of this.activeOn(cmd.workerId)) {
        if (t.desiredState !== 'run' || t.draining === true || (cmd.paced === true && t.service !== undefined)) continue;
        this.write(taskRecord(t, { draining: true, updatedAt: isoAt(cmd.atMs) }), t);
        changed++;
      }
    }
    return { ok: true, id: cmd.workerId, changed };
  }

  /**
   * Marks these attempts draining, as a drain's apply does, each only if it is still placed on a worker being drained
   * and meant to run (the decision was made on an earlier view); answers how many changed. A service's reconcile
   * moves its replicas off a drained worker so, a few at a time.
   */
  markDraining(ids: readonly string[], atMs: number): number {
    let changed = 0;
    for (const id of ids) {
      const t = this.record(id);
      if (t === undefined || !isActiveState(t.state) || t.workerId === null || t.desiredState !== 'run' || t.draining === true) continue;
      if (this.workers.get(t.workerId)?.availability !== 'drain') continue;
      this.write(taskRecord(t, { draining: true, updatedAt: isoAt(atMs) }), t);
      changed++;
    }
    return changed;
  }

  private applyReports(reports: readonly TaskReport[], atMs: number): number {
    let changed = 0;
    for (const r of reports) {
      const t = this.record(r.taskId);
      if (t === undefined) continue;
      const outcome = reportOutcome(t, r);
      if (outcome.kind === 'ignore') continue;
      if (this.settle(t, outcome, atMs, r.retryAtMs, r)) changed++;
    }
    return changed;
  }

  /** Carries out a decision of task-rules; answers whether the task changed. */
  private settle(t: TaskRecord, o: ReportOutcome, atMs: number, retryAtMs: number, r: TaskReport | null): boolean {
    const exitCode = r?.exitCode ?? t.exitCode;
    switch (o.kind) {
      case 'ignore':
        return false;
      case 'running': {
        const seen: Partial<Mutable<TaskRecord>> = { containerId: o.containerId };
        if (o.health !== undefined) seen.health = o.health;
        if (o.ports !== undefined) seen.ports = o.ports;
        if (t.state === 'running') {
          // A health verdict that turns a replica unhealthy is worth a line in its history; others are not.
          const at = notBefore(t, atMs);
          if (o.health === 'unhealthy' && t.health !== 'unhealthy') seen.history = [...t.history.slice(-(this.historyMax - 1)), { state: 'running', attempt: t.attempt, atMs: at, workerId: t.workerId, reason: o.reason ?? 'unhealthy: the health check failed' }];
          this.write(taskRecord(t, { ...seen, updatedAt: isoAt(at) }), t);
          return true;
        }
        return this.moved(t, 'running', atMs, seen, o.health === 'unhealthy' ? (o.reason ?? 'unhealthy') : `running on ${t.workerId ?? '?'}`) !== null;
      }
      case 'final':
        return this.moved(t, o.state, atMs, { exitCode, error: o.error, containerId: r?.containerId ?? t.containerId }, o.reason) !== null;
      case 'retry': {
        // notBeforeMs as proposed, not moved with the history line (notBefore): placement's apply compares it with the
        // placement's atMs, and a manager of an earlier build, which does not move it, must decide alike.
        const changes: Partial<Mutable<TaskRecord>> = { attempt: t.attempt + 1, workerId: null, containerId: null, exitCode, error: o.error, notBeforeMs: retryAtMs };
        // A drained attempt costs nothing: no backoff, and it is not counted against maxAttempts.
        if (o.drained === true) Object.assign(changes, { notBeforeMs: atMs, drainedAttempts: (t.drainedAttempts ?? 0) + 1 });
        return this.moved(t, 'pending', atMs, changes, o.reason) !== null;
      }
    }
  }

  /** The one way a task changes state: refused (null) unless the transition table allows it. */
  private moved(t: TaskRecord, to: TaskState, proposedAtMs: number, changes: Partial<Mutable<TaskRecord>>, reason: string): TaskRecord | null {
    if (!canTransition(t.state, to)) return null;
    const atMs = notBefore(t, proposedAtMs);
    const history = t.history.length >= this.historyMax ? t.history.slice(t.history.length - this.historyMax + 1) : t.history.slice();
    const workerId = this.strings.maybe(changes.workerId !== undefined ? changes.workerId : t.workerId);
    if (changes.workerId !== undefined) changes.workerId = workerId;
    history.push({ state: to, attempt: changes.attempt ?? t.attempt, atMs, workerId, reason: this.strings.get(reason) });
    const next = taskRecord(t, changes, to, isoAt(atMs), history);
    this.write(next, t);
    return next;
  }

  /** A lazily restored record, stored as where its row is, indexed as write(record, null) would index it. */
  private index(t: ScannedTask): void {
    this.tasks.set(t.id, t.at);
    indexOf(this.byState, t.state).insert(t.id);
    if (t.service !== null) setOf(this.byService, t.service).add(t.id);
    if (t.workerId !== null) indexOf(this.byWorker, t.workerId).insert(t.id);
    if (isActiveState(t.state) && t.workerId !== null) setOf(this.active, t.workerId).add(t.id);
    if (!finalTaskStates.has(t.state)) this.usage.added(t.namespace, t.cpus, t.memoryMb);
  }

  /** Stores a record and keeps every index in step with it. */
  private write(next: TaskRecord, prev: TaskRecord | null): void {
    this.tasks.set(next.id, next);
    this.usage.changed(next, prev);
    if (prev === null || prev.state !== next.state) {
      if (prev !== null) this.byState.get(prev.state)?.remove(prev.id);
      indexOf(this.byState, next.state).insert(next.id);
    }
    if (prev === null && next.service !== undefined) setOf(this.byService, next.service.name).add(next.id);
    if (prev === null || prev.workerId !== next.workerId) {
      if (prev?.workerId != null) removeFrom(this.byWorker, prev.workerId, prev.id);
      if (next.workerId !== null) indexOf(this.byWorker, next.workerId).insert(next.id);
    }
    const wasActive = prev !== null && isActiveState(prev.state) && prev.workerId !== null;
    const isActive = isActiveState(next.state) && next.workerId !== null;
    if (wasActive && (!isActive || prev.workerId !== next.workerId)) this.unmarkActive(prev.workerId!, prev.id);
    if (isActive) setOf(this.active, next.workerId!).add(next.id);
    this.listener?.taskChanged(next, prev);
  }

  private unmarkActive(workerId: string, id: string): void {
    const set = this.active.get(workerId);
    set?.delete(id);
    if (set?.size === 0) this.active.delete(workerId);
  }

  /** Forgets the final task with the smallest id; false when no task has ended. */
  private evictOldestFinal(): boolean {
    let oldest: string | undefined;
    for (const s of finalTaskStates) {
      const first = this.byState.get(s)?.from('').next();
      if (first !== undefined && first.done !== true && (oldest === undefined || first.value < oldest)) oldest = first.value;
    }
    if (oldest === undefined) return false;
    this.forget(this.record(oldest)!);
    return true;
  }

  /** Retention: forgets the listed tasks that are final (others are skipped); answers how many. */
  private removeFinished(ids: readonly string[]): number {
    let removed = 0;
    for (const id of ids) {
      const t = this.record(id);
      if (t === undefined || !finalTaskStates.has(t.state)) continue;
      this.forget(t);
      removed++;
    }
    return removed;
  }

  /** Drops a final task's record from every index (a final task is in no active set). */
  private forget(t: TaskRecord): void {
    const oldest = t.id;
    this.tasks.delete(oldest);
    this.ids.remove(oldest);
    this.byState.get(t.state)?.remove(oldest);
    if (t.workerId !== null) removeFrom(this.byWorker, t.workerId, oldest);
    if (t.service !== undefined) {
      const ids = this.byService.get(t.service.name);
      ids?.delete(oldest);
      if (ids?.size === 0) this.byService.delete(t.service.name);
    }
    this.removedIds.add(t.id);
    if (this.removedIds.size > limits.removedTaskIdsMax) this.removedIds.delete(this.removedIds.values().next().value!);
    this.listener?.taskRemoved?.(t);
  }

  // ---- snapshots ----

  snapshot(): TaskSnapshot {
    return encodeTaskSnapshot(this.snapshotContent());
  }

  /** The store as of now, cheaply: records are never changed in place, so holding them keeps this view intact. */
  snapshotContent(): TaskSnapshotSource {
    return this.captureContent().content;
  }

  /**
   * snapshotContent(), and `compact`, to call once that content is packed into `whole` (the task rows' and the
   * idempotency rows' offsets in it, in the content's order): every record not replaced since becomes its row in
   * `whole` again, as after a lazy restore, and is decoded the next time something reads it. A manager's state
   * then costs a number per record instead of an object graph (and the buffer). Does nothing if the store was
   * restored or compacted since the capture.
   */
  captureContent(): { content: TaskSnapshotSource; compact: (whole: Uint8Array, taskStarts: readonly number[], keyStarts: readonly number[]) => void } {
    const generation = this.generation;
    const ids = this.ids.toArray();
    const held = ids.map((id) => this.tasks.get(id)!);
    const keys = [...this.idempotency];
    const content: TaskSnapshotSource = {
      // A record not read since a lazy restore stays bytes (written out as they came in): its offset in rows, whose
      // bytes are never changed, looked up while the content is packed a slice at a time (not in this capture).
      tasks: held,
      workers: this.allWorkers(),
      cursor: this.cursorValue,
      idempotency: keys,
      rows: { tasks: this.lazyRows, keys: this.lazyKeyRows },
    };
    const compact = (whole: Uint8Array, taskStarts: readonly number[], keyStarts: readonly number[]): void => {
      if (this.generation !== generation) return;
      this.generation++;
      const left = compactInto(this.tasks, ids, held, taskStarts);
      this.lazyRows = left === 0 ? null : whole;
      this.lazyLeft = left;
      const keysLeft = compactInto(this.idempotency, keys.map(([key]) => key), keys.map(([, r]) => r), keyStarts);
      this.lazyKeyRows = keysLeft === 0 ? null : whole;
      this.lazyKeysLeft = keysLeft;
    };
    return { content, compact };
  }

  /** Replaces everything with a snapshot's content; throws STORAGE_CORRUPT (changing nothing) if it is malformed. */
  restore(raw: unknown): void {
    const s = decodeTaskSnapshot(raw);
    this.generation++;
    this.usage.clear();
    this.tasks = new Map();
    this.lazyRows = null;
    this.lazyLeft = 0;
    this.ids = SortedKeys.fromSorted(s.tasks.map((t) => t.id));
    this.byState = new Map();
    this.byWorker = new Map();
    this.byService = new Map();
    this.active = new Map();
    const listener = this.listener;
    this.listener = null;
    for (const t of s.tasks) this.write(t, null);
    this.listener = listener;
    this.workers = new Map(s.workers.map((w) => [w.id, w]));
    this.workerIds = SortedKeys.fromSorted(s.workers.map((w) => w.id));
    this.cursorValue = s.cursor;
    this.idempotency = new Map(s.idempotency);
    this.lazyKeyRows = null;
    this.lazyKeysLeft = 0;
  }

  /**
   * restore() without blocking the event loop: the content is indexed into a store off to the side, yielding after
   * every slice of records; the answer swaps it in at once. This store is untouched until then.
   */
  async prepareRestore(u: SlicedUnpacker): Promise<() => void> {
    const next = new TaskStore({ tasksMax: this.tasksMax, idempotencyKeysMax: this.idempotencyKeysMax, workersMax: this.workersMax, historyMax: this.historyMax });
    // Each row is indexed as the scan reads it (the scan yields to the event loop between slices).
    const s = await scanTaskSnapshot(u, (t) => next.index(t));
    next.ids = SortedKeys.fromSorted(s.ids);
    next.lazyRows = s.ids.length === 0 ? null : s.rows;
    next.lazyLeft = s.ids.length;
    next.workers = new Map(s.workers.map((w) => [w.id, w]));
    next.workerIds = SortedKeys.fromSorted(s.workers.map((w) => w.id));
    next.cursorValue = s.cursor;
    next.idempotency = s.keys;
    next.lazyKeyRows = s.keys.size === 0 ? null : s.keyRows;
    next.lazyKeysLeft = s.keys.size;
    return () => {
      this.generation++;
      ({ tasks: this.tasks, ids: this.ids, byState: this.byState, byWorker: this.byWorker, byService: this.byService, active: this.active } = next);
      ({ workers: this.workers, workerIds: this.workerIds, cursorValue: this.cursorValue, idempotency: this.idempotency } = next);
      ({ lazyRows: this.lazyRows, lazyLeft: this.lazyLeft, lazyKeyRows: this.lazyKeyRows, lazyKeysLeft: this.lazyKeysLeft } = next);
      this.usage.adopt(next.usage);
    };
  }
}

/** The bytes of the one packed value at `at` in `rows`. */


type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The time a change of `t` proposed at `atMs` is recorded at: never before its last history line. Times are the
 * proposing manager's clock, and a manager behind the one before it would otherwise put `running` before `scheduled`;
 * the change came after that line, which is the best the record knows of when.
 */
function notBefore(t: TaskRecord, atMs: number): number {
  const last = t.history.at(-1)?.atMs;
  return last !== undefined && last > atMs ? last : atMs;
}

/**
 * `t` with `changes`, every field written out in one order: all records share one shape, and this costs a third of
 * an object spread (a task goes through several of these per run, on every manager).
 */
function taskRecord(
  t: TaskRecord,
  c: Partial<Mutable<TaskRecord>>,
  state = c.state ?? t.state,
  updatedAt = c.updatedAt ?? t.updatedAt,
  history = c.history ?? t.history,
): TaskRecord {
  return {
    id: t.id,
    spec: t.spec,
    state,
    desiredState: c.desiredState ?? t.desiredState,
    workerId: c.workerId !== undefined ? c.workerId : t.workerId,
    attempt: c.attempt ?? t.attempt,
    term: c.term ?? t.term,
    containerId: c.containerId !== undefined ? c.containerId : t.containerId,
    exitCode: c.exitCode !== undefined ? c.exitCode : t.exitCode,
    error: c.error !== undefined ? c.error : t.error,
    notBeforeMs: c.notBeforeMs ?? t.notBeforeMs,
    createdAt: t.createdAt,
    updatedAt,
    history,
    service: t.service,
    // Ports and health belong to a placed attempt: a retry or an end forgets them.
    ports: isActiveState(state) ? (c.ports ?? t.ports) : undefined,
    health: isActiveState(state) ? (c.health ?? t.health) : undefined,
    // So does a drain, and a stop asked for meanwhile wins over it (the task ends stopped).
    draining: isActiveState(state) && (c.desiredState ?? t.desiredState) === 'run' ? (c.draining ?? t.draining) : undefined,
    drainedAttempts: c.drainedAttempts ?? t.drainedAttempts,
  };
}

const emptySet: ReadonlySet<string> = new Set();

/** A registration's labels and capacity; one that sends none keeps what the worker registered before. */
/**
 * Why a worker instance may no longer act as its id (null: it may): the id's record names another instance, which
 * registered it after this one. An instance or a record without one (workers that predate instances) is never refused.
 */
export function replacedBy(w: StoredWorker, instance: string | undefined): string | null {
  if (instance === undefined || w.instance === undefined || w.instance === instance) return null;
  return `worker ${w.id} is registered by another instance now (${w.instance}, at ${w.apiAddress}); this one (${instance}) was replaced and must stop: ` +
    'two processes were started with one worker id (give each its own id)';
}

function placementOf(cmd: WorkerRegisterCommand, current: StoredWorker | undefined): Pick<StoredWorker, 'labels' | 'capacity'> {
  const labels = cmd.labels ?? current?.labels;
  const capacity = cmd.capacity ?? current?.capacity;
  return { ...(labels === undefined ? {} : { labels }), ...(capacity === undefined ? {} : { capacity }) };
}

function queueFull(kept: number): TaskApplyResult {
  return { ok: false, code: 'QUEUE_FULL', message: `${kept} tasks are kept and none has ended; stop some or wait` };
}

function indexOf<K>(m: Map<K, SortedKeys>, k: K): SortedKeys {
  let s = m.get(k);
  if (s === undefined) m.set(k, (s = new SortedKeys()));
  return s;
}

function removeFrom(m: Map<string, SortedKeys>, k: string, id: string): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.remove(id);
  if (s.length === 0) m.delete(k);
}

function setOf(m: Map<string, Set<string>>, k: string): Set<string> {
  let s = m.get(k);
  if (s === undefined) m.set(k, (s = new Set()));
  return s;
}

