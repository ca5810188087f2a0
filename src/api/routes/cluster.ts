// GET /v1/cluster: the answering manager's view of the cluster (role, term, leader, indexes, members).
import type { FastifyPluginAsync } from 'fastify';
import { ClusterReply } from '../schemas.js';
import type { ManagerService } from '../../contracts/services.js';

export const clusterRoutes: FastifyPluginAsync<{ service: ManagerService }> = async (app, { service }) => {
  app.get('/v1/cluster', { schema: { response: { 200: ClusterReply } } }, async () => service.cluster());
};
