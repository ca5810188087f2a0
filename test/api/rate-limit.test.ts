// Rate limits per caller: token buckets per API token by role, per client address without a token, none for cluster
// nodes. Through app.inject on the managers' app with a fake token table and a clock the test moves; nodes over HTTPS.
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { authPlugin, type TokenRecord } from '../../src/api/auth.js';
import { installErrorHandling } from '../../src/api/errors.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { RateLimiter, rateLimitPlugin, TokenBuckets, type RateLimitOptions } from '../../src/api/rate-limit.js';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { newApiToken } from '../../src/security/tokens.js';
import { FakeManagerService } from './fake-service.js';

const tokens = new Map<string, TokenRecord>();
let nowMs = 0;
const rateLimits: RateLimitOptions = {
  roles: { admin: { requestsPerS: 100, burst: 10 }, viewer: { requestsPerS: 2, burst: 3 } },
  anonymous: { requestsPerS: 1, burst: 2 },
  nowMs: () => nowMs,
};

function mint(role: string, extra: Partial<TokenRecord> = {}): string {
  const { token, accessor, secretHash } = newApiToken();
  tokens.set(accessor, { role, secretHash, ...extra });
  return token;
}

const security = { resolveToken: (a: string) => tokens.get(a) ?? null, sessionKey: () => null };
const app = buildManagerApp({ service: new FakeManagerService(), security, rateLimits });
afterAll(() => app.close());
beforeEach(() => {
  tokens.clear();
  nowMs += 3_600_000; // every bucket is full again
});

async function get(token: string, url = '/v1/cluster') {
  const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>(), retryAfter: res.headers['retry-after'] };
}

/** The statuses of n calls in a row, at the same instant. */
async function statuses(n: number, call: () => Promise<{ status: number }>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await call()).status);
  return out;
}

describe('API tokens', () => {
  it('answer 429 RATE_LIMITED with Retry-After in seconds once a viewer spends its burst', async () => {
    const viewer = mint('viewer');
    expect(await statuses(3, () => get(viewer))).toEqual([200, 200, 200]);
    const refused = await get(viewer);
    expect(refused).toEqual({
      status: 429,
      body: { error: { code: 'RATE_LIMITED', message: 'too many requests from this token (role viewer): at most 2/s, 3 at once; retry in 1 s' } },
      retryAfter: '1',
    });
  });

  it('limit each token on its own, at its role\'s rate', async () => {
    const [spent, fresh, admin] = [mint('viewer'), mint('viewer'), mint('admin')];
    await statuses(3, () => get(spent));
    expect((await get(spent)).status).toBe(429);
    expect(await statuses(3, () => get(fresh))).toEqual([200, 200, 200]);
    expect(await statuses(10, () => get(admin))).toEqual(Array(10).fill(200));
    expect((await get(admin)).status).toBe(429);
  });

  it('refill with time: two requests a second for a viewer, never more than its burst', async () => {
    const viewer = mint('viewer');
    await statuses(3, () => get(viewer));
    nowMs += 499;
    expect((await get(viewer)).status).toBe(429);
    nowMs += 1;
    expect(await statuses(2, () => get(viewer))).toEqual([200, 429]);
    nowMs += 60_000;
    expect(await statuses(4, () => get(viewer))).toEqual([200, 200, 200, 429]);
  });

  it('limit a role without an entry (a custom policy) like a viewer', async () => {
    const custom = mint('readers', { policy: { name: 'readers', rules: [{ effect: 'allow', resource: 'cluster', verbs: ['read'] }] } });
    expect(await statuses(4, () => get(custom))).toEqual([200, 200, 200, 429]);
  });

  it('count only callers the auth plugin let through: a refused token spends no bucket', async () => {
    const viewer = mint('viewer');
    const write = () => app.inject({ method: 'PUT', url: '/v1/kv/k', headers: { authorization: `Bearer ${viewer}` }, payload: { value: 'v' } });
    expect((await write()).statusCode).toBe(403);
    expect(await statuses(3, () => get(viewer))).toEqual([200, 200, 200]);
  });
});

