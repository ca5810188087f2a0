// The task and worker commands of the replicated state machine and their wire form. Timestamps, ids and retry times
// come in the command from the proposing manager, so applying one is deterministic on every node.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { AssignedPort, TaskError, TaskHealth, TaskSpec, WorkerAvailability, WorkerCapacity, WorkerStats } from '../contracts/task-model.js';
import { CapacitySchema, LabelsSchema } from './placement-schemas.js';
import { normaliseSpec, TaskSpecSchema } from './task-spec.js';
import { limits } from '../lib/limits.js';
import { Nullable } from '../lib/nullable.js';

/** A new task (state pending, attempt 1). A known idempotencyKey answers the task it created instead. */
export interface TaskSubmitCommand {
  readonly op: 'task.submit';
  readonly taskId: string;
  readonly spec: TaskSpec;
  readonly atMs: number;
  readonly idempotencyKey?: string;
}

/** One task of a batch submission. */
export interface TaskSubmission {
  readonly taskId: string;
  readonly spec: TaskSpec;
  readonly idempotencyKey?: string;
}

/**
 * Many new tasks in one entry: all are created, or (the store full) none is. Each behaves as a task.submit of its
 * own (a known idempotencyKey answers the task it created).
 */
export interface TaskSubmitBatchCommand {
  readonly op: 'task.submitBatch';
  readonly atMs: number;
  readonly tasks: readonly TaskSubmission[];
}

export interface Placement {
  readonly taskId: string;
  /** The attempt the scheduler saw pending: a placement of any other attempt is skipped. */
  readonly attempt: number;
  readonly workerId: string;
}

/** A batch of placements by the leader of `term`, and the scheduler's new cursor. */
export interface TaskPlaceCommand {
  readonly op: 'task.place';
  readonly term: number;
  readonly atMs: number;
  readonly cursor: string | null;
  readonly placements: readonly Placement[];
}

export type ReportedState = 'running' | 'succeeded' | 'failed' | 'stopped';

/**
 * What a worker (or the leader, for an assignment that failed) saw of one attempt. Applied only when the token
 * (workerId, attempt, term) is the task's current one. retryAtMs is used only if the outcome is a retry.
 */
export interface TaskReport {
  readonly taskId: string;
  readonly workerId: string;
  readonly attempt: number;
  readonly term: number;
  readonly state: ReportedState;
  readonly containerId: string | null;
  readonly exitCode: number | null;
  readonly error: TaskError | null;
  readonly retryAtMs: number;
  /** The worker's health-check verdict (a running task with a healthCheck). */
  readonly health?: TaskHealth;
  /** The host ports the worker allocated to this attempt. */
  readonly ports?: readonly AssignedPort[];
}

export interface TaskReportCommand {
  readonly op: 'task.report';
  readonly atMs: number;
  readonly reports: readonly TaskReport[];
}

/** Desired state stop: a pending task stops at once, a placed one when its worker confirms. */
export interface TaskStopCommand {
  readonly op: 'task.stop';
  readonly taskId: string;
  readonly atMs: number;
}

export interface WorkerRegisterCommand {
  readonly op: 'worker.register';
  readonly workerId: string;
  readonly apiAddress: string;
  readonly runtime: string;
  readonly atMs: number;
  /** Absent: the worker registered none (an older worker keeps what it had). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly capacity?: WorkerCapacity;
  /**
   * The registering worker's instance: the id is its from this entry on (the newest registration wins), and
   * heartbeats of another instance are refused. Absent (an older worker, or an entry written before): the id is
   * held by no instance, and no heartbeat is refused for its instance.
   */
  readonly instance?: string;
  /**
   * The engine running the registering worker's containers (RegisterRequest.engine), told to an instance this
   * registration replaces (WORKER_REPLACED). Absent: unknown; a registration without it clears the one before.
   */
  readonly engine?: string;
}

