// The auth plugin: tokens and sessions for clients, verified certificates for nodes, permissions per route, all
// decided before a body is read. Through app.inject, and through a real HTTPS server for client certificates.
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { authPlugin, permissionFor, routePermissions, type TokenRecord } from '../../src/api/auth.js';
import { installErrorHandling } from '../../src/api/errors.js';
import { buildBaseApp } from '../../src/api/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { RaftPeerService } from '../../src/api/routes/raft-internal.js';
import { clusterRoutes } from '../../src/api/routes/cluster.js';
import { healthRoutes } from '../../src/api/routes/health.js';
import { kvRoutes } from '../../src/api/routes/kv.js';
import type { MembershipService, TasksService } from '../../src/contracts/services.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { signSession } from '../../src/security/sessions.js';
import { newApiToken } from '../../src/security/tokens.js';
import { FakeManagerService } from './fake-service.js';

const tokens = new Map<string, TokenRecord>();
const sessionKey = randomBytes(32);
/** Whether the stand-in manager has applied the cluster's auth bootstrap. */
let authReady = true;
let storageRecovering = false;
let nowMs = Date.parse('2030-01-01T00:00:00Z');

function mint(role: string, extra: Partial<TokenRecord> = {}): { token: string; accessor: string } {
  const { token, accessor, secretHash } = newApiToken();
  tokens.set(accessor, { role, secretHash, ...extra });
  return { token, accessor };
}

/** The real health, cluster and kv routes, and stand-ins for the others the table names, behind the plugin. */
function buildApp(): FastifyInstance {
  const app = buildBaseApp({});
  void app.register(authPlugin, { resolveToken: (a) => tokens.get(a) ?? null, sessionKey: () => sessionKey, authReady: () => authReady, storageRecovering: () => storageRecovering, nowMs: () => nowMs });
  const service = new FakeManagerService();
  void app.register(healthRoutes, { ready: () => service.ready() });
  void app.register(clusterRoutes, { service });
  void app.register(kvRoutes, { service });
  app.post('/v1/tasks', async (req) => ({ principal: req.principal }));
  app.get('/v1/tasks', async (req) => ({ principal: req.principal }));
  app.post('/v1/workers/:id/heartbeat', async (req) => ({ principal: req.principal }));
  app.get('/v1/unlisted', async () => ({ ok: true }));
  // An open route that checks a token in its body, as the log-in does.
  app.post('/v1/auth/login', async () => {
    throw new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token');
  });
  return app;
}

const app = buildApp();
afterAll(() => app.close());
beforeEach(() => {
  tokens.clear();
  nowMs = Date.parse('2030-01-01T00:00:00Z');
});

async function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD', url: string, token?: string, payload?: unknown) {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, body: res.body === '' ? null : res.json<Record<string, unknown>>(), headers: res.headers };
}

/** Every kv route with a token of `role` kept to team-a/: refused outside it, allowed inside it as far as the role goes. */
async function kvRoutesUnderPrefix(role: string, kvVerbs: readonly string[]): Promise<void> {
  const { token } = mint(role, { keyPrefix: 'team-a/' });
  const lacks = (verb: string, key: string) => ({ status: 403, body: { error: { code: 'FORBIDDEN', message: `this token (role ${role}) lacks kv:${verb} on key "${key}"` } } });
  for (const key of ['a', 'team-b/x', 'team-a', 'team-a%2Db/x']) {
    const decoded = decodeURIComponent(key);
    expect(await call('GET', `/v1/kv/${key}`, token), `GET ${key}`).toMatchObject(lacks('read', decoded));
    expect((await call('GET', `/v1/kv/${key}?consistency=stale`, token)).status).toBe(403);
    expect((await call('HEAD', `/v1/kv/${key}`, token)).status).toBe(403);
    expect(await call('PUT', `/v1/kv/${key}`, token, { value: 'x' }), `PUT ${key}`).toMatchObject(lacks('write', decoded));
    expect(await call('DELETE', `/v1/kv/${key}`, token), `DELETE ${key}`).toMatchObject(lacks('write', decoded));
  }
  // Under the prefix by its text, but a dot segment is no key: the route refuses it before the store sees it.
  expect(await call('GET', '/v1/kv/team-a/..%2Fa', token)).toMatchObject({ status: 400, body: { error: { code: 'INVALID_KEY' } } });
  const writes = kvVerbs.includes('write') ? 200 : 403;
  expect((await call('PUT', `/v1/kv/team-a/${role}`, token, { value: 'x' })).status).toBe(writes);
  // Read under the prefix: found when this role could write it, else not found (never refused).
  expect((await call('GET', `/v1/kv/team-a/${role}`, token)).status).toBe(writes === 200 ? 200 : 404);
  expect((await call('DELETE', `/v1/kv/team-a/${role}`, token)).status).toBe(writes);
}

