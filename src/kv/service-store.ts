// The service half of the replicated state machine: service records (replicas, versions kept for rollback, the
// rollout's state), changed by the API's commands and by the leader's reconcile decisions. Replicas are task records
// (TaskStore) carrying { service: { name, version } }. Deterministic: every time and id comes from the command.
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { Rollout, ServiceRecord, ServiceVersion, UpdateConfig } from '../contracts/service-model.js';
import type { TaskSpec } from '../contracts/task-model.js';
import { SortedKeys } from './sorted-keys.js';
import type {
  ServiceCommand, ServiceCreateCommand, ServiceDeleteCommand, ServiceReconcileCommand, ServiceRollbackCommand, ServiceUpdateCommand,
} from './service-commands.js';
import { normaliseSpec } from './task-spec.js';
import type { TaskStore } from './task-store.js';

export type ServiceApplyErrorCode = 'SERVICE_NOT_FOUND' | 'SERVICE_EXISTS' | 'SERVICE_ROLLBACK_REFUSED' | 'SERVICE_VERSION_MISMATCH' | 'QUEUE_FULL';

export type ServiceApplyResult =
  | { readonly ok: true; readonly id: string; readonly changed: number }
  | { readonly ok: false; readonly code: ServiceApplyErrorCode; readonly message: string };

export interface ServiceStoreOptions {
  servicesMax?: number;
  versionsMax?: number;
}

/** A replica's spec as a service stores it: restarted always (the reconciler, not maxAttempts, bounds nothing). */
export function replicaSpec(spec: TaskSpec): TaskSpec {
  return normaliseSpec({ ...spec, restartPolicy: 'always' });
}

export class ServiceStore {
  private records = new Map<string, ServiceRecord>();
  private names = new SortedKeys();
  private readonly servicesMax: number;
  private readonly versionsMax: number;
  /** Told of every service a command changed (the leader's service loop listens); must not throw or change the store. */
  listener: ((name: string) => void) | null = null;

  constructor(o: ServiceStoreOptions = {}) {
    this.servicesMax = o.servicesMax ?? limits.servicesMax;
    this.versionsMax = o.versionsMax ?? limits.serviceVersionsMax;
  }

  // ---- reads (the API, the reconciler and DNS read these) ----

  get size(): number {
    return this.records.size;
  }

  service(name: string): ServiceRecord | undefined {
    return this.records.get(name);
  }

  /** Every service in name order. */
  services(): ServiceRecord[] {
    return this.names.toArray().map((n) => this.records.get(n)!);
  }

  /** Services in name order after `after` (exclusive), at most `limit`. */
  list(o: { after?: string; limit: number }): { items: ServiceRecord[]; more: boolean } {
    const items: ServiceRecord[] = [];
    for (const n of o.after === undefined ? this.names.from('') : this.names.from(o.after, true)) {
      if (items.length === o.limit) return { items, more: true };
      items.push(this.records.get(n)!);
    }
    return { items, more: false };
  }

  // ---- apply ----

  apply(cmd: ServiceCommand, tasks: TaskStore): ServiceApplyResult {
    const r = this.applyOne(cmd, tasks);
    if (r.ok && r.changed > 0) this.listener?.(cmd.name);
    return r;
  }

  private applyOne(cmd: ServiceCommand, tasks: TaskStore): ServiceApplyResult {
    switch (cmd.op) {
      case 'service.create':
        return this.create(cmd);
      case 'service.update':
        return this.update(cmd);
      case 'service.rollback':
        return this.rollback(cmd);
      case 'service.delete':
        return this.remove(cmd, tasks);
      case 'service.reconcile':
        return this.reconcile(cmd, tasks);
    }
  }

  private create(cmd: ServiceCreateCommand): ServiceApplyResult {
    if (this.records.has(cmd.name)) return { ok: false, code: 'SERVICE_EXISTS', message: `a service named ${JSON.stringify(cmd.name)} exists` };
    if (this.records.size >= this.servicesMax) return { ok: false, code: 'QUEUE_FULL', message: `${this.records.size} services exist (the limit); remove some first` };
    const record: ServiceRecord = {
      name: cmd.name, replicas: cmd.replicas, version: 1, previousVersion: null,
      versions: [{ version: 1, spec: replicaSpec(cmd.spec), createdAtMs: cmd.atMs }], update: cmd.update,
      rollout: { state: 'stable', fromVersion: null, startedAtMs: cmd.atMs, monitorUntilMs: null, message: null },
      revision: 1, createdAtMs: cmd.atMs, updatedAtMs: cmd.atMs,
    };
    this.names.insert(cmd.name);
    this.records.set(cmd.name, record);
    return { ok: true, id: cmd.name, changed: 1 };
  }

