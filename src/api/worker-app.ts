// The worker's HTTP API as a fastify app: the leader assigns and stops tasks here; anyone may read statuses, logs
// and stats. Same base as the managers' app: JSON only, request ids and deadlines, one error handler.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { limits } from '../lib/limits.js';
import { buildBaseApp } from './http.js';
import { healthRoutes } from './routes/health.js';
import { workerTaskRoutes, type WorkerAgentApi } from './routes/worker-tasks.js';

export type { WorkerAgentApi };

export interface WorkerAppOptions {
  agent: WorkerAgentApi;
  /** A pino logger, or false (the default) for none. */
  logger?: FastifyBaseLogger | false;
  bodyLimitBytes?: number;
  /** Each request's deadline is its arrival plus this (default limits.requestTimeoutMsDefault). */
  requestTimeoutMs?: number;
}

/** Builds the app without listening: call app.listen() to serve, or app.inject() in tests. */
export function buildWorkerApp(opts: WorkerAppOptions): FastifyInstance {
  const bodyLimitBytes = opts.bodyLimitBytes ?? limits.httpBodyBytesDefault;
  const base: Parameters<typeof buildBaseApp>[0] = { bodyLimitBytes };
  if (opts.logger !== undefined) base.logger = opts.logger;
  if (opts.requestTimeoutMs !== undefined) base.requestTimeoutMs = opts.requestTimeoutMs;
  const app = buildBaseApp(base);
  const { agent } = opts;
  void app.register(healthRoutes, { ready: () => agent.readiness() });
  void app.register(workerTaskRoutes, { agent, bodyLimitBytes });
  return app;
}
