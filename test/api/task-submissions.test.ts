// POST /v1/tasks and /v1/tasks/batch through app.inject over the real task service and state machine (proposals
// validated and applied in process, as the driver would): the spec rules, and an Idempotency-Key reused for another
// request.
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { FakeManagerService } from './fake-service.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';

const inProcess = inProcessRaft();
const { kv } = inProcess;
const tasks = inProcessTasks(inProcess);
const app = buildManagerApp({ service: new FakeManagerService(), tasks });
afterAll(() => app.close());

async function post(url: string, payload: unknown, key?: string) {
  const res = await app.inject({ method: 'POST', url, payload: payload as string, headers: key === undefined ? {} : { 'idempotency-key': key } });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

const spec = (extra: Record<string, unknown> = {}) => ({ image: 'busybox', command: ['echo', 'hi'], ...extra });

describe('task spec rules (400 INVALID_TASK_SPEC naming the field)', () => {
  it.each([
    [{ env: { '1BAD': 'v' } }, 'spec.env.1BAD: not a valid variable name'],
    [{ env: { 'A-B': 'v' } }, 'spec.env.A-B: not a valid variable name'],
    [{ env: { ['X'.repeat(257)]: 'v' } }, `spec.env.${'X'.repeat(32)}...: not a valid variable name`],
    [{ env: { OK: 'a\u0000b' } }, 'spec.env.OK: contains a NUL byte'],
    [{ command: ['sh', '-c', 'echo\u0000rm'] }, 'spec.command[2]: contains a NUL byte'],
    [{ image: 'busy\u0000box' }, 'spec.image: contains a NUL byte'],
    [{ image: 'minkube-busybox:latest; rm -rf /' }, expect.stringMatching(/^spec\.image: "minkube-busybox:latest; rm -rf \/" is not an image reference/)],
    [{ image: ' ' }, expect.stringMatching(/^spec\.image: " " is not an image reference/)],
    [{ name: 'n\u0000' }, 'spec.name: contains a NUL byte'],
    [{ labels: { team: 'a\u0000' } }, 'spec.labels.team: contains a NUL byte'],
    [{ labels: { 't\u0000': 'a' } }, 'spec.labels.t\\u0000: contains a NUL byte'],
  ])('POST /v1/tasks refuses %j', async (extra, message) => {
    const before = kv.tasks.taskCount;
    expect(await post('/v1/tasks', spec(extra))).toEqual({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC', message } } });
    expect(kv.tasks.taskCount).toBe(before);
  });

  it('accepts good names and values', async () => {
    const r = await post('/v1/tasks', spec({ env: { _A1: 'x y', PATH: '/bin' }, labels: { 'app.kubernetes/name': 'web' } }));
    expect(r.status).toBe(201);
  });

  it('POST /v1/tasks/batch names the task with tasks[i]., and creates none', async () => {
    const before = kv.tasks.taskCount;
    const r = await post('/v1/tasks/batch', { tasks: [spec(), spec({ env: { '9LIVES': 'x' } })] });
    expect(r).toEqual({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC', message: 'tasks[1].env.9LIVES: not a valid variable name' } } });
    const nul = await post('/v1/tasks/batch', { tasks: [spec({ command: ['a', 'b', '\u0000'] })] });
    expect(nul.body).toEqual({ error: { code: 'INVALID_TASK_SPEC', message: 'tasks[0].command[2]: contains a NUL byte' } });
    // The body as a whole is named `body`, not the empty string.
    for (const bad of [null, [], 7]) expect((await post('/v1/tasks/batch', bad)).body, JSON.stringify(bad)).toEqual({ error: { code: 'INVALID_TASK_SPEC', message: 'body: expected object' } });
    expect(kv.tasks.taskCount).toBe(before);
  });
});

describe('several fields missing at once (400 INVALID_TASK_SPEC)', () => {
  // Before, only the first was renamed: `spec.healthCheck.intervalS: missing; body.healthCheck.timeoutS: missing; ...`.
  const check = { type: 'tcp', port: 'web', path: '/x' };
  const missing = ['intervalS', 'timeoutS', 'retries', 'startPeriodS'];

  it('POST /v1/tasks names every one under spec., as its other messages do', async () => {
    const r = await post('/v1/tasks', { image: 'x', ports: [{ name: 'web' }], healthCheck: check });
    const message = missing.map((field) => `spec.healthCheck.${field}: missing`).join('; ');
    expect(r).toEqual({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC', message } } });
  });

  it('POST /v1/tasks/batch names every one under tasks[i].', async () => {
    const r = await post('/v1/tasks/batch', { tasks: [spec(), { image: 'x', ports: [{ name: 'web' }], healthCheck: check }] });
    const message = missing.map((field) => `tasks[1].healthCheck.${field}: missing`).join('; ');
    expect(r).toEqual({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC', message } } });
  });
});

describe('Idempotency-Key reused with a different body', () => {
  it('POST /v1/tasks: the same body answers the first task, another body is 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const first = await post('/v1/tasks', spec(), 'key-1');
    expect(first.status).toBe(201);
    expect(await post('/v1/tasks', spec(), 'key-1')).toEqual({ status: 201, body: first.body });
    // Defaults written out are the same request.
    expect((await post('/v1/tasks', spec({ restartPolicy: 'never', maxAttempts: 3 }), 'key-1')).body).toEqual(first.body);
    const before = kv.tasks.taskCount;
    const other = await post('/v1/tasks', spec({ command: ['echo', 'bye'] }), 'key-1');
    expect(other).toEqual({
      status: 422,
      body: { error: { code: 'IDEMPOTENCY_KEY_REUSED', message: 'the Idempotency-Key "key-1" was used for a different request (another spec); use a new key for a new request' } },
    });
    expect(kv.tasks.taskCount).toBe(before);
  });

  it('POST /v1/tasks/batch compares key.i with spec i: the same batch answers the first, a changed one is 422', async () => {
    const batch = { tasks: [spec({ name: 'a' }), spec({ name: 'b' })] };
    const first = await post('/v1/tasks/batch', batch, 'batch-1');
    expect(first.status).toBe(201);
    expect(await post('/v1/tasks/batch', batch, 'batch-1')).toEqual({ status: 201, body: first.body });
    const before = kv.tasks.taskCount;
    const changed = await post('/v1/tasks/batch', { tasks: [spec({ name: 'a' }), spec({ name: 'c' })] }, 'batch-1');
    expect(changed.status).toBe(422);
    expect(changed.body).toEqual({ error: { code: 'IDEMPOTENCY_KEY_REUSED', message: expect.stringMatching(/^tasks\[1\]: the Idempotency-Key "batch-1" was used for a different request/) } });
    expect(kv.tasks.taskCount).toBe(before);
  });

  it('a batch retried longer or shorter under its key is 422, and so is a key used by the other route; nothing is created', async () => {
    const first = await post('/v1/tasks/batch', { tasks: [spec({ name: 'a' }), spec({ name: 'b' })] }, 'batch-len');
    expect(first.status).toBe(201);
    const before = kv.tasks.taskCount;
    const longer = await post('/v1/tasks/batch', { tasks: [spec({ name: 'a' }), spec({ name: 'b' }), spec({ name: 'c' })] }, 'batch-len');
    expect(longer).toEqual({ status: 422, body: { error: { code: 'IDEMPOTENCY_KEY_REUSED', message: 'the Idempotency-Key "batch-len" was used for a batch of 2 tasks, not 3; use a new key for a new request' } } });
    const shorter = await post('/v1/tasks/batch', { tasks: [spec({ name: 'a' })] }, 'batch-len');
    expect(shorter).toEqual({ status: 422, body: { error: { code: 'IDEMPOTENCY_KEY_REUSED', message: 'the Idempotency-Key "batch-len" was used for a batch of 2 tasks, not 1; use a new key for a new request' } } });
    const single = await post('/v1/tasks', spec({ name: 'a' }), 'batch-len');
    expect(single).toEqual({ status: 422, body: { error: { code: 'IDEMPOTENCY_KEY_REUSED', message: 'the Idempotency-Key "batch-len" was used for a batch (POST /v1/tasks/batch), not a single task; use a new key for a new request' } } });
    expect((await post('/v1/tasks', spec(), 'single-then-batch')).status).toBe(201);
    const batch = await post('/v1/tasks/batch', { tasks: [spec()] }, 'single-then-batch');
    expect(batch).toEqual({ status: 422, body: { error: { code: 'IDEMPOTENCY_KEY_REUSED', message: 'the Idempotency-Key "single-then-batch" was used for a single task (POST /v1/tasks), not a batch; use a new key for a new request' } } });
    expect(kv.tasks.taskCount).toBe(before + 1);
    // The same batch again still answers the first.
    expect(await post('/v1/tasks/batch', { tasks: [spec({ name: 'a' }), spec({ name: 'b' })] }, 'batch-len')).toEqual({ status: 201, body: first.body });
  });
});

describe('/v1/tasks/batch with another method', () => {
  it('is 405 METHOD_NOT_ALLOWED naming POST, not a task named "batch" (GET /v1/tasks/:id matched it)', async () => {
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await app.inject({ method, url: '/v1/tasks/batch' });
      expect([res.statusCode, res.headers.allow, res.json()]).toEqual([405, 'POST', { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed on /v1/tasks/batch; it takes POST` } }]);
    }
    expect((await app.inject({ method: 'GET', url: '/v1/tasks/t00000000000000000' })).statusCode).toBe(404);
    // A malformed id is the request's fault (400), as a worker's is, not a missing task.
    for (const id of ['-', '.x', '_a']) expect((await app.inject({ method: 'GET', url: `/v1/tasks/${id}` })).json().error.code, id).toBe('INVALID_PARAM');
  });
});

describe('Idempotency-Key scoped to who sent it', () => {
  const as = (a: string) => ({ requestId: 'r', deadlineMs: performance.now() + 5000, principal: { a, r: 'operator' } });

  it('two tokens with the same key make two tasks; each retry answers its own; the 422 names the key alone', async () => {
    const mine = await tasks.submitTask(spec(), 'shared-key', as('acc-1'));
    const theirs = await tasks.submitTask(spec({ command: ['echo', 'other'] }), 'shared-key', as('acc-2'));
    expect(theirs.id).not.toBe(mine.id);
    expect((await tasks.submitTask(spec(), 'shared-key', as('acc-1'))).id).toBe(mine.id);
    expect((await tasks.submitTask(spec({ command: ['echo', 'other'] }), 'shared-key', as('acc-2'))).id).toBe(theirs.id);
    const [batchMine] = await tasks.submitTasks([spec()], 'batch-shared', as('acc-1'));
    const [batchTheirs] = await tasks.submitTasks([spec()], 'batch-shared', as('acc-2'));
    expect(batchTheirs!.id).not.toBe(batchMine!.id);
    await expect(tasks.submitTask(spec({ command: ['echo', 'changed'] }), 'shared-key', as('acc-1'))).rejects.toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED', message: expect.stringMatching(/^the Idempotency-Key "shared-key" was used/) as string,
    });
    await expect(tasks.submitTasks([spec({ name: 'x' })], 'batch-shared', as('acc-2'))).rejects.toMatchObject({
      message: expect.stringMatching(/^tasks\[0\]: the Idempotency-Key "batch-shared" was used/) as string,
    });
  });
});

describe('secretEnv: accepted, never answered', () => {
  const secret = { secretEnv: { DB_PASSWORD: 'hunter2' }, env: { HOST: 'db' } };

  it('a bad secretEnv is 400 INVALID_TASK_SPEC naming the variable, never its value', async () => {
    const both = await post('/v1/tasks', spec({ env: { DB_PASSWORD: 'a' }, secretEnv: { DB_PASSWORD: 'hunter2' } }));
    expect(both).toEqual({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC', message: 'spec.secretEnv.DB_PASSWORD: also in env; a variable goes in env or in secretEnv, not both' } } });
    const batch = await post('/v1/tasks/batch', { tasks: [spec(), spec({ secretEnv: { 'BAD NAME': 'hunter2' } })] });
    expect(batch.body).toEqual({ error: { code: 'INVALID_TASK_SPEC', message: 'tasks[1].secretEnv.BAD NAME: not a valid variable name' } });
    const notText = await post('/v1/tasks', spec({ secretEnv: { A: 7 } }));
    expect(notText).toMatchObject({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC', message: expect.stringMatching(/^spec\.secretEnv\.A: expected string/) as string } } });
  });

  it('GET /v1/tasks/:id, GET /v1/tasks and DELETE answer the names with "<redacted>" values; the store keeps the values', async () => {
    const created = await post('/v1/tasks', spec(secret));
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain('hunter2');
    const id = created.body.id as string;
    const one = await app.inject({ method: 'GET', url: `/v1/tasks/${id}` });
    expect(one.json<{ spec: unknown }>().spec).toEqual({
      image: 'busybox', command: ['echo', 'hi'], env: { HOST: 'db' }, secretEnv: { DB_PASSWORD: '<redacted>' }, restartPolicy: 'never', maxAttempts: 3,
    });
    const list = await app.inject({ method: 'GET', url: '/v1/tasks?limit=1000' });
    expect(list.json<{ items: { id: string; spec: { secretEnv?: unknown } }[] }>().items.find((t) => t.id === id)!.spec.secretEnv).toEqual({ DB_PASSWORD: '<redacted>' });
    const stopped = await app.inject({ method: 'DELETE', url: `/v1/tasks/${id}` });
    expect(stopped.statusCode).toBe(200);
    for (const body of [one.body, list.body, stopped.body]) expect(body).not.toContain('hunter2');
    expect(kv.tasks.task(id)!.spec.secretEnv).toEqual({ DB_PASSWORD: 'hunter2' });
  });

  it('the Idempotency-Key compares the secret too: the same answers the first task, another is 422', async () => {
    const first = await post('/v1/tasks', spec(secret), 'secret-key');
    expect(first.status).toBe(201);
    expect(await post('/v1/tasks', spec(secret), 'secret-key')).toEqual({ status: 201, body: first.body });
    const other = await post('/v1/tasks', spec({ ...secret, secretEnv: { DB_PASSWORD: 'hunter3' } }), 'secret-key');
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(JSON.stringify(other.body)).not.toContain('hunter');
  });
});

describe('GET /v1/tasks?name=', () => {
  it('keeps tasks whose name contains it, in pages; a bad value is 400 naming the field', async () => {
    for (const name of ['lister-a', 'other', 'lister-b']) expect((await post('/v1/tasks', spec({ name }))).status).toBe(201);
    const list = async (q: string) => {
      const res = await app.inject({ method: 'GET', url: `/v1/tasks?${q}` });
      return { status: res.statusCode, body: res.json<{ items: { spec: { name?: string } }[]; nextCursor: string | null; error?: { code: string } }>() };
    };
    const all = await list('name=lister&limit=1000');
    expect(all.body.items.map((t) => t.spec.name)).toEqual(['lister-a', 'lister-b']);
    expect(all.body.nextCursor).toBeNull();
    const first = await list('name=lister&limit=1');
    expect(first.body.items.map((t) => t.spec.name)).toEqual(['lister-a']);
    const second = await list(`name=lister&limit=1&cursor=${first.body.nextCursor!}`);
    expect(second.body.items.map((t) => t.spec.name)).toEqual(['lister-b']);
    expect((await list('name=')).body.error?.code).toBe('INVALID_PARAM');
    expect((await list(`name=${'x'.repeat(257)}`)).status).toBe(400);
  });
});
