// The managers' OpenAPI document (GET /openapi.json) and explorer (/docs): every route the app registers is in it
// with its success and error answers, the document holds together as OpenAPI 3 (required fields, unique operationIds,
// every $ref resolves, every schema compiles), an insecure cluster's asks for no credential, and neither needs a token,
// in a secure app or an insecure one. openapi-answers.test.ts checks live answers against it.
import Ajv from 'ajv';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docsPrefix, errorStatusesOf, operationIdOf } from '../../src/api/openapi.js';
import { patternInWords } from '../../src/lib/schema-problems.js';
import { everyRouteApp } from '../support/every-route-app.js';
import { patternsIn } from '../support/schema-patterns.js';

type Doc = {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, { operationId?: string; responses?: Record<string, unknown> }>>;
  components?: Record<string, Record<string, unknown>>;
};

const methods = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];

/** The routes README says the document leaves out: the explorer's own pages and files, and the dashboard's files. */
const notApiRoute = (url: string): boolean => url === docsPrefix || url.startsWith(`${docsPrefix}/`) || url.startsWith('/ui/');

/** Every route the app registers, as 'METHOD /openapi/{path}', but HEAD (fastify's copy of GET) and those not of the API. */
function collectRoutes(app: FastifyInstance): string[] {
  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    const hidden = (r.schema as { hide?: boolean } | undefined)?.hide === true;
    for (const m of [r.method].flat()) {
      if (m === 'HEAD') continue;
      // Those README leaves out, and only those: any other hidden route is a route missing from the document.
      if (hidden && notApiRoute(r.url)) continue;
      // The kv routes' wildcard (the rest of the path) is the document's {key}.
      routes.push(`${m.toLowerCase()} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{key}')}`);
    }
  });
  return routes;
}

/** A manager app with every route group (support/every-route-app.ts), and its API routes. */
function everyApp(security: boolean): { app: FastifyInstance; routes: string[] } {
  const app = everyRouteApp(security);
  return { app, routes: collectRoutes(app) };
}

/** Every '$ref' in the document, with where it is. */
function refsIn(value: unknown, path = '#'): { ref: string; at: string }[] {
  if (typeof value !== 'object' || value === null) return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => refsIn(v, `${path}/${i}`));
  return Object.entries(value).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [{ ref: v, at: path }] : refsIn(v, `${path}/${k}`)));
}

function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** JSON pointers to every schema of every operation: parameters, request bodies, responses. */
function schemaPointers(doc: Doc): string[] {
  const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!methods.includes(method)) continue;
      const base = `#/paths/${esc(path)}/${method}`;
      const o = op as { parameters?: unknown[]; requestBody?: { content?: Record<string, unknown> }; responses?: Record<string, { content?: Record<string, unknown> }> };
      (o.parameters ?? []).forEach((_p, i) => out.push(`${base}/parameters/${i}/schema`));
      for (const type of Object.keys(o.requestBody?.content ?? {})) out.push(`${base}/requestBody/content/${esc(type)}/schema`);
      for (const [status, r] of Object.entries(o.responses ?? {})) {
        for (const type of Object.keys(r.content ?? {})) out.push(`${base}/responses/${status}/content/${esc(type)}/schema`);
      }
    }
  }
  return out;
}

