// The managers' HTTP API through app.inject with a fake service: every route, every error code, request ids.
import { pino } from 'pino';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { keyProblem } from '../../src/contracts/keys.js';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { FakeManagerService } from './fake-service.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';

const service = new FakeManagerService();
const app = buildManagerApp({ service, bodyLimitBytes: 1024, requestTimeoutMs: 1500 });
afterAll(() => app.close());
beforeEach(() => {
  service.data.clear();
  service.calls.length = 0;
  service.index = 0;
  service.failNext = null;
  service.readyState = { ready: true };
  service.notMember = null;
});

type Method = 'GET' | 'PUT' | 'DELETE' | 'POST';
async function call(method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>(), headers: res.headers };
}

async function expectError(p: ReturnType<typeof call>, status: number, code: string, message?: RegExp) {
  const res = await p;
  expect(res.status).toBe(status);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(res.body.error).toMatchObject({ code });
  if (message) expect((res.body.error as { message: string }).message).toMatch(message);
  return res;
}

describe('health and readiness', () => {
  it('GET /health answers ok', async () => {
    expect(await call('GET', '/health')).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('GET /ready answers ready, or 503 NOT_READY with the reason', async () => {
    expect(await call('GET', '/ready')).toMatchObject({ status: 200, body: { ready: true } });
    service.readyState = { ready: false, reason: 'replaying the log' };
    await expectError(call('GET', '/ready'), 503, 'NOT_READY', /replaying the log/);
  });
});

describe('GET /v1/cluster', () => {
  it('answers the service view', async () => {
    const res = await call('GET', '/v1/cluster');
    expect(res.status).toBe(200);
    // Without a backup service the app says there are no scheduled backups.
    expect(res.body).toEqual({ ...service.view, backup: null });
  });

  it('answers 503 NOT_READY with the reason on a manager that knows it was removed, not its stale view (outside tester)', async () => {
    service.notMember = new MinkubeError('NOT_READY', 'this manager was removed from the cluster (leader m1 of term 6 does not list it): send the request to another manager');
    await expectError(call('GET', '/v1/cluster'), 503, 'NOT_READY', /^this manager was removed from the cluster \(leader m1 of term 6 does not list it\)/);
  });
});

describe('kv routes', () => {
  it('PUT then GET then DELETE a key', async () => {
    expect(await call('PUT', '/v1/kv/greeting', { value: 'hello' })).toMatchObject({ status: 200, body: { key: 'greeting', version: 1 } });
    expect(await call('GET', '/v1/kv/greeting')).toMatchObject({ status: 200, body: { key: 'greeting', value: 'hello', version: 1 } });
    expect(await call('DELETE', '/v1/kv/greeting')).toMatchObject({ status: 200, body: { key: 'greeting', version: 2 } });
    await expectError(call('GET', '/v1/kv/greeting'), 404, 'KV_KEY_NOT_FOUND', /greeting/);
  });

  it('keys may contain slashes, sent plainly or percent-encoded', async () => {
    expect((await call('PUT', '/v1/kv/tasks/t1/state', { value: 'running' })).status).toBe(200);
    expect(await call('GET', '/v1/kv/tasks%2Ft1%2Fstate')).toMatchObject({ status: 200, body: { key: 'tasks/t1/state', value: 'running' } });
    expect(service.calls.map((c) => c.args[0])).toEqual(['tasks/t1/state', 'tasks/t1/state']);
  });

  it('passes ifVersion through, and the service conflict is 409 KV_VERSION_MISMATCH', async () => {
    await call('PUT', '/v1/kv/a', { value: '1', ifVersion: 0 });
    await expectError(call('PUT', '/v1/kv/a', { value: '2', ifVersion: 0 }), 409, 'KV_VERSION_MISMATCH');
    expect((await call('PUT', '/v1/kv/a', { value: '2', ifVersion: 1 })).status).toBe(200);
    await expectError(call('DELETE', '/v1/kv/a?ifVersion=1'), 409, 'KV_VERSION_MISMATCH');
    expect(await call('DELETE', '/v1/kv/a?ifVersion=2')).toMatchObject({ status: 200 });
    expect(service.calls.map((c) => [c.method, c.args.at(-1)])).toEqual([
      ['kvPut', 0],
      ['kvPut', 0],
      ['kvPut', 1],
      ['kvDelete', 1],
      ['kvDelete', 2],
    ]);
  });

  it('reads are linearizable unless ?consistency=stale', async () => {
    await call('PUT', '/v1/kv/a', { value: '1' });
    await call('GET', '/v1/kv/a');
    await call('GET', '/v1/kv/a?consistency=stale');
    await call('GET', '/v1/kv/a?consistency=linearizable');
    expect(service.calls.filter((c) => c.method === 'kvGet').map((c) => c.args[1])).toEqual(['linearizable', 'stale', 'linearizable']);
  });

  it('DELETE of a missing key is 404 KV_KEY_NOT_FOUND', async () => {
    await expectError(call('DELETE', '/v1/kv/nope'), 404, 'KV_KEY_NOT_FOUND');
  });
});

describe('request id and deadline', () => {
  it('honours an incoming x-request-id and passes it to the service', async () => {
    const before = performance.now();
    const res = await call('PUT', '/v1/kv/a', { value: '1' }, { 'x-request-id': 'req-42' });
    expect(res.headers['x-request-id']).toBe('req-42');
    const ctx = service.calls[0]!.ctx;
    expect(ctx.requestId).toBe('req-42');
    expect(ctx.deadlineMs).toBeGreaterThanOrEqual(before + 1500);
    expect(ctx.deadlineMs).toBeLessThanOrEqual(performance.now() + 1500); // monotonic, as Clock.monoMs
  });

  it("answers within the client's X-Minkube-Timeout-Ms when it is shorter than its own request timeout, and refuses a bad one (outside re-test)", async () => {
    const before = performance.now();
    expect((await call('PUT', '/v1/kv/b', { value: '1' }, { 'x-minkube-timeout-ms': '300' })).status).toBe(200);
    const ctx = service.calls.at(-1)!.ctx;
    expect(ctx.deadlineMs).toBeGreaterThanOrEqual(before + 300);
    expect(ctx.deadlineMs).toBeLessThan(before + 1500);
    // Longer than its own: its own.
    const longer = performance.now();
    await call('PUT', '/v1/kv/c', { value: '1' }, { 'x-minkube-timeout-ms': '60000' });
    expect(service.calls.at(-1)!.ctx.deadlineMs).toBeLessThanOrEqual(performance.now() + 2000);
    expect(service.calls.at(-1)!.ctx.deadlineMs).toBeGreaterThanOrEqual(longer + 1500);
    for (const bad of ['0', '99', 'soon', '-5', '1e3', '3600001', '1500.25']) {
      await expectError(call('PUT', '/v1/kv/d', { value: '1' }, { 'x-minkube-timeout-ms': bad }), 400, 'INVALID_PARAM');
    }
  });

  it('generates an id when there is none or it is unsafe, and returns it on errors too', async () => {
    const a = await call('GET', '/v1/kv/missing');
    const b = await call('GET', '/nowhere', undefined, { 'x-request-id': 'bad id\twith spaces' });
    for (const res of [a, b]) expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});

describe('errors', () => {
  it('a MinkubeError from the service answers its code and status', async () => {
    const cases: [MinkubeError, number][] = [
      [new MinkubeError('NO_LEADER'), 503],
      [new MinkubeError('TIMEOUT'), 504],
      [new MinkubeError('QUEUE_FULL'), 429],
      [new MinkubeError('PROPOSAL_DROPPED'), 503],
    ];
    for (const [err, status] of cases) {
      service.failNext = err;
      const res = await expectError(call('PUT', '/v1/kv/a', { value: 'x' }), status, err.code);
      expect(res.body.error).toEqual({ code: err.code, message: err.message });
    }
  });

  it('anything else is 500 INTERNAL without its details', async () => {
    service.failNext = new Error('secret database password in message');
    const res = await expectError(call('GET', '/v1/kv/a'), 500, 'INTERNAL');
    expect(JSON.stringify(res.body)).not.toContain('secret');
  });

  it('bad JSON is 400 INVALID_JSON; an empty JSON body is no body, which this route needs (400 INVALID_BODY)', async () => {
    await expectError(call('PUT', '/v1/kv/a', '{"value": ', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
    await expectError(call('PUT', '/v1/kv/a', '', { 'content-type': 'application/json' }), 400, 'INVALID_BODY');
  });

  it('a body that is not UTF-8, or escapes a lone surrogate, is 400 INVALID_JSON: its value would be kept as U+FFFD', async () => {
    const json = { 'content-type': 'application/json; charset=utf-8' };
    await expectError(call('PUT', '/v1/kv/a', Buffer.from([...Buffer.from('{"value":"a'), 0xff, ...Buffer.from('b"}')]) as never, json), 400, 'INVALID_JSON', /not UTF-8/);
    await expectError(call('PUT', '/v1/kv/a', '{"value":"a\\ud800b"}', json), 400, 'INVALID_JSON', /lone surrogate/);
    await expectError(call('PUT', '/v1/kv/a', '{"value":"x","\\udfffkey":1}', json), 400, 'INVALID_JSON', /lone surrogate/);
    expect(service.calls).toHaveLength(0);
    // A pair, escaped or not, is text: kept as sent.
    expect((await call('PUT', '/v1/kv/a', '{"value":"\\ud83d\\ude00 \u{1F600}"}', json)).status).toBe(200);
    expect(service.data.get('a')?.value).toBe('\u{1F600} \u{1F600}');
  });

  it('a body with a "__proto__" or "constructor.prototype" key is 400 INVALID_JSON saying so, not "not valid JSON"', async () => {
    const json = { 'content-type': 'application/json' };
    await expectError(call('PUT', '/v1/kv/a', '{"value":"x","__proto__":{"admin":true}}', json), 400, 'INVALID_JSON', /has a "__proto__" or "constructor": \{ "prototype" \} key, which is refused/);
    await expectError(call('PUT', '/v1/kv/a', '{"value":"x","constructor":{"prototype":{"admin":true}}}', json), 400, 'INVALID_JSON', /"__proto__" or "constructor"/);
    // A malformed body is still "not valid JSON", and a value that only mentions the word is a value.
    await expectError(call('PUT', '/v1/kv/a', '{"value": ', json), 400, 'INVALID_JSON', /^the request body is not valid JSON$/);
    expect((await call('PUT', '/v1/kv/a', '{"value":"__proto__"}', json)).status).toBe(200);
  });

  it('a body over the limit is 413 PAYLOAD_TOO_LARGE', async () => {
    await expectError(call('PUT', '/v1/kv/a', { value: 'x'.repeat(2000) }), 413, 'PAYLOAD_TOO_LARGE', /1024 bytes/);
    expect(service.calls).toHaveLength(0);
  });

  it('another content type is 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    await expectError(call('PUT', '/v1/kv/a', 'hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await expectError(call('PUT', '/v1/kv/a', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('wrong or missing body fields are 400 INVALID_BODY naming the field', async () => {
    await expectError(call('PUT', '/v1/kv/a', { value: 5 }), 400, 'INVALID_BODY', /^body\.value: expected string$/);
    await expectError(call('PUT', '/v1/kv/a', {}), 400, 'INVALID_BODY', /^body\.value: missing$/);
    await expectError(call('PUT', '/v1/kv/a', { value: 'x', ifVersion: -1 }), 400, 'INVALID_BODY', /body\.ifVersion/);
    await expectError(call('PUT', '/v1/kv/a', { value: 'x', ifVersion: 1.5 }), 400, 'INVALID_BODY', /body\.ifVersion: expected integer/);
    await expectError(call('PUT', '/v1/kv/a', { value: 'x', ifVersion: '1' }), 400, 'INVALID_BODY', /body\.ifVersion/);
    await expectError(call('PUT', '/v1/kv/a', { value: 'x', extra: true }), 400, 'INVALID_BODY', /^body\.extra: unknown field$/);
    await expectError(call('PUT', '/v1/kv/a', [1, 2]), 400, 'INVALID_BODY', /^body: expected object$/);
    await expectError(call('PUT', '/v1/kv/a'), 400, 'INVALID_BODY', /^body: expected object$/);
    expect(service.calls).toHaveLength(0);
  });

  it('bad query parameters are 400 INVALID_PARAM naming the parameter', async () => {
    await expectError(call('GET', '/v1/kv/a?consistency=eventual'), 400, 'INVALID_PARAM', /^query\.consistency: expected one of "linearizable", "stale"$/);
    await expectError(call('DELETE', '/v1/kv/a?ifVersion=abc'), 400, 'INVALID_PARAM', /query\.ifVersion: expected an integer >= 0, got "abc"/);
    // A number past the largest safe integer is out of range too; what came is shown cut to 32 characters.
    await expectError(call('DELETE', `/v1/kv/a?ifVersion=${'9'.repeat(40)}`), 400, 'INVALID_PARAM', /^query\.ifVersion: expected an integer >= 0, got "9{32}\.\.\."$/);
    await expectError(call('DELETE', '/v1/kv/a?ifVersion=-1'), 400, 'INVALID_PARAM', /query\.ifVersion/);
    await expectError(call('DELETE', '/v1/kv/a?ifVersion=1&ifVersion=2'), 400, 'INVALID_PARAM', /query\.ifVersion/);
    await expectError(call('DELETE', '/v1/kv/a?ifversion=1'), 400, 'INVALID_PARAM', /^query\.ifversion: unknown field$/);
    expect(service.calls).toHaveLength(0);
  });

  it('an unknown route is 404 NOT_FOUND', async () => {
    await expectError(call('GET', '/v1/nothing?x=1'), 404, 'NOT_FOUND', /^no route GET \/v1\/nothing$/);
    await expectError(call('GET', '/v1/kv'), 404, 'NOT_FOUND');
  });

  it('a known path with a method it does not take is 405 METHOD_NOT_ALLOWED, with Allow', async () => {
    const r = await call('POST', '/v1/kv/a?x=1', { value: 'x' });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('DELETE, GET, HEAD, PUT');
    expect(r.body).toEqual({ error: { code: 'METHOD_NOT_ALLOWED', message: 'POST is not allowed on /v1/kv/a; it takes DELETE, GET, HEAD, PUT' } });
    await expectError(call('DELETE', '/v1/cluster'), 405, 'METHOD_NOT_ALLOWED', /^DELETE is not allowed on \/v1\/cluster; it takes GET, HEAD$/);
    expect(service.calls).toHaveLength(0);
  });

  it('a malformed percent-encoding is 400 INVALID_PARAM', async () => {
    await expectError(call('GET', '/v1/kv/%zz'), 400, 'INVALID_PARAM', /^params\.key: "%zz" is not valid percent-encoding \(a % starts an escape %XX of UTF-8 bytes; send a % itself as %25\)$/);
  });

  it('a long unknown path is quoted in part only', async () => {
    const res = await expectError(call('GET', `/v1/${'a'.repeat(10_000)}`), 404, 'NOT_FOUND', /^no route GET \/v1\/a+… \(10004 characters\)$/);
    expect((res.body.error as { message: string }).message.length).toBeLessThan(120);
  });
});

describe("the router's errors name the parameter and the rule, and quote at most a few characters", () => {
  const tasksApp = buildManagerApp({ service: new FakeManagerService(), tasks: inProcessTasks(inProcessRaft()) });
  afterAll(() => tasksApp.close());
  const get = async (url: string, method: Method = 'GET') => {
    const res = await tasksApp.inject({ method, url });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
  };
  const paramCharsMax = limits.kvKeyBytesMax * 3;

  it.each([
    ['a 10 KiB task id', 'GET', `/v1/tasks/${'a'.repeat(10_240)}`, `params.id: at most ${paramCharsMax} characters (got 10240)`],
    ['a long id to DELETE', 'DELETE', `/v1/tasks/${'a'.repeat(2000)}`, `params.id: at most ${paramCharsMax} characters (got 2000)`],
    ['a long id before /logs', 'GET', `/v1/tasks/${'a'.repeat(2000)}/logs?tail=1`, `params.id: at most ${paramCharsMax} characters (got 2000)`],
    ['%zz', 'GET', '/v1/tasks/%zz', 'params.id: "%zz" is not valid percent-encoding (a % starts an escape %XX of UTF-8 bytes; send a % itself as %25)'],
    ['an escape that is not UTF-8', 'GET', '/v1/tasks/t1%ff/logs', 'params.id: "t1%ff" is not valid percent-encoding (a % starts an escape %XX of UTF-8 bytes; send a % itself as %25)'],
    ['a long id with a bad escape', 'GET', `/v1/tasks/%zz${'b'.repeat(5000)}`, expect.stringMatching(/^params\.id: "%zzb+… \(5003 characters\)" is not valid percent-encoding/)],
    // The dashboard's files are the rest of the path (/ui/*): no `key` parameter, which only the kv routes have.
    ['a dashboard path', 'GET', '/ui/%ZZ', 'the path: "%ZZ" is not valid percent-encoding (a % starts an escape %XX of UTF-8 bytes; send a % itself as %25)'],
  ] as const)('%s', async (_what, method, url, message) => {
    const res = await get(url, method);
    expect(res).toEqual({ status: 400, body: { error: { code: 'INVALID_PARAM', message } } });
    expect((res.body.error as { message: string }).message.length).toBeLessThan(200);
  });
});

describe('an insecure cluster (no security, no join service)', () => {
  it('keeps the join, renewal and log-in routes, each answering 400 INVALID_BODY that it has no CA or tokens', async () => {
    await expectError(call('GET', '/v1/join/ca'), 400, 'INVALID_BODY', /^this cluster is insecure and has no CA, so there is no CA certificate to fetch/);
    await expectError(call('POST', '/v1/join', { token: 'MKTKN-1-x-y', id: 'w1', csr: 'x', addresses: [] }), 400, 'INVALID_BODY', /insecure and has no CA.*http:\/\/ --join URL and no --token/);
    await expectError(call('POST', '/v1/join'), 400, 'INVALID_BODY', /insecure and has no CA/);
    await expectError(call('POST', '/v1/certs/renew', { csr: 'x' }), 400, 'INVALID_BODY', /insecure and has no CA, so it has no certificates to renew/);
    await expectError(call('POST', '/v1/auth/login', { token: 'mk_a_b' }), 400, 'INVALID_BODY', /^this cluster is insecure and has no tokens, so there is nothing to log in with/);
  });
});

describe('logging', () => {
  it('logs an INTERNAL failure with its request id and the real error, through the given pino logger', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const logged = buildManagerApp({ service, logger });
    service.failNext = new Error('disk on fire');
    const res = await logged.inject({ method: 'GET', url: '/v1/kv/a', headers: { 'x-request-id': 'r-9' } });
    await logged.close();
    expect(res.statusCode).toBe(500);
    expect(lines).toEqual([expect.objectContaining({ level: 50, reqId: 'r-9', msg: 'request failed', err: expect.objectContaining({ message: 'disk on fire' }) as unknown })]);
  });
});

describe('key validation', () => {
  // inject (like every URL client) collapses /a/../b before sending, so dot segments are tested on keyProblem.
  it.each(['..', 'a/./b', 'a/..', './a'])('keyProblem refuses the dot segment in %s', (key) => {
    expect(keyProblem(key)).toMatch(/"\." or "\.\." segment/);
  });

  const maxKey = 'k'.repeat(limits.kvKeyBytesMax);
  it.each([['a'], ['A-Z_a.z~0/9'], ['tasks/t1'], ['.hidden'], ['a..b'], [maxKey]])('accepts %s', async (key) => {
    expect((await call('PUT', `/v1/kv/${key}`, { value: 'v' })).status).toBe(200);
    expect(service.calls[0]!.args[0]).toBe(key);
  });

  it.each([
    ['empty', '/v1/kv/', /empty/],
    ['too long', `/v1/kv/${maxKey}k`, /513 bytes; at most 512/],
    ['a space', '/v1/kv/a%20b', /outside/],
    ['unicode', '/v1/kv/caf%C3%A9', /outside/],
    ['a colon', '/v1/kv/a:b', /outside/],
  ])('refuses a key with %s: 400 INVALID_KEY', async (_name, url, message) => {
    await expectError(call('PUT', url, { value: 'v' }), 400, 'INVALID_KEY', message);
    await expectError(call('GET', url), 400, 'INVALID_KEY', message);
    await expectError(call('DELETE', url), 400, 'INVALID_KEY', message);
    expect(service.calls).toHaveLength(0);
  });
});
