// The worker's task routes (src/contracts/worker.ts): assign (one, or a batch), stop, list, get, logs, and the host
// stats.
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { sendError } from '../errors.js';
import { TextStreams } from '../text-stream.js';
import { checkSpecRules, parseIntegerParam, schemaProblem } from '../validation.js';
import {
  AssignmentBatchBody, AssignmentBatchReply, AssignmentBody, LogsQuery, StopQuery, TaskParams, WorkerStatsReply, WorkerTaskListReply, WorkerTaskStatusReply,
} from './worker-schemas.js';

export type { WorkerAgentApi } from '../../contracts/worker.js';
import type { WorkerAgentApi } from '../../contracts/worker.js';

export interface WorkerTaskRoutesOptions {
  agent: WorkerAgentApi;
  bodyLimitBytes: number;
}

const assignmentCheck = TypeCompiler.Compile(AssignmentBody);

/** A request waits for the agent until shortly before its deadline, then answers the status as it is. */
const answerMarginMs = 100;

export const workerTaskRoutes: FastifyPluginAsync<WorkerTaskRoutesOptions> = async (app, { agent, bodyLimitBytes }) => {
  const follows = new TextStreams(app, limits.logFollowsMax, 'followed logs', { node: 'this worker' });
  app.post<{ Body: AssignmentBody }>(
    '/v1/tasks',
    {
      schema: { body: AssignmentBody, response: { 200: WorkerTaskStatusReply } },
      // A body that fails the schema is a bad task spec, named as such (the message names the field).
      errorHandler: (err, req, reply) => {
        void sendError(asTaskSpecError(err), req, reply, bodyLimitBytes);
      },
    },
    async (req) => {
      checkSpecRules(req.body.spec, 'body.spec.');
      // This request's span (under the header's context) is the container start's parent.
      const a = req.traceparent === undefined ? req.body : { ...req.body, traceparent: req.traceparent };
      return agent.assign(a, { waitUntilMs: req.deadlineMs - answerMarginMs });
    },
  );

  // A batch of assignments from the leader: each is judged on its own (one bad item fails alone), all at once.
  app.post<{ Body: AssignmentBatchBody }>(
    '/v1/tasks/batch',
    { schema: { body: AssignmentBatchBody, response: { 200: AssignmentBatchReply } } },
    async (req) => {
      const waitUntilMs = req.deadlineMs - answerMarginMs;
      const items = await Promise.all(req.body.assignments.map(async (raw, i) => {
        // Worded as the single route words it (`body.taskId: missing`), under the item's name.
        if (!assignmentCheck.Check(raw)) return { error: { code: 'INVALID_TASK_SPEC', message: schemaProblem(assignmentCheck, raw, `assignments[${i}]`) } };
        try {
          checkSpecRules(raw.spec, `assignments[${i}].spec.`);
          return { status: await agent.assign(raw, { waitUntilMs }) };
        } catch (err) {
          const e = err instanceof MinkubeError ? err : new MinkubeError('INTERNAL', err instanceof Error ? err.message : String(err));
          return { error: { code: e.code, message: e.message } };
        }
      }));
      return { items };
    },
  );

  app.delete<{ Params: TaskParams; Querystring: StopQuery }>(
    '/v1/tasks/:id',
    { schema: { params: TaskParams, querystring: StopQuery, response: { 200: WorkerTaskStatusReply } } },
    async (req) => {
      const token = { taskId: req.params.id, attempt: requiredInteger('attempt', req.query.attempt), term: requiredInteger('term', req.query.term) };
      return agent.stop(token, { waitUntilMs: req.deadlineMs - answerMarginMs });
    },
  );

  app.get('/v1/tasks', { schema: { response: { 200: WorkerTaskListReply } } }, async () => ({ items: agent.list(), nextCursor: null }));

  app.get<{ Params: TaskParams }>(
    '/v1/tasks/:id',
    { schema: { params: TaskParams, response: { 200: WorkerTaskStatusReply } } },
    async (req) => agent.get(req.params.id),
  );

  app.get<{ Params: TaskParams; Querystring: LogsQuery }>(
    '/v1/tasks/:id/logs',
    { schema: { params: TaskParams, querystring: LogsQuery } },
    async (req, reply) => {
      const tail = parseIntegerParam('tail', req.query.tail, { min: 0, max: limits.logTailLinesMax }) ?? limits.runtimeLogTailLinesDefault;
      if (req.query.follow === 'true') return follows.serve(reply, (signal) => agent.followLogs(req.params.id, tail, signal));
      const text = await agent.logs(req.params.id, tail);
      return reply.type('text/plain; charset=utf-8').send(text);
    },
  );

  app.get('/v1/stats', { schema: { response: { 200: WorkerStatsReply } } }, async () => agent.stats());
};

function asTaskSpecError(err: FastifyError | Error): unknown {
  const e = err as Partial<FastifyError> & { validationContext?: string };
  if (err instanceof MinkubeError && err.code === 'INVALID_BODY' && e.validationContext === 'body') {
    return new MinkubeError('INVALID_TASK_SPEC', err.message);
  }
  return err;
}

function requiredInteger(name: string, text: string): number {
  const n = parseIntegerParam(name, text);
  if (n === undefined) throw new MinkubeError('INVALID_PARAM', `query.${name}: missing`);
  return n;
}

