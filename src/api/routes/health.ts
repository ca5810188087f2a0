// GET /health (the process answers) and GET /ready (it can serve requests: 503 NOT_READY with the reason if not).
import type { FastifyPluginAsync } from 'fastify';
import { MinkubeError } from '../../lib/errors.js';
import { HealthReply, ReadyReply } from '../schemas.js';

export interface HealthRoutesOptions {
  ready(): { ready: boolean; reason?: string };
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, opts) => {
  app.get('/health', { schema: { response: { 200: HealthReply } } }, async () => ({ status: 'ok' as const }));
  app.get('/ready', { schema: { response: { 200: ReadyReply }, errorCodes: ['NOT_READY'] } }, async () => {
    const state = opts.ready();
    if (!state.ready) throw new MinkubeError('NOT_READY', state.reason);
    return { ready: true };
  });
};