/** Liveness and stats (committed at a modest rate), plus the task state changes the heartbeat revealed. */
export interface WorkerHeartbeatCommand {
  readonly op: 'worker.heartbeat';
  readonly workerId: string;
  readonly atMs: number;
  readonly stats: WorkerStats;
  readonly reports: readonly TaskReport[];
  /** The sender's instance: refused (WORKER_REPLACED, nothing applied) when the record names another one. */
  readonly instance?: string;
}

/**
 * What a worker says of its runtime's engine, committed only when that changes (version 12): `unreachable` while it
 * does not answer, null once it does. The leader places nothing new on a worker whose engine is unreachable.
 */
export interface WorkerEngineCommand {
  readonly op: 'worker.engine';
  readonly workerId: string;
  readonly atMs: number;
  readonly unreachable: { readonly reason: string; readonly sinceMs: number } | null;
  /** The sender's instance, as a heartbeat's: refused (WORKER_REPLACED, nothing applied) when the record names another. */
  readonly instance?: string;
}

export interface LostTask {
  readonly taskId: string;
  readonly attempt: number;
  readonly retryAtMs: number;
}

/** The leader's verdict on a silent worker. 'down' makes the listed attempts lost (and retried or ended). */
export interface WorkerStateCommand {
  readonly op: 'worker.state';
  readonly workerId: string;
  readonly state: 'unreachable' | 'down';
  readonly atMs: number;
  /** The worker's heartbeat count the leader judged by: a heartbeat applied since makes the verdict void. */
  readonly ifHeartbeats: number;
  readonly lost: readonly LostTask[];
}

/**
 * `minkube worker rm` (DELETE /v1/workers/:id): forgets a retired worker's record. Applied only to a worker that is
 * down with no task placed on it (WORKER_NOT_DOWN otherwise); one that comes back later registers again.
 */
export interface WorkerRemoveCommand {
  readonly op: 'worker.remove';
  readonly workerId: string;
  /** The proposer's clock. */
  readonly atMs: number;
  /**
   * Version 9, what the API proposes: applying it also remembers the removal (TaskStore.workerRemovedAtMs), and the
   * managers refuse every certificate of that id issued at or before `atMs`. A removal without it (written by an
   * earlier build) only forgets the record, as it did then, so replaying an old log revokes nothing it did not.
   */
  readonly revoke?: true;
}

/**
 * `minkube worker drain|pause|activate` (PUT /v1/workers/:id/availability): whether the leader places tasks on the
 * worker. Applying a drain marks every attempt placed there and meant to run as draining (stopped there, then placed
 * again elsewhere as its next attempt, see TaskRecord.draining); a registration keeps the availability.
 */
export interface WorkerAvailabilityCommand {
  readonly op: 'worker.availability';
  readonly workerId: string;
  readonly availability: WorkerAvailability;
  readonly atMs: number;
  /**
   * A paced drain (version 8, what the API proposes): applying it marks only the attempts of tasks that belong to no
   * service; a service's replicas there are marked later, `update.parallelism` at a time, by the leader's service
   * reconciler (service.reconcile's `drain`). Without it (a version-7 entry) every attempt is marked at once.
   */
  readonly paced?: true;
}

/**
 * Retention (tasks.retention, `minkube gc`): forgets these task records, oldest first as the proposer chose them.
 * Applied only to records that are final when the entry applies; any other id is skipped.
 */
export interface TaskRemoveCommand {
  readonly op: 'task.remove';
  readonly atMs: number;
  readonly taskIds: readonly string[];
}

export type TaskCommand =
  | TaskSubmitCommand
  | TaskRemoveCommand
  | TaskSubmitBatchCommand
  | TaskPlaceCommand
  | TaskReportCommand
  | TaskStopCommand
  | WorkerRegisterCommand
  | WorkerHeartbeatCommand
  | WorkerEngineCommand
  | WorkerStateCommand
  | WorkerRemoveCommand
  | WorkerAvailabilityCommand;
export type TaskOp = TaskCommand['op'];

const taskOps: ReadonlySet<string> = new Set<TaskOp>(['task.remove', 'task.submit', 'task.submitBatch', 'task.place', 'task.report', 'task.stop', 'worker.register', 'worker.heartbeat', 'worker.engine', 'worker.state', 'worker.remove', 'worker.availability']);

