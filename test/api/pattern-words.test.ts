// Field rules are said in words, never as a regular expression (README, 400): the four answers an outside tester got
// with a regex in them, and every pattern a worker's routes or the cluster config are checked against (the managers'
// routes: test/api/openapi.test.ts walks their document).
import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { buildWorkerApp, type WorkerAppOptions } from '../../src/api/worker-app.js';
import { ClusterConfigSchema } from '../../src/config/cluster.js';
import type { AuthService, JoinService, TasksService } from '../../src/contracts/services.js';
import { patternInWords } from '../../src/lib/schema-problems.js';
import { patternsIn, type FoundPattern } from '../support/schema-patterns.js';
import { FakeManagerService } from './fake-service.js';

const calls: string[] = [];
const never = (name: string) => async () => {
  calls.push(name);
  throw new Error(`${name} was called`);
};
const app = buildManagerApp({
  service: new FakeManagerService(),
  tasks: { registerWorker: never('registerWorker'), taskLogs: never('taskLogs') } as unknown as TasksService,
  auth: { createToken: never('createToken') } as unknown as AuthService,
  join: { join: never('join') } as unknown as JoinService,
});
afterAll(() => app.close());

async function post(url: string, payload: object) {
  const r = await app.inject({ method: 'POST', url, payload });
  return { status: r.statusCode, body: r.json() as unknown };
}

describe('the 400s an outside tester got with a regular expression in them', () => {
  const idRule = "a letter or digit, then letters, digits, '.', '_' or '-'";

  it("POST /v1/workers: body.apiAddress by its rule", async () => {
    expect(await post('/v1/workers', { id: 'w1', apiAddress: 'http://127.0.0.1:9001', runtime: 'process' })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_BODY', message: "body.apiAddress: not a host:port address (a host (no spaces or '/'), ':', then a port of 1 to 5 digits)" } },
    });
  });

  // The tester sent the id ".." (curl --path-as-is); inject resolves dot segments as a URL, so ".hidden" stands for it.
  it('GET /v1/tasks/.hidden/logs: params.id by its rule', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/tasks/.hidden/logs' });
    expect({ status: r.statusCode, body: r.json() as unknown }).toEqual({ status: 400, body: { error: { code: 'INVALID_PARAM', message: `params.id: not a valid id (${idRule})` } } });
  });

  it('POST /v1/join: body.id by its rule', async () => {
    expect(await post('/v1/join', { token: 'MKTKN-1-x', id: '-w1', csr: 'x', addresses: [] })).toEqual({
      status: 400, body: { error: { code: 'INVALID_BODY', message: `body.id: not a valid id (${idRule})` } },
    });
  });

  it('POST /v1/auth/tokens: body.name by its rule', async () => {
    expect(await post('/v1/auth/tokens', { role: 'viewer', name: 'team a' })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_BODY', message: "body.name: not a valid token name (a letter or digit, then letters, digits, '.', '_', '@' or '-')" } },
    });
  });

  it('and the other patterns of those routes: a key prefix, a policy name, a worker instance, a task list cursor', async () => {
    const cases: [string, object, string][] = [
      ['/v1/auth/tokens', { role: 'viewer', keyPrefix: 'a b/' }, "body.keyPrefix: not a valid key prefix (letters, digits, '.', '_', '~', '/' or '-')"],
      ['/v1/auth/tokens', { policy: { name: 'Team', rules: [] } }, "body.policy.name: not a valid role or policy name (a lower-case letter, then up to 62 lower-case letters, digits or '-')"],
      ['/v1/workers', { id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', instance: 'a.b' }, "body.instance: not a valid instance (letters, digits, '_' or '-')"],
    ];
    for (const [url, payload, message] of cases) expect((await post(url, payload)).body, message).toEqual({ error: { code: 'INVALID_BODY', message } });
    const r = await app.inject({ method: 'GET', url: '/v1/tasks?cursor=a%20b' });
    expect(r.json()).toEqual({ error: { code: 'INVALID_PARAM', message: "query.cursor: not a valid cursor (letters, digits, '.', '_' or '-')" } });
    expect(calls).toEqual([]);
  });
});

describe('every pattern has its rule in words', () => {
  it("in a worker's routes", async () => {
    const worker: FastifyInstance = buildWorkerApp({ agent: {} as WorkerAppOptions['agent'] });
    const found: FoundPattern[] = [];
    worker.addHook('onRoute', (r) => {
      const s = (r.schema ?? {}) as Record<string, unknown>;
      for (const part of ['body', 'params', 'querystring', 'headers']) found.push(...patternsIn(s[part], `${[r.method].flat().join(',')} ${r.url} ${part}`));
    });
    await worker.ready();
    await worker.close();
    expect(found.length).toBeGreaterThan(0);
    expect(found.filter((f) => !patternInWords(f.pattern))).toEqual([]);
  });

  it('in the cluster config', () => {
    const found = patternsIn(ClusterConfigSchema as TSchema, 'config');
    expect(found.length).toBeGreaterThan(3);
    expect(found.filter((f) => !patternInWords(f.pattern))).toEqual([]);
  });
});
