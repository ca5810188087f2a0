// Who is calling, checked in onRequest before a body is read: cluster nodes by their verified client certificate,
// clients by an API token (or a session made from one), then the route's permission against the token's role.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { MinkubeError } from '../lib/errors.js';
import { identityFromCertificate, type NodeIdentity, type NodeRole } from '../security/ca.js';
import { authorize, escalation, type Policy, type Resource, type Verb } from '../security/policy.js';
import { verifySession } from '../security/sessions.js';
import { parseApiToken, secretMatches } from '../security/tokens.js';

export type Principal =
  | { kind: 'node'; id: string; role: NodeRole; clusterId: string }
  | { kind: 'token'; accessor: string; role: string; keyPrefix?: string; policy?: Policy; via: 'token' | 'session' };

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth plugin; null on open routes (and when the app runs without it). */
    principal: Principal | null;
    /**
     * Set by the auth plugin for a request a token (or a session) let in: whether that credential still lets it in
     * now, with the same role, prefix and policy (not revoked, not expired). A long answer (an event stream, a
     * followed log) asks it as it goes, and is cut when it no longer holds. null otherwise.
     */
    credentialHolds: ((this: FastifyRequest) => Promise<boolean>) | null;
  }
}

/**
 * What a route needs: a permission, nothing ('open': it may check a credential itself), or a cluster node. `every`:
 * the route hands out what would let its caller do anything (the session key, token hashes), so the token must hold
 * every permission there is, an admin's, besides the one named (a policy of `* *` with one deny is not enough).
 */
export type RoutePermission = { resource: Resource; verb: Verb; every?: string } | 'open' | 'node';

export interface TokenRecord {
  role: string;
  secretHash: string;
  keyPrefix?: string;
  policy?: Policy;
  expiresAtMs?: number | null;
}

export interface AuthPluginOptions {
  /** The live record of a token by its accessor; null when unknown or revoked. */
  resolveToken(accessor: string): TokenRecord | null | Promise<TokenRecord | null>;
  /** The key sessions are signed with; without it only API tokens are accepted. */
  sessionKey?: () => Uint8Array | null;
  /**
   * Whether this manager has applied the cluster's first admin token (its auth bootstrap). Before it, a token it does
   * not know may be that very token: the answer is 503 NOT_READY (retry, or ask another manager), not 401.
   */
  authReady?: () => boolean;
  /**
   * Whether this manager is recovering its storage: a NOT_READY for a token it cannot check then says so, with
   * `details: { storageRecovering: true }`, so that a client trying every manager leads with an intact one's answer.
   */
  storageRecovering?: () => boolean;
  /** Defaults to the manager's table (permissionFor below). */
  permissionFor?: (method: string, routeUrl: string) => RoutePermission | undefined;
  /**
   * Who a verified client certificate names (e.g. only nodes of this cluster; defaults to identityFromCertificate),
   * read once per connection; and, asked at every request, why that node may no longer speak with it (a manager
   * removed from the cluster since the certificate was issued), or null.
   */
  nodeAuth?: { peerIdentity: (cert: PeerCertificate) => NodeIdentity | null; refusal?: (identity: NodeIdentity) => string | null };
  /**
   * Asked, before anything else is done for it, about a request about to be refused for want of a valid credential
   * (401: none, or an unknown, revoked, expired or malformed token or session, or no node certificate): an error to
   * answer instead (429 RATE_LIMITED past its client address's bucket: RateLimiter.unauthenticated), or null.
   */
  limitUnauthenticated?: (req: FastifyRequest, reply: FastifyReply) => Error | null;
  /** For tests; Date.now by default. */
  nowMs?: () => number;
}

/** Who holds every permission: what a route with `every` compares its caller with. */
const everyPermission = { role: 'admin' } as const;
const rd = (resource: Resource): { resource: Resource; verb: Verb } => ({ resource, verb: 'read' });
const wr = (resource: Resource): { resource: Resource; verb: Verb } => ({ resource, verb: 'write' });