describe('unauthenticated requests', () => {
  it('a 401 of an open route that checks a token itself (the log-in) carries the challenge too', async () => {
    const res = await call('POST', '/v1/auth/login', undefined, { token: 'mk_x_y' });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="minkube"');
  });

  it('pass on open routes', async () => {
    expect((await call('GET', '/health')).status).toBe(200);
    expect((await call('GET', '/ready')).status).toBe(200);
  });

  it.each([
    ['no token', undefined, /^no token/],
    ['a malformed token', 'mk_nope', /^malformed token/],
    ['an unknown token', newApiToken().token, /^unknown, revoked or expired token$/],
  ])('are 401 UNAUTHENTICATED with %s, and say so', async (_what, token, message) => {
    const res = await call('GET', '/v1/cluster', token);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'UNAUTHENTICATED', message: expect.stringMatching(message) } });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('are 503 NOT_READY, not 401, with a token this manager does not know before it has applied the auth bootstrap', async () => {
    authReady = false;
    try {
      const unknown = await call('GET', '/v1/cluster', newApiToken().token);
      expect(unknown.status).toBe(503);
      expect(unknown.body).toEqual({ error: { code: 'NOT_READY', message: expect.stringMatching(/^this manager has not applied the cluster's first admin token yet/) as unknown } });
      // A token it knows is served as ever; no token at all is still 401.
      const { token } = mint('admin');
      expect((await call('GET', '/v1/cluster', token)).status).toBe(200);
      expect((await call('GET', '/v1/cluster')).status).toBe(401);
    } finally {
      authReady = true;
    }
  });

  it('say so when this manager is recovering its storage, with details a client trying every manager reads (outside tester)', async () => {
    authReady = false;
    storageRecovering = true;
    try {
      const unknown = await call('GET', '/v1/cluster', newApiToken().token);
      expect(unknown.status).toBe(503);
      expect(unknown.body).toEqual({
        error: {
          code: 'NOT_READY',
          message: expect.stringMatching(/^this manager is recovering lost or damaged storage and cannot check the token: this manager has not applied/) as unknown,
          details: { storageRecovering: true },
        },
      });
    } finally {
      authReady = true;
      storageRecovering = false;
    }
  });

  it('are 401 with a known accessor but the wrong secret', async () => {
    const { accessor } = mint('admin');
    const forged = `mk_${accessor}_${'A'.repeat(43)}`;
    expect((await call('GET', '/v1/cluster', forged)).status).toBe(401);
  });

  it('are 401 with another scheme than Bearer', async () => {
    const { token } = mint('admin');
    const res = await app.inject({ method: 'GET', url: '/v1/cluster', headers: { authorization: `Basic ${token}` } });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { message: 'the Authorization header is not "Bearer <token>"' } });
  });

  it('are refused before the body is parsed', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: '{not json' });
    expect(res.statusCode).toBe(401);
  });

  it('reach the 404 handler on a route that does not exist', async () => {
    expect(await call('GET', '/v1/nothing-here')).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
  });
});

