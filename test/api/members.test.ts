// The membership routes through app.inject with a fake MembershipService: status codes, shapes, validation (400
// INVALID_MEMBER naming the field), and the service's errors passed through with their statuses.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { MinkubeError, type ErrorCode } from '../../src/lib/errors.js';
import { defaultView, FakeManagerService, FakeMembershipService, fakeSettings } from './fake-service.js';

const membership = new FakeMembershipService();
const app = buildManagerApp({ service: new FakeManagerService(), membership, bodyLimitBytes: 1024, requestTimeoutMs: 1500 });
const bare = buildManagerApp({ service: new FakeManagerService() });
afterAll(() => Promise.all([app.close(), bare.close()]));
beforeEach(() => {
  membership.members = defaultView().members.map((m) => ({ ...m }));
  membership.leaderId = 'm1';
  membership.term = 3;
  membership.calls.length = 0;
  membership.failNext = null;
  membership.settings = fakeSettings();
});

type Method = 'GET' | 'POST' | 'DELETE' | 'PUT';
async function call(method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

async function expectError(p: ReturnType<typeof call>, status: number, code: string, message?: RegExp) {
  const res = await p;
  expect(res.status).toBe(status);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(res.body.error).toMatchObject({ code });
  if (message) expect((res.body.error as { message: string }).message).toMatch(message);
}

const m3 = { id: 'm3', raftAddress: '127.0.0.3:7003', apiAddress: '127.0.0.3:8003' };

describe('GET /v1/cluster/members', () => {
  it('answers { leaderId, members } with exactly the contract fields, and passes the request id and deadline', async () => {
    membership.members[0] = { ...membership.members[0]!, ...{ secret: 'not for clients' } };
    const before = performance.now();
    const res = await call('GET', '/v1/cluster/members', undefined, { 'x-request-id': 'req-1' });
    expect(res).toEqual({ status: 200, body: { leaderId: 'm1', members: defaultView().members } });
    const ctx = membership.calls[0]!.ctx;
    expect(ctx.requestId).toBe('req-1');
    expect(ctx.deadlineMs).toBeGreaterThanOrEqual(before + 1500);
  });

  it('answers leaderId null when none is known', async () => {
    membership.leaderId = null;
    expect(await call('GET', '/v1/cluster/members')).toMatchObject({ status: 200, body: { leaderId: null } });
  });
});

describe('POST /v1/cluster/members', () => {
  it('201 with the new member (a learner), then 200 with it again when it already exists with the same addresses', async () => {
    const created = await call('POST', '/v1/cluster/members', m3);
    expect(created).toEqual({ status: 201, body: { ...m3, voter: false, reachable: true } });
    expect(membership.calls[0]!.args).toEqual([m3]);
    const again = await call('POST', '/v1/cluster/members', m3);
    expect(again).toEqual({ status: 200, body: { ...m3, voter: false, reachable: true } });
  });

  it('the same id with other addresses: 409 MEMBERSHIP_CHANGE_REFUSED from the service', async () => {
    await expectError(call('POST', '/v1/cluster/members', { ...m3, id: 'm2' }), 409, 'MEMBERSHIP_CHANGE_REFUSED', /other addresses/);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a missing field', { id: 'm3', raftAddress: m3.raftAddress }, /^body\.apiAddress: missing$/],
    ['two missing fields (both named)', { id: 'm3' }, /^body\.raftAddress: missing; body\.apiAddress: missing$/],
    ['an unknown field', { ...m3, voter: true }, /^body\.voter: unknown field$/],
    ['an id that starts with a dot', { ...m3, id: '.m3' }, /^body\.id: /],
    ['an id with a space', { ...m3, id: 'm 3' }, /^body\.id: /],
    ['an id longer than 64', { ...m3, id: 'm'.repeat(65) }, /^body\.id: /],
    ['an empty id', { ...m3, id: '' }, /^body\.id: /],
    ['a number for an id', { ...m3, id: 3 }, /^body\.id: expected string/],
    ['an address without a port', { ...m3, raftAddress: '127.0.0.3' }, /^body\.raftAddress: expected host:port/],
    ['a port out of range', { ...m3, apiAddress: '127.0.0.3:70000' }, /^body\.apiAddress: port must be 1\.\.65535/],
    ['a bad host', { ...m3, apiAddress: 'a_b:80' }, /^body\.apiAddress: bad host "a_b"/],
    ['the same address twice', { ...m3, apiAddress: m3.raftAddress }, /^body\.apiAddress: must differ from raftAddress/],
    ['an array body', [m3], /^body: /],
  ];
  for (const [what, body, message] of bad) {
    it(`${what}: 400 INVALID_MEMBER naming the field, the service not called`, async () => {
      await expectError(call('POST', '/v1/cluster/members', body), 400, 'INVALID_MEMBER', message);
      expect(membership.calls).toEqual([]);
    });
  }

  it('malformed JSON and other content types keep their own codes', async () => {
    const badJson = app.inject({ method: 'POST', url: '/v1/cluster/members', headers: { 'content-type': 'application/json' }, payload: '{"id":' });
    const text = app.inject({ method: 'POST', url: '/v1/cluster/members', headers: { 'content-type': 'text/plain' }, payload: 'm3' });
    const [j, t] = await Promise.all([badJson, text]);
    expect([j.statusCode, j.json().error.code]).toEqual([400, 'INVALID_JSON']);
    expect([t.statusCode, t.json().error.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
  });
});

describe('DELETE /v1/cluster/members/:id', () => {
  it('200 with the new configuration', async () => {
    membership.members.push({ ...m3, voter: false, reachable: true });
    const res = await call('DELETE', '/v1/cluster/members/m3');
    expect(res).toEqual({ status: 200, body: { leaderId: 'm1', members: defaultView().members } });
    expect(membership.calls[0]!.args).toEqual(['m3']);
  });

  it('an unknown member: 404 MEMBER_NOT_FOUND; the last voter: 409 MEMBERSHIP_CHANGE_REFUSED', async () => {
    await expectError(call('DELETE', '/v1/cluster/members/m9'), 404, 'MEMBER_NOT_FOUND', /"m9"/);
    membership.members = membership.members.slice(0, 1);
    await expectError(call('DELETE', '/v1/cluster/members/m1'), 409, 'MEMBERSHIP_CHANGE_REFUSED', /last voter/);
  });

  it('a malformed id: 400 INVALID_MEMBER naming params.id', async () => {
    await expectError(call('DELETE', '/v1/cluster/members/-m1'), 400, 'INVALID_MEMBER', /^params\.id: /);
    await expectError(call('DELETE', `/v1/cluster/members/${'m'.repeat(65)}`), 400, 'INVALID_MEMBER', /^params\.id: /);
    expect(membership.calls).toEqual([]);
  });
});

describe('POST /v1/cluster/leader', () => {
  it('no body, an empty object, or an id: 200 { leaderId, term }', async () => {
    const none = await app.inject({ method: 'POST', url: '/v1/cluster/leader' });
    expect([none.statusCode, none.json()]).toEqual([200, { leaderId: 'm2', term: 4 }]);
    expect(await call('POST', '/v1/cluster/leader', {})).toEqual({ status: 200, body: { leaderId: 'm1', term: 5 } });
    expect(await call('POST', '/v1/cluster/leader', { id: 'm2' })).toEqual({ status: 200, body: { leaderId: 'm2', term: 6 } });
    expect(membership.calls.map((c) => c.args)).toEqual([[null], [null], ['m2']]);
  });

  it('a bad id or an unknown field: 400 INVALID_MEMBER; a learner: 409 LEADER_TRANSFER_FAILED', async () => {
    await expectError(call('POST', '/v1/cluster/leader', { id: 'm 2' }), 400, 'INVALID_MEMBER', /^body\.id: /);
    await expectError(call('POST', '/v1/cluster/leader', { to: 'm2' }), 400, 'INVALID_MEMBER', /^body\.to: unknown field$/);
    await expectError(call('POST', '/v1/cluster/leader', { id: null }), 400, 'INVALID_MEMBER', /^body\.id: /);
    expect(membership.calls).toEqual([]);
    membership.members.push({ ...m3, voter: false, reachable: true });
    await expectError(call('POST', '/v1/cluster/leader', { id: 'm3' }), 409, 'LEADER_TRANSFER_FAILED', /learner/);
  });
});

describe('GET /v1/cluster/settings', () => {
  it("answers the leader's settings whole (every section and key through the answer's schema), with the request id and deadline", async () => {
    membership.settings = { ...fakeSettings(), backup: { intervalS: 600, retain: 2, dir: '/var/backups/minkube' } };
    const before = performance.now();
    const res = await call('GET', '/v1/cluster/settings', undefined, { 'x-request-id': 'req-s' });
    expect(res).toEqual({ status: 200, body: { leaderId: 'm1', settings: membership.settings } });
    expect(res.body.settings).toMatchObject({ tasks: { workerTtlMs: 10_000, retention: { finishedMax: 10_000 } }, api: { rateLimits: { viewer: { burst: 400 } } } });
    expect(membership.calls[0]).toMatchObject({ method: 'clusterSettings', ctx: { requestId: 'req-s' } });
    expect(membership.calls[0]!.ctx.deadlineMs).toBeGreaterThanOrEqual(before + 1500);
  });

  it('takes no query parameters', async () => {
    await expectError(call('GET', '/v1/cluster/settings?tasks=1'), 400, 'INVALID_PARAM', /tasks/);
  });
});

describe("the service's errors", () => {
  const cases: [ErrorCode, number][] = [
    ['MEMBER_NOT_FOUND', 404],
    ['MEMBERSHIP_CHANGE_REFUSED', 409],
    ['LEADER_TRANSFER_FAILED', 409],
    ['NO_LEADER', 503],
    ['TIMEOUT', 504],
  ];
  const routes: [Method, string, unknown][] = [
    ['GET', '/v1/cluster/members', undefined],
    ['POST', '/v1/cluster/members', m3],
    ['DELETE', '/v1/cluster/members/m2', undefined],
    ['POST', '/v1/cluster/leader', { id: 'm2' }],
    ['GET', '/v1/cluster/settings', undefined],
  ];
  for (const [code, status] of cases) {
    it(`${code} answers ${status} with the service's message on every route`, async () => {
      for (const [method, url, body] of routes) {
        membership.failNext = new MinkubeError(code, `injected ${code}`);
        await expectError(call(method, url, body), status, code, new RegExp(`^injected ${code}$`));
      }
    });
  }

  it('anything else is 500 INTERNAL without its message', async () => {
    membership.failNext = new Error('secret detail');
    await expectError(call('GET', '/v1/cluster/members'), 500, 'INTERNAL', /^internal error$/);
  });
});

describe('the rest of the app', () => {
  it('other routes keep their own error codes', async () => {
    await expectError(call('PUT', '/v1/kv/a', { value: 1 }), 400, 'INVALID_BODY', /^body\.value: /);
  });

  it('without a MembershipService the routes are not served', async () => {
    const res = await bare.inject({ method: 'GET', url: '/v1/cluster/members' });
    expect([res.statusCode, res.json().error.code]).toEqual([404, 'NOT_FOUND']);
  });

  it('member ids follow the same rule as manager ids in the cluster config', async () => {
    const ids = ['m1', 'M-1', 'a.b_c', '9', '-a', '.a', '_a', 'a b', 'a/b', 'é', 'x'.repeat(64), 'x'.repeat(65), ''];
    for (const id of ids) {
      const config = { managers: [{ id, raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'd' }] };
      let configOk = true;
      try {
        parseClusterConfig(config, '/tmp');
      } catch {
        configOk = false;
      }
      const res = await call('POST', '/v1/cluster/leader', { id });
      expect({ id, routeOk: res.status !== 400 }).toEqual({ id, routeOk: configOk });
    }
  });
});
