// The worker's HTTP API as a fastify app: the leader assigns and stops tasks here; anyone may read statuses, logs
// and stats. Same base as the managers' app: JSON only, request ids and deadlines, one error handler.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { sendError } from './errors.js';
import { buildBaseApp, type HttpsOptions } from './http.js';
import { healthRoutes } from './routes/health.js';
import { tracingPlugin } from './tracing.js';
import { workerTaskRoutes, type WorkerAgentApi } from './routes/worker-tasks.js';
import { metricsRoutes, observeRequests, type MetricsEndpoint } from './routes/metrics.js';

export type { WorkerAgentApi };

export interface WorkerAppOptions {
  agent: WorkerAgentApi;
  /** A pino logger, or false (the default) for none. */
  logger?: FastifyBaseLogger | false;
  bodyLimitBytes?: number;
  /** Each request's deadline is its arrival plus this (default limits.requestTimeoutMsDefault). */
  requestTimeoutMs?: number;
  /** The agent's Clock.monoMs, which request deadlines (how long an assignment may wait) are measured on. */
  monoMs?: () => number;
  /** Serve HTTPS (a worker asks every caller for a certificate of the cluster CA). */
  https?: HttpsOptions;
  /**
   * Who may call, judged from the caller's verified certificate: null to let it through, else why not. Only managers
   * may: the routes start and stop processes. Every route but /health and /ready asks it; without it, anyone may.
   */
  admitCaller?: (cert: PeerCertificate) => string | null;
  /** GET /metrics (managers only, like every route here, in a secure cluster); observeRequest times every request. */
  metrics?: { endpoint: MetricsEndpoint; observeRequest?: (route: string, method: string, code: number, seconds: number) => void };
}

const openPaths: ReadonlySet<string> = new Set(['/health', '/ready']);

/** Builds the app without listening: call app.listen() to serve, or app.inject() in tests. */
export function buildWorkerApp(opts: WorkerAppOptions): FastifyInstance {
  const bodyLimitBytes = opts.bodyLimitBytes ?? limits.httpBodyBytesDefault;
  const base: Parameters<typeof buildBaseApp>[0] = { bodyLimitBytes };
  if (opts.logger !== undefined) base.logger = opts.logger;
  if (opts.requestTimeoutMs !== undefined) base.requestTimeoutMs = opts.requestTimeoutMs;
  if (opts.monoMs !== undefined) base.monoMs = opts.monoMs;
  if (opts.https !== undefined) base.https = opts.https;
  const app = buildBaseApp(base);
  const { agent, admitCaller } = opts;
  // traceparent on every request: an assignment's span goes on to its container's start.
  void app.register(tracingPlugin);
  if (admitCaller !== undefined) {
    app.addHook('onRequest', async (req, reply) => {
      if (openPaths.has(req.routeOptions.url ?? '')) return;
      const socket = req.raw.socket as Partial<TLSSocket>;
      const cert = socket.authorized === true && socket.getPeerCertificate !== undefined ? socket.getPeerCertificate() : null;
      const why = cert === null ? 'no client certificate of this cluster' : admitCaller(cert);
      if (why !== null) return sendError(new MinkubeError(cert === null ? 'UNAUTHENTICATED' : 'FORBIDDEN', `only the cluster's managers may call a worker: ${why}`), req, reply, bodyLimitBytes);
    });
  }
  if (opts.metrics?.observeRequest !== undefined) observeRequests(app, opts.metrics.observeRequest);
  void app.register(healthRoutes, { ready: () => agent.readiness() });
  if (opts.metrics !== undefined) void app.register(metricsRoutes, { metrics: opts.metrics.endpoint });
  void app.register(workerTaskRoutes, { agent, bodyLimitBytes });
  return app;
}
