// The task routes of every manager: submit (with Idempotency-Key), list, get, stop, logs. A follower proposes through
// Raft and reads linearizably like the kv routes; lists answer { items, nextCursor } where the cursor is the last id.
//
//   POST   /v1/tasks            TaskSpec -> 201 { id, state }; 400 INVALID_TASK_SPEC naming the field. With the same
//                               Idempotency-Key header (1..256 printable ASCII) a retry answers the task created first;
//                               the same key with another spec is 422 IDEMPOTENCY_KEY_REUSED.
//   POST   /v1/tasks/batch      { tasks: TaskSpec[] } (1..1000) -> 201 { items: [{ id, state }] } in the order given; all
//                               are created in one Raft entry, or none (429 QUEUE_FULL). Idempotency-Key as above: a
//                               retried batch answers the tasks the first one created.
//   GET    /v1/tasks            ?state=&workerId=&limit=(1..1000, default 100)&cursor=&consistency= -> { items, nextCursor }
//                               in creation (id) order; workerId lists the tasks whose latest attempt is on that worker.
//   GET    /v1/tasks/:id        the record (spec, state, desiredState, workerId, attempt, term, containerId, exitCode,
//                               error { class, message } | null, notBeforeMs, createdAt, updatedAt, history); 404 TASK_NOT_FOUND
//                               Every record answered here goes through taskView: secretEnv values read "<redacted>".
//   DELETE /v1/tasks/:id        desired state stop -> 200 with the record. A pending task is stopped at once; a placed one
//                               when its worker confirms (the leader sends the stop, fenced like an assignment). Stopping a
//                               stopped task is 200 again (idempotent); one that succeeded or failed is 409 TASK_ALREADY_FINAL.
//   GET    /v1/tasks/:id/logs   ?tail=N -> text/plain from the worker of the latest attempt; 503 WORKER_UNAVAILABLE if it
//                               does not answer, 410 TASK_LOGS_GONE if it no longer keeps the output. &follow=true: then
//                               the output as it is written (chunked), ended once that attempt's container has exited.
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TaskSpec, TaskState } from '../../contracts/task-model.js';
import { TaskSpecSchema, taskView, type TaskSpecBody } from '../../kv/task-spec.js';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { idempotencyKeyPattern } from '../../lib/patterns.js';
import { sendError } from '../errors.js';
import { TextStreams } from '../text-stream.js';
import type { TasksService } from '../../contracts/services.js';
import { checkSpecRules, parseIntegerParam } from '../validation.js';
import { requestContext } from './kv.js';
import { bodyAnswer, textSchema } from '../documented-answers.js';
import { ConsistencyQuery, SubmitBatchReply, SubmitReply, TaskIdParams, TaskListQuerySchema, TaskListReply, TaskLogsQuery, TaskRecordReply } from './tasks-schemas.js';

export interface TaskRoutesOptions {
  tasks: TasksService;
  bodyLimitBytes: number;
}

const BatchBody = Type.Object(
  { tasks: Type.Array(TaskSpecSchema, { minItems: 1, maxItems: limits.taskBatchMax }) },
  { additionalProperties: false },
);

const idempotencyKeyRegex = new RegExp(idempotencyKeyPattern);

/** The Idempotency-Key header as the document shows it (idempotencyKeyOf checks it, with its own message). */
const IdempotencyKeyHeader = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1, maxLength: limits.idempotencyKeyBytesMax, pattern: idempotencyKeyPattern,
      description: 'A retry with the same key answers what the first request created; the same key with another body is 422 IDEMPOTENCY_KEY_REUSED',
    }),
  ),
});
/** A submission past its namespace's quota (in insecure clusters too), or a retry with another spec. */
const submissionErrors = ['QUOTA_EXCEEDED', 'IDEMPOTENCY_KEY_REUSED'] as const;
const logsAnswer = bodyAnswer("the container's output, from the worker of the latest attempt (follow=true: chunked, as it is written)", { 'text/plain': textSchema });

