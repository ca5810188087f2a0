// GET /v1/audit's parameters and answer, the refusals the app records (401, 403, 429: principal, route template,
// request id), the leadership transfers and reloads it records, and the principal a request's context carries into
// its proposal. Through app.inject.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { authPlugin, type TokenRecord } from '../../src/api/auth.js';
import { buildBaseApp } from '../../src/api/http.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { auditRoutes, recordRequests } from '../../src/api/routes/audit.js';
import { kvRoutes } from '../../src/api/routes/kv.js';
import { loadClusterConfig } from '../../src/config/cluster.js';
import type { AuditLine, AuditQuery, AuditRefusedLine, AuditServedLine, AuditService, Page } from '../../src/contracts/services.js';
import { Reloader } from '../../src/daemon/reload.js';
import { systemClock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { AuditLog } from '../../src/manager/audit.js';
import { newApiToken } from '../../src/security/tokens.js';
import { ManualClock } from '../support/manual-clock.js';
import { FakeManagerService, FakeMembershipService } from './fake-service.js';

class FakeAudit implements AuditService {
  readonly queries: AuditQuery[] = [];
  readonly refusals: Omit<AuditRefusedLine, 'seq' | 'time'>[] = [];
  page: Page<AuditLine> = { items: [], nextCursor: null };

  refused(line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {
    this.refusals.push(line);
  }

  served(_line: Omit<AuditServedLine, 'seq' | 'time'>): void {}

  readonly rateLimitedLines: { client: string; line: Omit<AuditRefusedLine, 'seq' | 'time'> }[] = [];

  rateLimited(client: string, line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {
    this.rateLimitedLines.push({ client, line });
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
  recordRequests(app, audit);
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

  it('takes since as an ISO time or milliseconds, a principal, a limit, a cursor and ops to leave out', async () => {
    await get('/v1/audit?since=2030-01-01T00:00:10Z&principal=w1&limit=1000&cursor=42');
    await get('/v1/audit?since=1893456010000&limit=1');
    await get('/v1/audit?excludeOp=worker.heartbeat,put');
    expect(audit.queries).toEqual([
      { sinceMs: Date.parse('2030-01-01T00:00:10Z'), principal: 'w1', limit: 1000, afterSeq: 42 },
      { sinceMs: 1893456010000, limit: 1 },
      { limit: 100, excludeOps: ['worker.heartbeat', 'put'] },
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

  it('answers summary lines with and without a principal, and one a file holds without its client as (unknown)', async () => {
    const viewer = { token: 'a1b2c3d4e5f60718', role: 'viewer' };
    const summary = { seq: 2, time: 't', principal: viewer, outcome: 'RATE_LIMITED', client: '10.0.0.7', count: 9, since: 's', routes: { 'GET /v1/kv/*': 9 } };
    const { client: _c, ...clientless } = { ...summary, seq: 3, principal: null };
    audit.page = { items: [summary as AuditLine, clientless as unknown as AuditLine], nextCursor: null };
    const r = await get('/v1/audit');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ items: [summary, { ...clientless, client: '(unknown)' }], nextCursor: null });
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

describe('a flood of requests without a valid credential, through a manager app and its audit log on disk', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("costs the trail the bucket's 401s, the first 429 in full and one summary line per address per second; a token's 429s are counted the same way, under the token", async () => {
    dir = mkdtempSync(join(tmpdir(), 'minkube-audit-flood-'));
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
    const log = await AuditLog.open({ dir, clock, logger: pino({ level: 'silent' }), flushDelayMs: 0 });
    const rateLimits = { roles: { viewer: { requestsPerS: 1, burst: 3 } }, anonymous: { requestsPerS: 1, burst: 2 }, nowMs: () => clock.nowMs() };
    const app = buildManagerApp({ service, security: { resolveToken: (a) => tokens.get(a) ?? null }, rateLimits, audit: log });
    try {
      const viewer = mint('viewer');
      const statuses = new Map<number, number>();
      const send = async (headers: Record<string, string>, remoteAddress = '10.0.0.7') => {
        const status = (await app.inject({ method: 'GET', url: '/v1/kv/a', remoteAddress, headers })).statusCode;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      };
      for (let i = 0; i < 500; i++) await send({});
      for (let i = 0; i < 500; i++) await send({ authorization: 'Bearer mk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
      for (let i = 0; i < 10; i++) await send({ authorization: `Bearer ${viewer.token}` });
      expect(Object.fromEntries(statuses)).toEqual({ 401: 2, 429: 1005, 404: 3 });
      clock.advance(1000);
      for (let i = 0; i < 100; i++) await send({});
      clock.advance(1000);
      await log.close();

      const lines = readFileSync(join(dir, 'audit.log'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const shape = (l: Record<string, unknown>) => ('count' in l ? `summary ${l.client as string} x${l.count as number}` : `${l.outcome as string} ${l.principal === null ? '-' : 'viewer'}`);
      expect(lines.map(shape)).toEqual([
        'UNAUTHENTICATED -', 'UNAUTHENTICATED -', 'RATE_LIMITED -', 'RATE_LIMITED viewer',
        // The rest of the first second's 998 anonymous refusals and the viewer's 6; in the next second, the 401 the
        // address's bucket's one new token allowed, and its 99 refusals counted (the flood goes on: no 429 in full again).
        'summary 10.0.0.7 x997', 'summary 10.0.0.7 x6', 'UNAUTHENTICATED -', 'summary 10.0.0.7 x99',
      ]);
      const viewerSummary = lines.find((l) => 'count' in l && l.principal !== null);
      expect(viewerSummary).toMatchObject({ principal: { token: viewer.accessor, role: 'viewer' }, client: '10.0.0.7', count: 6, routes: { 'GET /v1/kv/*': 6 } });
    } finally {
      await app.close();
    }
  });
});

describe('a flood over HTTP/2 (h2c), from two addresses, through a manager app and its audit log on disk', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('counts each address as its own caller: req.ip, read once the stream is answered, is no address in HTTP/2', async () => {
    dir = mkdtempSync(join(tmpdir(), 'minkube-audit-h2-'));
    const log = await AuditLog.open({ dir, clock: systemClock, logger: pino({ level: 'silent' }), flushDelayMs: 0 });
    const rateLimits = { roles: {}, anonymous: { requestsPerS: 1, burst: 2 } };
    const app = buildManagerApp({ service, security: { resolveToken: () => null }, rateLimits, audit: log });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const port = (app.server.address() as AddressInfo).port;
      for (const from of ['127.0.0.2', '127.0.0.3']) {
        const session = http2Connect(`http://127.0.0.1:${port}`, { createConnection: () => netConnect({ host: '127.0.0.1', port, localAddress: from }) });
        for (let i = 0; i < 10; i++) {
          const stream = session.request({ ':path': '/v1/cluster' });
          stream.resume();
          await new Promise((resolve) => stream.on('close', resolve));
        }
        session.close();
      }
      await log.close();
      const lines = readFileSync(join(dir, 'audit.log'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const summaries = lines.filter((l) => 'count' in l).map((l) => [l.client, l.count]);
      // Per address: 2 answered 401 (its bucket), then 8 refused: the first in full, 7 counted.
      expect(summaries).toEqual([['127.0.0.2', 7], ['127.0.0.3', 7]]);
    } finally {
      await app.close();
    }
  });
});

describe('leadership transfers and reloads, through a manager app and its audit log on disk', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one line for each, with the principal, route, target, outcome and request id; a reload by SIGHUP too', async () => {
    dir = mkdtempSync(join(tmpdir(), 'minkube-audit-served-'));
    const configPath = join(dir, 'cluster.json');
    const writeConfig = (extra: Record<string, unknown>) =>
      writeFileSync(configPath, JSON.stringify({ insecure: true, managers: [{ id: 'm1', raftAddress: '127.0.41.1:41001', apiAddress: '127.0.41.1:41002', dataDir: 'm1' }], ...extra }));
    writeConfig({});
    const log = await AuditLog.open({ dir, clock: systemClock, logger: pino({ level: 'silent' }), flushDelayMs: 0 });
    const silent = pino({ level: 'silent' });
    const reloader = new Reloader({ node: 'manager', id: 'm1', configPath, running: await loadClusterConfig(configPath), logger: silent, loggers: [], audit: log });
    const app = buildManagerApp({ service, membership: new FakeMembershipService(), admin: reloader, audit: log, security: { resolveToken: (a) => tokens.get(a) ?? null } });
    try {
      const admin = mint('admin');
      const operator = mint('operator');
      const send = async (method: 'POST', url: string, requestId: string, token: string, payload?: object) =>
        (await app.inject({ method, url, headers: { authorization: `Bearer ${token}`, 'x-request-id': requestId }, ...(payload === undefined ? {} : { payload }) })).statusCode;
      expect(await send('POST', '/v1/cluster/leader', 'req-transfer', admin.token, { id: 'm2' })).toBe(200);
      expect(await send('POST', '/v1/cluster/leader', 'req-transfer-any', admin.token)).toBe(200);
      expect(await send('POST', '/v1/cluster/leader', 'req-transfer-m9', admin.token, { id: 'm9' })).toBe(404);
      writeConfig({ log: { level: 'debug' } });
      expect(await send('POST', '/v1/admin/reload', 'req-reload', admin.token)).toBe(200);
      writeConfig({ log: { level: 'debug' }, tasks: { workerTtlMs: 100 } });
      expect(await send('POST', '/v1/admin/reload', 'req-reload-bad', admin.token)).toBe(400);
      // Refused: the refusal's line, and no other.
      expect(await send('POST', '/v1/admin/reload', 'req-reload-403', operator.token)).toBe(403);
      writeConfig({ log: { level: 'warn' } });
      await reloader.reload(); // SIGHUP
      await log.flushed();

      const adminPrincipal = { token: admin.accessor, role: 'admin' };
      const lines = readFileSync(join(dir, 'audit.log'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map(({ seq: _seq, time: _time, ...rest }) => rest)).toEqual([
        { principal: adminPrincipal, route: 'POST /v1/cluster/leader', target: 'm2', outcome: 'ok', requestId: 'req-transfer' },
        { principal: adminPrincipal, route: 'POST /v1/cluster/leader', target: 'any', outcome: 'ok', requestId: 'req-transfer-any' },
        { principal: adminPrincipal, route: 'POST /v1/cluster/leader', target: 'm9', outcome: 'MEMBER_NOT_FOUND', requestId: 'req-transfer-m9' },
        { principal: adminPrincipal, route: 'POST /v1/admin/reload', target: 'log.level', outcome: 'ok', requestId: 'req-reload' },
        { principal: adminPrincipal, route: 'POST /v1/admin/reload', target: configPath, outcome: 'CONFIG_INVALID', requestId: 'req-reload-bad' },
        { principal: { token: operator.accessor, role: 'operator' }, route: 'POST /v1/admin/reload', outcome: 'FORBIDDEN', requestId: 'req-reload-403' },
        { principal: null, route: 'SIGHUP', target: 'log.level', outcome: 'ok', requestId: null },
      ]);
      // GET /v1/audit answers them whole, the target included.
      const page = await app.inject({ method: 'GET', url: `/v1/audit?principal=${admin.accessor}`, headers: { authorization: `Bearer ${admin.token}` } });
      expect(page.json<{ items: unknown[] }>().items).toEqual(lines.filter((l) => JSON.stringify(l.principal) === JSON.stringify(adminPrincipal)));
    } finally {
      await app.close();
      await log.close();
    }
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
