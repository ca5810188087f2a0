// The managers' HTTP API as a fastify app: cluster view, kv, health and readiness, over a ManagerService; tasks and
// workers over a TasksService; cluster membership over a MembershipService.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { authPlugin, type AuthPluginOptions } from './auth.js';
import { buildBaseApp, type HttpsOptions } from './http.js';
import { checkNodeCaller, checkNodeRole } from './node-callers.js';
import { RateLimiter, rateLimitPlugin, type RateLimitOptions } from './rate-limit.js';
import { insecureJoinRoutes, joinRoutes } from './routes/join.js';
import { insecureLoginRoutes, loginRoutes } from './routes/login.js';
import { clusterRoutes } from './routes/cluster.js';
import { raftInternalRoutes, type RaftPeerService } from './routes/raft-internal.js';
import { healthRoutes } from './routes/health.js';
import { kvRoutes } from './routes/kv.js';
import { memberRoutes } from './routes/members.js';
import { taskRoutes } from './routes/tasks.js';
import { serviceRoutes } from './routes/services.js';
import type { ServicesService } from '../contracts/service-model.js';
import { workerRoutes } from './routes/workers.js';
import type { AuditService, AuthService, JoinService, ManagerService, MembershipService, TasksService } from '../contracts/services.js';
import { authRoutes } from './routes/auth.js';
import { snapshotRoutes } from './routes/snapshot.js';
import { gcRoutes } from './routes/gc.js';
import type { BackupService, RetentionService } from '../contracts/services.js';
import { corsPlugin, memberOrigins } from './cors.js';
import { eventRoutes } from './routes/events.js';
import { uiRoutes } from './routes/ui.js';
import type { EventsService } from '../contracts/services.js';
import { auditRoutes, recordRequests } from './routes/audit.js';
import { limits } from '../lib/limits.js';
import { openApiPlugin } from './openapi.js';
import { tracingPlugin } from './tracing.js';
import { adminRoutes, type AdminService } from './routes/admin.js';
import { metricsRoutes, observeRequests, type MetricsEndpoint } from './routes/metrics.js';
import { statusRoutes, type StatusSource } from './routes/status.js';
import { placementRoutes } from './routes/placement.js';
import { quotaRoutes } from './routes/quotas.js';
import type { PlacementService } from '../contracts/placement.js';

export interface ManagerAppOptions {
  service: ManagerService;
  /** This manager's command version, said by GET /health (the leader asks it of every member before proposing). */
  commandVersion?: number;
  /** The task and worker routes are served when given. */
  tasks?: TasksService;
  /** The service routes (/v1/services) are served when given. */
  services?: ServicesService;
  /** GET /v1/tasks/:id/placement (task why) and the quota routes (/v1/quotas) are served when given. */
  placement?: PlacementService;
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
  /** The services' Clock.monoMs, which request deadlines are measured on (default performance.now()). */
  monoMs?: () => number;
  /** Serve HTTPS with these (a secure cluster). */
  https?: HttpsOptions;
  /**
   * Who may call what (a secure cluster): every route but /health, /ready and the two that check a credential in
   * their body needs a token with the route's permission, or a node certificate. Without it every route is open
   * (insecure: true).
   */
  security?: AuthPluginOptions;
  /** An insecure cluster (insecure: true): POST /v1/auth/tokens makes no API tokens, which nothing would ask for. */
  insecure?: boolean;
  /** Joining with a token and certificate renewal (a secure cluster). Without it or `security`, those routes answer 400: no CA. */
  join?: JoinService;
  /** The audit trail: GET /v1/audit is served, and every 401, 403 and 429 and every leadership transfer is recorded (a reload: by `admin`). */
  audit?: AuditService;
  /**
   * Token buckets per API token (by role) and per client address without a token; applied only with `security`
   * (insecure: true limits nothing). Without it nothing is limited.
   */
  rateLimits?: RateLimitOptions;
  /** POST /v1/admin/reload (this manager's config file, as SIGHUP). */
  admin?: AdminService;
  /** GET /v1/snapshot (a backup file), and GET /v1/cluster's `backup` status, when given. */
  backup?: BackupService;
  /** POST /v1/gc (finished task records due under tasks.retention) when given. */
  retention?: RetentionService;
  /** GET /v1/events, the dashboard's live feed, is served when given. */
  events?: EventsService;
  /** The dashboard at /ui (default true). */
  ui?: boolean;
  /** GET /metrics (and GET /v1/workers/:id/metrics with workerMetrics); observeRequest times every request. */
  metrics?: { endpoint: MetricsEndpoint; observeRequest?: (route: string, method: string, code: number, seconds: number) => void; workerMetrics?: (workerId: string) => Promise<string> };
  /** GET /status, open to anyone. */
  status?: StatusSource;
}

