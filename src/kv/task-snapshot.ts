// The task store's part of a state-machine snapshot: records as arrays in a fixed field order (equal stores give
// equal bytes), and a decoder that checks every field, since a restored store must be exactly a store we wrote.
import { Unpackr } from 'msgpackr';
import { MinkubeError } from '../lib/errors.js';
import { finalTaskStates, type StoredWorker, type TaskError, type TaskHealth, type TaskRecord, type TaskSpec, type TaskState, type TaskTransition, type WorkerState, type WorkerStats } from '../contracts/task-model.js';
import { MsgpackCursor } from './msgpack-scan.js';
import type { SlicedPacker } from './sliced-pack.js';
import { internSpec, StringPool } from './string-pool.js';
import { releaseUnpackSource, type SlicedUnpacker } from './sliced-unpack.js';

export type TaskSnapshot = unknown[];

/** What one Idempotency-Key remembers; no fingerprint for keys restored from a snapshot written before them. */
export interface IdempotencyRecord {
  readonly taskId: string;
  readonly fingerprint: string | null;
}

export interface TaskSnapshotContent {
  tasks: TaskRecord[];
  workers: StoredWorker[];
  cursor: string | null;
  idempotency: [string, IdempotencyRecord][];
}

/** A record as a store holds it: decoded, or (restored lazily and not read since) the bytes of its snapshot row. */
export type StoredTaskRow = TaskRecord | Uint8Array;

/**
 * What a snapshot is written from: the store's content, with records not read since a restore still as bytes, or as
 * the offset of their row in `rows` (a capture finds the bytes only while it is packed, a slice at a time).
 */
export interface TaskSnapshotSource extends Omit<TaskSnapshotContent, 'tasks' | 'idempotency'> {
  tasks: readonly (StoredTaskRow | number)[];
  /** Each key's record, or (restored lazily and not read since) the bytes of its row, or its offset in `rows`. */
  idempotency: readonly [string, IdempotencyRecord | Uint8Array | number][];
  /** The buffers the offsets above point into (never written again). */
  rows?: { readonly tasks: Uint8Array | null; readonly keys: Uint8Array | null };
}

/** The msgpack value that starts at `at` in `rows`. */
export function rowOf(rows: Uint8Array, at: number): Uint8Array {
  const c = new MsgpackCursor(rows, at);
  c.skip();
  return rows.subarray(at, c.pos);
}

/** Reads single rows (a lazily restored record, when first read); the options the snapshot was packed with. */
const rowUnpackr = new Unpackr({ useRecords: false, moreTypes: false });

/** A task's row as bytes when the source holds it so (or its offset), else null (a record, packed as taskRow). */
function rawRowOf(c: TaskSnapshotSource): (t: StoredTaskRow | number) => Uint8Array | null {
  return (t) => (typeof t === 'number' ? rowOf(c.rows!.tasks!, t) : t instanceof Uint8Array ? t : null);
}

function rawKeyRowOf(c: TaskSnapshotSource): (pair: readonly [string, IdempotencyRecord | Uint8Array | number]) => Uint8Array | null {
  return ([, r]) => (typeof r === 'number' ? rowOf(c.rows!.keys!, r) : r instanceof Uint8Array ? r : null);
}

export function encodeTaskSnapshot(c: TaskSnapshotSource): TaskSnapshot {
  const [rawRow, rawKeyRow] = [rawRowOf(c), rawKeyRowOf(c)];
  return [
    c.tasks.map((t) => {
      const raw = rawRow(t);
      return raw !== null ? (rowUnpackr.unpack(raw) as unknown) : taskRow(t as TaskRecord);
    }),
    c.workers.map(workerRow), c.cursor,
    c.idempotency.map((pair) => {
      const raw = rawKeyRow(pair);
      return raw !== null ? (rowUnpackr.unpack(raw) as unknown) : idempotencyRow(pair as [string, IdempotencyRecord]);
    }),
  ];
}

/** [key, taskId, fingerprint], or [key, taskId] as written before fingerprints (read back the same way). */
function idempotencyRow([key, r]: [string, IdempotencyRecord]): unknown[] {
  return r.fingerprint === null ? [key, r.taskId] : [key, r.taskId, r.fingerprint];
}

/**
 * The same section as encodeTaskSnapshot, packed a slice at a time (see SlicedPacker). With `starts`, where each
 * task row and each idempotency row begins in the packer's whole (TaskStore.captureContent's compaction).
 */
