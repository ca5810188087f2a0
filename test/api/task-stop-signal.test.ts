// A task spec's stopSignal and stopTimeoutS at the API (app.inject over the real task service and state machine, as
// in task-submissions.test.ts): refused with 400 naming the field when out of range, kept in the task record when
// given, and written as command version 4 (a version-3 manager's strict schema would refuse them).
import { Packr } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { commandVersion, decodeCommand, encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { ServiceServiceImpl } from '../../src/manager/service-service.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';
import { FakeManagerService } from './fake-service.js';

const inProcess = inProcessRaft();
const { kv, raft } = inProcess;
const tasks = inProcessTasks(inProcess);
const services = new ServiceServiceImpl({ services: kv.services, tasks: kv.tasks, raft, clock: systemClock });
const app = buildManagerApp({ service: new FakeManagerService(), tasks, services });
afterAll(() => app.close());

async function call(method: 'GET' | 'POST', url: string, payload?: unknown) {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as string }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

const spec = (extra: Record<string, unknown> = {}) => ({ image: 'busybox', command: ['sleep', '60'], ...extra });

describe('stopSignal and stopTimeoutS on a task spec', () => {
  it.each([
    [{ stopSignal: 'SIGSTOP' }, 'stopSignal'],
    [{ stopSignal: 'TERM' }, 'stopSignal'],
    [{ stopSignal: 15 }, 'stopSignal'],
    [{ stopTimeoutS: -1 }, 'stopTimeoutS'],
    [{ stopTimeoutS: 3601 }, 'stopTimeoutS'],
    [{ stopTimeoutS: 1.5 }, 'stopTimeoutS'],
    [{ stopTimeoutS: '10' }, 'stopTimeoutS'],
  ])('POST /v1/tasks refuses %j with 400 naming the field', async (extra, field) => {
    const before = kv.tasks.taskCount;
    const r = await call('POST', '/v1/tasks', spec(extra));
    expect(r.status).toBe(400);
    expect(r.body.error).toEqual({ code: 'INVALID_TASK_SPEC', message: expect.stringMatching(new RegExp(`^spec\\.${field}: `)) as string });
    expect(kv.tasks.taskCount).toBe(before);
  });

  it('a batch names the task', async () => {
    const r = await call('POST', '/v1/tasks/batch', { tasks: [spec(), spec({ stopTimeoutS: 4000 })] });
    expect(r.status).toBe(400);
    expect(r.body.error).toEqual({ code: 'INVALID_TASK_SPEC', message: 'tasks[1].stopTimeoutS: expected integer to be less or equal to 3600' });
  });

  it('every signal name and both ends of the range are accepted, and the task record shows them', async () => {
    for (const stopSignal of ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGKILL']) {
      expect((await call('POST', '/v1/tasks', spec({ stopSignal }))).status).toBe(201);
    }
    const zero = await call('POST', '/v1/tasks', spec({ stopTimeoutS: 0 }));
    expect(zero.status).toBe(201);
    const created = await call('POST', '/v1/tasks', spec({ stopSignal: 'SIGINT', stopTimeoutS: 3600 }));
    expect(created.status).toBe(201);
    const got = await call('GET', `/v1/tasks/${created.body.id as string}`);
    expect(got.body.spec).toMatchObject({ stopSignal: 'SIGINT', stopTimeoutS: 3600 });
    // Not given: not written (the defaults are the worker's), so older specs read as they did.
    const plain = await call('POST', '/v1/tasks', spec());
    const plainGot = await call('GET', `/v1/tasks/${plain.body.id as string}`);
    expect(plainGot.body.spec).not.toHaveProperty('stopSignal');
    expect(plainGot.body.spec).not.toHaveProperty('stopTimeoutS');
  });

  it('survives a snapshot round trip', async () => {
    const created = await call('POST', '/v1/tasks', spec({ stopSignal: 'SIGHUP', stopTimeoutS: 5 }));
    const restored = new KvStateMachine();
    restored.restore(kv.snapshot());
    expect(restored.tasks.task(created.body.id as string)?.spec).toMatchObject({ stopSignal: 'SIGHUP', stopTimeoutS: 5 });
  });
});

describe('stopSignal and stopTimeoutS on a service\'s task', () => {
  it('400 INVALID_BODY naming the field; a good pair is kept in the service\'s spec', async () => {
    for (const [extra, field] of [[{ stopSignal: 'SIGWINCH' }, 'stopSignal'], [{ stopTimeoutS: 3601 }, 'stopTimeoutS']] as const) {
      const r = await call('POST', '/v1/services', { name: 'bad', task: spec(extra), replicas: 1 });
      expect(r.status).toBe(400);
      expect(r.body.error).toEqual({ code: 'INVALID_BODY', message: expect.stringMatching(new RegExp(`^body\\.task\\.${field}: `)) as string });
    }
    const r = await call('POST', '/v1/services', { name: 'web', task: spec({ stopSignal: 'SIGQUIT', stopTimeoutS: 30 }), replicas: 1 });
    expect(r.status).toBe(201);
    expect(r.body.spec).toMatchObject({ stopSignal: 'SIGQUIT', stopTimeoutS: 30 });
  });
});

describe('command versions', () => {
  const raw = new Packr({ useRecords: false, moreTypes: false });
  const versionOf = (cmd: Command) => (raw.unpack(encodeCommand({ clientId: 'c', seq: 1, cmd })) as { v: number }).v;
  const stop = { image: 'x', stopSignal: 'SIGINT' as const, stopTimeoutS: 3 };

  it('a task or service spec with either field is version 4; others keep their versions', () => {
    expect(commandVersion).toBe(12);
    expect(versionOf({ op: 'worker.register', workerId: 'w1', apiAddress: 'h:1', runtime: 'docker', atMs: 1, instance: 'i1', engine: 'docker:e1' })).toBe(11);
    expect(versionOf({ op: 'service.update', name: 'web', atMs: 1, replicas: 2, quotaInNamespace: true })).toBe(10);
    expect(versionOf({ op: 'service.rollback', name: 'web', atMs: 1, quotaInNamespace: true })).toBe(10);
    expect(versionOf({ op: 'service.rollback', name: 'web', atMs: 1 })).toBe(3);
    expect(versionOf({ op: 'worker.remove', workerId: 'w1', atMs: 1, revoke: true })).toBe(9);
    expect(versionOf({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 1, paced: true })).toBe(8);
    expect(versionOf({ op: 'service.reconcile', name: 'web', atMs: 1, ifRevision: 1, create: [], stop: [], drain: ['t1'] })).toBe(8);
    expect(versionOf({ op: 'service.reconcile', name: 'web', atMs: 1, ifRevision: 1, create: [], stop: [], drain: [] })).toBe(3);
    expect(versionOf({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 1 })).toBe(7);
    expect(versionOf({ op: 'worker.remove', workerId: 'w1', atMs: 1 })).toBe(6);
    expect(versionOf({ op: 'task.submit', taskId: 't1', spec: stop, atMs: 1 })).toBe(4);
    expect(versionOf({ op: 'task.submit', taskId: 't1', spec: { image: 'x', stopTimeoutS: 0 }, atMs: 1 })).toBe(4);
    expect(versionOf({ op: 'task.submitBatch', atMs: 1, tasks: [{ taskId: 't1', spec: { image: 'x' } }, { taskId: 't2', spec: stop }] })).toBe(4);
    const update = { parallelism: 1, delayS: 0, monitorS: 1, failureAction: 'rollback' as const, order: 'stop-first' as const };
    expect(versionOf({ op: 'service.create', name: 'web', atMs: 1, replicas: 1, spec: stop, update })).toBe(4);
    expect(versionOf({ op: 'service.update', name: 'web', atMs: 1, spec: { image: 'x', stopSignal: 'SIGQUIT' } })).toBe(4);
    expect(versionOf({ op: 'service.create', name: 'web', atMs: 1, replicas: 1, spec: { image: 'x' }, update })).toBe(3);
    expect(versionOf({ op: 'task.submit', taskId: 't1', spec: { image: 'x' }, atMs: 1 })).toBe(1);
  });

  it('decodes back to the same spec', () => {
    const envelope = decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'task.submit', taskId: 't1', spec: stop, atMs: 1 } }));
    expect(envelope.cmd).toMatchObject({ op: 'task.submit', spec: { image: 'x', stopSignal: 'SIGINT', stopTimeoutS: 3 } });
  });
});