/** Every route of the managers' app, by 'METHOD url-pattern'. A route missing here is refused (see authPlugin). */
export const routePermissions: Record<string, RoutePermission> = {
  'GET /health': 'open',
  'GET /ready': 'open',
  'GET /v1/cluster': rd('cluster'),
  'GET /v1/cluster/members': rd('members'),
  'POST /v1/cluster/members': wr('members'),
  'DELETE /v1/cluster/members/:id': wr('members'),
  'POST /v1/cluster/leader': wr('leader'),
  // The leader's cluster-wide settings: read as the cluster's view is. A joining manager asks with its new certificate
  // (a manager's reaches every route).
  'GET /v1/cluster/settings': rd('cluster'),
  'PUT /v1/kv/*': wr('kv'),
  'GET /v1/kv/*': rd('kv'),
  'DELETE /v1/kv/*': wr('kv'),
  'POST /v1/tasks': wr('tasks'),
  'POST /v1/tasks/batch': wr('tasks'),
  'GET /v1/tasks': rd('tasks'),
  'GET /v1/tasks/:id': rd('tasks'),
  'DELETE /v1/tasks/:id': wr('tasks'),
  'GET /v1/tasks/:id/logs': rd('tasks'),
  'GET /v1/tasks/:id/placement': rd('tasks'),
  // Quotas bound every namespace: setting one is the cluster's administration, reading them is a cluster read.
  'PUT /v1/quotas/:namespace': wr('cluster'),
  'GET /v1/quotas': rd('cluster'),
  'GET /v1/workers': rd('workers'),
  'POST /v1/services': wr('services'),
  'GET /v1/services': rd('services'),
  'GET /v1/services/:name': rd('services'),
  'PATCH /v1/services/:name': wr('services'),
  'POST /v1/services/:name/rollback': wr('services'),
  'DELETE /v1/services/:name': wr('services'),
  'GET /v1/workers/:id': rd('workers'),
  'DELETE /v1/workers/:id': wr('workers'),
  'PUT /v1/workers/:id/availability': wr('workers'),
  // A backup holds every secret the cluster keeps (token hashes, the session key, secretEnv values): whoever reads one
  // can sign a session as any token, so it takes every permission (an admin's), snapshot:write among them.
  'GET /v1/snapshot': { ...wr('snapshot'), every: 'a snapshot holds the session key and every token hash, so only a token with every permission may take one' },
  // Removes finished task records due under tasks.retention now: admins and operators.
  'POST /v1/gc': wr('gc'),
  // What workers themselves call: registration, heartbeats and their assignments.
  'POST /v1/workers': 'node',
  'POST /v1/workers/:id/heartbeat': 'node',
  'GET /v1/workers/:id/assignments': 'node',
  // Snapshot chunks from the leader (SNAPSHOT_CHUNK_PATH in manager/snapshot-transfer.ts).
  'POST /internal/v1/raft/snapshot': 'node',
  'POST /v1/auth/tokens': wr('tokens'),
  'GET /v1/auth/tokens': rd('tokens'),
  'DELETE /v1/auth/tokens/:ref': wr('tokens'),
  // These two check a credential in their body themselves (an API token; a join token).
  'POST /v1/auth/login': 'open',
  'POST /v1/join': 'open',
  'GET /v1/join/ca': 'open',
  // A node renews its own certificate, presenting the current one.
  'POST /v1/certs/renew': 'node',
  'GET /v1/audit': rd('audit'),
  // The dashboard: its static files (public, no data) and its live feed.
  'GET /ui': 'open',
  'GET /ui/*': 'open',
  'GET /ui/vendor/preact/*': 'open',
  'GET /ui/vendor/preact-hooks/*': 'open',
  'GET /ui/vendor/htm/*': 'open',
  'GET /ui/vendor/uplot/*': 'open',
  'GET /v1/events': rd('cluster'),
  // The API's description and its explorer (src/api/openapi.ts): the same for everyone, no data of the cluster's.
  'GET /openapi.json': 'open',
  'GET /docs': 'open',
  'GET /docs/': 'open',
  'GET /docs/json': 'open',
  'GET /docs/yaml': 'open',
  'GET /docs/static/index.html': 'open',
  'GET /docs/static/swagger-initializer.js': 'open',
  'GET /docs/static/*': 'open',
  // Re-reads this manager's config file and applies what can change live: admins only (no built-in role but admin
  // writes the cluster resource).
  'POST /v1/admin/reload': wr('cluster'),
  'GET /metrics': rd('metrics'),
  // A worker's metrics through a manager: a worker's own API answers only managers' certificates.
  'GET /v1/workers/:id/metrics': rd('metrics'),
  // A public status page (up, degraded, down): no task, key or token data.
  'GET /status': 'open',
};