export async function packTaskSnapshot(p: SlicedPacker, c: TaskSnapshotSource, starts?: { tasks: number[]; keys: number[] }): Promise<void> {
  p.arrayHeader(4);
  // A row not read since a restore goes out as the bytes it came in as (what taskRow would pack again).
  await p.arrayOf(c.tasks, 1, rawRowOf(c), (t) => [taskRow(t as TaskRecord)], starts?.tasks);
  p.value(c.workers.map(workerRow));
  p.value(c.cursor);
  await p.arrayOf(c.idempotency, 1, rawKeyRowOf(c), (pair) => [idempotencyRow(pair as [string, IdempotencyRecord])], starts?.keys);
}

function taskRow(t: TaskRecord): unknown[] {
  const row: unknown[] = [
    t.id, t.spec, t.state, t.desiredState, t.workerId, t.attempt, t.term, t.containerId, t.exitCode,
    t.error === null ? null : [t.error.class, t.error.message], t.notBeforeMs, t.createdAt, t.updatedAt,
    t.history.map((h) => [h.state, h.attempt, h.atMs, h.workerId, h.reason ?? null]),
  ];
  // A 15th field only for a service's replica, a placed attempt's ports and health, or a drain: other rows keep the
  // old shape. Its 4th and 5th entries only for a drain (draining, drained attempts), so as not to change the others.
  const drain = t.draining !== undefined || t.drainedAttempts !== undefined;
  if (t.service !== undefined || t.ports !== undefined || t.health !== undefined || drain) {
    const extras: unknown[] = [t.service === undefined ? null : [t.service.name, t.service.version], t.ports?.map((p) => [p.name, p.hostPort, p.address]) ?? null, t.health ?? null];
    if (drain) extras.push(t.draining === true, t.drainedAttempts ?? 0);
    row.push(extras);
  }
  return row;
}

function decodeExtras(raw: unknown, i: number): Pick<TaskRecord, 'service' | 'ports' | 'health' | 'draining' | 'drainedAttempts'> {
  if (raw === undefined) return { service: undefined, ports: undefined, health: undefined, draining: undefined, drainedAttempts: undefined };
  if (!Array.isArray(raw) || (raw.length !== 3 && raw.length !== 5)) throw corrupt(`bad service fields of task ${i}`);
  const [service, ports, health, draining, drainedAttempts] = raw as unknown[];
  const okService = service === null || (Array.isArray(service) && typeof service[0] === 'string' && isCount(service[1]));
  const okPorts = ports === null || (Array.isArray(ports) && ports.every((p) => Array.isArray(p) && typeof p[0] === 'string' && isCount(p[1]) && typeof p[2] === 'string'));
  const okHealth = health === null || health === 'starting' || health === 'healthy' || health === 'unhealthy';
  const okDrain = raw.length === 3 || (typeof draining === 'boolean' && isCount(drainedAttempts));
  if (!okService || !okPorts || !okHealth || !okDrain) throw corrupt(`bad service fields of task ${i}`);
  return {
    service: service === null ? undefined : { name: (service as [string, number])[0], version: (service as [string, number])[1] },
    ports: ports === null ? undefined : (ports as [string, number, string][]).map(([name, hostPort, address]) => ({ name, hostPort, address })),
    health: health === null ? undefined : (health as TaskHealth),
    draining: draining === true ? true : undefined,
    drainedAttempts: drainedAttempts === undefined || drainedAttempts === 0 ? undefined : (drainedAttempts as number),
  };
}

function workerRow(w: StoredWorker): unknown[] {
  const s = w.stats;
  const stats = s === null ? null : [s.cpuUtilization, s.memoryTotalBytes, s.memoryAvailableBytes, s.diskFreeBytes, s.runningTasks];
  const row: unknown[] = [w.id, w.apiAddress, w.state, w.runtime, w.registeredAtMs, w.lastHeartbeatAtMs, stats, w.heartbeats];
  // A 9th field only for a worker with labels or capacity, a 10th only for one with an instance, an 11th only for one
  // drained or paused (the 10th null then, without an instance), a 12th only for one with an engine (the 11th null
  // then, when active): other rows keep the old shape, which managers before each field read.
  // A 13th only while its engine is unreachable (the 12th null then, without an engine).
  const down = w.engineUnreachable !== undefined;
  const drained = w.availability !== undefined;
  const engine = w.engine !== undefined || down;
  if (w.labels !== undefined || w.capacity !== undefined || w.instance !== undefined || drained || engine) row.push([w.labels ?? null, w.capacity === undefined ? null : [w.capacity.cpus, w.capacity.memoryMb]]);
  if (w.instance !== undefined || drained || engine) row.push(w.instance ?? null);
  if (drained || engine) row.push(w.availability ?? null);
  if (engine) row.push(w.engine ?? null);
  if (down) row.push([w.engineUnreachable!.reason, w.engineUnreachable!.sinceMs]);
  return row;
}

