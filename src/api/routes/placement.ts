// `task why`: GET /v1/tasks/:id/placement -> TaskPlacementView (contracts/placement.ts): where a task was placed, or
// for a pending one why each worker cannot take it. 404 TASK_NOT_FOUND.
import type { FastifyPluginAsync } from 'fastify';
import type { PlacementService } from '../../contracts/placement.js';
import { requestContext } from './kv.js';
import { TaskIdParams } from './tasks-schemas.js';

export interface PlacementRoutesOptions {
  placement: PlacementService;
}

export const placementRoutes: FastifyPluginAsync<PlacementRoutesOptions> = async (app, { placement }) => {
  app.get<{ Params: TaskIdParams }>('/v1/tasks/:id/placement', { schema: { params: TaskIdParams } }, async (req) => placement.taskPlacement(req.params.id, requestContext(req)));
};
