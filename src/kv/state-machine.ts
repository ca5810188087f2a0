// The replicated key-value state machine: applies committed commands in log order, identically on every manager.
// Deterministic by construction: no clock, no randomness, and every eviction is ordered by log index.
import { Packr } from 'msgpackr';
import { assert } from '../lib/assert.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { assertNeverCommand, tryDecodeCommand, type Command, type CommandEnvelope, type DeleteCommand, type PutCommand } from './commands.js';
import { submissionsOf } from './task-commands.js';
import { SortedKeys } from './sorted-keys.js';
import { TaskStore, type TaskApplyErrorCode, type TaskStoreOptions } from './task-store.js';
import { SlicedPacker, yieldToEventLoop, type YieldFn } from './sliced-pack.js';
import { releaseUnpackSource, SlicedUnpacker } from './sliced-unpack.js';
import { KvTable, compactSliceKeysDefault, type KvRecord } from './kv-table.js';
import { encodeTaskSnapshot, packTaskSnapshot } from './task-snapshot.js';
import { decodeServiceSnapshot, encodeServiceSnapshot, ServiceStore, type ServiceApplyErrorCode, type ServiceStoreOptions } from './service-store.js';
import { decodeQuotaSnapshot, QuotaStore } from './quota-store.js';
import type { ServiceCreateCommand, ServiceRollbackCommand, ServiceUpdateCommand } from './service-commands.js';
import { namespaceOf } from './quota-usage.js';
import { finalTaskStates, type TaskSpec } from '../contracts/task-model.js';
import { AuthStore, decodeAuthSnapshot, emptyAuthSnapshot, encodeAuthSnapshot, type AuthApplyErrorCode, type AuthStoreOptions } from './auth-store.js';

const emptyTaskSnapshot = encodeTaskSnapshot({ tasks: [], workers: [], cursor: null, idempotency: [] });

export type { KvRecord } from './kv-table.js';

/**
 * 'TIMEOUT' answers a retried command whose session no longer remembers it (see Session.floor): it is not applied
 * again, and whether it was applied once is unknown, which is exactly what TIMEOUT tells a client.
 */
export type ApplyErrorCode = 'KV_VERSION_MISMATCH' | 'KV_KEY_NOT_FOUND' | 'TIMEOUT' | 'INVALID_COMMAND' | TaskApplyErrorCode | AuthApplyErrorCode | ServiceApplyErrorCode | 'QUOTA_EXCEEDED';

/** For task and worker commands, `key` is the id of the task or worker the command was about ('' for batches). */
export type ApplyResult =
  | { readonly ok: true; readonly key: string; readonly version: number }
  | { readonly ok: false; readonly code: ApplyErrorCode; readonly message: string; readonly currentVersion: number };

/** One applied entry as the manager needs it: whose proposal it was, and what it answered. */
export interface AppliedCommand {
  readonly clientId: string;
  readonly seq: number;
  readonly reqId?: string | undefined;
  /** The entry as decoded (absent for one that did not decode): the audit log reads its command and principal. */
  readonly envelope?: CommandEnvelope;
  readonly result: ApplyResult;
  /** False when (clientId, seq) had been applied before and `result` is the remembered answer. */
  readonly fresh: boolean;
}

export interface KvStateMachineOptions {
  sessionsMax?: number;
  sessionResultsMax?: number;
  /** Whether a snapshot's capture compacts the records it packed back into its bytes (captureSnapshotParts); on by default. */
  compactOnSnapshot?: boolean;
  /** How a snapshot's encoding and compaction give the loop back between slices (tests step it by hand). */
  snapshotYield?: YieldFn;
  /** Records a compaction turns into rows between two yields. */
  compactSliceKeys?: number;
  tasks?: TaskStoreOptions;
  auth?: AuthStoreOptions;
  services?: ServiceStoreOptions;
}

/**
 * What the state machine remembers of one client. Proposals of one client may commit out of seq order (a resend
 * after a leader change lands after a later seq), so a session keeps the set of applied seqs with their results,
 * not just the highest one. Every seq below `floor` is forgotten: acknowledged by the client (ackSeq) or evicted
 * by the bound; such a command is never applied again.
 */
interface Session {
  /** The log index of the last command of this client: sessions are evicted least recently used by this. */
  lastIndex: number;
  floor: number;
  /** seq -> result, in apply order (eviction drops the oldest applied first). */
  readonly results: Map<number, ApplyResult>;
}

