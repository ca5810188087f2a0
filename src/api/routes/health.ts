// GET /health (the process answers) and GET /ready (it can serve requests: 503 NOT_READY with the reason if not).
import type { FastifyPluginAsync } from 'fastify';
import { buildInfo } from '../../lib/build-info.js';
import { MinkubeError } from '../../lib/errors.js';
import { HealthReply, ReadyReply } from '../schemas.js';

export interface HealthRoutesOptions {
  ready(): { ready: boolean; reason?: string };
  /** A manager's command version (kv/commands.ts), said so a leader proposes nothing newer; absent on a worker. */
  commandVersion?: number;
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, opts) => {
  const about = { ...(opts.commandVersion === undefined ? {} : { commandVersion: opts.commandVersion }), build: buildInfo() };
  app.get('/health', { schema: { response: { 200: HealthReply } } }, async () => ({ status: 'ok' as const, ...about }));
  app.get('/ready', { schema: { response: { 200: ReadyReply }, errorCodes: ['NOT_READY'] } }, async () => {
    const state = opts.ready();
    if (!state.ready) throw new MinkubeError('NOT_READY', state.reason);
    return { ready: true };
  });
};