describe('requests without a token', () => {
  const login = (remoteAddress: string) => app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress, payload: { token: 'mk_guess' } });

  it('are limited per client address on open routes', async () => {
    const first = [(await login('10.0.0.1')).statusCode, (await login('10.0.0.1')).statusCode];
    expect(first).not.toContain(429);
    const refused = await login('10.0.0.1');
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({ error: { code: 'RATE_LIMITED', message: 'too many requests from 10.0.0.1 without a token: at most 1/s, 2 at once; retry in 1 s' } });
    expect(refused.headers['retry-after']).toBe('1');
    expect((await login('10.0.0.2')).statusCode).not.toBe(429);
    nowMs += 1000;
    expect((await login('10.0.0.1')).statusCode).not.toBe(429);
  });

  it('to a path or method that does not exist are limited per address too, and the answer says so, token or not', async () => {
    const wrong = () => app.inject({ method: 'DELETE', url: '/v1/cluster', remoteAddress: '10.0.0.9', headers: { authorization: 'Bearer mk_0123456789abcdef_secret' } });
    const answers = [await wrong(), await wrong(), await wrong()];
    expect(answers.slice(0, 2).map((r) => r.statusCode)).toEqual([405, 405]);
    expect(answers[2]!.json()).toEqual({ error: { code: 'RATE_LIMITED', message: 'too many requests from 10.0.0.9 for paths or methods that do not exist (no token is checked there): at most 1/s, 2 at once; retry in 1 s' } });
  });

  it('are not limited on /health and /ready, which probes poll', async () => {
    const probe = (url: string) => app.inject({ method: 'GET', url, remoteAddress: '10.0.0.3' }).then((r) => ({ status: r.statusCode }));
    expect(await statuses(5, () => probe('/health'))).toEqual(Array(5).fill(200));
    expect(await statuses(5, () => probe('/ready'))).toEqual(Array(5).fill(200));
    expect((await login('10.0.0.3')).statusCode).not.toBe(429);
  });
});

describe('requests without a valid credential on routes that need one', () => {
  const kvGet = (remoteAddress: string, authorization?: string) =>
    app.inject({ method: 'GET', url: '/v1/kv/a', remoteAddress, headers: authorization === undefined ? {} : { authorization } });

  it.each([
    ['no Authorization header', undefined],
    ['an unknown mk_ token', 'Bearer mk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['a malformed token', 'Bearer guess'],
    ['a forged session', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
    ['another scheme', 'Basic dXNlcjpwYXNz'],
  ])('with %s: 401 while the address has room in its bucket, then 429 RATE_LIMITED', async (_what, authorization) => {
    const answers = [await kvGet('10.0.1.1', authorization), await kvGet('10.0.1.1', authorization), await kvGet('10.0.1.1', authorization)];
    expect(answers.map((r) => r.statusCode)).toEqual([401, 401, 429]);
    expect(answers[2]!.json()).toEqual({ error: { code: 'RATE_LIMITED', message: 'too many requests from 10.0.1.1 without a valid token: at most 1/s, 2 at once; retry in 1 s' } });
    expect(answers[2]!.headers['retry-after']).toBe('1');
    expect(answers[2]!.headers['www-authenticate']).toBeUndefined();
    // Another address has its own bucket; this one refills with time.
    expect((await kvGet('10.0.1.2', authorization)).statusCode).toBe(401);
    nowMs += 1000;
    expect((await kvGet('10.0.1.1', authorization)).statusCode).toBe(401);
  });

  it('share the bucket of their address with the open routes, and leave a valid token from that address its own', async () => {
    const viewer = mint('viewer');
    await app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: '10.0.1.3', payload: { token: 'mk_guess' } });
    expect((await kvGet('10.0.1.3')).statusCode).toBe(401);
    expect((await kvGet('10.0.1.3', 'Bearer mk_0123456789abcdef_x')).statusCode).toBe(429);
    expect((await app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: '10.0.1.3', payload: { token: 'mk_guess' } })).statusCode).toBe(429);
    const valid = await app.inject({ method: 'GET', url: '/v1/cluster', remoteAddress: '10.0.1.3', headers: { authorization: `Bearer ${viewer}` } });
    expect(valid.statusCode).toBe(200);
  });
});

