// The worker routes of every manager: registration, heartbeats and assignment lists (called by workers, see
// contracts/worker.ts), and GET /v1/workers for people and the CLI.
import type { FastifyPluginAsync } from 'fastify';
import { askableTaskIdPattern, workerAskTasksHeader, workerInstanceHeader, type HeartbeatRequest, type RegisterRequest } from '../../contracts/worker.js';
import type { TasksService } from '../../contracts/services.js';
import { certAddressParts } from '../../lib/address.js';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { NoQuery } from '../schemas.js';
import { requestContext } from './kv.js';
import { listLimit } from './tasks.js';
import {
  AssignmentListReply, ConsistencyQuery, HeartbeatBody, HeartbeatReply, RegisterBody, RegisterReply, WorkerIdParams, WorkerListQuery, WorkerListReply, WorkerRecordReply,
  WorkerAvailabilityBody, WorkerRemovedReply,
  workerInstancePattern,
} from './tasks-schemas.js';

export interface WorkerRoutesOptions {
  tasks: TasksService;
}

export const workerRoutes: FastifyPluginAsync<WorkerRoutesOptions> = async (app, { tasks }) => {
  app.post<{ Body: RegisterBody }>('/v1/workers', { schema: { body: RegisterBody, documentedResponse: { 200: RegisterReply }, errorCodes: ['WORKER_ADDRESS_IN_USE', 'JOIN_REFUSED'] } }, async (req) => {
    const { labels, capacity, instance, engine } = req.body;
    // Managers dial a worker at this address: the schema's shape (something:digits) let through port 0 or 99999,
    // "%:1" and "*.x:1", and every assignment to such a worker failed at once.
    const parts = certAddressParts(req.body.apiAddress);
    if (parts === null || parts.port === null) {
      throw new MinkubeError('INVALID_BODY', `body.apiAddress: ${JSON.stringify(req.body.apiAddress.slice(0, 300))} is not host:port (an IP address or an RFC 1123 host name, IPv6 in brackets, and a port 1..65535)`);
    }
    const body: RegisterRequest = {
      id: req.body.id, apiAddress: req.body.apiAddress, runtime: req.body.runtime,
      ...(labels === undefined ? {} : { labels }), ...(capacity === undefined ? {} : { capacity }), ...(instance === undefined ? {} : { instance }),
      ...(engine === undefined ? {} : { engine }),
    };
    return { worker: await tasks.registerWorker(body, requestContext(req)) };
  });

  app.post<{ Params: WorkerIdParams; Body: HeartbeatBody }>(
    '/v1/workers/:id/heartbeat',
    { schema: { params: WorkerIdParams, body: HeartbeatBody, documentedResponse: { 200: HeartbeatReply }, errorCodes: ['WORKER_REPLACED'] } },
    async (req) => tasks.workerHeartbeat(req.params.id, req.body as HeartbeatRequest, requestContext(req)),
  );

  app.get<{ Params: WorkerIdParams }>(
    '/v1/workers/:id/assignments',
    { schema: { params: WorkerIdParams, querystring: NoQuery, documentedResponse: { 200: AssignmentListReply }, errorCodes: ['WORKER_REPLACED'] } },
    async (req) => {
      const asked = askedTasks(req.headers[workerAskTasksHeader]);
      const items = await tasks.workerAssignments(req.params.id, requestContext(req), instanceHeader(req.headers[workerInstanceHeader]));
      return { items, nextCursor: null, ...(asked === undefined ? {} : { knownTaskIds: tasks.knownTaskIds(asked) }) };
    },
  );

  app.get<{ Querystring: WorkerListQuery }>('/v1/workers', { schema: { querystring: WorkerListQuery, documentedResponse: { 200: WorkerListReply } } }, async (req) => {
    const q = req.query;
    const query = { limit: listLimit(q.limit), consistency: q.consistency ?? 'linearizable', ...(q.cursor === undefined ? {} : { cursor: q.cursor }) } as const;
    return tasks.listWorkers(query, requestContext(req));
  });

  app.get<{ Params: WorkerIdParams; Querystring: ConsistencyQuery }>(
    '/v1/workers/:id',
    { schema: { params: WorkerIdParams, querystring: ConsistencyQuery, documentedResponse: { 200: WorkerRecordReply } } },
    async (req) => tasks.getWorker(req.params.id, req.query.consistency ?? 'linearizable', requestContext(req)),
  );

  // Drain, pause or activate: whether the leader places tasks there (a drain also moves its tasks away).
  app.put<{ Params: WorkerIdParams; Body: WorkerAvailabilityBody }>(
    '/v1/workers/:id/availability',
    { schema: { params: WorkerIdParams, body: WorkerAvailabilityBody, documentedResponse: { 200: WorkerRecordReply } } },
    async (req) => tasks.setWorkerAvailability(req.params.id, req.body.availability, requestContext(req)),
  );

  // A retired worker's record (down, no task placed on it): forgotten, so it no longer counts as a worker not ready.
  app.delete<{ Params: WorkerIdParams }>(
    '/v1/workers/:id',
    { schema: { params: WorkerIdParams, documentedResponse: { 200: WorkerRemovedReply }, errorCodes: ['WORKER_NOT_DOWN'] } },
    async (req) => tasks.removeWorker(req.params.id, requestContext(req)),
  );
};

/** The task ids a worker's GET assignments asks about (workerAskTasksHeader), or undefined when it asks none. */
function askedTasks(value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const ids = typeof value === 'string' ? value.split(',') : [];
  if (ids.length === 0 || ids.length > limits.workerAskTasksMax || ids.some((id) => !askableTaskIdPattern.test(id))) {
    throw new MinkubeError('INVALID_PARAM', `headers.${workerAskTasksHeader}: expected 1 to ${limits.workerAskTasksMax} task ids, comma-separated (lower-case letters, digits and -, at most 64 each)`);
  }
  return ids;
}

/** The asking instance a worker's GET assignments names in its header (absent: a worker that predates instances). */
function instanceHeader(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !workerInstancePattern.test(value)) {
    throw new MinkubeError('INVALID_PARAM', `headers.${workerInstanceHeader}: expected one worker instance id (letters, digits, _ and -, at most 64)`);
  }
  return value;
}
