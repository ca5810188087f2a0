// The managers' HTTP API as a fastify app: cluster view, kv, health and readiness, over a ManagerService; tasks and
// workers over a TasksService; cluster membership over a MembershipService.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { buildBaseApp } from './http.js';
import { clusterRoutes } from './routes/cluster.js';
import { raftInternalRoutes, type RaftPeerService } from './routes/raft-internal.js';
import { healthRoutes } from './routes/health.js';
import { kvRoutes } from './routes/kv.js';
import { memberRoutes } from './routes/members.js';
import { taskRoutes } from './routes/tasks.js';
import { workerRoutes } from './routes/workers.js';
import type { AuthService, ManagerService, MembershipService, TasksService } from './service.js';
import { authRoutes } from './routes/auth.js';
import { limits } from '../lib/limits.js';

export interface ManagerAppOptions {
  service: ManagerService;
  /** The task and worker routes are served when given. */
  tasks?: TasksService;
  /** The cluster membership routes (/v1/cluster/members, /v1/cluster/leader) are served when given. */
  membership?: MembershipService;
  /** The token routes (/v1/auth/tokens) are served when given. */
  auth?: AuthService;
  /** Manager-to-manager routes (snapshot chunks from the leader) are served when given. */
  raftPeer?: RaftPeerService;
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
  if (opts.tasks !== undefined) {
    void app.register(taskRoutes, { tasks: opts.tasks, bodyLimitBytes: opts.bodyLimitBytes ?? limits.httpBodyBytesDefault });
    void app.register(workerRoutes, { tasks: opts.tasks });
  }
  if (opts.raftPeer !== undefined) void app.register(raftInternalRoutes, { raftPeer: opts.raftPeer });
  if (opts.auth !== undefined) void app.register(authRoutes, { auth: opts.auth });
  if (opts.membership !== undefined) {
    void app.register(memberRoutes, { membership: opts.membership, bodyLimitBytes: opts.bodyLimitBytes ?? limits.httpBodyBytesDefault });
  }
  return app;
}
