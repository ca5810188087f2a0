// HttpWorkerApi against a real worker app on loopback: batches answered item by item, split under the body limit,
// and a worker without the batch route served one call each.
import Fastify from 'fastify';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Assignment } from '../../src/contracts/worker.js';
import { buildWorkerApp } from '../../src/api/worker-app.js';
import { HttpClient } from '../../src/client/http.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { classifyAssignError, HttpWorkerApi } from '../../src/manager/worker-client.js';
import { MemoryRuntime } from '../../src/runtime/index.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { freePortIn } from '../support/wait.js';

const agent = new WorkerAgent({ workerId: 'w1', runtime: new MemoryRuntime({ durationMsDefault: null }), logger: pino({ level: 'silent' }), stopTimeoutMs: 50 });
const app = buildWorkerApp({ agent });
const api = new HttpWorkerApi();
let address = '';

beforeAll(async () => {
  await app.listen({ host: '127.0.0.1', port: 0 });
  address = `127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  api.close();
  await app.close();
  await agent.close();
});

const a = (taskId: string, spec: Assignment['spec'] = { image: 'img' }, attempt = 1): Assignment => ({ taskId, attempt, term: 1, spec, desiredState: 'run' });

describe('HttpWorkerApi.assignMany', () => {
  it('answers every assignment in order, an error where that one failed', async () => {
    await api.assign(address, a('old', { image: 'img' }, 2), { workerId: 'w1', timeoutMs: 2000 });
    const answers = await api.assignMany(address, [a('m1'), a('old'), a('m2')], { workerId: 'w1', timeoutMs: 2000 });
    expect(answers[0]).toMatchObject({ taskId: 'm1', state: 'running' });
    expect(answers[1]).toBeInstanceOf(MinkubeError);
    expect((answers[1] as MinkubeError).code).toBe('TASK_STALE_FENCING_TOKEN');
    expect(answers[2]).toMatchObject({ taskId: 'm2', state: 'running' });
  });

  it('splits a batch whose specs would pass the worker body limit', async () => {
    // Together over the worker's 1 MiB body limit (413 in one request), each well under it.
    const big = { image: 'img', env: { PAD: 'x'.repeat(350 * 1024) } };
    const answers = await api.assignMany(address, [a('big1', big), a('big2', big), a('big3', big)], { workerId: 'w1', timeoutMs: 5000 });
    expect(answers.map((s) => (s instanceof MinkubeError ? s.code : s.state))).toEqual(['running', 'running', 'running']);
  });

  it('falls back to one call each when the worker has no batch route', async () => {
    const old = Fastify();
    const seen: string[] = [];
    old.post('/v1/tasks', async (req) => {
      const body = req.body as Assignment;
      seen.push(body.taskId);
      return { taskId: body.taskId, attempt: body.attempt, term: body.term, state: 'running', containerId: 'c', exitCode: null, error: null, startedAt: null, finishedAt: null };
    });
    old.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'no such route' } }));
    await old.listen({ host: '127.0.0.1', port: 0 });
    try {
      const oldAddress = `127.0.0.1:${(old.server.address() as { port: number }).port}`;
      const answers = await api.assignMany(oldAddress, [a('o1'), a('o2')], { workerId: 'w1', timeoutMs: 2000 });
      expect(answers).toMatchObject([{ taskId: 'o1', state: 'running' }, { taskId: 'o2', state: 'running' }]);
      expect(seen.sort()).toEqual(['o1', 'o2']);
    } finally {
      await old.close();
    }
  });
});

describe('HttpWorkerApi failures', () => {
  // Never answers; remembers the address each request came from.
  const seen: (string | undefined)[] = [];
  const silent = createServer((req) => void seen.push(req.socket.remoteAddress));
  let silentAddress = '';
  beforeAll(async () => {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentAddress = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    silent.closeAllConnections();
    await new Promise((r) => silent.close(r));
  });

  it('no answer in time is TIMEOUT, its outcome unknown (the worker may be running it)', async () => {
    const e = await api.assign(silentAddress, a('slow'), { workerId: 'w1', timeoutMs: 100 }).catch((err: unknown) => err);
    expect(e).toMatchObject({ code: 'TIMEOUT' });
    expect(classifyAssignError(e)).toBe('unknown');
  });

  it('an abort (step-down) is WORKER_UNAVAILABLE, abandoned', async () => {
    const controller = new AbortController();
    const p = api.assign(silentAddress, a('gone'), { workerId: 'w1', timeoutMs: 5000, signal: controller.signal }).catch((err: unknown) => err);
    controller.abort();
    const e = (await p) as MinkubeError;
    expect(e).toMatchObject({ code: 'WORKER_UNAVAILABLE' });
    expect(e.message).toContain('abandoned (this manager stepped down)');
  });

  it('an unreachable worker is WORKER_UNAVAILABLE naming its URL; refused, the assignment surely never arrived: deferred', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const { port } = closed.address() as AddressInfo;
    await new Promise((r) => closed.close(r));
    const e = (await api.assignMany(`127.0.0.1:${port}`, [a('x')], { workerId: 'w1', timeoutMs: 1000 }).catch((err: unknown) => err)) as MinkubeError;
    expect(e).toMatchObject({ code: 'WORKER_UNAVAILABLE', message: `cannot reach http://127.0.0.1:${port}/v1/tasks/batch (ECONNREFUSED)` });
    expect(classifyAssignError(e)).toBe('deferred');
    // Its own 5xx is an answer: transient (another attempt, maybe elsewhere).
    expect(classifyAssignError(new MinkubeError('INTERNAL', 'boom'))).toBe('transient');
  });

  it('sends through the HttpClient it is given (its source address included)', async () => {
    // Not a token: HttpClient sends none over plain HTTP (a manager's pool holds none anyway, its certificate is its name).
    const http = new HttpClient({ localAddress: '127.0.0.2' });
    const through = new HttpWorkerApi({ http });
    try {
      await through.logs(silentAddress, 't1', 10, { workerId: 'w1', timeoutMs: 500 }).catch(() => undefined);
      expect(seen.at(-1)).toBe('127.0.0.2');
    } finally {
      through.close();
      await http.close();
    }
  });
});

describe('HttpWorkerApi.followLogs', () => {
  it("relays a worker's QUEUE_FULL naming that worker, whose cap is full (not the relaying manager's)", async () => {
    const full = Fastify();
    // This worker's answer, and that of a worker that predates it ("this node").
    full.get('/v1/tasks/:id/logs', async (req, reply) => {
      const node = (req.params as { id: string }).id === 'old' ? 'this node' : 'this worker';
      return reply.code(429).send({ error: { code: 'QUEUE_FULL', message: `${node} already serves 64 followed logs; retry later` } });
    });
    const host = '127.0.69.3';
    await full.listen({ host, port: await freePortIn(host, 20000, 29999) });
    try {
      const at = `${host}:${(full.server.address() as AddressInfo).port}`;
      for (const id of ['t1', 'old']) {
        const err = await api.followLogs(at, id, 0, { workerId: 'w2', timeoutMs: 2000, signal: new AbortController().signal }).then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(MinkubeError);
        expect(err).toMatchObject({ code: 'QUEUE_FULL', status: 429, message: 'worker w2 already serves 64 followed logs; retry later' });
      }
    } finally {
      await full.close();
    }
  });
});