  private update(cmd: ServiceUpdateCommand): ServiceApplyResult {
    const s = this.records.get(cmd.name);
    if (s === undefined) return notFound(cmd.name);
    if (cmd.ifVersion !== undefined && cmd.ifVersion !== s.version) return versionMismatch(s, cmd.ifVersion);
    let next: Mutable<ServiceRecord> = { ...s, revision: s.revision + 1, updatedAtMs: cmd.atMs };
    if (cmd.replicas !== undefined) next.replicas = cmd.replicas;
    if (cmd.update !== undefined) next.update = cmd.update;
    if (cmd.spec !== undefined) {
      const spec = replicaSpec(cmd.spec);
      if (JSON.stringify(spec) !== JSON.stringify(specOf(s, s.version))) next = this.withVersion(next, spec, cmd.atMs);
    }
    this.records.set(s.name, next);
    return { ok: true, id: s.name, changed: 1 };
  }

  /** A new version of `spec`, rolled out from the current one. */
  private withVersion(s: Mutable<ServiceRecord>, spec: TaskSpec, atMs: number): Mutable<ServiceRecord> {
    const version = Math.max(...s.versions.map((v) => v.version)) + 1;
    const versions = [...s.versions, { version, spec, createdAtMs: atMs }];
    // The oldest go first, but never the one being replaced (a rollback's target).
    while (versions.length > this.versionsMax) versions.splice(versions.findIndex((v) => v.version !== s.version), 1);
    // monitorUntilMs 0: no batch to watch yet, the first one may start at once.
    const rollout: Rollout = { state: 'updating', fromVersion: s.version, startedAtMs: atMs, monitorUntilMs: 0, message: null };
    return { ...s, version, previousVersion: s.version, versions, rollout };
  }

  private rollback(cmd: ServiceRollbackCommand): ServiceApplyResult {
    const s = this.records.get(cmd.name);
    if (s === undefined) return notFound(cmd.name);
    if (s.previousVersion === null || !s.versions.some((v) => v.version === s.previousVersion)) {
      return { ok: false, code: 'SERVICE_ROLLBACK_REFUSED', message: `service ${s.name} has no previous version to roll back to` };
    }
    this.records.set(s.name, reverted(s, cmd.atMs, null));
    return { ok: true, id: s.name, changed: 1 };
  }

  private remove(cmd: ServiceDeleteCommand, tasks: TaskStore): ServiceApplyResult {
    const s = this.records.get(cmd.name);
    if (s === undefined) return notFound(cmd.name);
    this.records.delete(s.name);
    this.names.remove(s.name);
    const changed = tasks.stopMany([...tasks.idsOfService(s.name)].sort(), cmd.atMs);
    return { ok: true, id: s.name, changed: changed + 1 };
  }

  /** A decision made on another revision is dropped (answered ok, changing nothing): the leader decides again. */
  private reconcile(cmd: ServiceReconcileCommand, tasks: TaskStore): ServiceApplyResult {
    const s = this.records.get(cmd.name);
    if (s === undefined) return notFound(cmd.name);
    if (s.revision !== cmd.ifRevision) return { ok: true, id: s.name, changed: 0 };
    let next: ServiceRecord = { ...s, revision: s.revision + 1, updatedAtMs: cmd.atMs };
    if (cmd.revert === true && s.previousVersion !== null && s.versions.some((v) => v.version === s.previousVersion)) {
      next = reverted(next, cmd.atMs, cmd.rollout?.message ?? 'the update failed');
    } else if (cmd.rollout !== undefined) {
      next = { ...next, rollout: cmd.rollout };
    }
    const spec = specOf(next, next.version);
    const replicas = cmd.create.map((taskId) => ({ taskId, spec, service: { name: s.name, version: next.version }, reason: `replica of service ${s.name} version ${next.version}` }));
    if (!tasks.createReplicas(replicas, cmd.atMs)) return { ok: false, code: 'QUEUE_FULL', message: 'the task store is full; no replica was started' };
    const own = tasks.idsOfService(s.name);
    let changed = tasks.stopMany(cmd.stop.filter((id) => own.has(id)), cmd.atMs);
    if (cmd.drain !== undefined) changed += tasks.markDraining(cmd.drain.filter((id) => own.has(id)), cmd.atMs);
    this.records.set(s.name, next);
    return { ok: true, id: s.name, changed: changed + replicas.length + 1 };
  }

  // ---- snapshots ----

  snapshotContent(): ServiceRecord[] {
    return this.services();
  }

