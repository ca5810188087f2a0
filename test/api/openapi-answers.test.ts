// The OpenAPI document against what the routes really answer: live answers of an in-process manager (the real task,
// service and placement services over the state machine, as in task-submissions.test.ts) checked against the
// document's schema for their operation, status and content type. The schemas are closed for the check (an object
// may hold only the properties it names), so a field a route answers but the document leaves out fails too.
import Ajv from 'ajv';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { systemClock } from '../../src/lib/clock.js';
import { PlacementServiceImpl } from '../../src/manager/placement-service.js';
import { ServiceServiceImpl } from '../../src/manager/service-service.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';
import { FakeManagerService } from './fake-service.js';

type Responses = Record<string, { content?: Record<string, { schema: unknown }> }>;
type Doc = { paths: Record<string, Record<string, { responses: Responses }>>; components: { schemas: Record<string, unknown> } };

const inProcess = inProcessRaft();
const { kv, raft } = inProcess;
const app = buildManagerApp({
  service: new FakeManagerService(),
  tasks: inProcessTasks(inProcess),
  services: new ServiceServiceImpl({ services: kv.services, tasks: kv.tasks, raft, clock: systemClock }),
  placement: new PlacementServiceImpl({ store: kv.tasks, quotas: kv.quotas, raft, clock: systemClock }),
  status: { facts: () => ({ leaderId: 'm1', votersReachable: 1, voters: 1, workersReady: 1, workers: 1 }) },
  metrics: { endpoint: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => 'minkube_up 1\n' } },
});
afterAll(() => app.close());

let doc: Doc;
beforeAll(async () => {
  doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<Doc>();
});

/** Every object schema that does not say otherwise allows only the properties it names. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, closed(s)])) : closed(v)]));
  if (out.type === 'object' && out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

/** The document's answer for this operation and status, in the answer's media type; its body checked against its schema. */
function expectDocumented(method: string, path: string, res: LightMyRequestResponse): void {
  const where = `${method} ${path} ${res.statusCode}`;
  const response = doc.paths[path]?.[method.toLowerCase()]?.responses[String(res.statusCode)];
  expect(response, `${where}: not in the document`).toBeDefined();
  const mediaType = (res.headers['content-type'] as string | undefined)?.split(';')[0];
  if (mediaType === undefined) {
    expect(response!.content, `${where}: answers no body`).toBeUndefined();
    return;
  }
  const media = response!.content?.[mediaType];
  expect(media, `${where}: ${mediaType} not documented (${Object.keys(response!.content ?? {}).join(', ')})`).toBeDefined();
  if (mediaType !== 'application/json') return;
  // An error answer's schema is the document's shared Error ($ref '#/components/schemas/Error').
  const ref = (media!.schema as { $ref?: string }).$ref;
  const schema = ref === undefined ? media!.schema : doc.components.schemas[ref.replace('#/components/schemas/', '')];
  expect(schema, `${where}: ${ref} does not resolve`).toBeDefined();
  const validate = new Ajv({ schemaId: 'auto', unknownFormats: 'ignore', allErrors: true } as never).compile(closed(schema) as object);
  expect(validate(res.json()), `${where}: ${JSON.stringify(validate.errors)}\n${res.body.slice(0, 2000)}`).toBe(true);
}

async function answer(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, path: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(400);
  expectDocumented(method, path, res);
  return res;
}

const stats = { cpuUtilization: 0.5, memoryTotalBytes: 8e9, memoryAvailableBytes: 4e9, diskFreeBytes: 1e10, runningTasks: 1 };