/** 1: keys and sessions; 2: and the task store; 3: and the auth store; 4: and the services. All are restored (auth empty before 3, services before 4). */
const SNAPSHOT_FORMAT = 4;
const snapshotPackr = new Packr({ useRecords: false, moreTypes: false });

export class KvStateMachine {
  /** Key -> record, or its row in a snapshot's bytes (restored lazily, or compacted), decoded when first read. */
  private table = new KvTable();
  private readonly compactOnSnapshot: boolean;
  private readonly snapshotYield: YieldFn;
  private readonly compactSliceKeys: number;
  /** The size of the last snapshot this machine packed (captureSnapshotParts), to size the next one's buffer. */
  private lastSnapshotBytes = 0;
  /** Keys in code-unit order, for prefix listing (tasks/, workers/) without sorting on every read. */
  private sortedKeys = new SortedKeys();
  /** clientId -> session; Map order is least recently used first (re-inserted on every command). */
  private readonly sessions = new Map<string, Session>();
  private appliedIndexValue = 0;
  private readonly sessionsMax: number;
  private readonly sessionResultsMax: number;
  /** Tasks, workers, the scheduler's cursor and idempotency keys. */
  readonly tasks: TaskStore;
  /** API tokens, join tokens and the session key. */
  readonly auth: AuthStore;
  /** Services (their replicas are task records in `tasks`). */
  readonly services: ServiceStore;
  /** Quotas per namespace, judged against the task store's usage when tasks are submitted. */
  readonly quotas = new QuotaStore();