  load(records: readonly ServiceRecord[]): void {
    this.records = new Map(records.map((r) => [r.name, r]));
    this.names = SortedKeys.fromSorted(records.map((r) => r.name));
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The spec of one kept version (the current version is always kept). */
export function specOf(s: ServiceRecord, version: number): TaskSpec {
  const v = s.versions.find((x) => x.version === version);
  if (v === undefined) throw new MinkubeError('INTERNAL', `service ${s.name} lost its version ${version}`);
  return v.spec;
}

/** The service back on its previous version, rolling back from the current one. */
function reverted(s: ServiceRecord, atMs: number, message: string | null): ServiceRecord {
  const rollout: Rollout = { state: 'rolling-back', fromVersion: s.version, startedAtMs: atMs, monitorUntilMs: 0, message };
  return { ...s, version: s.previousVersion!, previousVersion: s.version, rollout, revision: s.revision + 1, updatedAtMs: atMs };
}

function notFound(name: string): ServiceApplyResult {
  return { ok: false, code: 'SERVICE_NOT_FOUND', message: `no service ${JSON.stringify(name)}` };
}

function versionMismatch(s: ServiceRecord, expected: number): ServiceApplyResult {
  const message = `service ${JSON.stringify(s.name)} is at version ${s.version}, not ${expected}: it changed since it was read; read it again and make the change on what it is now`;
  return { ok: false, code: 'SERVICE_VERSION_MISMATCH', message };
}

// ---- the snapshot section: one row per service, fields in one order ----

export function encodeServiceSnapshot(records: readonly ServiceRecord[]): unknown[] {
  return records.map((s) => [
    s.name, s.replicas, s.version, s.previousVersion, s.versions.map((v) => [v.version, v.spec, v.createdAtMs]),
    [s.update.parallelism, s.update.delayS, s.update.monitorS, s.update.failureAction, s.update.order],
    [s.rollout.state, s.rollout.fromVersion, s.rollout.startedAtMs, s.rollout.monitorUntilMs, s.rollout.message],
    s.revision, s.createdAtMs, s.updatedAtMs,
  ]);
}

export function decodeServiceSnapshot(raw: unknown): ServiceRecord[] {
  const corrupt = (i: number): MinkubeError => new MinkubeError('STORAGE_CORRUPT', `kv snapshot: services: bad service ${i}`);
  if (!Array.isArray(raw)) throw new MinkubeError('STORAGE_CORRUPT', 'kv snapshot: services: bad header');
  const out = raw.map((row: unknown, i): ServiceRecord => {
    if (!Array.isArray(row) || row.length !== 10) throw corrupt(i);
    const [name, replicas, version, previousVersion, versions, update, rollout, revision, createdAtMs, updatedAtMs] = row as unknown[];
    if (typeof name !== 'string' || !isCount(replicas) || !isCount(version) || (previousVersion !== null && !isCount(previousVersion))) throw corrupt(i);
    if (!Array.isArray(versions) || !Array.isArray(update) || update.length !== 5 || !Array.isArray(rollout) || rollout.length !== 5) throw corrupt(i);
    if (!isCount(revision) || typeof createdAtMs !== 'number' || typeof updatedAtMs !== 'number') throw corrupt(i);
    const vs = versions.map((v: unknown): ServiceVersion => {
      if (!Array.isArray(v) || !isCount(v[0]) || typeof v[1] !== 'object' || v[1] === null || typeof v[2] !== 'number') throw corrupt(i);
      return { version: v[0], spec: v[1] as TaskSpec, createdAtMs: v[2] };
    });
    const [parallelism, delayS, monitorS, failureAction, order] = update as unknown[];
    if (!isCount(parallelism) || typeof delayS !== 'number' || typeof monitorS !== 'number') throw corrupt(i);
    if ((failureAction !== 'rollback' && failureAction !== 'pause') || (order !== 'stop-first' && order !== 'start-first')) throw corrupt(i);
    const [state, fromVersion, startedAtMs, monitorUntilMs, message] = rollout as unknown[];
    if (!['stable', 'updating', 'rolling-back', 'paused', 'rolled-back'].includes(state as string) || typeof startedAtMs !== 'number') throw corrupt(i);
    if ((fromVersion !== null && !isCount(fromVersion)) || (monitorUntilMs !== null && typeof monitorUntilMs !== 'number') || (message !== null && typeof message !== 'string')) throw corrupt(i);
    const u: UpdateConfig = { parallelism, delayS, monitorS, failureAction, order };
    const r: Rollout = { state: state as Rollout['state'], fromVersion, startedAtMs, monitorUntilMs, message };
    return { name, replicas, version, previousVersion, versions: vs, update: u, rollout: r, revision, createdAtMs, updatedAtMs };
  });
  for (let i = 1; i < out.length; i++) if (out[i - 1]!.name >= out[i]!.name) throw new MinkubeError('STORAGE_CORRUPT', 'kv snapshot: services: names out of order');
  return out;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