export function isTaskOp(op: unknown): op is TaskOp {
  return typeof op === 'string' && taskOps.has(op);
}

/** The new tasks a command submits (none for other commands). */
export function submissionsOf(cmd: { readonly op: string }): readonly TaskSubmission[] {
  if (cmd.op === 'task.submit') return [cmd as TaskSubmitCommand];
  if (cmd.op === 'task.submitBatch') return (cmd as TaskSubmitBatchCommand).tasks;
  return [];
}

// ---- wire form: known fields only, in one order, so equal commands give equal bytes ----

export function wireTaskCommand(cmd: TaskCommand): Record<string, unknown> {
  switch (cmd.op) {
    case 'task.submit':
      return { op: cmd.op, ...wireSubmission(cmd), atMs: cmd.atMs };
    case 'task.submitBatch':
      return { op: cmd.op, atMs: cmd.atMs, tasks: cmd.tasks.map(wireSubmission) };
    case 'task.place':
      return {
        op: cmd.op, term: cmd.term, atMs: cmd.atMs, cursor: cmd.cursor,
        placements: cmd.placements.map((p) => ({ taskId: p.taskId, attempt: p.attempt, workerId: p.workerId })),
      };
    case 'task.report':
      return { op: cmd.op, atMs: cmd.atMs, reports: cmd.reports.map(wireReport) };
    case 'task.stop':
      return { op: cmd.op, taskId: cmd.taskId, atMs: cmd.atMs };
    case 'worker.register':
      return {
        op: cmd.op, workerId: cmd.workerId, apiAddress: cmd.apiAddress, runtime: cmd.runtime, atMs: cmd.atMs,
        ...(cmd.labels === undefined ? {} : { labels: sortedLabels(cmd.labels) }),
        ...(cmd.capacity === undefined ? {} : { capacity: { cpus: cmd.capacity.cpus, memoryMb: cmd.capacity.memoryMb } }),
        ...(cmd.instance === undefined ? {} : { instance: cmd.instance }),
        ...(cmd.engine === undefined ? {} : { engine: cmd.engine }),
      };
    case 'worker.heartbeat':
      return {
        op: cmd.op, workerId: cmd.workerId, atMs: cmd.atMs, stats: wireStats(cmd.stats), reports: cmd.reports.map(wireReport),
        ...(cmd.instance === undefined ? {} : { instance: cmd.instance }),
      };
    case 'worker.engine':
      return {
        op: cmd.op, workerId: cmd.workerId, atMs: cmd.atMs,
        unreachable: cmd.unreachable === null ? null : { reason: cmd.unreachable.reason, sinceMs: cmd.unreachable.sinceMs },
        ...(cmd.instance === undefined ? {} : { instance: cmd.instance }),
      };
    case 'task.remove':
      return { op: cmd.op, atMs: cmd.atMs, taskIds: [...cmd.taskIds] };
    case 'worker.state':
      return {
        op: cmd.op, workerId: cmd.workerId, state: cmd.state, atMs: cmd.atMs, ifHeartbeats: cmd.ifHeartbeats,
        lost: cmd.lost.map((l) => ({ taskId: l.taskId, attempt: l.attempt, retryAtMs: l.retryAtMs })),
      };
    case 'worker.remove':
      return cmd.revoke === true ? { op: cmd.op, workerId: cmd.workerId, atMs: cmd.atMs, revoke: true } : { op: cmd.op, workerId: cmd.workerId, atMs: cmd.atMs };
    case 'worker.availability':
      return cmd.paced === true
        ? { op: cmd.op, workerId: cmd.workerId, availability: cmd.availability, atMs: cmd.atMs, paced: true }
        : { op: cmd.op, workerId: cmd.workerId, availability: cmd.availability, atMs: cmd.atMs };
  }
}

function wireSubmission(t: TaskSubmission): Record<string, unknown> {
  const w: Record<string, unknown> = { taskId: t.taskId, spec: normaliseSpec(t.spec) };
  if (t.idempotencyKey !== undefined) w.idempotencyKey = t.idempotencyKey;
  return w;
}

