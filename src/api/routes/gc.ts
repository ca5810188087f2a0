// POST /v1/gc: removes, through Raft, every finished task record due now under tasks.retention (what the leader's
// retention loop would remove over its next rounds) and answers { removed, tasks }. Admins and operators.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { RetentionService } from '../../contracts/services.js';
import { requestContext } from './kv.js';
import { takesNoBody } from '../validation.js';

const GcReply = Type.Object({ removed: Type.Integer(), tasks: Type.Integer() });

export const gcRoutes: FastifyPluginAsync<{ retention: RetentionService }> = async (app, { retention }) => {
  app.post('/v1/gc', { schema: { response: { 200: GcReply } }, preValidation: takesNoBody }, async (req) => retention.gc(requestContext(req)));
};
