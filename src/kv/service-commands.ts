// The service commands of the replicated state machine and their wire form. The API proposes create, update,
// rollback and delete; the leader's service reconciler proposes reconcile (replicas to start and stop, the rollout's
// progress), checked against the service's revision so a decision made on an older view is dropped at apply.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { failureActions, updateOrders, type Rollout, type UpdateConfig } from '../contracts/service-model.js';
import type { TaskSpec } from '../contracts/task-model.js';
import { limits } from '../lib/limits.js';
import { normaliseSpec, TaskSpecSchema } from './task-spec.js';
import { Nullable } from '../lib/nullable.js';
import { dnsLabelPattern } from '../lib/patterns.js';

/** DNS label rules: the name becomes `<name>.service.minkube`. */
export const serviceNamePattern = dnsLabelPattern;

export interface ServiceCreateCommand {
  readonly op: 'service.create';
  readonly name: string;
  readonly atMs: number;
  readonly replicas: number;
  /** The replicas' task spec (restartPolicy always). */
  readonly spec: TaskSpec;
  readonly update: UpdateConfig;
}

/** Replicas alone scale; a spec unlike the current version's makes a new version and starts a rollout. */
export interface ServiceUpdateCommand {
  readonly op: 'service.update';
  readonly name: string;
  readonly atMs: number;
  readonly replicas?: number;
  readonly spec?: TaskSpec;
  readonly update?: UpdateConfig;
  /** The version `spec` was made from: refused (SERVICE_VERSION_MISMATCH) if the service is at another by now. */
  readonly ifVersion?: number;
  /**
   * Version 10: the change is judged against the quota of the namespace its version's replicas run in, counting as
   * new every replica the service wants that it does not hold there yet. A move to another namespace (a PATCH of
   * namespace, a rollback to a version in another one) creates all of its replicas there, which the count of
   * version 3 (wanted minus live, wherever those run) let through. Without it an entry applies as older managers
   * apply it. The API sets it when the service's replicas are, or will be, in another namespace than they are now.
   */
  readonly quotaInNamespace?: true;
}

/** Back to the previous version (which then rolls out). */
export interface ServiceRollbackCommand {
  readonly op: 'service.rollback';
  readonly name: string;
  readonly atMs: number;
  /** As a service.update's (version 10). */
  readonly quotaInNamespace?: true;
}

/** Forgets the service and stops every replica. */
export interface ServiceDeleteCommand {
  readonly op: 'service.delete';
  readonly name: string;
  readonly atMs: number;
}

/** The leader's decision for one service, made on revision ifRevision. */
export interface ServiceReconcileCommand {
  readonly op: 'service.reconcile';
  readonly name: string;
  readonly atMs: number;
  readonly ifRevision: number;
  /** New replicas of the current version (fresh task ids). */
  readonly create: readonly string[];
  readonly stop: readonly string[];
  /** The rollout's new state, when it changes. */
  readonly rollout?: Rollout;
  /** Go back to the previous version (the failure action rollback); `rollout` then says why. */
  readonly revert?: boolean;
  /**
   * Replicas on a drained worker to move now (version 8): each is marked draining, as a drain's apply marks a task
   * (stopped there, then placed again as its next attempt), if it is still placed on a worker being drained and meant
   * to run when the entry applies. The reconciler paces them `update.parallelism` at a time (service-decide.ts).
   */
  readonly drain?: readonly string[];
}

export type ServiceCommand = ServiceCreateCommand | ServiceUpdateCommand | ServiceRollbackCommand | ServiceDeleteCommand | ServiceReconcileCommand;
export type ServiceOp = ServiceCommand['op'];

const serviceOps: ReadonlySet<string> = new Set<ServiceOp>(['service.create', 'service.update', 'service.rollback', 'service.delete', 'service.reconcile']);

export function isServiceOp(op: unknown): op is ServiceOp {
  return typeof op === 'string' && serviceOps.has(op);
}

/** The specs a command carries (checked by the spec rules before it enters the log). */
export function serviceSpecsOf(cmd: { readonly op: string }): readonly TaskSpec[] {
  if (cmd.op === 'service.create') return [(cmd as ServiceCreateCommand).spec];
  if (cmd.op === 'service.update' && (cmd as ServiceUpdateCommand).spec !== undefined) return [(cmd as ServiceUpdateCommand).spec!];
  return [];
}

// ---- wire form: known fields only, in one order ----

