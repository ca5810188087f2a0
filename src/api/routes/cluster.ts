// GET /v1/cluster: the answering manager's view of the cluster (role, term, leader, indexes, members, backups). A
// manager that knows it is no member (removed) serves nothing, its view included: its view is stale, and shown it read
// as current (`minkube status` listed the members it removed as voters); 503 NOT_READY says why, as its other routes do.
import type { FastifyPluginAsync } from 'fastify';
import { ClusterReply, NoQuery } from '../schemas.js';
import type { BackupService, ManagerService } from '../../contracts/services.js';

export const clusterRoutes: FastifyPluginAsync<{ service: ManagerService; backup?: BackupService }> = async (app, { service, backup }) => {
  app.get('/v1/cluster', { schema: { querystring: NoQuery, response: { 200: ClusterReply }, errorCodes: ['NOT_READY'] } }, async () => {
    const notMember = service.notMemberError?.() ?? null;
    if (notMember !== null) throw notMember;
    return { ...service.cluster(), backup: backup?.status() ?? null };
  });
};
