// The worker's HTTP API through app.inject, over a real agent and the in-memory runtime: every route and error code.
import { buildInfo } from '../../src/lib/build-info.js';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWorkerApp } from '../../src/api/worker-app.js';
import { MemoryRuntime, type RunSpec } from '../../src/runtime/index.js';
import { WorkerAgent } from '../../src/worker/agent.js';

const runtime = new MemoryRuntime({ behave: (spec: RunSpec) => ({ logs: spec.env?.LOGS ?? '' }) });
const agent = new WorkerAgent({
  workerId: 'w1', runtime, logger: pino({ level: 'silent' }), stopTimeoutMs: 50,
  hostStats: async () => ({ cpuUtilization: 0.25, memoryTotalBytes: 1000, memoryAvailableBytes: 400, diskFreeBytes: 77 }),
});
const app = buildWorkerApp({ agent, bodyLimitBytes: 2048 });
afterAll(async () => {
  await app.close();
  await agent.close();
});

type Method = 'GET' | 'POST' | 'DELETE';
async function call(method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, text: res.body, headers: res.headers, json: () => res.json<Record<string, unknown>>() };
}

async function expectError(p: ReturnType<typeof call>, status: number, code: string, message?: RegExp) {
  const res = await p;
  expect(res.status).toBe(status);
  const body = res.json();
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toMatchObject({ code });
  if (message) expect((body.error as { message: string }).message).toMatch(message);
}

const assignment = (taskId: string, extra: Record<string, unknown> = {}) => ({
  taskId, attempt: 1, term: 1, spec: { image: 'busybox', env: { LOGS: 'one\ntwo\nthree\n' } }, desiredState: 'run', ...extra,
});