describe('tokens', () => {
  it('let an admin through, with who it is on the request', async () => {
    const { token, accessor } = mint('admin');
    expect((await call('GET', '/v1/cluster', token)).status).toBe(200);
    expect(await call('POST', '/v1/tasks', token, {})).toMatchObject({ status: 200, body: { principal: { kind: 'token', accessor, role: 'admin', via: 'token' } } });
  });

  it('are 403 FORBIDDEN naming the permission a viewer lacks, and let it read', async () => {
    const { token } = mint('viewer');
    expect((await call('GET', '/v1/tasks', token)).status).toBe(200);
    expect(await call('POST', '/v1/tasks', token, {})).toMatchObject({
      status: 403,
      body: { error: { code: 'FORBIDDEN', message: 'this token (role viewer) lacks tasks:write' } },
    });
  });

  it('need what GET needs for HEAD', async () => {
    expect((await call('HEAD', '/v1/cluster')).status).toBe(401);
    expect((await call('HEAD', '/v1/cluster', mint('viewer').token)).status).toBe(200);
  });

  it('stop working once revoked', async () => {
    const { token, accessor } = mint('admin');
    expect((await call('GET', '/v1/cluster', token)).status).toBe(200);
    tokens.delete(accessor);
    expect(await call('GET', '/v1/cluster', token)).toMatchObject({ status: 401, body: { error: { message: 'unknown, revoked or expired token' } } });
  });

  it('stop working once expired', async () => {
    const { token } = mint('admin', { expiresAtMs: nowMs + 1000 });
    expect((await call('GET', '/v1/cluster', token)).status).toBe(200);
    nowMs += 1000;
    expect(await call('GET', '/v1/cluster', token)).toMatchObject({ status: 401, body: { error: { message: /^the token expired at 2030-01-01T00:00:01/ } } });
  });

  it('keep a developer to its own kv prefix, checked on the routed key', async () => {
    const { token } = mint('developer', { keyPrefix: 'team-a/' });
    expect((await call('PUT', '/v1/kv/team-a/config', token, { value: 'x' })).status).toBe(200);
    expect((await call('GET', '/v1/kv/team-a/config', token)).status).toBe(200);
    expect(await call('PUT', '/v1/kv/team-b/config', token, { value: 'x' })).toMatchObject({
      status: 403,
      body: { error: { message: 'this token (role developer) lacks kv:write on key "team-b/config"' } },
    });
    // The prefix is checked on the decoded key, the one the route reads and writes.
    expect((await call('GET', '/v1/kv/team-a%2Fconfig', token)).status).toBe(200);
    expect((await call('GET', '/v1/kv/team-b%2Fconfig', token)).status).toBe(403);
  });

  it('keep a viewer, an operator or a developer with a key prefix to keys under it on every kv route', async () => {
    for (const [role, kvVerbs] of [['viewer', ['read']], ['operator', ['read']], ['developer', ['read', 'write']]] as const) {
      await kvRoutesUnderPrefix(role, kvVerbs);
    }
  });

  it('follow a custom policy attached to the token', async () => {
    const { token } = mint('ci', { policy: { name: 'ci', rules: [{ effect: 'allow', resource: 'tasks', verbs: ['*'] }] } });
    expect((await call('POST', '/v1/tasks', token, {})).status).toBe(200);
    expect(await call('GET', '/v1/cluster', token)).toMatchObject({ status: 403, body: { error: { message: 'this token (role ci) lacks cluster:read' } } });
  });

  it('refuse every caller on a route the table does not list', async () => {
    expect(await call('GET', '/v1/unlisted', mint('admin').token)).toMatchObject({ status: 403, body: { error: { code: 'FORBIDDEN' } } });
  });
});

describe('sessions', () => {
  it('are accepted with the role of their token as it is now, and end when the token is revoked', async () => {
    const { accessor } = mint('viewer');
    const jwt = await signSession({ accessor, role: 'admin' }, sessionKey, 900, new Date(nowMs));
    expect(await call('GET', '/v1/tasks', jwt)).toMatchObject({ status: 200, body: { principal: { accessor, role: 'viewer', via: 'session' } } });
    expect((await call('POST', '/v1/tasks', jwt, {})).status).toBe(403);
    tokens.delete(accessor);
    expect((await call('GET', '/v1/tasks', jwt)).status).toBe(401);
  });

  it('are 401 when expired or signed with another key', async () => {
    const { accessor } = mint('admin');
    const expired = await signSession({ accessor, role: 'admin' }, sessionKey, 60, new Date(nowMs - 61_000));
    expect(await call('GET', '/v1/cluster', expired)).toMatchObject({ status: 401, body: { error: { message: 'invalid or expired session' } } });
    const forged = await signSession({ accessor, role: 'admin' }, randomBytes(32), 900, new Date(nowMs));
    expect((await call('GET', '/v1/cluster', forged)).status).toBe(401);
  });
});