describe('live answers match the OpenAPI document', () => {
  it('workers: register, heartbeat, assignments, list, one', async () => {
    await answer('POST', '/v1/workers', '/v1/workers', { id: 'w1', apiAddress: '127.0.0.1:7001', runtime: 'memory', labels: { zone: 'a' }, capacity: { cpus: 4, memoryMb: 4096 } });
    const submitted = await answer('POST', '/v1/tasks', '/v1/tasks', { image: 'busybox', command: ['sleep', '60'], secretEnv: { TOKEN: 's3cret' }, ports: [{ name: 'http' }] });
    const { id } = submitted.json<{ id: string }>();
    inProcess.apply({ op: 'task.place', term: 1, atMs: Date.now(), cursor: 'w1', placements: [{ taskId: id, attempt: 1, workerId: 'w1' }] });
    const running = { taskId: id, attempt: 1, term: 1, state: 'running', containerId: 'c1', exitCode: null, error: null, startedAt: new Date().toISOString(), finishedAt: null, ports: [{ name: 'http', hostPort: 30001, address: '127.0.0.1:30001' }] };
    await answer('POST', '/v1/workers/w1/heartbeat', '/v1/workers/{id}/heartbeat', { stats, tasks: [running] });
    const assignments = await answer('GET', '/v1/workers/w1/assignments', '/v1/workers/{id}/assignments');
    expect(assignments.json()).toMatchObject({ items: [{ taskId: id }] });
    await answer('GET', '/v1/workers', '/v1/workers');
    await answer('GET', '/v1/workers/w1', '/v1/workers/{id}');
  });

  it('tasks: list, one, placement, stop', async () => {
    const { id } = (await answer('POST', '/v1/tasks', '/v1/tasks', { image: 'busybox', namespace: 'team-a', resources: { cpus: 1 } })).json<{ id: string }>();
    const list = await answer('GET', '/v1/tasks', '/v1/tasks');
    expect(list.json<{ items: unknown[] }>().items.length).toBeGreaterThanOrEqual(2);
    await answer('GET', `/v1/tasks/${id}`, '/v1/tasks/{id}');
    await answer('GET', `/v1/tasks/${id}/placement`, '/v1/tasks/{id}/placement');
    await answer('DELETE', `/v1/tasks/${id}`, '/v1/tasks/{id}');
  });

  it('quotas: set and list', async () => {
    await answer('PUT', '/v1/quotas/team-a', '/v1/quotas/{namespace}', { tasksMax: 5, cpus: 2 });
    await answer('GET', '/v1/quotas', '/v1/quotas');
  });

  it('services: create, list, one, update, rollback, delete', async () => {
    const health = { type: 'http', port: 'http', path: '/healthz', intervalS: 1, timeoutS: 1, retries: 3, startPeriodS: 0 };
    await answer('POST', '/v1/services', '/v1/services', { name: 'web', task: { image: 'img', command: ['serve'] }, replicas: 2, ports: [{ name: 'http' }], healthCheck: health });
    await answer('GET', '/v1/services', '/v1/services');
    await answer('GET', '/v1/services/web', '/v1/services/{name}');
    await answer('PATCH', '/v1/services/web', '/v1/services/{name}', { task: { image: 'img:2', command: ['serve'] } });
    await answer('POST', '/v1/services/web/rollback', '/v1/services/{name}/rollback');
    await answer('DELETE', '/v1/services/web', '/v1/services/{name}');
  });

  it('X-Minkube-Timeout-Ms: every operation takes a good one, and answers a bad one 400 INVALID_PARAM as documented (outside tester)', async () => {
    const operations: ['GET' | 'POST' | 'PUT', string, string, unknown?][] = [
      ['GET', '/health', '/health'],
      ['GET', '/status', '/status'],
      ['GET', '/ui', '/ui'],
      ['GET', '/openapi.json', '/openapi.json'],
      ['GET', '/v1/workers', '/v1/workers'],
      ['POST', '/v1/tasks', '/v1/tasks', { image: 'busybox' }],
      ['PUT', '/v1/quotas/team-b', '/v1/quotas/{namespace}', { tasksMax: 5 }],
    ];
    for (const [method, url, path, payload] of operations) {
      const header = (doc.paths[path]![method.toLowerCase()] as { parameters?: { in: string; name: string }[] }).parameters?.filter((p) => p.in === 'header' && p.name === 'x-minkube-timeout-ms');
      expect(header, `${method} ${path}`).toHaveLength(1);
      await answer(method, url, path, payload, { 'x-minkube-timeout-ms': '2000' });
      for (const bad of ['99', '3600001', '1.5', 'soon']) {
        const res = await app.inject({ method, url, headers: { 'x-minkube-timeout-ms': bad }, ...(payload === undefined ? {} : { payload: payload as string }) });
        expect(res.statusCode, `${method} ${url} ${bad}`).toBe(400);
        expect(res.json<{ error: { code: string } }>().error.code).toBe('INVALID_PARAM');
        expectDocumented(method, path, res);
      }
    }
  });

  it('the answers that are not JSON, or not always: /status, /metrics, /ui, /openapi.json', async () => {
    await answer('GET', '/status', '/status');
    const page = await answer('GET', '/status', '/status', undefined, { accept: 'text/html' });
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    await answer('GET', '/metrics', '/metrics');
    const ui = await answer('GET', '/ui', '/ui');
    expect(ui.statusCode).toBe(302);
    await answer('GET', '/openapi.json', '/openapi.json');
  });
});
