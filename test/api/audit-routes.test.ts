// GET /v1/audit's parameters and answer, the refusals the app records (401, 403, 429: principal, route template,
// request id), and the principal a request's context carries into its proposal. Through app.inject.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { authPlugin, type TokenRecord } from '../../src/api/auth.js';
import { buildBaseApp } from '../../src/api/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { auditRoutes, recordRefusals } from '../../src/api/routes/audit.js';
import { kvRoutes } from '../../src/api/routes/kv.js';
import type { AuditLine, AuditQuery, AuditRefusedLine, AuditService, Page } from '../../src/contracts/services.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { newApiToken } from '../../src/security/tokens.js';
import { FakeManagerService } from './fake-service.js';

class FakeAudit implements AuditService {
  readonly queries: AuditQuery[] = [];
  readonly refusals: Omit<AuditRefusedLine, 'seq' | 'time'>[] = [];
  page: Page<AuditLine> = { items: [], nextCursor: null };

  refused(line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {
    this.refusals.push(line);
  }

  async query(q: AuditQuery): Promise<Page<AuditLine>> {
    this.queries.push(q);
    return this.page;
  }
}

const tokens = new Map<string, TokenRecord>();
function mint(role: string): { token: string; accessor: string } {
  const { token, accessor, secretHash } = newApiToken();
  tokens.set(accessor, { role, secretHash });
  return { token, accessor };
}

const audit = new FakeAudit();
const service = new FakeManagerService();

/** The auth plugin, the kv routes and the audit route, as a secure manager serves them. */
function buildSecureApp(): FastifyInstance {
  const app = buildBaseApp({});
  void app.register(authPlugin, { resolveToken: (a) => tokens.get(a) ?? null });
  recordRefusals(app, audit);
  void app.register(kvRoutes, { service });
  void app.register(auditRoutes, { audit });
  return app;
}

const secure = buildSecureApp();
const insecure = buildManagerApp({ service, audit });
afterAll(async () => Promise.all([secure.close(), insecure.close()]));
beforeEach(() => {
  audit.queries.length = 0;
  audit.refusals.length = 0;
  service.calls.length = 0;
  tokens.clear();
});

async function get(url: string, app = insecure): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ method: 'GET', url });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

describe('GET /v1/audit', () => {
  it('asks for the newest 100 lines by default, and answers the page', async () => {
    audit.page = {
      items: [{ seq: 3, time: '2030-01-01T00:00:00.000Z', index: 9, principal: { token: 'abc', role: 'admin' }, op: 'put', target: 'k', outcome: 'ok', requestId: 'r1' }],
      nextCursor: null,
    };
    const r = await get('/v1/audit');
    expect(r).toEqual({ status: 200, body: audit.page });
    expect(audit.queries).toEqual([{ limit: 100 }]);
  });

  it('takes since as an ISO time or milliseconds, a principal, a limit and a cursor', async () => {
    await get('/v1/audit?since=2030-01-01T00:00:10Z&principal=w1&limit=1000&cursor=42');
    await get('/v1/audit?since=1893456010000&limit=1');
    expect(audit.queries).toEqual([
      { sinceMs: Date.parse('2030-01-01T00:00:10Z'), principal: 'w1', limit: 1000, afterSeq: 42 },
      { sinceMs: 1893456010000, limit: 1 },
    ]);
  });

  it.each([
    ['since=yesterday', 'query.since'],
    ['since=2030-13-45T00:00:00Z', 'query.since'],
    ['since=2030-01-01', 'query.since'],
    ['limit=0', 'query.limit'],
    ['limit=1001', 'query.limit'],
    ['limit=ten', 'query.limit'],
    ['cursor=-1', 'query.cursor'],
    ['principal=', 'query.principal'],
    ['who=me', 'query'],
  ])('answers 400 INVALID_PARAM for %s', async (qs, field) => {
    const r = await get(`/v1/audit?${qs}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: 'INVALID_PARAM' } });
    expect((r.body.error as { message: string }).message.startsWith(field)).toBe(true);
    expect(audit.queries).toEqual([]);
  });

  it('answers only the fields of a line, whatever else a file holds', async () => {
    const line = { seq: 1, time: 't', principal: null, route: 'GET /v1/kv/*', outcome: 'UNAUTHENTICATED', requestId: 'r', token: 'mk_secret' };
    audit.page = { items: [line as AuditLine], nextCursor: '1' };
    const r = await get('/v1/audit');
    expect(r.body).toEqual({ items: [{ seq: 1, time: 't', principal: null, route: 'GET /v1/kv/*', outcome: 'UNAUTHENTICATED', requestId: 'r' }], nextCursor: '1' });
  });

  it('is for admins only in a secure cluster', async () => {
    const viewer = mint('viewer');
    const admin = mint('admin');
    const asViewer = await secure.inject({ method: 'GET', url: '/v1/audit', headers: { authorization: `Bearer ${viewer.token}` } });
    const asAdmin = await secure.inject({ method: 'GET', url: '/v1/audit', headers: { authorization: `Bearer ${admin.token}` } });
    expect([asViewer.statusCode, asAdmin.statusCode]).toEqual([403, 200]);
  });
});

describe('refused requests', () => {
  it('records a 401 with no principal, the route template (not the URL) and the request id', async () => {
    const res = await secure.inject({ method: 'GET', url: '/v1/kv/app/secret-name?consistency=stale', headers: { 'x-request-id': 'req-401' } });
    expect(res.statusCode).toBe(401);
    expect(audit.refusals).toEqual([{ principal: null, route: 'GET /v1/kv/*', outcome: 'UNAUTHENTICATED', requestId: 'req-401' }]);
  });

  it('records a 403 with the token that was refused, never the token itself', async () => {
    const viewer = mint('viewer');
    const res = await secure.inject({ method: 'PUT', url: '/v1/kv/k', headers: { authorization: `Bearer ${viewer.token}`, 'x-request-id': 'req-403' }, payload: { value: 'v' } });
    expect(res.statusCode).toBe(403);
    expect(audit.refusals).toEqual([{ principal: { token: viewer.accessor, role: 'viewer' }, route: 'PUT /v1/kv/*', outcome: 'FORBIDDEN', requestId: 'req-403' }]);
    expect(JSON.stringify(audit.refusals)).not.toContain(viewer.token);
  });

  it('records a 429 by its code, and nothing for answers that are not refusals', async () => {
    service.failNext = new MinkubeError('QUEUE_FULL');
    expect((await insecure.inject({ method: 'PUT', url: '/v1/kv/k', payload: { value: 'v' }, headers: { 'x-request-id': 'req-429' } })).statusCode).toBe(429);
    expect((await insecure.inject({ method: 'GET', url: '/v1/kv/missing' })).statusCode).toBe(404);
    expect((await insecure.inject({ method: 'PUT', url: '/v1/kv/k', payload: { value: 'v' } })).statusCode).toBe(200);
    expect(audit.refusals).toEqual([{ principal: null, route: 'PUT /v1/kv/*', outcome: 'QUEUE_FULL', requestId: 'req-429' }]);
  });
});

describe('the principal in a request context', () => {
  it('is the token (accessor and role) in a secure cluster, and absent in an insecure one', async () => {
    const admin = mint('admin');
    await secure.inject({ method: 'PUT', url: '/v1/kv/k', headers: { authorization: `Bearer ${admin.token}` }, payload: { value: 'v' } });
    await insecure.inject({ method: 'PUT', url: '/v1/kv/k', payload: { value: 'v' } });
    expect(service.calls.map((c) => c.ctx.principal)).toEqual([{ a: admin.accessor, r: 'admin' }, undefined]);
  });
});