const taskStates = new Set<string>(['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost']);
/** A decoded state -> the same state as this module's literal (one copy, not one per record). */
const canonicalState = new Map<string, TaskState>([...taskStates].map((s) => [s, s as TaskState]));
const workerStates = new Set<string>(['ready', 'unreachable', 'down']);

function corrupt(problem: string): MinkubeError {
  return new MinkubeError('STORAGE_CORRUPT', `kv snapshot: tasks: ${problem}`);
}

export function decodeTaskSnapshot(raw: unknown): TaskSnapshotContent {
  if (!Array.isArray(raw) || raw.length !== 4) throw corrupt('bad header');
  const [tasks, workers, cursor, idempotency] = raw as unknown[];
  if (!Array.isArray(tasks) || !Array.isArray(workers) || !Array.isArray(idempotency)) throw corrupt('bad header');
  if (cursor !== null && typeof cursor !== 'string') throw corrupt('bad cursor');
  const d = new Decoding();
  const out: TaskSnapshotContent = {
    tasks: tasks.map((row, i) => d.task(row, i)), workers: workers.map(decodeWorker), cursor,
    idempotency: (idempotency as unknown[]).map((row) => d.idempotency(row)),
  };
  checkOrder(out);
  return out;
}

/**
 * A task row as a lazy restore indexes it: the fields the store's indexes and usage need, read from the bytes, and
 * where the row is; the record itself is decoded (and checked) when something first reads it.
 */
export interface ScannedTask {
  readonly id: string;
  readonly state: TaskState;
  readonly workerId: string | null;
  /** The service whose replica it is, or null. */
  readonly service: string | null;
  /** For a live task (usage counts it): its spec's namespace and resources; 'default' and 0 for a final one. */
  readonly namespace: string;
  readonly cpus: number;
  readonly memoryMb: number;
  /** Where its row starts in LazyTaskSnapshot.rows. */
  readonly at: number;
}

/** The task section read lazily: rows scanned (each handed to the caller as a ScannedTask) and kept as bytes. */
export interface LazyTaskSnapshot {
  /** A copy of the snapshot's task rows, and nothing else of it. */
  rows: Uint8Array;
  /** The tasks' ids, in order. */
  ids: string[];
  workers: StoredWorker[];
  cursor: string | null;
  /** A copy of the snapshot's idempotency rows, and nothing else of it. */
  keyRows: Uint8Array;
  /** Each Idempotency-Key -> where its row starts in `keyRows` (decoded when first read), oldest first. */
  keys: Map<string, number>;
}

/**
 * The task section read from `u` (positioned at it) a slice at a time, its task rows scanned rather than decoded:
 * a restart builds a few strings per record instead of its whole object graph, and the rows stay as compact bytes
 * until read. Checked here: the framing of every row, its id (in order), state, worker and service; the rest of a
 * row is checked when it is decoded.
 */
export async function scanTaskSnapshot(u: SlicedUnpacker, each: (t: ScannedTask) => void): Promise<LazyTaskSnapshot> {
  if (u.arrayHeader() !== 4) throw corrupt('bad header');
  const taskCount = u.arrayHeader();
  if (taskCount === null) throw corrupt('bad header');
  const pool = new StringPool();
  const ids: string[] = [];
  let previous = '';
  // Offsets are relative to the view of the rows taken below. Each row is handed over as it is read (the caller
  // indexes it), so nothing of it outlives the scan but the strings the indexes keep.
  const base = u.position;
  const start = await u.scan(taskCount, (c, i) => {
    const t = scanTask(c, i, pool, base);
    if (i > 0 && previous >= t.id) throw corrupt('task ids out of order');
    previous = t.id;
    ids.push(t.id);
    each(t);
  });
  const rows = u.viewFrom(start);
  const workers = u.value();
  const cursor = u.value();
  if (!Array.isArray(workers)) throw corrupt('bad header');
  if (cursor !== null && typeof cursor !== 'string') throw corrupt('bad cursor');
  const keyCount = u.arrayHeader();
  if (keyCount === null) throw corrupt('bad header');
  const keys = new Map<string, number>();
  const keysBase = u.position;
  const keysStart = await u.scan(keyCount, (c) => {
    const at = c.pos - keysBase;
    const fields = c.arrayHeader();
    const key = fields === 2 || fields === 3 ? c.str() : null;
    if (key === null || !c.skipStr() || (fields === 3 && !c.nil() && !c.skipStr())) throw corrupt('bad idempotency key');
    keys.set(key, at);
  });
  const keyRows = u.viewFrom(keysStart);
  const decodedWorkers = workers.map(decodeWorker);
  for (let i = 1; i < decodedWorkers.length; i++) if (decodedWorkers[i - 1]!.id >= decodedWorkers[i]!.id) throw corrupt('worker ids out of order');
  return { rows, ids, workers: decodedWorkers, cursor, keyRows, keys };
}