/** Every route of a worker's app: only managers (the leader) call them. */
export const workerRoutePermissions: Record<string, RoutePermission> = {
  'GET /health': 'open',
  'GET /ready': 'open',
  'POST /v1/tasks': 'node',
  'POST /v1/tasks/batch': 'node',
  'DELETE /v1/tasks/:id': 'node',
  'GET /v1/tasks': 'node',
  'GET /v1/tasks/:id': 'node',
  'GET /v1/tasks/:id/logs': 'node',
  'GET /v1/stats': 'node',
  'GET /metrics': 'node',
};

/** HEAD is answered by the GET route (fastify adds it), so it needs what GET needs. */
export function permissionIn(table: Record<string, RoutePermission>, method: string, routeUrl: string): RoutePermission | undefined {
  const m = method === 'HEAD' ? 'GET' : method;
  return Object.hasOwn(table, `${m} ${routeUrl}`) ? table[`${m} ${routeUrl}`] : undefined;
}

export function permissionFor(method: string, routeUrl: string): RoutePermission | undefined {
  return permissionIn(routePermissions, method, routeUrl);
}

function unauthenticated(reply: FastifyReply | null, message: string, details?: unknown): MinkubeError {
  if (reply !== null) void reply.header('www-authenticate', 'Bearer realm="minkube"');
  return new MinkubeError('UNAUTHENTICATED', message, details === undefined ? {} : { details });
}

const authPluginImpl: FastifyPluginAsync<AuthPluginOptions> = async (app, opts) => {
  const permissionOf = opts.permissionFor ?? permissionFor;
  const nowMs = opts.nowMs ?? Date.now;
  // A keep-alive connection presents its certificate once: read who it names once too.
  const identities = new WeakMap<TLSSocket, NodeIdentity | null>();
  const basePeerIdentity = opts.nodeAuth?.peerIdentity ?? identityFromCertificate;
  const refusal = opts.nodeAuth?.refusal;
  // Judged at every request, not once per connection: a keep-alive connection opened before a removal must not outlive it.
  const peerIdentity = refusal === undefined ? (socket: TLSSocket) => socketIdentity(socket, identities, basePeerIdentity) : (socket: TLSSocket, reply: FastifyReply) => {
    const identity = socketIdentity(socket, identities, basePeerIdentity);
    const why = identity === null ? null : refusal(identity);
    // details.removed: the refused node learns from it that it was removed (removal-watch.ts), a leader being out of its reach.
    if (why !== null) throw unauthenticated(reply, `${identity!.role} ${identity!.id}: ${why}`, { removed: true });
    return identity;
  };

  app.decorateRequest('principal', null);
  app.decorateRequest('credentialHolds', null);
  /** The request's token (or session) lets it in now as it did: the same role, prefix and policy. */
  async function tokenStillHolds(this: FastifyRequest): Promise<boolean> {
    const was = this.principal;
    if (was?.kind !== 'token') return true;
    try {
      const now = await tokenPrincipal(this.headers.authorization, null, opts, nowMs());
      return now.role === was.role && now.keyPrefix === was.keyPrefix && JSON.stringify(now.policy) === JSON.stringify(was.policy);
    } catch {
      return false;
    }
  }
  app.addHook('onRequest', async (req, reply) => {
    const routeUrl = req.routeOptions.url;
    if (routeUrl === undefined) return; // no such route: the 404 handler answers
    const permission = permissionOf(req.method, routeUrl);
    if (permission === undefined) {
      // Fail closed: a route someone forgot to list is nobody's until it is listed.
      throw new MinkubeError('FORBIDDEN', `no permission is defined for ${req.method} ${routeUrl}`);
    }
    if (permission === 'open') return;
    let principal: Principal;
    try {
      if (permission === 'node') principal = nodePrincipal(req, reply, peerIdentity);
      // A manager's certificate reaches every route: managers hold the CA key and write the log anyway. This is how a
      // follower forwards a membership change to the leader, and how a joining manager asks to be added.
      else principal = managerPrincipal(req, reply, peerIdentity) ?? (await tokenPrincipal(req.headers.authorization, reply, opts, nowMs()));
    } catch (err) {
      throw limitedInstead(err, req, reply, opts);
    }
    req.principal = principal;
    if (permission === 'node' || principal.kind === 'node') return;
    // One function for every request (called with the request as `this`): nothing is made per request on the hot path.
    req.credentialHolds = tokenStillHolds;
    const decision = authorize(principal, { resource: permission.resource, verb: permission.verb, ...keyNeed(req, permission.resource) });
    if (!decision.allowed) throw new MinkubeError('FORBIDDEN', `this token (role ${principal.role}) lacks ${decision.missing}`);
    if (permission.every !== undefined) {
      const missing = escalation(principal, everyPermission);
      if (missing !== null) throw new MinkubeError('FORBIDDEN', `this token (role ${principal.role}) lacks ${missing}: ${permission.every}`);
    }
  });
};