function wireReport(r: TaskReport): Record<string, unknown> {
  const w: Record<string, unknown> = {
    taskId: r.taskId, workerId: r.workerId, attempt: r.attempt, term: r.term, state: r.state, containerId: r.containerId,
    exitCode: r.exitCode, error: r.error === null ? null : { class: r.error.class, message: r.error.message }, retryAtMs: r.retryAtMs,
  };
  if (r.health !== undefined) w.health = r.health;
  if (r.ports !== undefined) w.ports = r.ports.map((p) => ({ name: p.name, hostPort: p.hostPort, address: p.address }));
  return w;
}

function wireStats(s: WorkerStats): Record<string, unknown> {
  return {
    cpuUtilization: s.cpuUtilization, memoryTotalBytes: s.memoryTotalBytes, memoryAvailableBytes: s.memoryAvailableBytes,
    diskFreeBytes: s.diskFreeBytes, runningTasks: s.runningTasks,
  };
}

// ---- decoding: every field checked by a compiled schema ----

const Id = Type.String({ minLength: 1, maxLength: 256 });
const Instance = Type.String({ minLength: 1, maxLength: 64 });
const Engine = Type.String({ minLength: 1, maxLength: 128 });
/** The most of an engine-unreachable reason a record keeps (the manager cuts a longer one before proposing it). */
export const engineReasonCharsMax = 512;
const Ms = Type.Number({ minimum: 0, maximum: 8.64e15 });
const Counter = (minimum: number) => Type.Integer({ minimum, maximum: Number.MAX_SAFE_INTEGER });
const strict = { additionalProperties: false } as const;

const ErrorSchema = Type.Object({ class: Type.Union([Type.Literal('transient'), Type.Literal('permanent')]), message: Type.String() }, strict);
export const AssignedPortSchema = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }), hostPort: Type.Integer({ minimum: 1, maximum: 65535 }), address: Type.String({ minLength: 1, maxLength: 300 }) },
  strict,
);
const ReportSchema = Type.Object(
  {
    taskId: Id, workerId: Id, attempt: Counter(1), term: Counter(0),
    state: Type.Union([Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('stopped')]),
    containerId: Nullable(Type.String()), exitCode: Nullable(Type.Integer()), error: Nullable(ErrorSchema), retryAtMs: Ms,
    health: Type.Optional(Type.Union([Type.Literal('starting'), Type.Literal('healthy'), Type.Literal('unhealthy')])),
    ports: Type.Optional(Type.Array(AssignedPortSchema, { maxItems: 64 })),
  },
  strict,
);
const StatsSchema = Type.Object(
  {
    cpuUtilization: Nullable(Type.Number()), memoryTotalBytes: Type.Number(), memoryAvailableBytes: Type.Number(),
    diskFreeBytes: Type.Number(), runningTasks: Counter(0),
  },
  strict,
);

const submission = { taskId: Id, spec: TaskSpecSchema, idempotencyKey: Type.Optional(Type.String({ minLength: 1 })) };