/** The record of an idempotency row a lazy restore kept as bytes, decoded and checked now. */
export function decodeIdempotencyRow(row: Uint8Array): IdempotencyRecord {
  return decodeIdempotency(unpackRow(row, 'an idempotency row'))[1];
}

/** One row a lazy restore kept as bytes, unpacked. */
function unpackRow(row: Uint8Array, what: string): unknown {
  try {
    return rowUnpackr.unpack(row);
  } catch (err) {
    throw corrupt(`${what} is not msgpack (${(err as Error).message})`);
  } finally {
    // Else msgpackr holds the row's buffer (every row's) after the store let it go.
    releaseUnpackSource(rowUnpackr);
  }
}

/** One row read by a cursor: moved past it whole; what the indexes need taken from it (see ScannedTask). */
function scanTask(c: MsgpackCursor, i: number, pool: StringPool, base: number): ScannedTask {
  const at = c.pos - base;
  const fields = c.arrayHeader();
  if (fields !== 14 && fields !== 15) throw corrupt(`bad task ${i}`);
  const id = c.str();
  const specAt = c.pos;
  if (id === null || c.mapHeader() === null) throw corrupt(`bad task ${i}`);
  c.pos = specAt;
  c.skip();
  const state = canonicalState.get(c.str() ?? '');
  if (state === undefined) throw corrupt(`bad task ${i}`);
  c.skip();
  let workerId: string | null = null;
  if (!c.nil() && (workerId = c.str()) === null) throw corrupt(`bad task ${i}`);
  for (let k = 5; k < 14; k++) c.skip();
  let service: string | null = null;
  if (fields === 15) {
    const extras = c.arrayHeader();
    if (extras !== 3 && extras !== 5) throw corrupt(`bad service fields of task ${i}`);
    if (!c.nil()) {
      if (c.arrayHeader() !== 2 || (service = c.str()) === null) throw corrupt(`bad service fields of task ${i}`);
      c.skip();
    }
    for (let k = 1; k < extras; k++) c.skip();
  }
  const end = c.pos;
  let namespace = 'default';
  let cpus = 0;
  let memoryMb = 0;
  if (!finalTaskStates.has(state)) {
    // Usage counts a live task's namespace and resources: read from its spec, as namespaceOf and usage do.
    c.pos = specAt;
    const entries = c.mapHeader()!;
    for (let e = 0; e < entries; e++) {
      const key = c.pos;
      if (c.strEquals('namespace') === true) {
        if (!c.nil()) {
          const v = c.str();
          if (v === null) c.skip();
          else namespace = v;
        }
      } else if (((c.pos = key), c.strEquals('resources') === true)) {
        const n = c.nil() ? 0 : c.mapHeader();
        if (n === null) c.skip();
        for (let r = 0; r < (n ?? 0); r++) {
          const rkey = c.pos;
          const which = c.strEquals('cpus') === true ? 'cpus' : ((c.pos = rkey), c.strEquals('memoryMb') === true ? 'memoryMb' : null);
          if (which === null) {
            c.pos = rkey;
            c.skip();
            c.skip();
            continue;
          }
          const v = c.nil() ? 0 : c.num();
          if (v === null) c.skip();
          else if (which === 'cpus') cpus = v;
          else memoryMb = v;
        }
      } else {
        c.pos = key;
        c.skip();
        c.skip();
      }
    }
    c.pos = end;
  }
  return { id, state, workerId: pool.maybe(workerId), service: service === null ? null : pool.get(service), namespace: pool.get(namespace), cpus, memoryMb, at };
}

