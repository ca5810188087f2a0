// Tasks end to end inside one process: three real managers (LevelDB, TCP, HTTP on loopback) and two workers over the
// in-memory runtime, whose containers do what the image and command say. Disruptive cases (a worker or the leader
// going away) come last; the cluster is shared.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskRecord, WorkerRecord } from '../../src/contracts/task-model.js';
import { head } from '../support/head.js';
import { eventually, waitFor } from '../support/wait.js';
import { TaskCluster } from './tasks-harness.js';

let c: TaskCluster;

beforeAll(async () => {
  c = await TaskCluster.create({
    behave: (spec) => {
      if (spec.image === 'missing') return { runFailure: 'image-not-found' };
      if (spec.command?.[0] === 'fail') return { durationMs: 20, exitCode: 1, logs: 'about to fail\n' };
      if (spec.command?.[0] === 'forever') return { durationMs: null };
      if (spec.command?.[0] === 'forever-talking') return { durationMs: null, logs: 'still here\n' };
      if (spec.command?.[0] === 'talk') return { durationMs: 1500, logs: 'one\n', laterOutput: [{ afterMs: 700, text: 'two\n' }, { afterMs: 1400, text: 'three\n' }] };
      return { durationMs: 300, exitCode: 0, logs: `hello from ${spec.command?.join(' ') ?? spec.image}\n` };
    },
  });
  await c.startAll();
  await eventually(async () => ((await listWorkers()).filter((w) => w.state === 'ready').length === 2 ? true : undefined), 10_000, 'two ready workers');
});
afterAll(() => c?.close());

type Page<T> = { items: T[]; nextCursor: string | null };

async function managers(): Promise<{ leader: string; followers: string[] }> {
  const leader = await c.leader();
  return { leader, followers: [...c.managers.keys()].filter((id) => id !== leader) };
}