export function wireServiceCommand(cmd: ServiceCommand): Record<string, unknown> {
  switch (cmd.op) {
    case 'service.create':
      return { op: cmd.op, name: cmd.name, atMs: cmd.atMs, replicas: cmd.replicas, spec: normaliseSpec(cmd.spec), update: wireUpdate(cmd.update) };
    case 'service.update': {
      const w: Record<string, unknown> = { op: cmd.op, name: cmd.name, atMs: cmd.atMs };
      if (cmd.replicas !== undefined) w.replicas = cmd.replicas;
      if (cmd.spec !== undefined) w.spec = normaliseSpec(cmd.spec);
      if (cmd.update !== undefined) w.update = wireUpdate(cmd.update);
      if (cmd.ifVersion !== undefined) w.ifVersion = cmd.ifVersion;
      if (cmd.quotaInNamespace === true) w.quotaInNamespace = true;
      return w;
    }
    case 'service.rollback':
      return cmd.quotaInNamespace === true ? { op: cmd.op, name: cmd.name, atMs: cmd.atMs, quotaInNamespace: true } : { op: cmd.op, name: cmd.name, atMs: cmd.atMs };
    case 'service.delete':
      return { op: cmd.op, name: cmd.name, atMs: cmd.atMs };
    case 'service.reconcile': {
      const w: Record<string, unknown> = { op: cmd.op, name: cmd.name, atMs: cmd.atMs, ifRevision: cmd.ifRevision, create: [...cmd.create], stop: [...cmd.stop] };
      if (cmd.rollout !== undefined) w.rollout = wireRollout(cmd.rollout);
      if (cmd.revert === true) w.revert = true;
      if (cmd.drain !== undefined && cmd.drain.length > 0) w.drain = [...cmd.drain];
      return w;
    }
  }
}

export function wireUpdate(u: UpdateConfig): Record<string, unknown> {
  return { parallelism: u.parallelism, delayS: u.delayS, monitorS: u.monitorS, failureAction: u.failureAction, order: u.order };
}

export function wireRollout(r: Rollout): Record<string, unknown> {
  return { state: r.state, fromVersion: r.fromVersion, startedAtMs: r.startedAtMs, monitorUntilMs: r.monitorUntilMs, message: r.message };
}

// ---- decoding ----

const Ms = Type.Number({ minimum: 0, maximum: 8.64e15 });
const Name = Type.String({ pattern: serviceNamePattern });
const Replicas = Type.Integer({ minimum: 0, maximum: limits.serviceReplicasMax });
const Id = Type.String({ minLength: 1, maxLength: 256 });
const strict = { additionalProperties: false } as const;

export const UpdateSchema = Type.Object(
  {
    parallelism: Type.Integer({ minimum: 1, maximum: limits.serviceReplicasMax }),
    delayS: Type.Number({ minimum: 0, maximum: limits.serviceUpdateDelaySMax }),
    monitorS: Type.Number({ minimum: 0, maximum: limits.serviceUpdateMonitorSMax }),
    failureAction: Type.Union(failureActions.map((a) => Type.Literal(a))),
    order: Type.Union(updateOrders.map((o) => Type.Literal(o))),
  },
  strict,
);

const RolloutSchema = Type.Object(
  {
    state: Type.Union(['stable', 'updating', 'rolling-back', 'paused', 'rolled-back'].map((s) => Type.Literal(s))),
    fromVersion: Nullable(Type.Integer({ minimum: 1 })),
    startedAtMs: Ms,
    monitorUntilMs: Nullable(Ms),
    message: Nullable(Type.String({ maxLength: 4096 })),
  },
  strict,
);

const schemas = {
  'service.create': Type.Object({ op: Type.Literal('service.create'), name: Name, atMs: Ms, replicas: Replicas, spec: TaskSpecSchema, update: UpdateSchema }, strict),
  'service.update': Type.Object(
    {
      op: Type.Literal('service.update'), name: Name, atMs: Ms, replicas: Type.Optional(Replicas), spec: Type.Optional(TaskSpecSchema), update: Type.Optional(UpdateSchema),
      ifVersion: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })), quotaInNamespace: Type.Optional(Type.Literal(true)),
    },
    strict,
  ),
  'service.rollback': Type.Object({ op: Type.Literal('service.rollback'), name: Name, atMs: Ms, quotaInNamespace: Type.Optional(Type.Literal(true)) }, strict),
  'service.delete': Type.Object({ op: Type.Literal('service.delete'), name: Name, atMs: Ms }, strict),
  'service.reconcile': Type.Object(
    {
      op: Type.Literal('service.reconcile'), name: Name, atMs: Ms, ifRevision: Type.Integer({ minimum: 0 }),
      create: Type.Array(Id, { maxItems: limits.serviceReconcileBatchMax }), stop: Type.Array(Id, { maxItems: limits.serviceReconcileBatchMax }),
      rollout: Type.Optional(RolloutSchema), revert: Type.Optional(Type.Literal(true)),
      drain: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: limits.serviceReconcileBatchMax })),
    },
    strict,
  ),
} satisfies Record<ServiceOp, TSchema>;

type Checkers = { [K in ServiceOp]: ReturnType<typeof TypeCompiler.Compile<(typeof schemas)[K]>> };
let checkers: Checkers | null = null;

function checkerFor<K extends ServiceOp>(op: K): Checkers[K] {
  checkers ??= Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, TypeCompiler.Compile(s)])) as unknown as Checkers;
  return checkers[op];
}

export type DecodedServiceCommand = { readonly ok: true; readonly cmd: ServiceCommand } | { readonly ok: false; readonly problem: string };

export function decodeServiceCommand(raw: Record<string, unknown>): DecodedServiceCommand {
  const op = raw.op as ServiceOp;
  const check = checkerFor(op);
  if (check.Check(raw)) return { ok: true, cmd: raw as Static<(typeof schemas)[typeof op]> as ServiceCommand };
  const first = check.Errors(raw).First();
  return { ok: false, problem: `${op}: ${first === undefined ? 'invalid' : `${first.path || '/'} ${first.message}`}` };
}