/** The record of a row a lazy restore kept as bytes (see scanTaskSnapshot), decoded and checked now. */
export function decodeTaskRow(row: Uint8Array, pool: StringPool): TaskRecord {
  return decodeTask(unpackRow(row, 'a task row'), 0, pool);
}

function checkOrder(out: TaskSnapshotContent): void {
  for (let i = 1; i < out.tasks.length; i++) if (out.tasks[i - 1]!.id >= out.tasks[i]!.id) throw corrupt('task ids out of order');
  for (let i = 1; i < out.workers.length; i++) if (out.workers[i - 1]!.id >= out.workers[i]!.id) throw corrupt('worker ids out of order');
}

/**
 * One snapshot's decoding: strings many records hold alike come out as one copy (StringPool), and an idempotency
 * key's task id is its record's own id string; a decoded snapshot otherwise holds a fresh copy of each.
 */
class Decoding {
  private readonly pool = new StringPool();
  /** Task id -> the record's id string (bounded by the records of one snapshot). */
  private readonly ids = new Map<string, string>();

  task(row: unknown, i: number): TaskRecord {
    const t = decodeTask(row, i, this.pool);
    this.ids.set(t.id, t.id);
    return t;
  }

  idempotency(row: unknown): [string, IdempotencyRecord] {
    const [key, r] = decodeIdempotency(row);
    const taskId = this.ids.get(r.taskId);
    return taskId === undefined ? [key, r] : [key, { taskId, fingerprint: r.fingerprint }];
  }
}

function decodeIdempotency(row: unknown): [string, IdempotencyRecord] {
  if (!Array.isArray(row) || (row.length !== 2 && row.length !== 3)) throw corrupt('bad idempotency key');
  const [key, taskId, fingerprint = null] = row as unknown[];
  if (typeof key !== 'string' || typeof taskId !== 'string' || (fingerprint !== null && typeof fingerprint !== 'string')) {
    throw corrupt('bad idempotency key');
  }
  return [key, { taskId, fingerprint }];
}

function decodeTask(row: unknown, i: number, pool: StringPool): TaskRecord {
  if (!Array.isArray(row) || (row.length !== 14 && row.length !== 15)) throw corrupt(`bad task ${i}`);
  const [id, spec, state, desiredState, workerId, attempt, term, containerId, exitCode, error, notBeforeMs, createdAt, updatedAt, history, extras] = row as unknown[];
  const ok =
    typeof id === 'string' && isObject(spec) && typeof (spec as { image?: unknown }).image === 'string' && isTaskState(state) &&
    (desiredState === 'run' || desiredState === 'stop') && isNullableString(workerId) && isCount(attempt) && isCount(term) &&
    isNullableString(containerId) && (exitCode === null || Number.isInteger(exitCode)) && typeof notBeforeMs === 'number' &&
    typeof createdAt === 'string' && typeof updatedAt === 'string' && Array.isArray(history);
  if (!ok) throw corrupt(`bad task ${i}`);
  const extra = decodeExtras(extras, i);
  return {
    id, spec: internSpec(spec as TaskSpec, pool), state: canonicalState.get(state)!, desiredState: desiredState === 'run' ? 'run' : 'stop',
    workerId: pool.maybe(workerId), attempt, term, containerId, exitCode: exitCode as number | null, error: decodeError(error, i, pool),
    notBeforeMs, createdAt: pool.get(createdAt), updatedAt: pool.get(updatedAt),
    history: (history as unknown[]).map((h) => decodeTransition(h, i, pool)),
    service: extra.service === undefined ? undefined : { name: pool.get(extra.service.name), version: extra.service.version },
    ports: extra.ports, health: extra.health, draining: extra.draining, drainedAttempts: extra.drainedAttempts,
  };
}

function decodeError(raw: unknown, i: number, pool: StringPool): TaskError | null {
  if (raw === null) return null;
  if (!Array.isArray(raw)) throw corrupt(`bad error of task ${i}`);
  const [cls, message] = raw as unknown[];
  if ((cls !== 'transient' && cls !== 'permanent') || typeof message !== 'string') throw corrupt(`bad error of task ${i}`);
  return { class: cls, message: pool.get(message) };
}