describe('POST /v1/tasks', () => {
  it('starts the task and answers its status; the same token again answers the same status', async () => {
    const res = await call('POST', '/v1/tasks', assignment('a'));
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ taskId: 'a', attempt: 1, term: 1, state: 'running', exitCode: null, error: null, finishedAt: null });
    const again = await call('POST', '/v1/tasks', assignment('a'));
    expect(again.json()).toEqual(res.json());
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('refuses an older token with 409 TASK_STALE_FENCING_TOKEN', async () => {
    await call('POST', '/v1/tasks', assignment('b', { attempt: 3, term: 2 }));
    await expectError(call('POST', '/v1/tasks', assignment('b', { attempt: 2, term: 5 })), 409, 'TASK_STALE_FENCING_TOKEN', /attempt 2 term 5 is older/);
  });

  it('answers a start failure as a failed status with a classified error', async () => {
    const res = await call('POST', '/v1/tasks', assignment('bad-command', { spec: { image: 'x', command: [''] } }));
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ state: 'failed', error: { class: 'permanent' } });
  });

  it.each([
    [{ attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' }, /body\.taskId: missing/],
    [assignment('v', { spec: {} }), /body\.spec\.image: missing/],
    [assignment('v', { spec: { image: '' } }), /body\.spec\.image/],
    [assignment('v', { attempt: '1' }), /body\.attempt: expected integer/],
    [assignment('v', { attempt: 0 }), /body\.attempt/],
    [assignment('v', { desiredState: 'paused' }), /body\.desiredState: expected one of "run", "stop"/],
    [assignment('v', { spec: { image: 'x', command: [] } }), /body\.spec\.command/],
    [assignment('v', { spec: { image: 'x', command: ['ls', 3] } }), /body\.spec\.command\[1\]/],
    [assignment('v', { spec: { image: 'x', env: { A: 1 } } }), /body\.spec\.env\.A/],
    [assignment('v', { spec: { image: 'x', resources: { cpus: 0 } } }), /body\.spec\.resources\.cpus/],
    [assignment('v', { spec: { image: 'x', env: { '1BAD': 'v' } } }), /^body\.spec\.env\.1BAD: not a valid variable name$/],
    [assignment('v', { spec: { image: 'x', env: { 'A=B': 'v' } } }), /^body\.spec\.env\.A=B: not a valid variable name$/],
    [assignment('v', { spec: { image: 'x', env: { A: 'a\u0000b' } } }), /^body\.spec\.env\.A: contains a NUL byte$/],
    [assignment('v', { spec: { image: 'x', command: ['ls', '-l', 'a\u0000'] } }), /^body\.spec\.command\[2\]: contains a NUL byte$/],
    [assignment('v', { spec: { image: 'x\u0000y' } }), /^body\.spec\.image: contains a NUL byte$/],
    [assignment('v', { spec: { image: 'x', labels: { team: 'a\u0000' } } }), /^body\.spec\.labels\.team: contains a NUL byte$/],
    // Shapes the spec rules read: a malformed one is the spec's fault, not a 500.
    [assignment('v', { spec: { image: 'x', ports: [null] } }), /^body\.spec\.ports\/0|^body\.spec\.ports\[0\]/],
    [assignment('v', { spec: { image: 'x', healthCheck: { type: 'exec', command: {}, intervalS: 1, timeoutS: 1, retries: 1, startPeriodS: 0 } } }), /^body\.spec\.healthCheck\.command/],
  ])('refuses an invalid assignment with 400 INVALID_TASK_SPEC naming the field (%#)', async (body, message) => {
    await expectError(call('POST', '/v1/tasks', body), 400, 'INVALID_TASK_SPEC', message);
    expect(agent.list().some((s) => s.taskId === 'v')).toBe(false);
  });

  it('keeps the shared errors for malformed JSON, other content types and large bodies', async () => {
    await expectError(call('POST', '/v1/tasks', '{"taskId":', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
    await expectError(call('POST', '/v1/tasks', 'hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await expectError(call('POST', '/v1/tasks', assignment('big', { spec: { image: 'x'.repeat(3000) } })), 413, 'PAYLOAD_TOO_LARGE');
  });
});

describe('POST /v1/tasks/batch', () => {
  it('answers each assignment alone, in order: a status, or the error that one met', async () => {
    await call('POST', '/v1/tasks', assignment('batch-old', { attempt: 3, term: 2 }));
    const res = await call('POST', '/v1/tasks/batch', {
      assignments: [assignment('batch-a'), { taskId: 'batch-b', attempt: 1 }, assignment('batch-old', { attempt: 1, term: 1 }), assignment('batch-c')],
    });
    expect(res.status).toBe(200);
    const items = (res.json() as { items: Record<string, { code?: string; message?: string; taskId?: string; state?: string }>[] }).items;
    expect(items).toHaveLength(4);
    expect(items[0]!.status).toMatchObject({ taskId: 'batch-a', state: 'running' });
    expect(items[1]!.error).toMatchObject({ code: 'INVALID_TASK_SPEC', message: expect.stringMatching(/^assignments\[1\]/) as string });
    expect(items[2]!.error).toMatchObject({ code: 'TASK_STALE_FENCING_TOKEN' });
    expect(items[3]!.status).toMatchObject({ taskId: 'batch-c', state: 'running' });
  });

  it('judges each assignment by the spec rules too: a bad env name fails that item alone', async () => {
    const res = await call('POST', '/v1/tasks/batch', {
      assignments: [assignment('rules-a'), assignment('rules-b', { spec: { image: 'x', env: { '1BAD': 'v' } } })],
    });
    const items = (res.json() as { items: Record<string, { code?: string; message?: string; taskId?: string }>[] }).items;
    expect(items[0]!.status).toMatchObject({ taskId: 'rules-a' });
    expect(items[1]!.error).toEqual({ code: 'INVALID_TASK_SPEC', message: 'assignments[1].spec.env.1BAD: not a valid variable name' });
    expect(agent.list().some((s) => s.taskId === 'rules-b')).toBe(false);
  });

  it('fails a malformed spec in a batch as that item alone, naming the field (not an internal error)', async () => {
    const res = await call('POST', '/v1/tasks/batch', { assignments: [assignment('shape-a', { spec: { image: 'x', ports: [null] } })] });
    const items = (res.json() as { items: Record<string, { code?: string; message?: string }>[] }).items;
    expect(items[0]!.error).toMatchObject({ code: 'INVALID_TASK_SPEC', message: expect.stringMatching(/^assignments\[0\]\.spec\.ports/) as string });
  });

  it('words a refused item as POST /v1/tasks words it, under the item\'s name', async () => {
    const { taskId: _id, ...noTaskId } = assignment('x');
    const items: [unknown, string, string][] = [
      [noTaskId, 'assignments[0].taskId: missing', 'body.taskId: missing'],
      [assignment('words-b', { attempt: '1' }), 'assignments[1].attempt: expected integer', 'body.attempt: expected integer'],
      [assignment('words-c', { desiredState: 'paused' }), 'assignments[2].desiredState: expected one of "run", "stop"', 'body.desiredState: expected one of "run", "stop"'],
      [assignment('words-d', { spec: { image: 'x', command: ['ls', 3] } }), 'assignments[3].spec.command[1]: expected string', 'body.spec.command[1]: expected string'],
    ];
    const res = await call('POST', '/v1/tasks/batch', { assignments: items.map(([a]) => a) });
    const errors = (res.json() as { items: { error?: { code: string; message: string } }[] }).items.map((i) => i.error);
    expect(errors).toEqual(items.map(([, message]) => ({ code: 'INVALID_TASK_SPEC', message })));
    for (const [body, , single] of items) await expectError(call('POST', '/v1/tasks', body), 400, 'INVALID_TASK_SPEC', new RegExp(`^${single.replace(/[.[\]]/g, '\\$&')}$`));
  });

  it('refuses an empty batch and a body without assignments', async () => {
    await expectError(call('POST', '/v1/tasks/batch', { assignments: [] }), 400, 'INVALID_BODY');
    await expectError(call('POST', '/v1/tasks/batch', [assignment('x')]), 400, 'INVALID_BODY');
  });
});

describe('DELETE /v1/tasks/:id', () => {
  it('stops with the task token, 409s an older one, 404s an unknown task', async () => {
    await call('POST', '/v1/tasks', assignment('s', { attempt: 2, term: 4 }));
    await expectError(call('DELETE', '/v1/tasks/s?attempt=1&term=9'), 409, 'TASK_STALE_FENCING_TOKEN');
    await expectError(call('DELETE', '/v1/tasks/nope?attempt=1&term=1'), 404, 'TASK_NOT_FOUND');
    const res = await call('DELETE', '/v1/tasks/s?attempt=2&term=4');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ taskId: 's', state: 'stopped', exitCode: 143 });
  });

  it('needs both parts of the token as integers', async () => {
    await expectError(call('DELETE', '/v1/tasks/s?attempt=2'), 400, 'INVALID_PARAM', /query\.term: missing/);
    await expectError(call('DELETE', '/v1/tasks/s?attempt=x&term=1'), 400, 'INVALID_PARAM', /query\.attempt: expected an integer/);
    await expectError(call('DELETE', '/v1/tasks/s?attempt=1&term=1&force=1'), 400, 'INVALID_PARAM', /unknown field/);
  });
});

describe('reads', () => {
  it('GET /v1/tasks lists every status; GET /v1/tasks/:id answers one or 404', async () => {
    await call('POST', '/v1/tasks', assignment('r'));
    const list = await call('GET', '/v1/tasks');
    expect(list.status).toBe(200);
    const body = list.json() as { items: { taskId: string }[]; nextCursor: unknown };
    expect(body.nextCursor).toBeNull();
    expect(body.items.map((s) => s.taskId)).toContain('r');
    expect((await call('GET', '/v1/tasks/r')).json()).toMatchObject({ taskId: 'r', state: 'running' });
    await expectError(call('GET', '/v1/tasks/nope'), 404, 'TASK_NOT_FOUND');
  });

  it('GET /v1/tasks/:id/logs answers text/plain, the newest tail lines', async () => {
    await call('POST', '/v1/tasks', assignment('l'));
    const res = await call('GET', '/v1/tasks/l/logs?tail=2');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toBe('two\nthree\n');
    expect((await call('GET', '/v1/tasks/l/logs')).text).toBe('one\ntwo\nthree\n');
    await expectError(call('GET', '/v1/tasks/l/logs?tail=-1'), 400, 'INVALID_PARAM', /query\.tail/);
    await expectError(call('GET', '/v1/tasks/l/logs?tail=1000000'), 400, 'INVALID_PARAM', /^query\.tail: expected an integer from 0 to 100000, got "1000000"$/);
    await expectError(call('GET', '/v1/tasks/nope/logs'), 404, 'TASK_NOT_FOUND');
  });

  it('HEAD /v1/tasks/:id/logs?follow=true answers at once, as the GET would, and follows nothing (the task runs on)', async () => {
    await call('POST', '/v1/tasks', assignment('h'));
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'HEAD', url: '/v1/tasks/h/logs?follow=true' });
      expect([res.statusCode, res.headers['content-type'], res.body]).toEqual([200, 'text/plain; charset=utf-8', '']);
    }
    expect((await app.inject({ method: 'HEAD', url: '/v1/tasks/nope/logs?follow=true' })).statusCode).toBe(404);
  });

  it('GET /v1/stats answers the host figures and the running task count', async () => {
    const res = await call('GET', '/v1/stats');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ cpuUtilization: 0.25, memoryTotalBytes: 1000, memoryAvailableBytes: 400, diskFreeBytes: 77, runningTasks: agent.runningCount() });
    expect(agent.runningCount()).toBeGreaterThan(0);
  });

  it('GET /health and /ready answer; an unknown route is 404 NOT_FOUND', async () => {
    expect((await call('GET', '/health')).json()).toEqual({ status: 'ok', build: buildInfo() });
    expect((await call('GET', '/ready')).json()).toEqual({ ready: true });
    await expectError(call('GET', '/v1/nothing'), 404, 'NOT_FOUND');
  });
});
