// The service half of the managers' API: requests become service commands (validated before the log like task
// commands), reads wait for a linearizable barrier and answer views built from the service record and its replicas.
import { noWorkerReason } from '../contracts/placement.js';
import type { Page, ReadConsistency, RequestContext } from '../contracts/services.js';
import {
  updateDefaults, type ReplicaView, type ServiceCreateRequest, type ServicePatchRequest, type ServiceRecord, type ServicesService, type ServiceView,
  type UpdateConfig,
} from '../contracts/service-model.js';
import { finalTaskStates, type TaskRecord, type TaskSpec } from '../contracts/task-model.js';
import type { ServiceCommand, ServiceUpdateCommand } from '../kv/service-commands.js';
import type { QuotaStore } from '../kv/quota-store.js';
import { namespaceOf } from '../kv/quota-usage.js';
import { specOf, type ServiceStore } from '../kv/service-store.js';
import { printable, redactedValue, specRuleProblem, specView } from '../kv/task-spec.js';
import { stopWanted, stoppedBeforePlacedReason } from '../kv/task-rules.js';
import type { TaskStore } from '../kv/task-store.js';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { verdictsFor } from './placement-input.js';
import { decide, failureOf, isAlive, replicaState } from './service-decide.js';
import type { Proposer } from './task-service.js';

export interface ServiceServiceOptions {
  services: ServiceStore;
  tasks: TaskStore;
  /** The namespaces' quotas (none: no limit), for why replicas wait. */
  quotas?: QuotaStore;
  raft: Proposer;
  clock: Clock;
}

export class ServiceServiceImpl implements ServicesService {
  constructor(private readonly o: ServiceServiceOptions) {}

  async createService(req: ServiceCreateRequest, ctx: RequestContext): Promise<ServiceView> {
    const spec = replicaSpecOf(req.task, req);
    const update: UpdateConfig = { ...updateDefaults, ...req.update };
    await this.proposeOk({ op: 'service.create', name: req.name, atMs: this.o.clock.nowMs(), replicas: req.replicas, spec, update }, ctx);
    return this.viewOrThrow(req.name);
  }

  async listServices(q: { readonly limit: number; readonly cursor?: string; readonly consistency: ReadConsistency }, ctx: RequestContext): Promise<Page<ServiceView>> {
    if (q.consistency === 'linearizable') await this.o.raft.barrier(ctx.deadlineMs);
    const { items, more } = this.o.services.list(q.cursor === undefined ? { limit: q.limit } : { limit: q.limit, after: q.cursor });
    return { items: items.map((s) => this.view(s)), nextCursor: more ? items.at(-1)!.name : null };
  }

  async getService(name: string, consistency: ReadConsistency, ctx: RequestContext): Promise<ServiceView> {
    if (consistency === 'linearizable') await this.o.raft.barrier(ctx.deadlineMs);
    return this.viewOrThrow(name);
  }

  async updateService(name: string, patch: ServicePatchRequest, ctx: RequestContext): Promise<ServiceView> {
    const specChanged = patch.task !== undefined || patch.ports !== undefined || patch.healthCheck !== undefined || patch.constraints !== undefined ||
      patch.priority !== undefined || patch.namespace !== undefined;
    for (let attempt = 1; ; attempt++) {
      // The new spec is built on the current version as this manager has applied it: read it linearizably first.
      await this.o.raft.barrier(ctx.deadlineMs);
      const s = this.recordOrThrow(name);
      const cmd: { -readonly [K in keyof ServiceUpdateCommand]: ServiceUpdateCommand[K] } = { op: 'service.update', name, atMs: this.o.clock.nowMs() };
      if (patch.replicas !== undefined) cmd.replicas = patch.replicas;
      if (patch.update !== undefined) cmd.update = { ...s.update, ...patch.update };
      if (patch.ifVersion !== undefined) cmd.ifVersion = patch.ifVersion;
      if (specChanged) {
        const current = specOf(s, s.version);
        cmd.spec = replicaSpecOf(patch.task === undefined ? current : withKeptSecrets(patch.task, current), patch, current);
        // What the spec kept of the current version (its ports, its secrets...) was read here: another change applied
        // first would be undone by it. The state machine refuses it then, and it is made again on what is current.
        cmd.ifVersion ??= s.version;
      }
      if (this.movesNamespace(s, cmd.spec ?? specOf(s, s.version))) cmd.quotaInNamespace = true;
      const r = await this.o.raft.proposeCommand(cmd, ctx.deadlineMs, ctx.requestId, ctx.principal);
      if (r.ok) return this.viewOrThrow(name);
      if (r.code !== 'SERVICE_VERSION_MISMATCH' || patch.ifVersion !== undefined || attempt >= limits.servicePatchAttemptsMax) throw new MinkubeError(r.code, r.message);
    }
  }

