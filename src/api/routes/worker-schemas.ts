// JSON schemas (TypeBox) of the worker's HTTP API (src/contracts/worker.ts): the assignment a leader sends, and
// what 200 answers contain. Unknown fields are accepted, so the managers may add fields to the contract additively.
import { Type, type Static } from '@sinclair/typebox';
import { limits } from '../../lib/limits.js';
import { stopSignals } from '../../contracts/task-model.js';
import { Nullable } from '../../lib/nullable.js';
import { TailParam } from '../schemas.js';

const Counter = (minimum: number) => Type.Integer({ minimum, maximum: Number.MAX_SAFE_INTEGER });
const StringMap = Type.Record(Type.String(), Type.String());

export const TaskSpecSchema = Type.Object({
  name: Type.Optional(Type.String({ maxLength: 253 })),
  image: Type.String({ minLength: 1, maxLength: 1024 }),
  command: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 4096 })),
  env: Type.Optional(StringMap),
  // The values themselves: the leader sends them to the worker that runs the task, over mutual TLS.
  secretEnv: Type.Optional(StringMap),
  restartPolicy: Type.Optional(Type.Union([Type.Literal('never'), Type.Literal('on-failure'), Type.Literal('always')])),
  maxAttempts: Type.Optional(Counter(1)),
  resources: Type.Optional(
    Type.Object({
      cpus: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
      memoryMb: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    }),
  ),
  labels: Type.Optional(StringMap),
  // What the worker reads of them (the spec rules check names and references), each open to added fields.
  ports: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) }), { maxItems: limits.taskPortsMax })),
  healthCheck: Type.Optional(
    Type.Object({
      type: Type.Union([Type.Literal('http'), Type.Literal('tcp'), Type.Literal('exec')]),
      port: Type.Optional(Type.String({ maxLength: 64 })),
      path: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
      command: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: limits.taskCommandArgsMax })),
      intervalS: Type.Number({ exclusiveMinimum: 0 }),
      timeoutS: Type.Number({ exclusiveMinimum: 0 }),
      retries: Type.Integer({ minimum: 1 }),
      startPeriodS: Type.Number({ minimum: 0 }),
    }),
  ),
  stopSignal: Type.Optional(Type.Union(stopSignals.map((s) => Type.Literal(s)))),
  stopTimeoutS: Type.Optional(Type.Integer({ minimum: 0, maximum: limits.taskStopTimeoutSMax })),
});

export const AssignmentBody = Type.Object({
  taskId: Type.String({ minLength: 1, maxLength: 256 }),
  attempt: Counter(1),
  term: Counter(0),
  spec: TaskSpecSchema,
  desiredState: Type.Union([Type.Literal('run'), Type.Literal('stop')]),
  /** The leader's assignment span (W3C traceparent) when the task's submission was traced; a bad one is ignored. */
  traceparent: Type.Optional(Type.String({ maxLength: 512 })),
});
export type AssignmentBody = Static<typeof AssignmentBody>;

/** The items are checked one by one in the handler (against AssignmentBody), so that a bad one fails alone. */
export const AssignmentBatchBody = Type.Object(
  { assignments: Type.Array(Type.Unknown(), { minItems: 1, maxItems: limits.assignBatchMax }) },
  { additionalProperties: false },
);
export type AssignmentBatchBody = Static<typeof AssignmentBatchBody>;

export const TaskParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
export type TaskParams = Static<typeof TaskParams>;

/** Query strings carry text: the integers are parsed by hand (no coercion), so these are strings. */
export const StopQuery = Type.Object({ attempt: Type.String(), term: Type.String() }, { additionalProperties: false });
export type StopQuery = Static<typeof StopQuery>;

/** ?follow=true: the output as it is written, until the container has exited. */
export const FollowParam = Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')]));

export const LogsQuery = Type.Object({ tail: Type.Optional(TailParam), follow: FollowParam }, { additionalProperties: false });
export type LogsQuery = Static<typeof LogsQuery>;

export const WorkerTaskStatusReply = Type.Object({
  taskId: Type.String(),
  attempt: Type.Integer(),
  term: Type.Integer(),
  state: Type.String(),
  containerId: Nullable(Type.String()),
  exitCode: Nullable(Type.Integer()),
  error: Nullable(Type.Object({ class: Type.String(), message: Type.String() })),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
});

export const AssignmentBatchReply = Type.Object({
  items: Type.Array(
    Type.Union([
      Type.Object({ status: WorkerTaskStatusReply }),
      Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) }),
    ]),
  ),
});

export const WorkerTaskListReply = Type.Object({ items: Type.Array(WorkerTaskStatusReply), nextCursor: Type.Null() });

export const WorkerStatsReply = Type.Object({
  cpuUtilization: Nullable(Type.Number()),
  memoryTotalBytes: Type.Number(),
  memoryAvailableBytes: Type.Number(),
  diskFreeBytes: Type.Number(),
  runningTasks: Type.Integer(),
});
