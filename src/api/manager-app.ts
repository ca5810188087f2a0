// The managers' HTTP API as a fastify app: cluster view, kv, health and readiness, over a ManagerService.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { buildBaseApp } from './http.js';
import { clusterRoutes } from './routes/cluster.js';
import { healthRoutes } from './routes/health.js';
import { kvRoutes } from './routes/kv.js';
import type { ManagerService } from './service.js';

export interface ManagerAppOptions {
  service: ManagerService;
  /** A pino logger, or false (the default) for none. */
  logger?: FastifyBaseLogger | false;
  bodyLimitBytes?: number;
  /** Each request's deadline is its arrival plus this (default limits.requestTimeoutMsDefault). */
  requestTimeoutMs?: number;
}

/** Builds the app without listening: call app.listen() to serve, or app.inject() in tests. */
export function buildManagerApp(opts: ManagerAppOptions): FastifyInstance {
  const base: Parameters<typeof buildBaseApp>[0] = {};
  if (opts.logger !== undefined) base.logger = opts.logger;
  if (opts.bodyLimitBytes !== undefined) base.bodyLimitBytes = opts.bodyLimitBytes;
  if (opts.requestTimeoutMs !== undefined) base.requestTimeoutMs = opts.requestTimeoutMs;
  const app = buildBaseApp(base);
  const { service } = opts;
  void app.register(healthRoutes, { ready: () => service.ready() });
  void app.register(clusterRoutes, { service });
  void app.register(kvRoutes, { service });
  return app;
}