export const taskRoutes: FastifyPluginAsync<TaskRoutesOptions> = async (app, { tasks, bodyLimitBytes }) => {
  const follows = new TextStreams(app, limits.logFollowsMax, 'followed logs', { node: 'this manager' });
  app.post<{ Body: TaskSpecBody }>(
    '/v1/tasks',
    {
      schema: { body: TaskSpecSchema, documentedHeaders: IdempotencyKeyHeader, response: { 201: SubmitReply }, errorCodes: submissionErrors },
      // A body that fails the schema is a bad task spec, named as such (the message names the field).
      errorHandler: (err, req, reply) => {
        void sendError(asTaskSpecError(err), req, reply, bodyLimitBytes);
      },
    },
    async (req, reply) => {
      checkSpecRules(req.body, 'spec.');
      const task = await tasks.submitTask(req.body as TaskSpec, idempotencyKeyOf(req), requestContext(req));
      return reply.code(201).send({ id: task.id, state: task.state });
    },
  );

  app.post<{ Body: { tasks: TaskSpecBody[] } }>(
    '/v1/tasks/batch',
    {
      schema: { body: BatchBody, documentedHeaders: IdempotencyKeyHeader, response: { 201: SubmitBatchReply }, errorCodes: submissionErrors },
      errorHandler: (err, req, reply) => {
        void sendError(asTaskSpecError(err, 'batch'), req, reply, bodyLimitBytes);
      },
    },
    async (req, reply) => {
      for (const [i, spec] of req.body.tasks.entries()) checkSpecRules(spec, `tasks[${i}].`);
      const created = await tasks.submitTasks(req.body.tasks as TaskSpec[], idempotencyKeyOf(req), requestContext(req));
      return reply.code(201).send({ items: created.map((t) => ({ id: t.id, state: t.state })) });
    },
  );

  app.get<{ Querystring: TaskListQuerySchema }>('/v1/tasks', { schema: { querystring: TaskListQuerySchema, documentedResponse: { 200: TaskListReply } } }, async (req) => {
    const q = req.query;
    const query: Parameters<TasksService['listTasks']>[0] = {
      limit: listLimit(q.limit),
      consistency: q.consistency ?? 'linearizable',
      ...(q.state === undefined ? {} : { state: q.state as TaskState }),
      ...(q.workerId === undefined ? {} : { workerId: q.workerId }),
      ...(q.name === undefined ? {} : { name: q.name }),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
    };
    const page = await tasks.listTasks(query, requestContext(req));
    return { items: page.items.map(taskView), nextCursor: page.nextCursor };
  });

  app.get<{ Params: TaskIdParams; Querystring: ConsistencyQuery }>(
    '/v1/tasks/:id',
    { schema: { params: TaskIdParams, querystring: ConsistencyQuery, documentedResponse: { 200: TaskRecordReply } } },
    async (req) => taskView(await tasks.getTask(req.params.id, req.query.consistency ?? 'linearizable', requestContext(req))),
  );

  app.delete<{ Params: TaskIdParams }>('/v1/tasks/:id', { schema: { params: TaskIdParams, documentedResponse: { 200: TaskRecordReply } } }, async (req) =>
    taskView(await tasks.stopTask(req.params.id, requestContext(req))),
  );

  app.get<{ Params: TaskIdParams; Querystring: TaskLogsQuery }>(
    '/v1/tasks/:id/logs',
    { schema: { params: TaskIdParams, querystring: TaskLogsQuery, documentedResponse: { 200: logsAnswer }, errorCodes: ['TASK_LOGS_GONE', 'WORKER_UNAVAILABLE'] } },
    async (req, reply) => {
      const tail = parseIntegerParam('tail', req.query.tail, { min: 0, max: limits.logTailLinesMax }) ?? limits.runtimeLogTailLinesDefault;
      if (req.query.follow === 'true') return follows.serve(reply, (signal) => tasks.followTaskLogs(req.params.id, tail, requestContext(req), signal));
      const text = await tasks.taskLogs(req.params.id, tail, requestContext(req));
      return reply.type('text/plain; charset=utf-8').send(text);
    },
  );
};

/** ?limit=: 1..listLimitMax, default listLimitDefault. */
export function listLimit(text: string | undefined): number {
  return parseIntegerParam('limit', text, { min: 1, max: limits.listLimitMax }) ?? limits.listLimitDefault;
}

function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const key = Array.isArray(raw) ? raw[0] : raw;
  if (key === undefined || key.length === 0 || key.length > limits.idempotencyKeyBytesMax || !idempotencyKeyRegex.test(key)) {
    throw new MinkubeError('INVALID_PARAM', `header Idempotency-Key: 1..${limits.idempotencyKeyBytesMax} printable ASCII characters`);
  }
  return key;
}

/** A schema failure of the body as INVALID_TASK_SPEC, its path starting at `root` ('spec.image', 'tasks[3].image'). */
function asTaskSpecError(err: FastifyError | Error, root: 'spec' | 'batch' = 'spec'): unknown {
  const e = err as Partial<FastifyError> & { validationContext?: string };
  if (err instanceof MinkubeError && err.code === 'INVALID_BODY' && e.validationContext === 'body') {
    // A batch's field names its spec (tasks[3].image); the body as a whole stays `body` (body: expected object). Every
    // field the message names, not only the first: fields missing together come as `body.a: missing; body.b: missing`.
    return new MinkubeError('INVALID_TASK_SPEC', root === 'spec' ? err.message.replace(/(^|; )body\b/g, '$1spec') : err.message.replace(/(^|; )body\./g, '$1'));
  }
  return err;
}