describe('an app without security (insecure: true)', () => {
  it('limits nothing, even when given limits', async () => {
    const open = buildManagerApp({ service: new FakeManagerService(), rateLimits });
    try {
      expect(await statuses(10, async () => open.inject({ method: 'GET', url: '/v1/cluster' }).then((r) => ({ status: r.statusCode })))).toEqual(Array(10).fill(200));
    } finally {
      await open.close();
    }
  });
});

describe('cluster nodes', () => {
  it('are never limited: a worker\'s heartbeats and a manager\'s calls pass far past every bucket', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const issue = (id: string, role: 'manager' | 'worker') =>
      issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role, clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
    const [server, worker, manager] = await Promise.all([issue('m1', 'manager'), issue('w1', 'worker'), issue('m2', 'manager')]);
    const https = fastify({ https: { key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false } });
    installErrorHandling(https as unknown as FastifyInstance, 1024);
    void https.register(authPlugin, { resolveToken: () => null });
    void https.register(rateLimitPlugin, { limiter: new RateLimiter({ ...rateLimits, roles: {}, anonymous: { requestsPerS: 1, burst: 1 } }) });
    https.post('/v1/workers/:id/heartbeat', async () => ({ ok: true }));
    https.get('/v1/cluster', async () => ({ ok: true }));
    await https.listen({ port: 0, host: '127.0.0.1' });
    const { port } = https.server.address() as AddressInfo;
    const call = (method: string, path: string, client: { keyPem: string; certPem: string }) =>
      new Promise<{ status: number }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, method, path, ca: ca.certPem, key: client.keyPem, cert: client.certPem }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await statuses(5, () => call('POST', '/v1/workers/w1/heartbeat', worker))).toEqual(Array(5).fill(200));
      expect(await statuses(5, () => call('GET', '/v1/cluster', manager))).toEqual(Array(5).fill(200));
    } finally {
      await https.close();
    }
  });
});

describe('TokenBuckets', () => {
  it('says how long until the next token', () => {
    const buckets = new TokenBuckets(10);
    const limit = { requestsPerS: 4, burst: 1 };
    expect(buckets.take('a', limit, 0)).toEqual({ allowed: true });
    expect(buckets.take('a', limit, 100)).toEqual({ allowed: false, retryAfterMs: 150 });
    expect(buckets.take('a', limit, 250)).toEqual({ allowed: true });
  });

  it('adds nothing when the clock steps back', () => {
    const buckets = new TokenBuckets(10);
    const limit = { requestsPerS: 1, burst: 1 };
    expect(buckets.take('a', limit, 10_000).allowed).toBe(true);
    expect(buckets.take('a', limit, 0).allowed).toBe(false);
  });

  it('keeps at most its capacity, forgetting the least recently used (which starts full again)', () => {
    const buckets = new TokenBuckets(2);
    const limit = { requestsPerS: 1, burst: 1 };
    for (const key of ['a', 'b']) buckets.take(key, limit, 0);
    expect(buckets.take('a', limit, 0).allowed).toBe(false); // a is now the most recently used
    expect(buckets.take('c', limit, 0).allowed).toBe(true); // b is forgotten
    expect(buckets.size).toBe(2);
    expect(buckets.take('a', limit, 0).allowed).toBe(false);
    expect(buckets.take('b', limit, 0).allowed).toBe(true);
  });
});