  constructor(options: KvStateMachineOptions = {}) {
    this.tasks = new TaskStore(options.tasks);
    this.services = new ServiceStore(options.services);
    this.auth = new AuthStore(options.auth);
    this.sessionsMax = options.sessionsMax ?? limits.kvSessionsMax;
    this.sessionResultsMax = options.sessionResultsMax ?? limits.kvSessionResultsMax;
    this.compactOnSnapshot = options.compactOnSnapshot ?? true;
    this.snapshotYield = options.snapshotYield ?? yieldToEventLoop;
    this.compactSliceKeys = options.compactSliceKeys ?? compactSliceKeysDefault;
    assert(this.sessionsMax >= 1 && this.sessionResultsMax >= 1, 'session bounds must be positive');
  }

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  get size(): number {
    return this.table.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The record of a key, decoding it first if it is a row not read since. */
  private record(key: string): KvRecord | undefined {
    return this.table.get(key);
  }

  get(key: string): KvRecord | undefined {
    return this.record(key);
  }

  /** Applies one committed entry's data and returns its result. */
  apply(index: number, data: Uint8Array): ApplyResult {
    return this.applyEntry(index, data).result;
  }

  /**
   * Applies one committed entry's data; the caller matches (clientId, seq) to its waiting proposal.
   *
   * An entry that does not decode (put in the log before leaders checked proposals, by a peer that did not check)
   * is a no-op with an INVALID_COMMAND result, answering no one. That is safe because it is deterministic: the same
   * bytes fail the same decoder on every manager, which all skip it alike, at every restart. An entry of a newer
   * command version is different: a newer manager applies it, so skipping it here would diverge from them, and this
   * manager stops instead (it must be upgraded to go on).
   */
  applyEntry(index: number, data: Uint8Array): AppliedCommand {
    const decoded = tryDecodeCommand(data);
    if (decoded.ok) return this.applyEnvelope(index, decoded.envelope);
    if (decoded.newer) throw new MinkubeError('INVALID_COMMAND', `entry ${index}: ${decoded.problem}; upgrade this manager`);
    return this.skipEntry(index, decoded.problem);
  }

  /** An entry that is no command (a no-op, a configuration change) at `index`: the state is now as of it. */
  passEntry(index: number): void {
    assert(Number.isSafeInteger(index) && index > this.appliedIndexValue, `entry ${index} passed after ${this.appliedIndexValue}`);
    this.appliedIndexValue = index;
  }

  private skipEntry(index: number, problem: string): AppliedCommand {
    assert(Number.isSafeInteger(index) && index > this.appliedIndexValue, `entry ${index} applied after ${this.appliedIndexValue}`);
    this.appliedIndexValue = index;
    const message = `entry ${index} is not a command (${problem}); it was skipped`;
    return { clientId: '', seq: 0, result: { ok: false, code: 'INVALID_COMMAND', message, currentVersion: 0 }, fresh: true };
  }

  applyEnvelope(index: number, envelope: CommandEnvelope): AppliedCommand {
    assert(Number.isSafeInteger(index) && index > this.appliedIndexValue, `entry ${index} applied after ${this.appliedIndexValue}`);
    this.appliedIndexValue = index;
    const { clientId, seq, reqId } = envelope;
    const session = this.touchSession(clientId, index);
    // A command never acknowledges itself: an ackSeq above its own seq counts as acknowledging only what is below.
    const ackSeq = envelope.ackSeq === undefined ? 0 : Math.min(envelope.ackSeq, seq);
    if (ackSeq > session.floor) raiseFloor(session, ackSeq);
    const remembered = session.results.get(seq);
    if (remembered !== undefined) return { clientId, seq, reqId, envelope, result: remembered, fresh: false };
    if (seq < session.floor) return { clientId, seq, reqId, envelope, result: forgotten(clientId, seq), fresh: false };
    const result = this.applyCommand(index, envelope.cmd);
    session.results.set(seq, result);
    if (session.results.size > this.sessionResultsMax) evictOldestResult(session);
    return { clientId, seq, reqId, envelope, result, fresh: true };
  }

  private applyCommand(index: number, cmd: Command): ApplyResult {
    switch (cmd.op) {
      case 'put':
        return this.put(index, cmd);
      case 'delete':
        return this.delete(index, cmd);
      case 'task.submit':
      case 'task.submitBatch': {
        // Quotas: the fresh submissions (not retries answered with the task they made) must fit their namespaces.
        const fresh = submissionsOf(cmd).filter((t) => this.tasks.submitted(t) === undefined).map((t) => t.spec);
        const refused = this.quotas.refusal(fresh, (ns) => this.tasks.usage.of(ns));
        if (refused !== null) return { ok: false, code: 'QUOTA_EXCEEDED', message: refused, currentVersion: 0 };
        const r = this.tasks.apply(cmd);
        return r.ok ? { ok: true, key: r.id, version: index } : { ok: false, code: r.code, message: r.message, currentVersion: 0 };
      }
      case 'task.place':
      case 'task.report':
      case 'task.stop':
      case 'task.remove':
      case 'worker.register':
      case 'worker.heartbeat':
      case 'worker.engine':
      case 'worker.state':
      case 'worker.remove':
      case 'worker.availability': {
        const r = this.tasks.apply(cmd);
        return r.ok ? { ok: true, key: r.id, version: index } : { ok: false, code: r.code, message: r.message, currentVersion: 0 };
      }
      case 'auth.bootstrap':
      case 'auth.tokenCreate':
      case 'auth.tokenRevoke':
      case 'auth.joinTokenCreate':
      case 'auth.joinTokenRevoke': {
        const r = this.auth.apply(cmd);
        return r.ok ? { ok: true, key: r.id, version: index } : { ok: false, code: r.code, message: r.message, currentVersion: 0 };
      }
      case 'service.create':
      case 'service.update':
      case 'service.rollback':
      case 'service.delete':
      case 'service.reconcile': {
        const refused = cmd.op === 'service.create' || cmd.op === 'service.update' || cmd.op === 'service.rollback' ? this.serviceQuotaRefusal(cmd) : null;
        if (refused !== null) return { ok: false, code: 'QUOTA_EXCEEDED', message: refused, currentVersion: 0 };
        const r = this.services.apply(cmd, this.tasks);
        return r.ok ? { ok: true, key: r.id, version: index } : { ok: false, code: r.code, message: r.message, currentVersion: 0 };
      }
      case 'quota.set': {
        const r = this.quotas.apply(cmd);
        return r.ok ? { ok: true, key: r.id, version: index } : { ok: false, code: r.code, message: r.message, currentVersion: 0 };
      }
      default:
        return assertNeverCommand(cmd);
    }
  }

  /**
   * A service created, scaled up, or moved to another namespace past that namespace's quota: the replicas it wants
   * beyond its live ones must fit beside what the namespace holds, as tasks would (replicas are created later, by the
   * leader's reconciler). A command with quotaInNamespace (version 10) counts only its live replicas in the namespace
   * they will run in, so a move counts all of them as new there; one without it counts them wherever they run, as
   * managers before version 10 do.
   */
  private serviceQuotaRefusal(cmd: ServiceCreateCommand | ServiceUpdateCommand | ServiceRollbackCommand): string | null {
    const current = this.services.service(cmd.name);
    if (cmd.op === 'service.rollback') {
      // Without a previous version it is refused by the service store.
      const previous = current?.versions.find((v) => v.version === current.previousVersion)?.spec;
      return cmd.quotaInNamespace !== true || previous === undefined ? null : this.replicasRefusal(cmd.name, current!.replicas, previous, true);
    }
    if (cmd.op === 'service.update' && cmd.quotaInNamespace === true) {
      const spec = cmd.spec ?? current?.versions.find((v) => v.version === current.version)?.spec;
      return current === undefined || spec === undefined ? null : this.replicasRefusal(cmd.name, cmd.replicas ?? current.replicas, spec, true);
    }
    // As managers before version 10 judge it.
    if (cmd.op === 'service.create' && current !== undefined) return null;
    const spec = cmd.spec ?? (current === undefined ? undefined : current.versions.find((v) => v.version === current.version)?.spec);
    if (spec === undefined || (cmd.op === 'service.update' && cmd.replicas === undefined && cmd.spec === undefined)) return null;
    return this.replicasRefusal(cmd.name, cmd.replicas ?? current?.replicas ?? 0, spec, false);
  }

  /** Whether `wanted` replicas of `spec` fit, counting the service's live ones (inNamespace: only those in spec's namespace). */
  private replicasRefusal(name: string, wanted: number, spec: TaskSpec, inNamespace: boolean): string | null {
    const ns = namespaceOf(spec);
    let live = 0;
    for (const id of this.tasks.idsOfService(name)) {
      const t = this.tasks.task(id)!;
      if (!finalTaskStates.has(t.state) && (!inNamespace || namespaceOf(t.spec) === ns)) live++;
    }
    const adding = wanted - live;
    return adding <= 0 ? null : this.quotas.refusal(new Array<TaskSpec>(adding).fill(spec), (n) => this.tasks.usage.of(n));
  }

  private put(index: number, cmd: PutCommand): ApplyResult {
    const current = this.record(cmd.key);
    if (cmd.ifVersion !== undefined && cmd.ifVersion !== (current?.version ?? 0)) return mismatch(cmd.key, cmd.ifVersion, current);
    if (current === undefined) this.sortedKeys.insert(cmd.key);
    this.table.set(cmd.key, { key: cmd.key, value: cmd.value, version: index });
    return { ok: true, key: cmd.key, version: index };
  }

  private delete(index: number, cmd: DeleteCommand): ApplyResult {
    const current = this.record(cmd.key);
    if (cmd.ifVersion !== undefined && cmd.ifVersion !== (current?.version ?? 0)) return mismatch(cmd.key, cmd.ifVersion, current);
    if (current === undefined) {
      return { ok: false, code: 'KV_KEY_NOT_FOUND', message: `no key "${cmd.key}"`, currentVersion: 0 };
    }
    this.table.delete(cmd.key);
    const removed = this.sortedKeys.remove(cmd.key);
    assert(removed, `sorted key index lost "${cmd.key}"`);
    return { ok: true, key: cmd.key, version: index };
  }

  /** Records whose key starts with `prefix`, in key order, after the key `after` (exclusive), at most `limit`. */
  list(prefix: string, options: { after?: string; limit?: number } = {}): KvRecord[] {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const out: KvRecord[] = [];
    if (limit <= 0) return out;
    for (const record of this.iterate(prefix, options.after)) {
      out.push(record);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Iterates records by key order under a prefix. Do not apply entries while iterating. */
  *iterate(prefix: string, after?: string): Generator<KvRecord> {
    const keys = after !== undefined && after >= prefix ? this.sortedKeys.from(after, true) : this.sortedKeys.from(prefix);
    for (const key of keys) {
      if (!key.startsWith(prefix)) return;
      yield this.record(key)!;
    }
  }

  /** Keys, versions and sessions: restoring these bytes on any node gives the same state machine. */
  snapshot(): Uint8Array {
    const kv: (string | number)[] = [];
    for (const key of this.sortedKeys.toArray()) {
      const r = this.record(key)!;
      kv.push(r.key, r.value, r.version);
    }
    const sessions: unknown[] = [];
    for (const [clientId, s] of this.sessions) sessions.push([clientId, s.lastIndex, s.floor, [...s.results]]);
    const removedWorkers = this.tasks.removedWorkerEntries();
    return snapshotPackr.pack({
      format: SNAPSHOT_FORMAT, appliedIndex: this.appliedIndexValue, kv, sessions, tasks: this.tasks.snapshot(), auth: encodeAuthSnapshot(this.auth.snapshotContent()),
      services: encodeServiceSnapshot(this.services.snapshotContent()),
      quotas: this.quotas.snapshotContent(),
      ...(removedWorkers.length === 0 ? {} : { removedWorkers }),
    });
  }

  /**
   * The same bytes as snapshot() would give now, encoded a slice at a time from now on, yielding to the event loop
   * between slices (the state may change meanwhile: the kv records through a copy-on-write capture of their table,
   * the task store's records are replaced, never changed in place). The capture copies the key lists and the task
   * records' references on the loop in one go: 28-44 ms for 100,000 keys + 100,000 tasks in process.
   */
  captureSnapshot(): () => Promise<Uint8Array> {
    const encode = this.captureSnapshotParts();
    return async () => Buffer.concat(await encode());
  }

  /**
   * captureSnapshot(), its bytes as parts (one: the whole, packed into one buffer). Once packed, the records not
   * replaced since the capture are compacted: each becomes its offset in those bytes again, as after a lazy
   * restore, and is decoded the next time something reads it. A manager then holds its state as the snapshot's
   * bytes plus the indexes (a number per record), not as an object graph several times that size; the records
   * written since are objects until the next snapshot. The encoding starts at once, so the capture is always
   * released, whether or not anyone waits for the bytes.
   */
  captureSnapshotParts(): () => Promise<readonly Uint8Array[]> {
    const table = this.table;
    const keys = this.sortedKeys.toArray();
    const capture = table.capture();
    const sessions: unknown[] = [];
    for (const [clientId, s] of this.sessions) sessions.push([clientId, s.lastIndex, s.floor, [...s.results]]);
    const tasks = this.tasks.captureContent();
    const auth = encodeAuthSnapshot(this.auth.snapshotContent());
    const services = encodeServiceSnapshot(this.services.snapshotContent());
    const quotas = this.quotas.snapshotContent();
    const removedWorkers = this.tasks.removedWorkerEntries();
    const appliedIndex = this.appliedIndexValue;
    const compacting = this.compactOnSnapshot;
    // A record that is a row (not read since a lazy restore or a compaction) is copied as its bytes, as they came in.
    // The packer asks for a record's row right after its raw bytes (none): the record rawKv found is used again.
    let found: KvRecord | number | undefined;
    const rawKv = (key: string): Uint8Array | null => {
      found = capture.valueOf(key)!;
      return typeof found === 'number' ? capture.rowOf(found) : null;
    };
    const rowKv = (key: string): unknown[] => {
      const r = (typeof found === 'object' && found.key === key ? found : capture.valueOf(key)) as KvRecord;
      return [r.key, r.value, r.version];
    };
    const encode = async (): Promise<readonly Uint8Array[]> => {
      // About the last snapshot's size, so the buffer rarely grows (or has much room left to give back).
      const p = new SlicedPacker(snapshotPackr, this.snapshotYield, this.lastSnapshotBytes * 1.03 + 64 * 1024);
      const kvStarts: number[] | undefined = compacting ? [] : undefined;
      const taskStarts = compacting ? { tasks: [] as number[], keys: [] as number[] } : undefined;
      // removedWorkers only once a worker was removed: other snapshots keep the shape they had before it.
      p.mapHeader(removedWorkers.length === 0 ? 8 : 9);
      p.value('format');
      p.value(SNAPSHOT_FORMAT);
      p.value('appliedIndex');
      p.value(appliedIndex);
      p.value('kv');
      await p.arrayOf(keys, 3, rawKv, rowKv, kvStarts);
      p.value('sessions');
      p.value(sessions);
      p.value('tasks');
      await packTaskSnapshot(p, tasks.content, taskStarts);
      p.value('auth');
      p.value(auth);
      p.value('services');
      p.value(services);
      p.value('quotas');
      p.value(quotas);
      if (removedWorkers.length > 0) {
        p.value('removedWorkers');
        p.value(removedWorkers);
      }
      const whole = await p.bytes();
      this.lastSnapshotBytes = whole.byteLength;
      if (kvStarts === undefined || taskStarts === undefined) return [whole];
      tasks.compact(whole, taskStarts.tasks, taskStarts.keys);
      await table.compact(capture, keys, whole, kvStarts, this.snapshotYield, this.compactSliceKeys);
      return [whole];
    };
    const encoding = encode().finally(() => capture.release());
    // Whoever calls the answer gets the failure; nobody calling it is no unhandled rejection.
    encoding.catch(() => undefined);
    return () => encoding;
  }

  /** Replaces the whole state with a snapshot's. Throws STORAGE_CORRUPT (and changes nothing) if it is malformed. */
  restore(bytes: Uint8Array): void {
    const decoded = decodeSnapshot(bytes);
    const auth = decoded.auth === undefined ? emptyAuthSnapshot : decodeAuthSnapshot(decoded.auth);
    const services = decoded.services === undefined ? [] : decodeServiceSnapshot(decoded.services);
    const quotas = decodeQuotaSnapshot(decoded.quotas);
    const removedWorkers = decodeRemovedWorkers(decoded.removedWorkers);
    // The task store checks its whole section before it changes anything, and nothing below can fail.
    this.tasks.restore(decoded.tasks ?? emptyTaskSnapshot);
    this.tasks.loadRemovedWorkers(removedWorkers);
    this.auth.load(auth);
    this.services.load(services);
    this.quotas.load(quotas);
    const data = new Map<string, KvRecord | number>();
    for (const r of decoded.records) data.set(r.key, r);
    this.replaceTable(new KvTable(data));
    this.lastSnapshotBytes = bytes.byteLength;
    this.sessions.clear();
    this.sortedKeys = SortedKeys.fromSorted(decoded.records.map((r) => r.key));
    for (const [clientId, s] of decoded.sessions) this.sessions.set(clientId, s);
    this.appliedIndexValue = decoded.appliedIndex;
    releaseUnpackSource(snapshotPackr);
  }

  /** A restore's new table; captures of the old one go on reading it as it was. */
  private replaceTable(table: KvTable): void {
    this.table.retire();
    this.table = table;
  }

  /**
   * restore() without blocking the event loop (a follower installs the leader's snapshot while it answers
   * heartbeats): the bytes are decoded and indexed a slice at a time off to the side, and the answer swaps the new
   * state in at once. Rejects with STORAGE_CORRUPT, changing nothing, if they are malformed.
   */
  async prepareRestore(bytes: Uint8Array, yieldFn: YieldFn = yieldToEventLoop): Promise<() => void> {
    const { decoded, swapTasks, kv } = await unpackSnapshot(bytes, yieldFn, this.tasks);
    const auth = decoded.auth === undefined ? emptyAuthSnapshot : decodeAuthSnapshot(decoded.auth);
    const services = decoded.services === undefined ? [] : decodeServiceSnapshot(decoded.services);
    const quotas = decodeQuotaSnapshot(decoded.quotas);
    const removedWorkers = decodeRemovedWorkers(decoded.removedWorkers);
    const table = new KvTable(kv.records, kv.rows, kv.keys.length);
    const sortedKeys = SortedKeys.fromSorted(kv.keys);
    releaseUnpackSource(snapshotPackr);
    return () => {
      swapTasks();
      this.tasks.loadRemovedWorkers(removedWorkers);
      this.auth.load(auth);
      this.services.load(services);
      this.quotas.load(quotas);
      this.replaceTable(table);
      this.lastSnapshotBytes = bytes.byteLength;
      this.sortedKeys = sortedKeys;
      this.sessions.clear();
      for (const [clientId, session] of decoded.sessions) this.sessions.set(clientId, session);
      this.appliedIndexValue = decoded.appliedIndex;
    };
  }

  private touchSession(clientId: string, index: number): Session {
    let session = this.sessions.get(clientId);
    if (session === undefined) {
      session = { lastIndex: index, floor: 0, results: new Map() };
    } else {
      this.sessions.delete(clientId);
      session.lastIndex = index;
    }
    this.sessions.set(clientId, session);
    if (this.sessions.size > this.sessionsMax) {
      // The first entry is the least recently used by log index, on every node alike.
      const oldest = this.sessions.keys().next().value!;
      this.sessions.delete(oldest);
    }
    return session;
  }

}

function mismatch(key: string, expected: number, current: KvRecord | undefined): ApplyResult {
  const currentVersion = current?.version ?? 0;
  const now = current === undefined ? 'does not exist' : `is at version ${currentVersion}`;
  const wanted = expected === 0 ? 'must not exist' : `must be at version ${expected}`;
  return { ok: false, code: 'KV_VERSION_MISMATCH', message: `key "${key}" ${wanted} but ${now}`, currentVersion };
}

function forgotten(clientId: string, seq: number): ApplyResult {
  return {
    ok: false,
    code: 'TIMEOUT',
    message: `command ${seq} of client ${clientId} is older than its session remembers; it was not applied again and its outcome is unknown`,
    currentVersion: 0,
  };
}

function raiseFloor(session: Session, floor: number): void {
  session.floor = floor;
  // Results mostly sit in seq order: drop the acknowledged prefix. A straggler applied out of order stays until
  // the bound evicts it; keeping it is harmless.
  for (const seq of session.results.keys()) {
    if (seq >= floor) break;
    session.results.delete(seq);
  }
}

function evictOldestResult(session: Session): void {
  const oldest = session.results.keys().next().value!;
  session.results.delete(oldest);
  // Anything at or below a forgotten seq that is still unapplied must not be applied later either: at most once.
  if (oldest + 1 > session.floor) session.floor = oldest + 1;
}

interface DecodedSnapshot {
  appliedIndex: number;
  records: KvRecord[];
  sessions: [string, Session][];
  /** Absent in format 1. */
  tasks: unknown;
  /** Absent before format 3. */
  auth: unknown;
  /** Absent before format 4. */
  services: unknown;
  /** Absent in snapshots written before quotas (none then). */
  quotas: unknown;
  /** [[workerId, removedAtMs], ...], oldest first; absent when no worker was removed, and in snapshots written before. */
  removedWorkers: unknown;
}

type RawSnapshot = { format?: unknown; appliedIndex?: unknown; kv?: unknown; sessions?: unknown; tasks?: unknown; auth?: unknown; services?: unknown; quotas?: unknown; removedWorkers?: unknown };

const snapshotCorrupt = (problem: string): MinkubeError => new MinkubeError('STORAGE_CORRUPT', `kv snapshot: ${problem}`);

function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  const corrupt = snapshotCorrupt;
  let raw: RawSnapshot;
  try {
    raw = snapshotPackr.unpack(bytes) as typeof raw;
  } catch (err) {
    throw corrupt(`not msgpack (${(err as Error).message})`);
  }
  const records: KvRecord[] = [];
  if (Array.isArray(raw?.kv)) {
    const kv = raw.kv as unknown[];
    if (kv.length % 3 !== 0) throw corrupt('bad header');
    for (let i = 0; i < kv.length; i++) addRecordPart(records, kv[i], i);
  }
  return checkSections(raw, records);
}

/** One element of the snapshot's flat kv array (key, value, version, key, ...): checked, and added to `records`. */
function addRecordPart(records: KvRecord[], v: unknown, i: number): void {
  const at = i % 3;
  if (at === 0) {
    if (typeof v !== 'string') throw snapshotCorrupt(`bad record ${(i - at) / 3}`);
    if (records.length > 0 && records.at(-1)!.key >= v) throw snapshotCorrupt('keys out of order');
    records.push({ key: v, value: '', version: 0 });
  } else if ((at === 1 && typeof v !== 'string') || (at === 2 && !isIndex(v))) {
    throw snapshotCorrupt(`bad record ${(i - at) / 3}`);
  } else {
    // Records are built in place and never handed out before the whole snapshot decoded.
    (records.at(-1) as { value: string; version: number })[at === 1 ? 'value' : 'version'] = v as never;
  }
}

/** The header's and sections' checks, once the kv array was read into records. */
function checkSections(raw: RawSnapshot, records: KvRecord[]): DecodedSnapshot {
  const corrupt = snapshotCorrupt;
  if (typeof raw !== 'object' || raw === null || (raw.format !== 1 && raw.format !== 2 && raw.format !== 3 && raw.format !== SNAPSHOT_FORMAT)) throw corrupt('unknown format');
  if (raw.format !== 1 && raw.tasks === undefined) throw corrupt('no task section');
  if ((raw.format === 3 || raw.format === SNAPSHOT_FORMAT) && raw.auth === undefined) throw corrupt('no auth section');
  if (raw.format === SNAPSHOT_FORMAT && raw.services === undefined) throw corrupt('no services section');
  const { appliedIndex, kv, sessions } = raw;
  if (!isIndex(appliedIndex) || !Array.isArray(kv) || !Array.isArray(sessions)) throw corrupt('bad header');
  return {
    appliedIndex, records, sessions: sessions.map((s, i) => decodeSession(s, i, corrupt)), tasks: raw.tasks, auth: raw.auth, services: raw.services, quotas: raw.quotas,
    removedWorkers: raw.removedWorkers,
  };
}

/** The removedWorkers section, checked: distinct ids, each with a positive time; none when absent. */
function decodeRemovedWorkers(raw: unknown): [string, number][] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw snapshotCorrupt('bad removedWorkers section');
  const seen = new Set<string>();
  return raw.map((row: unknown, i) => {
    const [id, atMs] = Array.isArray(row) && row.length === 2 ? (row as unknown[]) : [];
    if (typeof id !== 'string' || seen.has(id) || typeof atMs !== 'number' || !Number.isSafeInteger(atMs) || atMs <= 0) throw snapshotCorrupt(`bad removed worker ${i}`);
    seen.add(id);
    return [id, atMs];
  });
}

/** decodeSnapshot a slice at a time (see SlicedUnpacker); the task section comes scanned, its rows kept as bytes. */
async function unpackSnapshot(bytes: Uint8Array, yieldFn: YieldFn, taskStore: TaskStore): Promise<{ decoded: DecodedSnapshot; swapTasks: () => void; kv: LazyKv }> {
  const u = new SlicedUnpacker(bytes, snapshotPackr, yieldFn);
  const raw: RawSnapshot & Record<string, unknown> = {};
  const records: KvRecord[] = [];
  const kv: LazyKv = { rows: new Uint8Array(0), keys: [], records: new Map() };
  let swapTasks: (() => void) | undefined;
  try {
    const fields = u.mapHeader();
    if (fields === null) throw snapshotCorrupt('unknown format');
    for (let f = 0; f < fields; f++) {
      const name = u.value();
      if (name === 'kv') {
        const length = u.arrayHeader();
        if (length === null || length % 3 !== 0) throw snapshotCorrupt('bad header');
        // Scanned, not decoded: each key read, its value and version checked and kept as bytes (rows of a KvTable).
        let previous: string | null = null;
        const base = u.position;
        const start = await u.scan(length / 3, (c, i) => {
          const at = c.pos - base;
          const key = c.str();
          const version = key !== null && c.skipStr() ? c.num() : null;
          if (key === null || !isIndex(version)) throw snapshotCorrupt(`bad record ${i}`);
          if (previous !== null && previous >= key) throw snapshotCorrupt('keys out of order');
          previous = key;
          kv.keys.push(key);
          kv.records.set(key, at);
        });
        kv.rows = u.viewFrom(start);
        raw.kv = [];
      } else if (name === 'tasks') {
        swapTasks = await taskStore.prepareRestore(u);
        raw.tasks = true;
      } else {
        raw[String(name)] = u.value();
      }
    }
    if (!u.done) throw snapshotCorrupt('bytes after the end');
  } catch (err) {
    if (err instanceof MinkubeError) throw err;
    throw snapshotCorrupt(`not msgpack (${(err as Error).message})`);
  }
  return { decoded: checkSections(raw, records), kv, swapTasks: swapTasks ?? (() => taskStore.restore(emptyTaskSnapshot)) };
}

/** The kv array read lazily: a view of its bytes, its keys in order, and each key -> where its record starts in them. */
interface LazyKv {
  rows: Uint8Array;
  keys: string[];
  records: Map<string, KvRecord | number>;
}

function decodeSession(raw: unknown, i: number, corrupt: (p: string) => MinkubeError): [string, Session] {
  if (!Array.isArray(raw) || raw.length !== 4) throw corrupt(`bad session ${i}`);
  const [clientId, lastIndex, floor, results] = raw as unknown[];
  if (typeof clientId !== 'string' || !isIndex(lastIndex) || !isIndex(floor) || !Array.isArray(results)) throw corrupt(`bad session ${i}`);
  const map = new Map<number, ApplyResult>();
  for (const pair of results as unknown[]) {
    if (!Array.isArray(pair) || !isIndex(pair[0]) || typeof pair[1] !== 'object' || pair[1] === null) throw corrupt(`bad result in session ${i}`);
    map.set(pair[0], pair[1] as ApplyResult);
  }
  return [clientId, { lastIndex, floor, results: map }];
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