function decodeTransition(raw: unknown, i: number, pool: StringPool): TaskTransition {
  if (!Array.isArray(raw) || raw.length !== 5) throw corrupt(`bad history of task ${i}`);
  const [state, attempt, atMs, workerId, reason] = raw as unknown[];
  if (!isTaskState(state) || !isCount(attempt) || typeof atMs !== 'number' || !isNullableString(workerId) || !isNullableString(reason)) {
    throw corrupt(`bad history of task ${i}`);
  }
  const [s, w] = [canonicalState.get(state)!, pool.maybe(workerId)];
  return reason === null ? { state: s, attempt, atMs, workerId: w } : { state: s, attempt, atMs, workerId: w, reason: pool.get(reason) };
}

function decodeWorker(row: unknown, i: number): StoredWorker {
  if (!Array.isArray(row) || row.length < 8 || row.length > 13) throw corrupt(`bad worker ${i}`);
  const [id, apiAddress, state, runtime, registeredAtMs, lastHeartbeatAtMs, stats, heartbeats, placement, instance, availability, engine, unreachable] = row as unknown[];
  const ok =
    typeof id === 'string' && typeof apiAddress === 'string' && typeof state === 'string' && workerStates.has(state) &&
    typeof runtime === 'string' && typeof registeredAtMs === 'number' && (lastHeartbeatAtMs === null || typeof lastHeartbeatAtMs === 'number') &&
    isCount(heartbeats) && (instance === undefined || (typeof instance === 'string' && instance.length > 0) || (instance === null && row.length >= 11)) &&
    (availability === undefined || availability === 'pause' || availability === 'drain' || (availability === null && row.length >= 12)) &&
    (engine === undefined || (typeof engine === 'string' && engine.length > 0) || (engine === null && row.length === 13)) &&
    (unreachable === undefined || isEngineUnreachable(unreachable));
  if (!ok) throw corrupt(`bad worker ${i}`);
  return {
    id, apiAddress, state: state as WorkerState, runtime, registeredAtMs, lastHeartbeatAtMs, stats: decodeStats(stats, i), heartbeats, ...decodePlacement(placement, i),
    ...(typeof instance === 'string' ? { instance } : {}),
    ...(typeof engine === 'string' ? { engine } : {}),
    ...(typeof availability === 'string' ? { availability: availability as 'pause' | 'drain' } : {}),
    ...(unreachable === undefined ? {} : { engineUnreachable: { reason: (unreachable as [string, number])[0], sinceMs: (unreachable as [string, number])[1] } }),
  };
}

function isEngineUnreachable(raw: unknown): boolean {
  return Array.isArray(raw) && raw.length === 2 && typeof raw[0] === 'string' && raw[0].length > 0 && typeof raw[1] === 'number';
}

function decodePlacement(raw: unknown, i: number): Pick<StoredWorker, 'labels' | 'capacity'> {
  if (raw === undefined) return {};
  if (!Array.isArray(raw) || raw.length !== 2) throw corrupt(`bad labels or capacity of worker ${i}`);
  const [labels, capacity] = raw as unknown[];
  const okLabels = labels === null || (isObject(labels) && Object.values(labels as Record<string, unknown>).every((v) => typeof v === 'string'));
  const okCapacity = capacity === null || (Array.isArray(capacity) && capacity.length === 2 && capacity.every((n) => typeof n === 'number'));
  if (!okLabels || !okCapacity) throw corrupt(`bad labels or capacity of worker ${i}`);
  return {
    ...(labels === null ? {} : { labels: labels as Record<string, string> }),
    ...(capacity === null ? {} : { capacity: { cpus: (capacity as number[])[0]!, memoryMb: (capacity as number[])[1]! } }),
  };
}

function decodeStats(raw: unknown, i: number): WorkerStats | null {
  if (raw === null) return null;
  if (!Array.isArray(raw) || raw.length !== 5 || !raw.slice(1).every((n) => typeof n === 'number') || (raw[0] !== null && typeof raw[0] !== 'number')) {
    throw corrupt(`bad stats of worker ${i}`);
  }
  const [cpuUtilization, memoryTotalBytes, memoryAvailableBytes, diskFreeBytes, runningTasks] = raw as [number | null, number, number, number, number];
  return { cpuUtilization, memoryTotalBytes, memoryAvailableBytes, diskFreeBytes, runningTasks };
}

function isTaskState(v: unknown): v is TaskState {
  return typeof v === 'string' && taskStates.has(v);
}

function isNullableString(v: unknown): v is string | null {
  return v === null || typeof v === 'string';
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
