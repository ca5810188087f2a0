// GET /v1/cluster: the answering manager's view of the cluster (role, term, leader, indexes, members, backups).
import type { FastifyPluginAsync } from 'fastify';
import { ClusterReply, NoQuery } from '../schemas.js';
import type { BackupService, ManagerService } from '../../contracts/services.js';

export const clusterRoutes: FastifyPluginAsync<{ service: ManagerService; backup?: BackupService }> = async (app, { service, backup }) => {
  app.get('/v1/cluster', { schema: { querystring: NoQuery, response: { 200: ClusterReply } } }, async () => ({ ...service.cluster(), backup: backup?.status() ?? null }));
};