/**
 * A 401 is answered only while the caller's address has room in its bucket: guesses past it are 429, as any other
 * request without a token is, and cost no more than a bucket look-up each.
 */
function limitedInstead(err: unknown, req: FastifyRequest, reply: FastifyReply, opts: AuthPluginOptions): unknown {
  if (!(err instanceof MinkubeError) || err.code !== 'UNAUTHENTICATED' || opts.limitUnauthenticated === undefined) return err;
  const limited = opts.limitUnauthenticated(req, reply);
  if (limited === null) return err;
  void reply.removeHeader('www-authenticate');
  return limited;
}

// Like fastify-plugin: the hook and the decoration apply to the whole app, not only inside this plugin.
(authPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(authPluginImpl as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'minkube-auth';

/** Register before the routes: `void app.register(authPlugin, { resolveToken, ... })`. */
export const authPlugin: FastifyPluginAsync<AuthPluginOptions> = authPluginImpl;

function keyNeed(req: FastifyRequest, resource: Resource): { key?: string } {
  if (resource !== 'kv') return {};
  const key = (req.params as Record<string, unknown> | undefined)?.['*'];
  return typeof key === 'string' ? { key } : {};
}

/** Who a verified connection's certificate names (socketIdentity), or a 401 when that node may no longer speak. */
type SocketIdentity = (socket: TLSSocket, reply: FastifyReply) => NodeIdentity | null;

function nodePrincipal(req: FastifyRequest, reply: FastifyReply, peerIdentity: SocketIdentity): Principal {
  const socket = req.raw.socket as TLSSocket;
  if (socket.encrypted !== true) throw unauthenticated(reply, 'this route is for cluster nodes: connect over TLS with a node certificate');
  if (!socket.authorized) {
    // Node reports a certificate never sent as UNABLE_TO_GET_ISSUER_CERT: say what happened instead.
    const sent = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
    const why = !sent || socket.authorizationError === undefined || socket.authorizationError === null ? 'none was sent' : String(socket.authorizationError);
    throw unauthenticated(reply, `this route is for cluster nodes: no verified client certificate (${why})`);
  }
  const identity = peerIdentity(socket, reply);
  if (identity === null) throw unauthenticated(reply, 'the client certificate names no node of this cluster');
  return { kind: 'node', id: identity.id, role: identity.role, clusterId: identity.clusterId };
}

function managerPrincipal(req: FastifyRequest, reply: FastifyReply, peerIdentity: SocketIdentity): Principal | null {
  const socket = req.raw.socket as TLSSocket;
  if (socket.encrypted !== true || !socket.authorized) return null;
  const identity = peerIdentity(socket, reply);
  return identity?.role === 'manager' ? { kind: 'node', id: identity.id, role: identity.role, clusterId: identity.clusterId } : null;
}

/** Who a verified connection's certificate names: read once per connection (keep-alive presents it once). */
function socketIdentity(socket: TLSSocket, cache: WeakMap<TLSSocket, NodeIdentity | null>, peerIdentity: (cert: PeerCertificate) => NodeIdentity | null): NodeIdentity | null {
  let identity = cache.get(socket);
  if (identity === undefined) {
    identity = peerIdentity(socket.getPeerCertificate());
    cache.set(socket, identity);
  }
  return identity;
}

function bearerOf(header: string | undefined, reply: FastifyReply | null): string {
  if (header === undefined || header === '') throw unauthenticated(reply, 'no token: send Authorization: Bearer mk_...');
  const m = /^Bearer +(\S+) *$/i.exec(header);
  if (m === null) throw unauthenticated(reply, 'the Authorization header is not "Bearer <token>"');
  return m[1]!;
}

/** NOT_READY from a manager that cannot check a token while it recovers its storage: it says so, and its details too. */
function recoveringRefusal(message: string): MinkubeError {
  return new MinkubeError('NOT_READY', `this manager is recovering lost or damaged storage and cannot check the token: ${message}`, { details: { storageRecovering: true } });
}

/** The token principal an Authorization header names now; throws UNAUTHENTICATED (or NOT_READY) when it names none. */
async function tokenPrincipal(header: string | undefined, reply: FastifyReply | null, opts: AuthPluginOptions, nowMs: number): Promise<Principal & { kind: 'token' }> {
  const credential = bearerOf(header, reply);
  const parsed = parseApiToken(credential);
  let accessor: string;
  let via: 'token' | 'session';
  if (parsed !== null) {
    [accessor, via] = [parsed.accessor, 'token'];
  } else {
    const key = opts.sessionKey?.() ?? null;
    const session = key === null || !credential.includes('.') ? null : await verifySession(credential, key, new Date(nowMs));
    if (session === null) throw unauthenticated(reply, key !== null && credential.includes('.') ? 'invalid or expired session' : 'malformed token: expected mk_<accessor>_<secret>');
    [accessor, via] = [session.accessor, 'session'];
  }
  const record = await Promise.resolve(opts.resolveToken(accessor)).catch((err: unknown) => {
    throw err instanceof MinkubeError && err.code === 'NOT_READY' && opts.storageRecovering?.() === true ? recoveringRefusal(err.message) : err;
  });
  if (record === null && opts.authReady?.() === false) {
    const message = "this manager has not applied the cluster's first admin token yet (the cluster is starting, or this manager is catching up): retry, or ask another manager";
    throw opts.storageRecovering?.() === true ? recoveringRefusal(message) : new MinkubeError('NOT_READY', message);
  }
  if (record === null) throw unauthenticated(reply, 'unknown, revoked or expired token');
  if (parsed !== null && !secretMatches(parsed.secret, record.secretHash)) throw unauthenticated(reply, 'unknown, revoked or expired token');
  if (record.expiresAtMs != null && record.expiresAtMs <= nowMs) {
    throw unauthenticated(reply, `the token expired at ${new Date(record.expiresAtMs).toISOString()}`);
  }
  // The role comes from the live record, not the session: a changed or revoked token takes effect at once.
  const principal: Principal & { kind: 'token' } = { kind: 'token', accessor, role: record.role, via };
  if (record.keyPrefix !== undefined) principal.keyPrefix = record.keyPrefix;
  if (record.policy !== undefined) principal.policy = record.policy;
  return principal;
}
