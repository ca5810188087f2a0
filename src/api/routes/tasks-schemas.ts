// JSON schemas (TypeBox) of the managers' task and worker routes: requests, and what the answers contain. Query strings
// carry text: integers are parsed by hand (no coercion), and unknown query parameters are refused.
import { Type, type Static } from '@sinclair/typebox';
import { limits } from '../../lib/limits.js';
import { LimitParam, TailParam } from '../schemas.js';
import { CapacitySchema, LabelsSchema } from '../../kv/placement-schemas.js';
import { TaskSpecSchema } from '../../kv/task-spec.js';
import { FollowParam } from './worker-schemas.js';
import { Nullable } from '../../lib/nullable.js';
import { cursorPattern, engineIdentityPattern, hostPortPattern, idPattern, instancePattern } from '../../lib/patterns.js';
import { workerAvailabilities } from '../../contracts/task-model.js';

const Consistency = Type.Optional(Type.Union([Type.Literal('linearizable'), Type.Literal('stale')]));
const TaskStateLiteral = Type.Union(
  ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost'].map((s) => Type.Literal(s)),
);
const WorkerAvailabilityLiteral = Type.Union(workerAvailabilities.map((a) => Type.Literal(a)));

/** A task id starts with a letter or digit, as a worker's does: `..` or `-` is a malformed id (400), not a missing task. */
export const TaskIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256, pattern: idPattern }) });
export type TaskIdParams = Static<typeof TaskIdParams>;

/** Worker ids follow the cluster config's id rule. */
export const WorkerIdPattern = idPattern;
export const WorkerIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: WorkerIdPattern }) });
export type WorkerIdParams = Static<typeof WorkerIdParams>;

export const TaskListQuerySchema = Type.Object(
  {
    state: Type.Optional(TaskStateLiteral),
    workerId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: WorkerIdPattern })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    limit: Type.Optional(LimitParam),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: cursorPattern, description: "the previous page's nextCursor: the page starts after this task id, in creation order (a position: any id will do)" })),
    consistency: Consistency,
  },
  { additionalProperties: false },
);
export type TaskListQuerySchema = Static<typeof TaskListQuerySchema>;

export const ConsistencyQuery = Type.Object({ consistency: Consistency }, { additionalProperties: false });
export type ConsistencyQuery = Static<typeof ConsistencyQuery>;

export const TaskLogsQuery = Type.Object({ tail: Type.Optional(TailParam), follow: FollowParam }, { additionalProperties: false });
export type TaskLogsQuery = Static<typeof TaskLogsQuery>;

export const WorkerListQuery = Type.Object(
  {
    limit: Type.Optional(LimitParam),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: WorkerIdPattern, description: "the previous page's nextCursor: the page starts after this worker id (a position: any id will do)" })),
    consistency: Consistency,
  },
  { additionalProperties: false },
);
export type WorkerListQuery = Static<typeof WorkerListQuery>;

export const SubmitReply = Type.Object({ id: Type.String(), state: Type.String() });
export const SubmitBatchReply = Type.Object({ items: Type.Array(SubmitReply) });

// Worker -> manager bodies: unknown fields are accepted, so workers may add fields to the contract additively.
/** A worker's instance (src/worker/instance.ts makes 12 hex digits); GET assignments names it in a header. */
export const workerInstancePattern = /^[A-Za-z0-9_-]{1,64}$/;
const WorkerInstance = Type.String({ minLength: 1, maxLength: 64, pattern: instancePattern, description: "the worker's instance: the id is held by its newest registration's" });
export const RegisterBody = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, pattern: WorkerIdPattern }),
  apiAddress: Type.String({ minLength: 3, maxLength: 300, pattern: hostPortPattern }),
  runtime: Type.Union([Type.Literal('docker'), Type.Literal('process'), Type.Literal('memory')]),
  labels: Type.Optional(LabelsSchema),
  capacity: Type.Optional(CapacitySchema),
  instance: Type.Optional(WorkerInstance),
  engine: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: engineIdentityPattern, description: "the engine running the worker's containers (docker:<ID>), told to an instance this registration replaces" })),
});
export type RegisterBody = Static<typeof RegisterBody>;

const Count = Type.Number({ minimum: 0 });
const WorkerStatsSchema = Type.Object({
  cpuUtilization: Nullable(Type.Number({ minimum: 0 })),
  memoryTotalBytes: Count,
  memoryAvailableBytes: Count,
  diskFreeBytes: Count,
  runningTasks: Type.Integer({ minimum: 0 }),
});

const WorkerTaskStatusSchema = Type.Object({
  taskId: Type.String({ minLength: 1, maxLength: 256 }),
  attempt: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  term: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  state: Type.Union(['starting', 'running', 'succeeded', 'failed', 'stopped'].map((s) => Type.Literal(s))),
  containerId: Nullable(Type.String({ maxLength: 256 })),
  exitCode: Nullable(Type.Integer()),
  error: Nullable(Type.Object({ class: Type.Union([Type.Literal('transient'), Type.Literal('permanent')]), message: Type.String({ maxLength: 4096 }) })),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
});

export const HeartbeatBody = Type.Object({
  stats: WorkerStatsSchema,
  // A worker's map is bounded (limits.workerTasksMax by default); the body limit bounds it further.
  tasks: Type.Array(WorkerTaskStatusSchema, { maxItems: limits.workerTasksMax * 100 }),
  instance: Type.Optional(WorkerInstance),
  engineUnreachable: Type.Optional(Type.Object({ reason: Type.String({ minLength: 1, maxLength: 4096 }), sinceMs: Type.Number({ minimum: 0, maximum: 8.64e15 }) })),
});
export type HeartbeatBody = Static<typeof HeartbeatBody>;