  async rollbackService(name: string, ctx: RequestContext): Promise<ServiceView> {
    await this.o.raft.barrier(ctx.deadlineMs);
    const s = this.recordOrThrow(name);
    const previous = s.previousVersion === null ? undefined : s.versions.find((v) => v.version === s.previousVersion)?.spec;
    const moves = previous !== undefined && this.movesNamespace(s, previous);
    await this.proposeOk({ op: 'service.rollback', name, atMs: this.o.clock.nowMs(), ...(moves ? { quotaInNamespace: true as const } : {}) }, ctx);
    return this.viewOrThrow(name);
  }

  /**
   * Whether the replicas of `spec` run in another namespace than the service's replicas do now (or than its current
   * version's): its quota is then judged where they go, all of them new there (quotaInNamespace, a command of
   * version 10; only then, so that other changes stay readable by older managers during an upgrade).
   */
  private movesNamespace(s: ServiceRecord, spec: TaskSpec): boolean {
    const ns = namespaceOf(spec);
    if (namespaceOf(specOf(s, s.version)) !== ns) return true;
    for (const id of this.o.tasks.idsOfService(s.name)) {
      const t = this.o.tasks.task(id);
      if (t !== undefined && !finalTaskStates.has(t.state) && namespaceOf(t.spec) !== ns) return true;
    }
    return false;
  }

  async deleteService(name: string, ctx: RequestContext): Promise<{ readonly name: string; readonly deleted: true; readonly stopping: number }> {
    const atMs = this.o.clock.nowMs();
    await this.proposeOk({ op: 'service.delete', name, atMs }, ctx);
    // The replicas it stopped: those still stopping, and those it stopped before they were placed (pending: stopped at
    // once, as of its time), which `stopping 0 replicas` left out for a service of 3000 pending ones.
    let stopping = 0;
    for (const id of this.o.tasks.idsOfService(name)) {
      const t = this.o.tasks.task(id);
      if (t === undefined) continue;
      const last = t.history.at(-1);
      if (!finalTaskStates.has(t.state) || (t.state === 'stopped' && last?.atMs === atMs && last.reason === stoppedBeforePlacedReason)) stopping++;
    }
    return { name, deleted: true, stopping };
  }

  /** The view of a service as the API answers it (also what DNS-free callers read). */
  view(s: ServiceRecord): ServiceView {
    const records: TaskRecord[] = [];
    for (const id of [...this.o.tasks.idsOfService(s.name)].sort()) {
      const t = this.o.tasks.task(id);
      if (t !== undefined && !finalTaskStates.has(t.state)) records.push(t);
    }
    const states = records.map(replicaState);
    const room = this.roomFor(s);
    // The replicas the reconciler is about to stop (a scale down just applied, an old one a healthy new one retires):
    // the count is what the service is about to serve with, not what DNS answered a moment before.
    const stopping = new Set(decide(s, states, this.o.clock.nowMs(), room).stop);
    const tasks: ReplicaView[] = [];
    let running = 0;
    let healthy = 0;
    let alive = 0;
    let unplaced: TaskRecord | null = null;
    let retrying: TaskRecord | null = null;
    for (const [i, t] of records.entries()) {
      const r = states[i]!;
      const pendingOfVersion = t.state === 'pending' && t.desiredState === 'run' && r.version === s.version;
      if (unplaced === null && pendingOfVersion) unplaced = t;
      // Its last attempt failed through no fault of its own (no `failure` says it): the view says why it waits.
      if (retrying === null && pendingOfVersion && t.error !== null && failureOf(r) === null) retrying = t;
      if (isAlive(r)) alive++;
      if (isAlive(r) && t.state === 'running') running++;
      // A replica its worker's drain is stopping still wants to run (elsewhere), but serves no more: DNS no longer
      // answers it (stopWanted), and neither does the count.
      if (isAlive(r) && r.healthy && !stopWanted(t) && !stopping.has(t.id)) healthy++;
      tasks.push({
        taskId: t.id, version: r.version, state: t.state, desiredState: t.desiredState, draining: r.draining === true, health: t.health ?? null,
        workerId: t.workerId, attempt: t.attempt, ports: t.ports ?? [], failure: failureOf(r),
      });
    }
    const waiting = this.waitingFor(s, { unplaced, retrying, short: alive < s.replicas && room === 0 });
    const rolling = s.rollout.state === 'updating' || s.rollout.state === 'rolling-back';
    return {
      name: s.name, replicas: { desired: s.replicas, running, healthy }, version: s.version, previousVersion: s.previousVersion,
      versions: s.versions.map((v) => v.version), spec: specView(specOf(s, s.version)), update: s.update,
      rollout: { state: s.rollout.state, fromVersion: s.rollout.fromVersion, message: s.rollout.message ?? (rolling ? waiting : null) }, waiting, tasks,
      createdAt: new Date(s.createdAtMs).toISOString(), updatedAt: new Date(s.updatedAtMs).toISOString(),
    };
  }