const schemas = {
  'task.submit': Type.Object({ op: Type.Literal('task.submit'), ...submission, atMs: Ms }, strict),
  'task.submitBatch': Type.Object(
    { op: Type.Literal('task.submitBatch'), atMs: Ms, tasks: Type.Array(Type.Object(submission, strict), { minItems: 1 }) },
    strict,
  ),
  'task.place': Type.Object(
    {
      op: Type.Literal('task.place'), term: Counter(0), atMs: Ms, cursor: Nullable(Id),
      placements: Type.Array(Type.Object({ taskId: Id, attempt: Counter(1), workerId: Id }, strict)),
    },
    strict,
  ),
  'task.report': Type.Object({ op: Type.Literal('task.report'), atMs: Ms, reports: Type.Array(ReportSchema) }, strict),
  'task.stop': Type.Object({ op: Type.Literal('task.stop'), taskId: Id, atMs: Ms }, strict),
  'worker.register': Type.Object(
    {
      op: Type.Literal('worker.register'), workerId: Id, apiAddress: Type.String({ minLength: 1 }), runtime: Type.String(), atMs: Ms,
      labels: Type.Optional(LabelsSchema), capacity: Type.Optional(CapacitySchema), instance: Type.Optional(Instance),
      engine: Type.Optional(Engine),
    },
    strict,
  ),
  'worker.heartbeat': Type.Object(
    { op: Type.Literal('worker.heartbeat'), workerId: Id, atMs: Ms, stats: StatsSchema, reports: Type.Array(ReportSchema), instance: Type.Optional(Instance) },
    strict,
  ),
  'worker.engine': Type.Object(
    {
      op: Type.Literal('worker.engine'), workerId: Id, atMs: Ms,
      unreachable: Nullable(Type.Object({ reason: Type.String({ minLength: 1, maxLength: engineReasonCharsMax }), sinceMs: Ms }, strict)),
      instance: Type.Optional(Instance),
    },
    strict,
  ),
  'worker.state': Type.Object(
    {
      op: Type.Literal('worker.state'), workerId: Id, state: Type.Union([Type.Literal('unreachable'), Type.Literal('down')]), atMs: Ms,
      ifHeartbeats: Counter(0),
      lost: Type.Array(Type.Object({ taskId: Id, attempt: Counter(1), retryAtMs: Ms }, strict)),
    },
    strict,
  ),
  'worker.remove': Type.Object({ op: Type.Literal('worker.remove'), workerId: Id, atMs: Ms, revoke: Type.Optional(Type.Literal(true)) }, strict),
  'worker.availability': Type.Object(
    {
      op: Type.Literal('worker.availability'), workerId: Id, availability: Type.Union([Type.Literal('active'), Type.Literal('pause'), Type.Literal('drain')]), atMs: Ms,
      paced: Type.Optional(Type.Literal(true)),
    },
    strict,
  ),
  'task.remove': Type.Object(
    { op: Type.Literal('task.remove'), atMs: Ms, taskIds: Type.Array(Id, { minItems: 1, maxItems: limits.retentionBatchMax, uniqueItems: true }) },
    strict,
  ),
} satisfies Record<TaskOp, TSchema>;

type Checkers = { [K in TaskOp]: ReturnType<typeof TypeCompiler.Compile<(typeof schemas)[K]>> };
let checkers: Checkers | null = null;

/** Compiled on first use: a manager that never sees a task command never pays for it. */
function checkerFor<K extends TaskOp>(op: K): Checkers[K] {
  checkers ??= Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, TypeCompiler.Compile(s)])) as unknown as Checkers;
  return checkers[op];
}

export type DecodedTaskCommand = { readonly ok: true; readonly cmd: TaskCommand } | { readonly ok: false; readonly problem: string };

export function decodeTaskCommand(raw: Record<string, unknown>): DecodedTaskCommand {
  const op = raw.op as TaskOp;
  const check = checkerFor(op);
  if (check.Check(raw)) {
    const cmd = raw as Static<(typeof schemas)[typeof op]> as TaskCommand;
    // Two tasks of one batch with one id would make the store index the id twice, which it asserts against.
    const problem = cmd.op === 'task.submitBatch' ? duplicateTaskId(cmd) : null;
    return problem === null ? { ok: true, cmd } : { ok: false, problem };
  }
  const first = check.Errors(raw).First();
  return { ok: false, problem: `${op}: ${first === undefined ? 'invalid' : `${first.path || '/'} ${first.message}`}` };
}

function sortedLabels(m: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(m).sort()) Object.defineProperty(out, k, { value: m[k], enumerable: true, writable: true, configurable: true });
  return out;
}

function duplicateTaskId(cmd: TaskSubmitBatchCommand): string | null {
  const seen = new Set<string>();
  for (const [i, t] of cmd.tasks.entries()) {
    if (seen.has(t.taskId)) return `task.submitBatch: /tasks/${i}/taskId ${JSON.stringify(t.taskId)} appears twice`;
    seen.add(t.taskId);
  }
  return null;
}