/** Builds the app without listening: call app.listen() to serve, or app.inject() in tests. */
export function buildManagerApp(opts: ManagerAppOptions): FastifyInstance {
  const base: Parameters<typeof buildBaseApp>[0] = {};
  if (opts.logger !== undefined) base.logger = opts.logger;
  if (opts.bodyLimitBytes !== undefined) base.bodyLimitBytes = opts.bodyLimitBytes;
  if (opts.requestTimeoutMs !== undefined) base.requestTimeoutMs = opts.requestTimeoutMs;
  if (opts.monoMs !== undefined) base.monoMs = opts.monoMs;
  if (opts.https !== undefined) base.https = opts.https;
  const app = buildBaseApp(base);
  // First: its onRoute hook documents every route registered after it (GET /openapi.json, /docs).
  void app.register(openApiPlugin, { secure: opts.security !== undefined });
  // traceparent on every request (a span, and the context the proposals carry on).
  void app.register(tracingPlugin);
  const { service } = opts;
  // Before the auth plugin: a preflight carries no credential. Only the members' own origins (the dashboard falling over).
  const scheme = opts.https === undefined ? 'http' : 'https';
  void app.register(corsPlugin, { origins: memberOrigins(scheme, () => memberApiAddresses(service)) });
  if (opts.metrics?.observeRequest !== undefined) observeRequests(app, opts.metrics.observeRequest);
  if (opts.security !== undefined) {
    const limiter = opts.rateLimits === undefined ? null : new RateLimiter(opts.rateLimits);
    // Before any route: the hooks it adds must run for all of them. A request it would answer 401 draws from its
    // address's bucket first, the one requests without a token share.
    const security: AuthPluginOptions = limiter === null ? opts.security : { ...opts.security, limitUnauthenticated: (req, reply) => limiter.unauthenticated(req, reply) };
    void app.register(authPlugin, security);
    // After the auth plugin: its onRequest hook names the caller whose bucket this one's takes from.
    if (limiter !== null) void app.register(rateLimitPlugin, { limiter });
    // A node certificate's role before the body is read (preParsing runs after every onRequest hook, the auth
    // plugin's included); its id once the body is parsed (registration names it there), before a schema error can answer.
    app.addHook('preParsing', (req, _reply, payload, done) => {
      try {
        checkNodeRole(req);
      } catch (err) {
        done(err as Error);
        return;
      }
      done(null, payload);
    });
    app.addHook('preValidation', async (req) => checkNodeCaller(req));
    void app.register(loginRoutes, { resolveToken: (accessor) => security.resolveToken(accessor), sessionKey: () => security.sessionKey?.() ?? null });
  } else {
    // insecure: the same routes, each saying why there is nothing to do rather than 404 "no route".
    void app.register(insecureLoginRoutes);
  }
  if (opts.audit !== undefined) recordRequests(app, opts.audit);
  if (opts.join !== undefined) void app.register(joinRoutes, { join: opts.join });
  else if (opts.security === undefined) void app.register(insecureJoinRoutes);
  void app.register(healthRoutes, { ready: () => service.ready(), ...(opts.commandVersion === undefined ? {} : { commandVersion: opts.commandVersion }) });
  if (opts.status !== undefined) void app.register(statusRoutes, { source: opts.status });
  if (opts.metrics !== undefined) {
    const { endpoint, workerMetrics } = opts.metrics;
    void app.register(metricsRoutes, workerMetrics === undefined ? { metrics: endpoint } : { metrics: endpoint, workerMetrics });
  }
  void app.register(clusterRoutes, opts.backup === undefined ? { service } : { service, backup: opts.backup });
  if (opts.backup !== undefined) void app.register(snapshotRoutes, { backup: opts.backup });
  if (opts.retention !== undefined) void app.register(gcRoutes, { retention: opts.retention });
  void app.register(kvRoutes, { service });
  if (opts.events !== undefined) void app.register(eventRoutes, { events: opts.events });
  if (opts.ui !== false) void app.register(uiRoutes);
  if (opts.tasks !== undefined) {
    void app.register(taskRoutes, { tasks: opts.tasks, bodyLimitBytes: opts.bodyLimitBytes ?? limits.httpBodyBytesDefault });
    void app.register(workerRoutes, { tasks: opts.tasks });
  }
  if (opts.services !== undefined) void app.register(serviceRoutes, { services: opts.services });
  if (opts.placement !== undefined) {
    void app.register(placementRoutes, { placement: opts.placement });
    void app.register(quotaRoutes, { placement: opts.placement });
  }
  if (opts.raftPeer !== undefined) void app.register(raftInternalRoutes, { raftPeer: opts.raftPeer });
  if (opts.auth !== undefined) void app.register(authRoutes, { auth: opts.auth, insecure: opts.insecure === true });
  if (opts.audit !== undefined) void app.register(auditRoutes, { audit: opts.audit });
  if (opts.admin !== undefined) void app.register(adminRoutes, { admin: opts.admin });
  if (opts.membership !== undefined) {
    void app.register(memberRoutes, { membership: opts.membership, bodyLimitBytes: opts.bodyLimitBytes ?? limits.httpBodyBytesDefault });
  }
  return app;
}

function memberApiAddresses(service: ManagerService): string[] {
  try {
    return service.knownApiAddresses?.() ?? service.cluster().members.map((m) => m.apiAddress);
  } catch {
    return []; // still starting
  }
}
