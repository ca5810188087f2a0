// `task why`: GET /v1/tasks/:id/placement -> TaskPlacementView (contracts/placement.ts): where a task was placed, or
// for a pending one why each worker cannot take it. 404 TASK_NOT_FOUND.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { PlacementService } from '../../contracts/placement.js';
import { requestContext } from './kv.js';
import { TaskIdParams } from './tasks-schemas.js';
import { Nullable } from '../../lib/nullable.js';
import { NoQuery } from '../schemas.js';


/** TaskPlacementView, for the OpenAPI document (documentedResponse). */
const TaskPlacementReply = Type.Object(
  {
    taskId: Type.String(),
    state: Type.String(),
    priority: Type.Union([Type.Literal('high'), Type.Literal('normal'), Type.Literal('low')]),
    namespace: Type.String(),
    workerId: Nullable(Type.String()),
    notBefore: Nullable(Type.String({ description: 'ISO 8601: a pending retry waits for its backoff until then' })),
    lines: Type.Array(Type.String(), { description: 'one line per reason, as `minkube task why` prints them' }),
    workers: Type.Array(Type.Object({ workerId: Type.String(), eligible: Type.Boolean(), reason: Type.String() }), { description: "a pending task's verdict of every worker (empty otherwise)" }),
  },
  { description: 'where the task was placed, or why it waits' },
);

export interface PlacementRoutesOptions {
  placement: PlacementService;
}

export const placementRoutes: FastifyPluginAsync<PlacementRoutesOptions> = async (app, { placement }) => {
  app.get<{ Params: TaskIdParams }>('/v1/tasks/:id/placement', { schema: { params: TaskIdParams, querystring: NoQuery, documentedResponse: { 200: TaskPlacementReply } } }, async (req) => placement.taskPlacement(req.params.id, requestContext(req)));
};