describe('the OpenAPI document', () => {
  const { app, routes } = everyApp(true);
  let doc: Doc;

  beforeAll(async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    doc = res.json<Doc>();
  });
  afterAll(() => app.close());

  it('documents every route the app registers, each with its error answers', () => {
    expect(routes.length).toBeGreaterThan(25);
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).filter((m) => methods.includes(m)).map((m) => `${m} ${path}`)));
    expect(routes.filter((r) => !documented.has(r))).toEqual([]);
    // Exactly those: nothing of the explorer's or the dashboard's files, but the dashboard's redirect.
    expect(Object.keys(doc.paths).filter(notApiRoute)).toEqual([]);
    expect([...documented].filter((r) => !routes.includes(r))).toEqual([]);
    expect(routes).toContain('get /ui');
    expect(doc.info.description).toContain("The document covers every route of the API, but the explorer's own pages and files (/docs, /docs/json, /docs/yaml, /docs/static/*)");
    for (const route of routes) {
      const [method, path] = route.split(' ') as [string, string];
      const responses = doc.paths[path]![method]!.responses ?? {};
      expect(Object.keys(responses), route).toEqual(expect.arrayContaining(['400', '500']));
      for (const status of Object.keys(responses).filter((s) => Number(s) >= 400)) {
        expect(responses[status], `${route} ${status}`).toMatchObject({ content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
      }
    }
  });

  it('gives each route the failures it can answer: a token route 401/403/429, a parameter 404, a write 409, a Raft one 503', () => {
    const statuses = (path: string, method: string) => Object.keys(doc.paths[path]![method]!.responses ?? {}).filter((s) => Number(s) >= 400).map(Number);
    expect(statuses('/v1/tasks/{id}', 'delete')).toEqual(expect.arrayContaining([400, 401, 403, 404, 409, 429, 500, 503]));
    expect(statuses('/v1/kv/{key}', 'put')).toEqual(expect.arrayContaining([400, 401, 403, 404, 409, 413, 415, 429, 500, 503]));
    // Probes: open, never rate limited, answered from memory (but /ready's own 503 NOT_READY).
    expect(statuses('/health', 'get')).toEqual([400, 500]);
    expect(statuses('/status', 'get')).toEqual([400, 500]);
    // Open, but rate limited by address in a secure cluster.
    expect(statuses('/openapi.json', 'get')).toEqual([400, 429, 500]);
    // A node's request is never rate limited, but waits on the driver like any write (429 QUEUE_FULL, 503, 504).
    expect(statuses('/v1/workers/{id}/heartbeat', 'post')).toEqual(expect.arrayContaining([401, 403, 404, 429, 503, 504]));
    const cluster = { method: 'GET', url: '/v1/cluster', permission: { resource: 'cluster', verb: 'read' }, hasBody: false, hasParams: false } as const;
    // Answered from memory: a secure cluster's 503 is a token it cannot check yet; an insecure one has no such answer.
    expect(errorStatusesOf({ ...cluster, secure: true })).toEqual([400, 401, 403, 429, 500, 503]);
    expect(errorStatusesOf({ ...cluster, secure: false })).toEqual([400, 500]);
    expect(errorStatusesOf({ ...cluster, url: '/v1/tasks', secure: false })).toEqual([400, 429, 500, 503, 504]);
  });

  it('gives every operation its success answer (the dashboard its redirect), each in the media type it is sent in', () => {
    const media = (path: string, method: string, status: string) => Object.keys((doc.paths[path]![method]!.responses![status] as { content?: object }).content ?? {});
    for (const route of routes) {
      const [method, path] = route.split(' ') as [string, string];
      const successes = Object.keys(doc.paths[path]![method]!.responses ?? {}).filter((s) => Number(s) >= 200 && Number(s) < 400);
      expect(successes, route).not.toEqual([]);
    }
    expect(media('/ui', 'get', '302')).toEqual([]);
    expect(media('/metrics', 'get', '200')).toEqual(['text/plain']);
    expect(media('/v1/workers/{id}/metrics', 'get', '200')).toEqual(['text/plain']);
    expect(media('/v1/tasks/{id}/logs', 'get', '200')).toEqual(['text/plain']);
    expect(media('/v1/snapshot', 'get', '200')).toEqual(['application/octet-stream']);
    expect(media('/v1/events', 'get', '200')).toEqual(['text/event-stream']);
    expect(media('/status', 'get', '200')).toEqual(['application/json', 'text/html']);
    expect(media('/v1/services', 'post', '201')).toEqual(['application/json']);
  });

  it('adds the failures a route names itself, each described by its codes', () => {
    const responses = (path: string, method: string) => doc.paths[path]![method]!.responses as Record<string, { description: string }>;
    const statuses = (path: string, method: string) => Object.keys(responses(path, method)).map(Number);
    expect(statuses('/v1/tasks', 'post')).toEqual(expect.arrayContaining([403, 422]));
    expect(responses('/v1/tasks', 'post')['422']!.description).toMatch(/IDEMPOTENCY_KEY_REUSED/);
    expect(responses('/v1/tasks', 'post')['403']!.description).toMatch(/QUOTA_EXCEEDED/);
    expect(statuses('/v1/tasks/batch', 'post')).toContain(422);
    expect(statuses('/v1/tasks/{id}/logs', 'get')).toContain(410);
    expect(responses('/v1/tasks/{id}/logs', 'get')['410']!.description).toMatch(/TASK_LOGS_GONE/);
    expect(statuses('/v1/auth/login', 'post')).toContain(401);
    expect(statuses('/v1/join', 'post')).toContain(401);
    expect(statuses('/v1/cluster/leader', 'post')).toContain(404);
    expect(responses('/v1/cluster/leader', 'post')['404']!.description).toMatch(/MEMBER_NOT_FOUND/);
    // One name, one node: a member add of a worker's id, a registration of a manager's.
    expect(responses('/v1/cluster/members', 'post')['409']!.description).toMatch(/MEMBERSHIP_CHANGE_REFUSED: .*JOIN_REFUSED: /);
    expect(responses('/v1/workers', 'post')['409']!.description).toMatch(/JOIN_REFUSED: /);
    expect(statuses('/ready', 'get')).toContain(503);
    // A 405 answers a method no operation has: the document says so once, for every path.
    expect(doc.info.description).toMatch(/405 METHOD_NOT_ALLOWED/);
  });

  it('asks a client route for a token and a route of the cluster nodes for a node certificate', () => {
    const security = (path: string, method: string) => (doc.paths[path]![method] as { security?: unknown }).security;
    expect(Object.keys(doc.components!.securitySchemes!)).toEqual(['bearerAuth', 'nodeCertificate']);
    expect(security('/v1/cluster', 'get')).toEqual([{ bearerAuth: [] }]);
    expect(security('/v1/workers/{id}/heartbeat', 'post')).toEqual([{ nodeCertificate: [] }]);
    expect(security('/health', 'get')).toBeUndefined();
  });

  it("has every pattern a request is checked against said in words, so that no 400 shows a regular expression (README, 400)", () => {
    const found = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([m]) => methods.includes(m))
        .flatMap(([method, op]) => {
          const o = op as { parameters?: unknown[]; requestBody?: unknown };
          return patternsIn({ parameters: o.parameters ?? [], requestBody: o.requestBody ?? {} }, `${method} ${path}`, (ref) => resolvePointer(doc, ref));
        }),
    );
    // The id rule of params.id, body.id and query.workerId, and those of the task spec's, among them.
    expect(new Set(found.map((f) => f.pattern)).size).toBeGreaterThan(10);
    expect(found.filter((f) => !patternInWords(f.pattern))).toEqual([]);
  });

  it('keeps the success schemas the routes declare', () => {
    const ok = doc.paths['/v1/cluster']!.get!.responses!['200'] as { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
    expect(Object.keys(ok.content!['application/json']!.schema!.properties!)).toEqual(expect.arrayContaining(['id', 'role', 'term', 'leaderId']));
  });

  it('validates as OpenAPI 3: required fields, unique operationIds, $refs that resolve, schemas that compile', () => {
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(typeof doc.info.title).toBe('string');
    expect(typeof doc.info.version).toBe('string');
    const ids: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path.startsWith('/'), path).toBe(true);
      // Every templated segment is a declared path parameter.
      for (const [method, op] of Object.entries(item).filter(([m]) => methods.includes(m))) {
        expect(op.responses, `${method} ${path}`).toBeDefined();
        expect(Object.keys(op.responses!).length).toBeGreaterThan(0);
        for (const r of Object.values(op.responses!)) expect(typeof (r as { description?: unknown }).description, `${method} ${path}`).toBe('string');
        expect(typeof op.operationId, `${method} ${path}`).toBe('string');
        ids.push(op.operationId!);
        const params = ((op as { parameters?: { in: string; name: string; required?: boolean }[] }).parameters ?? []).filter((p) => p.in === 'path');
        for (const name of [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!)) {
          expect(params.find((p) => p.name === name), `${method} ${path} declares {${name}}`).toMatchObject({ required: true });
        }
      }
    }
    expect(ids.length).toBeGreaterThan(25);
    expect(new Set(ids).size).toBe(ids.length);
    const refs = refsIn(doc);
    expect(refs.length).toBeGreaterThan(0);
    expect(refs.filter(({ ref }) => resolvePointer(doc, ref) === undefined)).toEqual([]);
    const ajv = new Ajv({ schemaId: 'auto', unknownFormats: 'ignore' } as never);
    ajv.addSchema(doc as object, 'doc');
    const pointers = schemaPointers(doc);
    expect(pointers.length).toBeGreaterThan(50);
    for (const p of pointers) expect(() => ajv.compile({ $ref: `doc${p}` }), p).not.toThrow();
  });

  it('names every path parameter, the kv routes\' wildcard as {key}', () => {
    expect(Object.keys(doc.paths).filter((path) => path.includes('*'))).toEqual([]);
    for (const method of ['get', 'put', 'delete']) {
      const params = (doc.paths['/v1/kv/{key}']![method] as { parameters: { in: string; name: string; required?: boolean }[] }).parameters.filter((p) => p.in === 'path');
      expect(params, method).toEqual([expect.objectContaining({ name: 'key', required: true })]);
    }
  });

  it('says in words what a numeric query parameter takes, which the handler checks itself (outside tester)', () => {
    const query = (path: string, method: string) => Object.fromEntries(((doc.paths[path]![method] as { parameters?: { in: string; name: string; description?: string; schema: { description?: string } }[] }).parameters ?? [])
      .filter((p) => p.in === 'query').map((p) => [p.name, p.description ?? p.schema.description ?? '']));
    for (const path of ['/v1/tasks', '/v1/workers', '/v1/services', '/v1/audit']) expect(query(path, 'get')['limit'], path).toMatch(/from 1 to 1000 \(default 100\)/);
    expect(query('/v1/tasks/{id}/logs', 'get')['tail']).toMatch(/from 0 to 100000 \(default 1000\)/);
    expect(query('/v1/kv/{key}', 'delete')['ifVersion']).toMatch(/whole number >= 0/);
    expect(query('/v1/audit', 'get')['since']).toMatch(/ISO 8601/);
    for (const path of ['/v1/tasks', '/v1/workers', '/v1/services', '/v1/audit']) expect(query(path, 'get')['cursor'], path).toMatch(/^the previous page's nextCursor/);
    const put = (doc.paths['/v1/kv/{key}']!['put'] as { requestBody: { content: Record<string, { schema: { properties: Record<string, { description?: string }> } }> } }).requestBody;
    expect(put.content['application/json']!.schema.properties['ifVersion']!.description).toMatch(/0: only if it does not exist/);
  });

  it('documents the Idempotency-Key header of the two submission routes, as the handler checks it', async () => {
    for (const path of ['/v1/tasks', '/v1/tasks/batch']) {
      const params = (doc.paths[path]!['post'] as { parameters?: { in: string; name: string; required?: boolean; schema: { maxLength?: number } }[] }).parameters ?? [];
      expect(params.filter((p) => p.in === 'header'), path).toEqual([
        expect.objectContaining({ name: 'idempotency-key', required: false, schema: expect.objectContaining({ maxLength: 256 }) }),
        expect.objectContaining({ name: 'x-minkube-timeout-ms', required: false }),
      ]);
    }
    // Documentation only: the handler's own check and message still decide (a header the document's pattern refuses
    // is not turned into a fastify validation error).
    const open = everyApp(false).app;
    try {
      const res = await open.inject({ method: 'POST', url: '/v1/tasks', headers: { 'idempotency-key': 'a b' }, payload: { image: 'x' } });
      expect(res.json<{ error: { code: string; message: string } }>().error).toMatchObject({ code: 'INVALID_PARAM', message: expect.stringMatching(/^header Idempotency-Key/) });
    } finally {
      await open.close();
    }
  });

  it('describes the X-Minkube-Timeout-Ms header on every operation, once, with the range it takes and its 400 INVALID_PARAM (outside tester)', () => {
    type Param = { in: string; name: string; required?: boolean; description?: string; schema: { type?: string; minimum?: number; maximum?: number } };
    let operations = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item).filter(([m]) => methods.includes(m))) {
        operations++;
        const where = `${method} ${path}`;
        const headers = ((op as { parameters?: Param[] }).parameters ?? []).filter((p) => p.in === 'header' && p.name.toLowerCase() === 'x-minkube-timeout-ms');
        expect(headers, where).toEqual([expect.objectContaining({ required: false, schema: { type: 'integer', minimum: 100, maximum: 3_600_000 } })]);
        expect(headers[0]!.description, where).toMatch(/whole number from 100 to 3600000, else 400 INVALID_PARAM/);
        expect((op.responses!['400'] as { description: string }).description, where).toMatch(/INVALID_PARAM for an X-Minkube-Timeout-Ms header/);
      }
    }
    expect(operations).toBe(routes.length);
  });

  it("says a body is not required where the route takes none as {} (POST /v1/cluster/leader), and that every GET answers HEAD", () => {
    const leader = doc.paths['/v1/cluster/leader']!['post'] as { requestBody?: { required?: boolean } };
    expect(leader.requestBody?.required).toBe(false);
    const put = doc.paths['/v1/kv/{key}']!['put'] as { requestBody?: { required?: boolean } };
    expect(put.requestBody?.required).toBe(true);
    expect((doc as unknown as { info: { description: string } }).info.description).toContain('Every path served with GET also answers HEAD');
  });

  it('names operations after their method and path', () => {
    expect(operationIdOf('GET', '/v1/tasks/:id/logs')).toBe('getV1TasksByIdLogs');
    expect(operationIdOf('PUT', '/v1/kv/*')).toBe('putV1KvByKey');
  });
});