describe('limitUnauthenticated', () => {
  it('is asked before every 401, token and node routes alike, and its error answers instead; never for a caller it let through', async () => {
    const asked: string[] = [];
    let limited = false;
    const limitedApp = buildBaseApp({});
    void limitedApp.register(authPlugin, {
      resolveToken: (a) => tokens.get(a) ?? null,
      limitUnauthenticated: (req) => {
        asked.push(`${req.method} ${req.url}`);
        return limited ? new MinkubeError('RATE_LIMITED', 'too many') : null;
      },
    });
    limitedApp.get('/v1/tasks', async () => ({ ok: true }));
    limitedApp.post('/v1/tasks', async () => ({ ok: true }));
    limitedApp.post('/v1/workers/:id/heartbeat', async () => ({ ok: true }));
    try {
      const inject = (method: 'GET' | 'POST', url: string, token?: string) =>
        limitedApp.inject({ method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      expect((await inject('GET', '/v1/tasks', mint('viewer').token)).statusCode).toBe(200);
      expect((await inject('POST', '/v1/tasks', mint('viewer').token)).statusCode).toBe(403);
      expect(asked).toEqual([]);
      expect((await inject('GET', '/v1/tasks')).statusCode).toBe(401);
      expect((await inject('GET', '/v1/tasks', 'mk_0123456789abcdef_wrong')).statusCode).toBe(401);
      expect((await inject('POST', '/v1/workers/w1/heartbeat')).statusCode).toBe(401);
      limited = true;
      const refused = await inject('GET', '/v1/tasks', 'garbage');
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['www-authenticate']).toBeUndefined();
      expect((await inject('POST', '/v1/workers/w1/heartbeat')).statusCode).toBe(429);
      expect(asked).toEqual(['GET /v1/tasks', 'GET /v1/tasks', 'POST /v1/workers/w1/heartbeat', 'GET /v1/tasks', 'POST /v1/workers/w1/heartbeat']);
    } finally {
      await limitedApp.close();
    }
  });
});

describe('node routes', () => {
  it('refuse a token, however powerful, without a client certificate', async () => {
    expect(await call('POST', '/v1/workers/w1/heartbeat', mint('admin').token, {})).toMatchObject({
      status: 401,
      body: { error: { code: 'UNAUTHENTICATED', message: /cluster nodes/ } },
    });
  });

  it('over HTTPS, accept a node certificate of the cluster CA and refuse another CA\'s or none', async () => {
    const [ca, other] = await Promise.all([createClusterCa({ clusterId: 'c1' }), createClusterCa({ clusterId: 'c1' })]);
    const sans = { ips: ['127.0.0.1'], dns: ['localhost'] };
    const issue = (c: typeof ca, id: string, role: 'manager' | 'worker') =>
      issueNodeKeyAndCert({ caCertPem: c.certPem, caKeyPem: c.keyPem, id, role, clusterId: 'c1', sans });
    const [server, worker, stranger] = await Promise.all([issue(ca, 'm1', 'manager'), issue(ca, 'w1', 'worker'), issue(other, 'w1', 'worker')]);

    const https = fastify({ https: { key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false } });
    installErrorHandling(https as unknown as FastifyInstance, 1024);
    void https.register(authPlugin, { resolveToken: () => null });
    https.post('/v1/workers/:id/heartbeat', async (req) => ({ principal: req.principal }));
    await https.listen({ port: 0, host: '127.0.0.1' });
    const { port } = https.server.address() as AddressInfo;
    try {
      const post = (client: { keyPem: string; certPem: string } | null) =>
        new Promise<{ status: number; body: unknown }>((resolve, reject) => {
          const req = httpsRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/workers/w1/heartbeat', ca: ca.certPem, ...(client ? { key: client.keyPem, cert: client.certPem } : {}) }, (res) => {
            let data = '';
            res.on('data', (d: Buffer) => (data += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
          });
          req.on('error', reject);
          req.end();
        });
      expect(await post(worker)).toEqual({ status: 200, body: { principal: { kind: 'node', id: 'w1', role: 'worker', clusterId: 'c1' } } });
      expect(await post(stranger)).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHENTICATED', message: /no verified client certificate/ } } });
      // A certificate of another CA is named as unverified, and none at all as none sent (not an issuer error).
      expect(await post(stranger)).toMatchObject({ body: { error: { message: expect.not.stringContaining('none was sent') as string } } });
      expect(await post(null)).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHENTICATED', message: 'this route is for cluster nodes: no verified client certificate (none was sent)' } } });
    } finally {
      await https.close();
    }
  });
});

describe('the route table', () => {
  it('lists every route the managers\' app registers', async () => {
    const full = buildManagerApp({
      service: new FakeManagerService(),
      tasks: {} as TasksService,
      membership: {} as MembershipService,
      raftPeer: {} as RaftPeerService,
    });
    const routes: string[] = [];
    full.addHook('onRoute', (r) => {
      for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
    });
    await full.ready();
    await full.close();
    expect(routes.length).toBeGreaterThan(15);
    expect(routes.filter((r) => routePermissions[r] === undefined)).toEqual([]);
  });

  it('marks the routes workers and managers call as node routes, and health open', () => {
    expect(permissionFor('POST', '/v1/workers')).toBe('node');
    expect(permissionFor('GET', '/v1/workers/:id/assignments')).toBe('node');
    expect(permissionFor('POST', '/internal/v1/raft/snapshot')).toBe('node');
    expect(permissionFor('GET', '/health')).toBe('open');
    expect(permissionFor('POST', '/v1/join')).toBe('open');
    // A joining manager asks it with its new certificate; clients read it as they read the cluster's view.
    expect(permissionFor('GET', '/v1/cluster/settings')).toEqual({ resource: 'cluster', verb: 'read' });
    expect(permissionFor('DELETE', '/v1/auth/tokens/:ref')).toEqual({ resource: 'tokens', verb: 'write' });
    expect(permissionFor('GET', '/v1/nope')).toBeUndefined();
    expect(permissionFor('GET', 'constructor')).toBeUndefined();
  });
});