async function submit(m: string, spec: Record<string, unknown>, headers?: Record<string, string>): Promise<string> {
  const res = await fetch(`${c.url(m)}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(spec) });
  const body = (await res.json()) as { id: string; state: string };
  expect(res.status).toBe(201);
  expect(body).toEqual({ id: expect.stringMatching(/^t[0-9a-z]{17}$/) as string, state: expect.any(String) as string });
  return body.id;
}

async function task(m: string, id: string): Promise<TaskRecord> {
  return (await c.http<TaskRecord>(m, 'GET', `/v1/tasks/${id}`)).body;
}

async function waitState(m: string, id: string, states: readonly string[], timeoutMs = 10_000): Promise<TaskRecord> {
  return eventually(async () => {
    const t = await task(m, id);
    return states.includes(t.state) ? t : undefined;
  }, timeoutMs, `task ${id} to reach ${states.join('|')}`);
}

const final = ['succeeded', 'failed', 'stopped'];

async function listWorkers(): Promise<WorkerRecord[]> {
  const r = await c.http<Page<WorkerRecord>>('m1', 'GET', '/v1/workers');
  return r.body.items;
}

describe('tasks on workers (in-process, memory runtime)', () => {
  it('20 tasks submitted through a follower alternate between the workers and all succeed', async () => {
    const { followers } = await managers();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await submit(followers[0]!, { image: 'busybox', command: ['echo', String(i)] }));
    const done = await Promise.all(ids.map((id) => waitState(followers[1]!, id, final)));
    expect(done.every((t) => t.state === 'succeeded' && t.attempt === 1 && t.exitCode === 0 && t.error === null)).toBe(true);
    const perWorker = new Map<string, number>();
    for (const t of done) perWorker.set(t.workerId!, (perWorker.get(t.workerId!) ?? 0) + 1);
    expect([...perWorker.keys()].sort()).toEqual(['w1', 'w2']);
    expect(perWorker.get('w1')).toBe(10);
    // The history tells the whole story, in order.
    expect(done[0]!.history.map((h) => h.state)).toEqual(['pending', 'scheduled', 'running', 'succeeded']);
  });

  it('a missing image fails permanently after one attempt, with the reason', async () => {
    const id = await submit('m2', { image: 'missing', command: ['x'], maxAttempts: 5 });
    const t = await waitState('m3', id, final);
    expect(t).toMatchObject({ state: 'failed', attempt: 1, error: { class: 'permanent' } });
    expect(t.error!.message).toMatch(/image-not-found/);
  });

  it('exit 1 with on-failure and maxAttempts 3 runs three times with backoff, then fails', async () => {
    const id = await submit('m1', { image: 'busybox', command: ['fail'], restartPolicy: 'on-failure', maxAttempts: 3 });
    const t = await waitState('m1', id, final);
    expect(t).toMatchObject({ state: 'failed', attempt: 3, exitCode: 1, error: { class: 'permanent' } });
    expect(t.error!.message).toMatch(/exited with code 1.*attempt 3 of 3/);
    const retries = t.history.filter((h) => h.state === 'pending' && h.attempt > 1);
    expect(retries.map((h) => h.attempt)).toEqual([2, 3]);
    // Retries avoid the worker of the previous attempt when another is ready.
    const placements = t.history.filter((h) => h.state === 'scheduled').map((h) => h.workerId);
    expect(placements).toHaveLength(3);
    expect(placements[1]).not.toBe(placements[0]);
    expect(placements[2]).not.toBe(placements[1]);
  });

  it('restartPolicy never fails at once on exit 1', async () => {
    const id = await submit('m1', { image: 'busybox', command: ['fail'] });
    const t = await waitState('m1', id, final);
    expect(t).toMatchObject({ state: 'failed', attempt: 1, exitCode: 1, spec: { restartPolicy: 'never', maxAttempts: 3 } });
  });

  it('restartPolicy always restarts after exit 0 until maxAttempts', async () => {
    const id = await submit('m1', { image: 'busybox', command: ['ok'], restartPolicy: 'always', maxAttempts: 2 });
    const t = await waitState('m1', id, final);
    expect(t).toMatchObject({ state: 'succeeded', attempt: 2 });
  });

  it('an Idempotency-Key makes a retried submission create one task', async () => {
    const key = `key-${Date.now()}`;
    const a = await submit('m1', { image: 'busybox', command: ['forever'] }, { 'idempotency-key': key });
    const b = await submit('m2', { image: 'busybox', command: ['forever'] }, { 'idempotency-key': key });
    expect(b).toBe(a);
    await c.http('m1', 'DELETE', `/v1/tasks/${a}`);
  });

  it('a batch creates its tasks in one entry, in order; a retried batch with its Idempotency-Key creates none', async () => {
    const { followers } = await managers();
    const specs = Array.from({ length: 10 }, (_, i) => ({ image: 'busybox', command: ['echo', `batch ${i}`] }));
    const key = `batch-${Date.now()}`;
    const post = async (m: string) => {
      const res = await fetch(`${c.url(m)}/v1/tasks/batch`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ tasks: specs }) });
      return { status: res.status, body: (await res.json()) as { items: { id: string; state: string }[] } };
    };
    const first = await post(followers[0]!);
    expect(first.status).toBe(201);
    expect(first.body.items).toHaveLength(10);
    expect(new Set(first.body.items.map((t) => t.id)).size).toBe(10);
    const again = await post(followers[1]!);
    expect(again.body.items.map((t) => t.id)).toEqual(first.body.items.map((t) => t.id));
    for (const [i, { id }] of first.body.items.entries()) {
      const t = await waitState('m1', id, ['succeeded']);
      expect(t.spec.command).toEqual(['echo', `batch ${i}`]);
    }
  });

  it('a bad batch is 400 naming the task and field, and creates nothing', async () => {
    const before = (await c.http<Page<TaskRecord>>('m1', 'GET', '/v1/tasks?limit=1000')).body.items.length;
    const bad = await c.http<{ error: { code: string; message: string } }>('m1', 'POST', '/v1/tasks/batch', { tasks: [{ image: 'a' }, { command: ['x'] }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'INVALID_TASK_SPEC', message: 'tasks[1].image: missing' });
    expect((await c.http('m1', 'POST', '/v1/tasks/batch', { tasks: [] })).status).toBe(400);
    expect((await c.http('m1', 'POST', '/v1/tasks/batch', { tasks: Array.from({ length: 1001 }, () => ({ image: 'a' })) })).status).toBe(400);
    expect((await c.http('m1', 'POST', '/v1/tasks/batch', [{ image: 'a' }])).status).toBe(400);
    expect((await c.http<Page<TaskRecord>>('m1', 'GET', '/v1/tasks?limit=1000')).body.items.length).toBe(before);
  });

  it('stop: a running task stops through its worker; stopping again is 200; a task that ended is 409', async () => {
    const id = await submit('m1', { image: 'busybox', command: ['forever'] });
    await waitState('m1', id, ['running']);
    const r = await c.http<TaskRecord>('m2', 'DELETE', `/v1/tasks/${id}`);
    expect(r.status).toBe(200);
    expect(r.body.desiredState).toBe('stop');
    const t = await waitState('m2', id, final);
    expect(t.state).toBe('stopped');
    expect((await c.http('m3', 'DELETE', `/v1/tasks/${id}`)).status).toBe(200);
    const done = await submit('m1', { image: 'busybox', command: ['ok'] });
    await waitState('m1', done, final);
    const again = await c.http<{ error: { code: string } }>('m1', 'DELETE', `/v1/tasks/${done}`);
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'TASK_ALREADY_FINAL' } } });
    expect((await c.http<{ error: { code: string } }>('m1', 'DELETE', '/v1/tasks/tnosuchtask')).body.error.code).toBe('TASK_NOT_FOUND');
  });

  it('logs come from the worker that ran the task', async () => {
    const id = await submit('m3', { image: 'busybox', command: ['echo', 'logs'] });
    await waitState('m3', id, final);
    const res = await fetch(`${c.url('m2')}/v1/tasks/${id}/logs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('hello from echo logs\n');
  });

  it('logs followed through another manager: each line as it is written, then the end with the container', async () => {
    const id = await submit('m3', { image: 'busybox', command: ['talk'] });
    await waitState('m3', id, ['running']);
    const res = await fetch(`${c.url('m2')}/v1/tasks/${id}/logs?follow=true`);
    expect(res.status).toBe(200);
    const chunks: string[] = [];
    for await (const chunk of res.body!) chunks.push(Buffer.from(chunk as Uint8Array).toString());
    expect(chunks.join('')).toBe('one\ntwo\nthree\n');
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    expect((await waitState('m2', id, final)).state).toBe('succeeded');
    // Followed at once after its submission, before it runs: the answer waits for it, then follows it.
    const early = await submit('m1', { image: 'busybox', command: ['talk'] });
    expect((await task('m1', early)).state).not.toBe('running');
    expect(await (await fetch(`${c.url('m3')}/v1/tasks/${early}/logs?follow=true`)).text()).toBe('one\ntwo\nthree\n');
    // An unknown task, and a bad follow value, are refused before anything streams.
    expect((await fetch(`${c.url('m1')}/v1/tasks/t00000000000000000/logs?follow=true`)).status).toBe(404);
    // A HEAD of a follow answers at once, as the GET would, without following (head() fails after 2 s).
    const running = await submit('m1', { image: 'busybox', command: ['forever'] });
    await waitState('m1', running, ['running']);
    expect(await head(c.url('m2'), `/v1/tasks/${running}/logs?follow=true`)).toMatchObject({ status: 200, bodyBytes: 0, headers: { 'content-type': 'text/plain; charset=utf-8' } });
    expect(await head(c.url('m2'), '/v1/tasks/t00000000000000000/logs?follow=true')).toMatchObject({ status: 404 });
    await c.http('m1', 'DELETE', `/v1/tasks/${running}`);
    await waitState('m1', running, final);
    const bad = await fetch(`${c.url('m1')}/v1/tasks/${id}/logs?follow=yes`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('INVALID_PARAM');
  });

  it('lists page by id with { items, nextCursor } and filter by state and worker', async () => {
    const all: TaskRecord[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor === null ? '?limit=7' : `?limit=7&cursor=${cursor}`;
      const page: Page<TaskRecord> = (await c.http<Page<TaskRecord>>('m2', 'GET', `/v1/tasks${q}`)).body;
      all.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    const ids = all.map((t) => t.id);
    expect(ids).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(ids.length);
    const failed = (await c.http<Page<TaskRecord>>('m1', 'GET', '/v1/tasks?state=failed&limit=1000')).body.items;
    expect(failed.length).toBeGreaterThanOrEqual(3);
    expect(failed.every((t) => t.state === 'failed')).toBe(true);
    const onW2 = (await c.http<Page<TaskRecord>>('m1', 'GET', '/v1/tasks?workerId=w2&limit=1000')).body.items;
    expect(onW2.length).toBeGreaterThan(0);
    expect(onW2.every((t) => t.workerId === 'w2')).toBe(true);
    const bad = await c.http<{ error: { code: string; message: string } }>('m1', 'GET', '/v1/tasks?state=bogus');
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'INVALID_PARAM' } } });
    expect((await c.http('m1', 'GET', '/v1/tasks?limit=0')).status).toBe(400);
    expect((await c.http('m1', 'GET', '/v1/tasks?colour=red')).status).toBe(400);
  });

  it('a bad spec is 400 INVALID_TASK_SPEC naming the field', async () => {
    const r = await c.http<{ error: { code: string; message: string } }>('m1', 'POST', '/v1/tasks', { image: 'x', restartPolicy: 'sometimes' });
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'INVALID_TASK_SPEC' } } });
    expect(r.body.error.message).toMatch(/^spec\.restartPolicy/);
    const missing = await c.http<{ error: { code: string; message: string } }>('m1', 'POST', '/v1/tasks', { command: ['x'] });
    expect(missing.body.error).toMatchObject({ code: 'INVALID_TASK_SPEC', message: 'spec.image: missing' });
  });

  it('GET /v1/workers is the same on every manager', async () => {
    const views = await Promise.all([...c.managers.keys()].map((m) => c.http<Page<WorkerRecord>>(m, 'GET', '/v1/workers')));
    for (const v of views) {
      expect(v.body.nextCursor).toBeNull();
      expect(v.body.items.map((w) => [w.id, w.state, w.apiAddress])).toEqual(views[0]!.body.items.map((w) => [w.id, w.state, w.apiAddress]));
      expect(v.body.items[0]).toMatchObject({ id: 'w1', state: 'ready', lastHeartbeatAt: expect.any(String) as string, taskCount: expect.any(Number) as number });
    }
    expect((await c.http('m1', 'GET', '/v1/workers/nope')).status).toBe(404);
  });

  it('a worker that goes silent is marked unreachable, then down; its running tasks move to the other worker', async () => {
    const ids = [await submit('m1', { image: 'busybox', command: ['forever'] }), await submit('m1', { image: 'busybox', command: ['forever'] })];
    const running = await Promise.all(ids.map((id) => waitState('m1', id, ['running'])));
    const victim = running[0]!.workerId!;
    const other = victim === 'w1' ? 'w2' : 'w1';
    await c.workers.get(victim)!.stop();
    const moved = await Promise.all(
      ids.map((id) => eventually(async () => {
        const t = await task('m2', id);
        return t.state === 'running' && t.workerId === other ? t : undefined;
      }, 10_000, `task ${id} running on ${other}`)),
    );
    const fromVictim = moved.find((t) => t.id === running[0]!.id)!;
    expect(fromVictim.attempt).toBe(2);
    expect(fromVictim.history.map((h) => h.state)).toContain('lost');
    expect((await listWorkers()).find((w) => w.id === victim)?.state).toBe('down');
    // The victim comes back: its stale copy is stopped (no longer assigned to it), the new one keeps running.
    const back = await c.startWorker(victim);
    await eventually(async () => ((await listWorkers()).find((w) => w.id === victim)?.state === 'ready' ? true : undefined), 5000, 'the worker back');
    await eventually(async () => {
      const copies = [...back.runtime.host.containers.values()].filter((x) => x.info.labels['minkube.task'] === fromVictim.id && x.info.state === 'running');
      return copies.length === 0 ? true : undefined;
    }, 5000, 'the stale copy to stop');
    expect((await task('m1', fromVictim.id)).state).toBe('running');
    for (const id of ids) await c.http('m1', 'DELETE', `/v1/tasks/${id}`);
  });

  it('a followed log whose worker goes silent (connection open, no heartbeats) is cut once the task is lost: not ended, the output may be short', async () => {
    const id = await submit('m1', { image: 'busybox', command: ['forever-talking'] });
    const t = await waitState('m1', id, ['running']);
    const res = await fetch(`${c.url('m2')}/v1/tasks/${id}/logs?follow=true`);
    expect(res.status).toBe(200);
    const silent = c.workers.get(t.workerId!)!;
    await silent.loops.stop();
    const startedMs = performance.now();
    const reader = res.body!.getReader();
    let text = '';
    const cut = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return null;
        text += Buffer.from(value).toString();
      }
    })().catch((err: unknown) => err);
    expect(text).toBe('still here\n');
    expect(cut).toBeInstanceOf(Error);
    // Lost after workerTtlMs + lostGraceMs, then limits.logFollowDrainMs more.
    expect(performance.now() - startedMs).toBeLessThan(15_000);
    expect((await task('m2', id)).history.map((h) => h.state)).toContain('lost');
    await silent.stop();
    await c.startWorker(silent.id);
    await eventually(async () => ((await listWorkers()).filter((w) => w.state === 'ready').length === 2 ? true : undefined), 10_000, 'two ready workers');
    await c.http('m1', 'DELETE', `/v1/tasks/${id}`);
  });

  it('a restarted worker re-adopts its running tasks (same attempt, same container)', async () => {
    const id = await submit('m1', { image: 'busybox', command: ['forever'] });
    const before = await waitState('m1', id, ['running']);
    await c.workers.get(before.workerId!)!.stop();
    const back = await c.startWorker(before.workerId!);
    // Long enough for a replacement to show: the restarted worker has reconciled twice and heartbeated three times.
    await waitFor('two reconcile passes and three heartbeats of the restarted worker', () => back.loops.reconciliations >= 2 && back.loops.heartbeatsSent >= 3, 30_000);
    const after = await task('m1', id);
    expect(after).toMatchObject({ state: 'running', attempt: 1, workerId: before.workerId, containerId: before.containerId });
    await c.http('m1', 'DELETE', `/v1/tasks/${id}`);
    await waitState('m1', id, final);
  });

  it('a new leader carries on placing after the old one stops', async () => {
    const { leader, followers } = await managers();
    await c.stopManager(leader);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await submitRetrying(followers[i % 2]!, { image: 'busybox', command: ['echo', String(i)] }));
    const done = await Promise.all(ids.map((id) => waitState(followers[0]!, id, final)));
    expect(done.every((t) => t.state === 'succeeded')).toBe(true);
    expect(new Set(done.map((t) => t.workerId))).toEqual(new Set(['w1', 'w2']));
    await c.startManager(leader);
  });
});

async function submitRetrying(m: string, spec: Record<string, unknown>): Promise<string> {
  const key = `retry-${Math.random()}`;
  return eventually(async () => {
    const res = await fetch(`${c.url(m)}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(spec) });
    return res.status === 201 ? ((await res.json()) as { id: string }).id : undefined;
  }, 10_000, 'a submission to be accepted');
}
