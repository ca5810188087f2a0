// The worker routes carry the worker's instance (app.inject over the real task service and state machine): the body
// of a registration and a heartbeat, and a header of GET assignments; a replaced instance is answered 409
// WORKER_REPLACED, and GET /v1/workers shows the instance that holds the id.
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { workerInstanceHeader } from '../../src/contracts/worker.js';
import { errorFromBody } from '../../src/lib/errors.js';
import { holderEngineOf } from '../../src/worker/loops.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';
import { FakeManagerService } from './fake-service.js';

const tasks = inProcessTasks(inProcessRaft());
const app = buildManagerApp({ service: new FakeManagerService(), tasks });
afterAll(() => app.close());

const stats = { cpuUtilization: 0, memoryTotalBytes: 1, memoryAvailableBytes: 1, diskFreeBytes: 1, runningTasks: 0 };

async function call(method: 'GET' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

describe('worker instances at the API', () => {
  it('the newest registration holds the id; the replaced instance gets 409 WORKER_REPLACED on heartbeats and assignment fetches', async () => {
    expect((await call('POST', '/v1/workers', { id: 'w1', apiAddress: '127.0.23.11:9001', runtime: 'process', instance: 'aaaaaaaaaaaa' })).status).toBe(200);
    const second = await call('POST', '/v1/workers', { id: 'w1', apiAddress: '127.0.23.21:9001', runtime: 'process', instance: 'bbbbbbbbbbbb' });
    expect(second).toMatchObject({ status: 200, body: { worker: { apiAddress: '127.0.23.21:9001', instance: 'bbbbbbbbbbbb' } } });
    expect((await call('GET', '/v1/workers')).body.items).toMatchObject([{ id: 'w1', apiAddress: '127.0.23.21:9001', instance: 'bbbbbbbbbbbb' }]);

    const beat = await call('POST', '/v1/workers/w1/heartbeat', { stats, tasks: [], instance: 'aaaaaaaaaaaa' });
    expect(beat.status).toBe(409);
    expect(beat.body.error).toMatchObject({ code: 'WORKER_REPLACED', message: expect.stringContaining('this one (aaaaaaaaaaaa) was replaced') as string });
    expect((await call('GET', '/v1/workers/w1/assignments', undefined, { [workerInstanceHeader]: 'aaaaaaaaaaaa' })).body.error).toMatchObject({ code: 'WORKER_REPLACED' });

    expect((await call('POST', '/v1/workers/w1/heartbeat', { stats, tasks: [], instance: 'bbbbbbbbbbbb' })).status).toBe(200);
    expect(await call('GET', '/v1/workers/w1/assignments', undefined, { [workerInstanceHeader]: 'bbbbbbbbbbbb' })).toEqual({ status: 200, body: { items: [], nextCursor: null } });
    // A worker that names no instance (one that predates them) is answered as before.
    expect((await call('GET', '/v1/workers/w1/assignments')).status).toBe(200);
  });

  it('an apiAddress managers could not dial (port 0 or past 65535, a wildcard, an odd host) is a 400 naming it, and nothing is registered', async () => {
    for (const apiAddress of ['127.0.23.61:99999', '127.0.23.61:0', '%:1', '*.x:1', 'a..b:24000', '127.0.23.61']) {
      const r = await call('POST', '/v1/workers', { id: 'w9', apiAddress, runtime: 'process' });
      expect([apiAddress, r.status, (r.body.error as { code: string; message: string }).code]).toEqual([apiAddress, 400, 'INVALID_BODY']);
      expect((r.body.error as { message: string }).message).toMatch(/^body\.apiAddress: /);
    }
    expect((await call('GET', '/v1/workers/w9')).status).toBe(404);
    for (const apiAddress of ['[::1]:9009', 'worker-9.example:9009']) {
      expect([apiAddress, (await call('POST', '/v1/workers', { id: 'w9', apiAddress, runtime: 'process' })).status]).toEqual([apiAddress, 200]);
    }
  });

  it("a registration carries its engine; the instance it replaced is told it in the 409's details, as a worker's client reads it", async () => {
    const engine = 'docker:0f5c3ab1-7d2e-4c65-9a1b-2e8d9c0f4a77';
    expect((await call('POST', '/v1/workers', { id: 'w3', apiAddress: '127.0.23.13:9001', runtime: 'docker', instance: 'aaaaaaaaaaaa', engine })).status).toBe(200);
    expect((await call('POST', '/v1/workers', { id: 'w3', apiAddress: '127.0.23.23:9001', runtime: 'docker', instance: 'bbbbbbbbbbbb', engine })).status).toBe(200);
    const beat = await call('POST', '/v1/workers/w3/heartbeat', { stats, tasks: [], instance: 'aaaaaaaaaaaa' });
    expect(beat).toMatchObject({ status: 409, body: { error: { code: 'WORKER_REPLACED', details: { engine } } } });
    expect(holderEngineOf(errorFromBody(beat.body, beat.status))).toBe(engine);
    const fetched = await call('GET', '/v1/workers/w3/assignments', undefined, { [workerInstanceHeader]: 'aaaaaaaaaaaa' });
    expect(holderEngineOf(errorFromBody(fetched.body, fetched.status))).toBe(engine);
    for (const bad of ['', 'docker: x', 'x'.repeat(129)]) {
      const r = await call('POST', '/v1/workers', { id: 'w3', apiAddress: '127.0.23.23:9001', runtime: 'docker', instance: 'bbbbbbbbbbbb', engine: bad });
      expect(r).toMatchObject({ status: 400, body: { error: { code: 'INVALID_BODY', message: expect.stringMatching(/^body\.engine: /) as string } } });
    }
  });

  it('a malformed instance is a 400 naming it', async () => {
    expect((await call('POST', '/v1/workers', { id: 'w2', apiAddress: '127.0.23.12:9001', runtime: 'process', instance: 'a b' })).body.error).toMatchObject({ code: 'INVALID_BODY' });
    const r = await call('GET', '/v1/workers/w1/assignments', undefined, { [workerInstanceHeader]: 'a b' });
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'INVALID_PARAM', message: expect.stringContaining(`headers.${workerInstanceHeader}`) as string } } });
  });
});