  /** Replicas of the current version its namespace's quota takes now (Infinity without one), as the reconciler counts. */
  private roomFor(s: ServiceRecord): number {
    return this.o.quotas?.room(specOf(s, s.version), (ns) => this.o.tasks.usage.of(ns)) ?? Number.POSITIVE_INFINITY;
  }

  /**
   * Why replicas of the current version wait, first of: one that no worker can take now (none eligible: each down,
   * full, without room for it, or without a label its constraints ask for), as `task why` would; the namespace's
   * quota leaving no room for the replicas the service lacks (`short`), which the reconciler does not start; one whose
   * last attempt failed through no fault of its own (its assignment refused: no free port in the worker's range, its
   * worker lost), with that error, as `task get` shows it. While a rollout is under way its message says so too.
   */
  private waitingFor(s: ServiceRecord, w: { unplaced: TaskRecord | null; retrying: TaskRecord | null; short: boolean }): string | null {
    const why = w.unplaced === null ? null : noWorkerReason(verdictsFor(this.o.tasks, w.unplaced));
    if (w.unplaced !== null && why !== null) {
      return `waiting: replica ${w.unplaced.id} of version ${s.version} has no worker to run on (${why}; see task why ${w.unplaced.id})`;
    }
    const full = w.short ? (this.o.quotas?.refusal([specOf(s, s.version)], (ns) => this.o.tasks.usage.of(ns)) ?? null) : null;
    if (full !== null) return `waiting: no room in the namespace for another replica of version ${s.version} (${full}; see quota ls)`;
    const t = w.retrying;
    if (t === null || t.error === null) return null;
    return `waiting: replica ${t.id} of version ${s.version} is placed again after attempt ${t.attempt - 1} failed: ${bounded(t.error.message)} (see task get ${t.id})`;
  }

  private recordOrThrow(name: string): ServiceRecord {
    const s = this.o.services.service(name);
    if (s === undefined) throw new MinkubeError('SERVICE_NOT_FOUND', `no service ${JSON.stringify(name)}`);
    return s;
  }

  private viewOrThrow(name: string): ServiceView {
    return this.view(this.recordOrThrow(name));
  }

  private async proposeOk(cmd: ServiceCommand, ctx: RequestContext): Promise<void> {
    const r = await this.o.raft.proposeCommand(cmd, ctx.deadlineMs, ctx.requestId, ctx.principal);
    if (!r.ok) throw new MinkubeError(r.code, r.message);
  }
}

/**
 * A PATCH's task with each secretEnv value given as "<redacted>" (how answers show one) replaced by the current
 * version's value of that variable: the CLI, which cannot read secrets back, sends the spec it read with new values
 * beside the kept ones. A placeholder for a variable the current version lacks is refused.
 */
export function withKeptSecrets(task: TaskSpec, current: TaskSpec): TaskSpec {
  if (task.secretEnv === undefined) return task;
  let secretEnv: Record<string, string> | null = null;
  for (const [k, v] of Object.entries(task.secretEnv)) {
    if (v !== redactedValue) continue;
    const kept = current.secretEnv !== undefined && Object.hasOwn(current.secretEnv, k) ? current.secretEnv[k] : undefined;
    if (kept === undefined) {
      throw new MinkubeError('INVALID_BODY', `body.task.secretEnv.${printable(k)}: ${JSON.stringify(redactedValue)} keeps the current value, and the service's current version has no secret ${printable(k)}`);
    }
    secretEnv ??= { ...task.secretEnv };
    secretEnv[k] = kept;
  }
  return secretEnv === null ? task : { ...task, secretEnv };
}

type SpecParts = Pick<ServiceCreateRequest, 'ports' | 'healthCheck' | 'constraints' | 'priority' | 'namespace'>;

/**
 * The replicas' spec: the task with the service's ports, health check and placement fields (given ones win over the
 * task's own, then `base`'s: a PATCH keeps what it does not name). Checked by the spec rules, naming the body's field.
 */
export function replicaSpecOf(task: TaskSpec, parts: SpecParts, base?: TaskSpec): TaskSpec {
  const taskProblem = specRuleProblem(task, 'body.task.');
  if (taskProblem !== null) throw new MinkubeError('INVALID_BODY', taskProblem);
  const spec: Record<string, unknown> = { ...task };
  for (const k of ['ports', 'healthCheck', 'constraints', 'priority', 'namespace'] as const) {
    const v = parts[k] ?? task[k] ?? base?.[k];
    if (v !== undefined) spec[k] = v;
  }
  const problem = specRuleProblem(spec as unknown as TaskSpec, 'body.');
  if (problem !== null) throw new MinkubeError('INVALID_BODY', problem);
  return spec as unknown as TaskSpec;
}

/** A recorded error, bounded as a rollout's reason is (a runtime's text is not). */
function bounded(message: string): string {
  const max = limits.rolloutReasonCharsMax;
  return message.length > max ? `${[...message].slice(0, max - 1).join('')}…` : message;
}
