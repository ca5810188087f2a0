// Input a route would silently ignore is refused instead (a black-box tester's finding): a body sent to a POST that
// takes none, and query parameters on GETs that take none, as every other route already refused them.
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { AdminService } from '../../src/api/routes/admin.js';
import type { RetentionService, TasksService } from '../../src/contracts/services.js';
import { FakeManagerService } from './fake-service.js';

const calls: string[] = [];
const retention = { gc: async () => (calls.push('gc'), { removed: 0, tasks: 0 }) } as unknown as RetentionService;
const admin: AdminService = { reload: async () => (calls.push('reload'), { node: 'm1', applied: [], refused: [], ignored: [] }) };
const tasks = { workerAssignments: async () => [], knownTaskIds: (ids: readonly string[]) => ids.filter((id) => id.startsWith('tours')) } as unknown as TasksService;
const service = new FakeManagerService();
const app = buildManagerApp({ service, retention, admin, tasks });
afterAll(() => app.close());

async function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: string) {
  return app.inject({ method, url, ...(payload === undefined ? {} : { payload, headers: { 'content-type': 'application/json' } }) });
}

describe('routes that take no body or no query', () => {
  it('POST /v1/gc and /v1/admin/reload: none, null or {} is fine; anything else is 400 INVALID_BODY, and nothing is done', async () => {
    for (const url of ['/v1/gc', '/v1/admin/reload']) {
      for (const ok of [undefined, '{}', 'null']) expect((await call('POST', url, ok)).statusCode, `${url} ${ok}`).toBe(200);
      const before = calls.length;
      for (const bad of ['[1,2]', '"x"', '{"bogusField":1}', '7']) {
        const r = await call('POST', url, bad);
        expect(r.statusCode, `${url} ${bad}`).toBe(400);
        expect(r.json()).toEqual({ error: { code: 'INVALID_BODY', message: 'body: this route takes no body (send none, or {})' } });
      }
      expect(calls.length).toBe(before);
    }
  });

  it('an empty body sent as JSON is no body: taken where none is needed, and a route that needs one says so', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/gc', headers: { 'content-type': 'application/json' }, payload: '' });
    expect(r.statusCode).toBe(200);
    const put = await app.inject({ method: 'PUT', url: '/v1/kv/a', headers: { 'content-type': 'application/json' }, payload: '' });
    expect(put.statusCode).toBe(400);
    expect(put.json()).toMatchObject({ error: { code: 'INVALID_BODY' } });
  });

  it('a DELETE refuses a body: { "ifVersion": 1 } would be ignored and the compare-and-set not made', async () => {
    const r = await app.inject({ method: 'DELETE', url: '/v1/kv/a', headers: { 'content-type': 'application/json' }, payload: '{"ifVersion":1}' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: { code: 'INVALID_BODY', message: 'body: this route takes no body (send none, or {})' } });
  });

  it('a body of another type than JSON on a route that takes none: 400 INVALID_BODY as for any other body, not 415', async () => {
    for (const [method, url] of [['DELETE', '/v1/kv/a'], ['POST', '/v1/gc'], ['POST', '/v1/admin/reload']] as const) {
      const r = await app.inject({ method, url, headers: { 'content-type': 'text/plain' }, payload: 'hello' });
      expect(r.statusCode, `${method} ${url}`).toBe(400);
      expect(r.json()).toEqual({ error: { code: 'INVALID_BODY', message: 'body: this route takes no body (send none, or {})' } });
    }
    // A route that takes a JSON body still says 415 of another type.
    const put = await app.inject({ method: 'PUT', url: '/v1/kv/a', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect(put.statusCode).toBe(415);
  });

  it('a query parameter on a route with a body (PUT, POST) or a DELETE that takes none: 400 INVALID_PARAM, and nothing is done', async () => {
    const before = service.calls.length;
    const cases = [
      ['PUT', '/v1/kv/q/k?ifVersion=1', '{"value":"two"}', 'query.ifVersion: unknown field'],
      ['POST', '/v1/gc?zzz=1', undefined, 'query.zzz: unknown field'],
      ['POST', '/v1/admin/reload?now=1', undefined, 'query.now: unknown field'],
    ] as const;
    for (const [method, url, payload, message] of cases) {
      const r = await call(method, url, payload);
      expect(r.statusCode, `${method} ${url}`).toBe(400);
      expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message } });
    }
    expect(service.calls.length).toBe(before);
    // The probes and the scrape take whatever they are given.
    for (const url of ['/health?x=1', '/ready?x=1', '/openapi.json?v=2']) expect((await call('GET', url)).statusCode, url).not.toBe(400);
  });

  it('a query parameter with no name says so (it read "query.: unknown field")', async () => {
    const r = await call('GET', '/v1/kv/a?=x');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message: 'query: a parameter with no name' } });
  });

  it('a query parameter given twice says so', async () => {
    const r = await call('GET', '/v1/kv/a?consistency=stale&consistency=linearizable');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message: 'query.consistency: given more than once' } });
  });

  it('GET /v1/cluster with a query parameter: 400 INVALID_PARAM naming it', async () => {
    expect((await call('GET', '/v1/cluster')).statusCode).toBe(200);
    const r = await call('GET', '/v1/cluster?limit=-1');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message: 'query.limit: unknown field' } });
  });

  it('GET /v1/workers/:id/assignments with a query parameter: 400 INVALID_PARAM naming it (it answers the caller its own, whatever is asked)', async () => {
    expect((await call('GET', '/v1/workers/w1/assignments')).statusCode).toBe(200);
    const r = await call('GET', '/v1/workers/w1/assignments?workerId=w2');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message: 'query.workerId: unknown field' } });
  });

  it('GET assignments asks about task ids in x-minkube-ask-tasks: answered knownTaskIds; a malformed or oversized list is 400 INVALID_PARAM', async () => {
    const get = (value?: string) => app.inject({ method: 'GET', url: '/v1/workers/w1/assignments', headers: value === undefined ? {} : { 'x-minkube-ask-tasks': value } });
    expect((await get()).json()).toEqual({ items: [], nextCursor: null });
    expect((await get('tours1,tother2')).json()).toEqual({ items: [], nextCursor: null, knownTaskIds: ['tours1'] });
    for (const bad of ['', 'tours1,', 'T1', 'a b', Array.from({ length: 33 }, (_, i) => `t${i}`).join(','), 'x'.repeat(65)]) {
      const r = await get(bad);
      expect(r.statusCode, bad).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'INVALID_PARAM', message: expect.stringContaining('headers.x-minkube-ask-tasks: expected 1 to 32 task ids') as string });
    }
  });

  it('a query parameter that is not percent-encoded UTF-8 is 400 INVALID_PARAM naming it, not matched as literal text (outside tester)', async () => {
    for (const [url, message] of [
      ['/v1/tasks?name=%FF%FE', 'query.name: not percent-encoded UTF-8'],
      ['/v1/tasks?name=100%', 'query.name: not percent-encoded UTF-8'],
      ['/v1/kv/a?consistency=%E2%82', 'query.consistency: not percent-encoded UTF-8'],
      ['/v1/tasks?na%FFme=x', 'query: the parameter name "na%FFme" is not percent-encoded UTF-8'],
    ] as const) {
      const r = await call('GET', url);
      expect(r.statusCode, url).toBe(400);
      expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message } });
    }
    // Well-encoded text, '+' for a space and an encoded '%' are fine; the probes take whatever they are given.
    expect((await call('GET', '/v1/kv/a?consistency=%73tale')).statusCode).not.toBe(400);
    for (const url of ['/v1/tasks?name=%E2%82%AC', '/v1/tasks?name=a+b', '/v1/tasks?name=100%25']) expect((await call('GET', url)).statusCode, url).not.toBe(400);
    for (const url of ['/health?x=%FF', '/ready?x=%FF']) expect((await call('GET', url)).statusCode, url).toBe(200);
  });

  it('a JSON body declared in another charset than UTF-8 is 415 saying so; utf-8 in any spelling is fine', async () => {
    const put = (contentType: string) => app.inject({ method: 'PUT', url: '/v1/kv/a', headers: { 'content-type': contentType }, payload: '{"value":"x"}' });
    for (const ct of ['application/json; charset=latin1', 'application/json;charset="ISO-8859-1"', 'application/json; charset=utf-16', 'application/json; charset=utf-8; charset=latin1']) {
      const r = await put(ct);
      expect(r.statusCode, ct).toBe(415);
      expect(r.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      expect(r.json().error.message).toContain('send JSON as UTF-8');
    }
    for (const ct of ['application/json', 'application/json; charset=utf-8', 'application/json; charset=UTF8', 'application/json; charset="utf-8"']) expect((await put(ct)).statusCode, ct).toBe(200);
    // A route that takes no body takes none, {} or null whatever the charset (it asked for {} of one sent latin1).
    for (const payload of ['{}', 'null']) {
      expect((await app.inject({ method: 'POST', url: '/v1/gc', headers: { 'content-type': 'application/json; charset=latin1' }, payload })).statusCode, payload).toBe(200);
    }
  });
});