// ---- what the routes without a response schema answer (documentedResponse: the OpenAPI document only) ----

const Time = Type.String({ description: 'ISO 8601' });
const AssignedPortsSchema = Type.Array(Type.Object({ name: Type.String(), hostPort: Type.Integer(), address: Type.String({ description: 'host:port' }) }));

/** A task record as every answer shows it (taskView: secretEnv values read "<redacted>"). */
export const TaskRecordReply = Type.Object(
  {
    id: Type.String(),
    spec: TaskSpecSchema,
    state: TaskStateLiteral,
    desiredState: Type.Union([Type.Literal('run'), Type.Literal('stop')]),
    workerId: Nullable(Type.String()),
    attempt: Type.Integer({ minimum: 1 }),
    term: Type.Integer({ minimum: 0 }),
    containerId: Nullable(Type.String()),
    exitCode: Nullable(Type.Integer()),
    error: Nullable(Type.Object({ class: Type.Union([Type.Literal('transient'), Type.Literal('permanent')]), message: Type.String() })),
    notBeforeMs: Type.Integer({ description: 'a pending retry is not placed before this time (ms since the epoch)' }),
    createdAt: Time,
    updatedAt: Time,
    history: Type.Array(
      Type.Object({ state: TaskStateLiteral, attempt: Type.Integer(), atMs: Type.Integer(), workerId: Nullable(Type.String()), reason: Type.Optional(Type.String()) }),
    ),
    service: Type.Optional(Type.Object({ name: Type.String(), version: Type.Integer() })),
    ports: Type.Optional(AssignedPortsSchema),
    health: Type.Optional(Type.Union([Type.Literal('starting'), Type.Literal('healthy'), Type.Literal('unhealthy')])),
    draining: Type.Optional(Type.Literal(true, { description: 'the attempt is being stopped on its drained worker, to be placed again elsewhere' })),
    drainedAttempts: Type.Optional(Type.Integer({ minimum: 1, description: 'attempts ended by a drain of their worker: not counted against maxAttempts' })),
  },
  { description: 'the task record' },
);
export const TaskListReply = Type.Object({ items: Type.Array(TaskRecordReply), nextCursor: Nullable(Type.String()) }, { description: 'a page of task records, in creation order' });

export const WorkerRecordReply = Type.Object(
  {
    id: Type.String(),
    apiAddress: Type.String(),
    state: Type.Union([Type.Literal('ready'), Type.Literal('unreachable'), Type.Literal('down')]),
    runtime: Type.String(),
    registeredAt: Time,
    lastHeartbeatAt: Nullable(Time),
    stats: Nullable(WorkerStatsSchema),
    taskCount: Type.Integer({ minimum: 0, description: 'its scheduled and running tasks; 0 on a drained worker once it has stopped every one' }),
    availability: WorkerAvailabilityLiteral,
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    capacity: Type.Optional(Type.Object({ cpus: Type.Number(), memoryMb: Type.Number() })),
    instance: Type.Optional(Type.String({ description: 'the instance that registered the id last, which alone may heartbeat as it' })),
    engineUnreachable: Type.Optional(Type.Object(
      { reason: Type.String(), since: Time },
      { description: 'present while the worker says its container engine does not answer (refused, or no answer within the call deadline): nothing new is placed on it' },
    )),
  },
  { description: 'the worker' },
);
export const WorkerAvailabilityBody = Type.Object(
  { availability: WorkerAvailabilityLiteral },
  { additionalProperties: false, description: 'active: tasks may be placed on it; pause: nothing new; drain: nothing new, and its tasks are moved elsewhere' },
);
export type WorkerAvailabilityBody = Static<typeof WorkerAvailabilityBody>;
export const WorkerRemovedReply = Type.Object({ id: Type.String(), removed: Type.Literal(true) }, { description: "a retired worker's record, forgotten" });
export const WorkerListReply = Type.Object({ items: Type.Array(WorkerRecordReply), nextCursor: Nullable(Type.String()) }, { description: 'a page of workers, by id' });
export const RegisterReply = Type.Object({ worker: WorkerRecordReply }, { description: 'the worker as registered' });

export const HeartbeatReply = Type.Object(
  {
    heartbeatIntervalMs: Type.Integer({ minimum: 1 }),
    forget: Type.Optional(Type.Array(Type.String(), { description: 'tasks of this heartbeat whose records retention removed' })),
    managers: Type.Optional(Type.Array(Type.String(), { description: "the managers' API addresses (host:port)" })),
  },
  { description: 'the heartbeat was taken' },
);

/** The spec as stored, secretEnv values included: only the worker's own certificate reaches this route. */
export const AssignmentListReply = Type.Object(
  {
    items: Type.Array(
      Type.Object({
        taskId: Type.String(),
        attempt: Type.Integer({ minimum: 1 }),
        term: Type.Integer({ minimum: 0 }),
        spec: TaskSpecSchema,
        desiredState: Type.Union([Type.Literal('run'), Type.Literal('stop')]),
        traceparent: Type.Optional(Type.String()),
        started: Type.Optional(Type.Literal(true, { description: 'the record says this attempt runs on this worker' })),
      }),
    ),
    nextCursor: Type.Null(),
    knownTaskIds: Type.Optional(Type.Array(Type.String(), { description: 'of the task ids asked (x-minkube-ask-tasks), those the cluster has or had a record of' })),
  },
  { description: "the worker's scheduled and running tasks, with their fencing tokens" },
);