describe('the OpenAPI document of an insecure cluster (insecure: true)', () => {
  const { app, routes } = everyApp(false);
  let doc: Doc;
  type Operation = { security?: unknown; responses: Record<string, { description: string }> };
  const operations = () => Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).filter(([m]) => methods.includes(m)).map(([m, op]) => [`${m} ${path}`, op as Operation] as const));

  beforeAll(async () => {
    doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<Doc>();
  });
  afterAll(() => app.close());

  it('asks for no token or certificate: no security scheme, no 401, and a 403 only for a quota', () => {
    expect(doc.components?.securitySchemes).toBeUndefined();
    expect(operations().length).toBe(routes.length);
    for (const [route, op] of operations()) {
      expect(op.security, route).toBeUndefined();
      expect(Object.keys(op.responses), route).not.toContain('401');
      if (op.responses['403'] !== undefined) expect(op.responses['403'].description, route).toMatch(/^QUOTA_EXCEEDED: /);
    }
    expect(Object.keys(doc.paths['/v1/tasks']!.post!.responses!)).toContain('403');
  });

  it('gives every route its success answer, but the four an insecure cluster always refuses (no CA, no tokens)', () => {
    const refused = ['get /v1/join/ca', 'post /v1/join', 'post /v1/certs/renew', 'post /v1/auth/login'];
    for (const [route, op] of operations()) {
      const successes = Object.keys(op.responses).filter((s) => Number(s) < 400);
      if (refused.includes(route)) expect(successes, route).toEqual([]);
      else expect(successes, route).not.toEqual([]);
    }
  });
});

describe('/openapi.json and /docs', () => {
  for (const secure of [true, false]) {
    it(`answer without a token ${secure ? 'in a secure app' : 'with insecure: true'}, while a data route still asks for one`, async () => {
      const { app } = everyApp(secure);
      try {
        expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200);
        const docs = await app.inject({ method: 'GET', url: '/docs' });
        expect([200, 302]).toContain(docs.statusCode);
        const page = docs.statusCode === 302 ? await app.inject({ method: 'GET', url: docs.headers.location as string }) : docs;
        expect(page.statusCode).toBe(200);
        expect(page.body).toMatch(/swagger/i);
        const init = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
        expect(init.statusCode).toBe(200);
        expect((await app.inject({ method: 'GET', url: '/docs/json' })).json()).toMatchObject({ openapi: expect.stringMatching(/^3\./) });
        expect((await app.inject({ method: 'GET', url: '/v1/cluster' })).statusCode).toBe(secure ? 401 : 200);
      } finally {
        await app.close();
      }
    });
  }
});
