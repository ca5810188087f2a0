// The service routes through app.inject over the real service service and state machine (proposals validated and
// applied in process, as the driver would): bodies checked naming the field, the errors of the registry, versions
// kept and rolled back, scale without a new version, and the leader's reconcile decisions turning into replicas.
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { ServiceServiceImpl } from '../../src/manager/service-service.js';
import { ServiceLoop } from '../../src/manager/service-loop.js';
import { pino } from 'pino';
import type { ServiceView } from '../../src/contracts/service-model.js';
import { FakeManagerService } from '../api/fake-service.js';
import { inProcessRaft } from '../support/in-process.js';
import { waitFor } from '../support/wait.js';

const { kv, raft } = inProcessRaft();
const services = new ServiceServiceImpl({ services: kv.services, tasks: kv.tasks, raft, clock: systemClock });
const app = buildManagerApp({ service: new FakeManagerService(), services });
afterAll(() => app.close());

const task = { image: 'img', command: ['serve'] };
const health = { type: 'http', port: 'http', path: '/healthz', intervalS: 1, timeoutS: 1, retries: 3, startPeriodS: 0 };

describe('service routes', () => {
  it('creates a service, answers it, lists it, and refuses a second with its name (409 SERVICE_EXISTS)', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/services', payload: { name: 'web', task, replicas: 3, ports: [{ name: 'http' }], healthCheck: health, update: { parallelism: 2 } } });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({
      name: 'web', replicas: { desired: 3, running: 0, healthy: 0 }, version: 1, previousVersion: null, versions: [1],
      spec: { image: 'img', restartPolicy: 'always', ports: [{ name: 'http' }], healthCheck: health },
      update: { parallelism: 2, delayS: 0, monitorS: 10, failureAction: 'rollback', order: 'stop-first' }, rollout: { state: 'stable' }, tasks: [],
    });
    const again = await app.inject({ method: 'POST', url: '/v1/services', payload: { name: 'web', task, replicas: 1 } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: { code: 'SERVICE_EXISTS' } });
    const list = await app.inject({ method: 'GET', url: '/v1/services' });
    expect(list.json()).toMatchObject({ items: [{ name: 'web' }], nextCursor: null });
  });

  it('answers 400 INVALID_BODY naming the field', async () => {
    const cases: [unknown, RegExp][] = [
      [{ task, replicas: 1 }, /^body\.name: missing/],
      // A pattern said in words, not as its regular expression (outside tester: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$').
      [{ name: 'Web', task, replicas: 1 }, /^body\.name: not a DNS label \(1 to 63 lower-case letters, digits or '-', not starting or ending with '-'\)$/],
      [{ name: 'a', task, replicas: 1, namespace: 'Team A' }, /^body\.namespace: not a DNS label \(/],
      [{ name: 'a', task, replicas: -1 }, /^body\.replicas: /],
      [{ name: 'a', task: { command: ['x'] }, replicas: 1 }, /^body\.task\.image: missing/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'HTTP' }] }, /^body\.ports\[0\]\.name: not a valid port name \(a lower-case letter, then up to 14 lower-case letters, digits or '-'\)$/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: { ...health, path: 'health z' } }, /^body\.healthCheck\.path: not a valid path \('\/' then printable ASCII characters, no spaces\)$/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }, { name: 'http' }] }, /^body\.ports\[1\]\.name: "http" is declared twice/],
      [{ name: 'a', task, replicas: 1, healthCheck: health }, /^body\.healthCheck\.port: "http" is not a declared port/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: { ...health, type: 'exec' } }, /^body\.healthCheck\.command: missing/],
      [{ name: 'a', task, replicas: 1, update: { order: 'sideways' } }, /^body\.update\.order: /],
      // What was sent wrong is named before what is missing beside it.
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: { type: 'bogus' } }, /^body\.healthCheck\.type: expected one of "http", "tcp", "exec"$/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: {} }, /^body\.healthCheck\.type: missing; body\.healthCheck\.intervalS: missing; body\.healthCheck\.timeoutS: missing; body\.healthCheck\.retries: missing; body\.healthCheck\.startPeriodS: missing$/],
      // A field its type does not use.
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: { ...health, type: 'tcp', path: '/x' } }, /^body\.healthCheck\.path: only an http check asks for a path \(this one is tcp\)$/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: { ...health, command: ['true'] } }, /^body\.healthCheck\.command: only an exec check runs a command \(this one is http\)$/],
      [{ name: 'a', task: { ...task, env: { '1BAD': 'x' } }, replicas: 1 }, /^body\.task\.env\.1BAD: not a valid variable name/],
      // The service's constraints and namespace take the task's bounds (33 constraints were INVALID_COMMAND: outside tester).
      [{ name: 'a', task, replicas: 1, constraints: Array.from({ length: 33 }, (_, i) => `node.labels.k${i}==v`) }, /^body\.constraints: expected array length to be less or equal to 32$/],
      [{ name: 'a', task, replicas: 1, ports: [{ name: 'http' }], healthCheck: { ...health, type: 'tcp', port: undefined } }, /^body\.healthCheck\.port: missing \(a tcp check needs a declared port's name\)$/],
    ];
    for (const [payload, message] of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/services', payload: payload as object });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().error.code).toBe('INVALID_BODY');
      expect(r.json().error.message).toMatch(message);
    }
  });

  it('a bad cursor or name in the URL is said in words too', async () => {
    const cursor = await app.inject({ method: 'GET', url: '/v1/services?cursor=Bad_Name' });
    expect([cursor.statusCode, cursor.json().error.message]).toEqual([400, "query.cursor: not a DNS label (1 to 63 lower-case letters, digits or '-', not starting or ending with '-')"]);
    expect((await app.inject({ method: 'GET', url: '/v1/services/Bad_Name' })).json().error.message).toMatch(/^params\.name: not a DNS label \(/);
  });

  it('scales without a new version, updates into a new version with a rollout, and rolls back', async () => {
    const scaled = await app.inject({ method: 'PATCH', url: '/v1/services/web', payload: { replicas: 5 } });
    expect(scaled.json()).toMatchObject({ replicas: { desired: 5 }, version: 1, rollout: { state: 'stable' } });
    const same = await app.inject({ method: 'PATCH', url: '/v1/services/web', payload: { task } });
    expect(same.json()).toMatchObject({ version: 1 });
    const updated = await app.inject({ method: 'PATCH', url: '/v1/services/web', payload: { task: { ...task, image: 'img:2' }, update: { monitorS: 1 } } });
    expect(updated.json()).toMatchObject({
      version: 2, previousVersion: 1, versions: [1, 2], rollout: { state: 'updating', fromVersion: 1 },
      spec: { image: 'img:2', ports: [{ name: 'http' }], healthCheck: health }, update: { parallelism: 2, monitorS: 1 },
    });
    // `task` is a whole spec that replaces the current one (ports and healthCheck above were kept beside it): not a part.
    const partial = await app.inject({ method: 'PATCH', url: '/v1/services/web', payload: { task: { command: ['other'] } } });
    expect(partial.statusCode).toBe(400);
    expect(partial.json().error).toEqual({ code: 'INVALID_BODY', message: 'body.task.image: missing' });
    const back = await app.inject({ method: 'POST', url: '/v1/services/web/rollback' });
    expect(back.json()).toMatchObject({ version: 1, previousVersion: 2, rollout: { state: 'rolling-back', fromVersion: 2 }, spec: { image: 'img' } });
  });

  it('ifVersion: a change made from another version is 409 SERVICE_VERSION_MISMATCH and changes nothing; two at once both land', async () => {
    await app.inject({ method: 'POST', url: '/v1/services', payload: { name: 'cas', task: { ...task, env: { A: '0' } }, replicas: 1 } });
    const first = await app.inject({ method: 'PATCH', url: '/v1/services/cas', payload: { task: { ...task, env: { A: '1' } }, ifVersion: 1 } });
    expect(first.json()).toMatchObject({ version: 2, spec: { env: { A: '1' } } });
    const stale = await app.inject({ method: 'PATCH', url: '/v1/services/cas', payload: { task: { ...task, env: { A: '0', B: '1' } }, ifVersion: 1 } });
    expect([stale.statusCode, stale.json()]).toEqual([409, {
      error: { code: 'SERVICE_VERSION_MISMATCH', message: 'service "cas" is at version 2, not 1: it changed since it was read; read it again and make the change on what it is now' },
    }]);
    expect((await app.inject({ method: 'GET', url: '/v1/services/cas' })).json()).toMatchObject({ version: 2, versions: [1, 2], spec: { env: { A: '1' } } });
    expect((await app.inject({ method: 'PATCH', url: '/v1/services/cas', payload: { replicas: 2, ifVersion: 0 } })).statusCode).toBe(400);
    // ifVersion alone is a change of nothing: refused as {} is, not a 200 that did nothing.
    const alone = await app.inject({ method: 'PATCH', url: '/v1/services/cas', payload: { ifVersion: 2 } });
    expect([alone.statusCode, alone.json().error.code]).toEqual([400, 'INVALID_BODY']);
    expect(alone.json().error.message).toBe('body: ifVersion alone changes nothing; give at least one of replicas, task, ports, healthCheck, update, constraints, priority, namespace');
    // Without ifVersion, parts given beside the task (ports here, a health check there) are each kept: the manager
    // makes each change on the version current when its proposal is applied.
    const both = await Promise.all([
      app.inject({ method: 'PATCH', url: '/v1/services/cas', payload: { ports: [{ name: 'http' }] } }),
      app.inject({ method: 'PATCH', url: '/v1/services/cas', payload: { constraints: ['node.labels.zone==a'] } }),
    ]);
    expect(both.map((r) => r.statusCode)).toEqual([200, 200]);
    expect((await app.inject({ method: 'GET', url: '/v1/services/cas' })).json()).toMatchObject({ version: 4, spec: { ports: [{ name: 'http' }], constraints: ['node.labels.zone==a'] } });
  });

  it('answers 404 SERVICE_NOT_FOUND and 409 SERVICE_ROLLBACK_REFUSED', async () => {
    for (const [method, url] of [['GET', '/v1/services/nope'], ['PATCH', '/v1/services/nope'], ['POST', '/v1/services/nope/rollback'], ['DELETE', '/v1/services/nope']] as const) {
      const r = await app.inject({ method, url, ...(method === 'PATCH' ? { payload: { replicas: 1 } } : {}) });
      expect(r.statusCode, `${method} ${url}`).toBe(404);
      expect(r.json().error.code).toBe('SERVICE_NOT_FOUND');
    }
    await app.inject({ method: 'POST', url: '/v1/services', payload: { name: 'fresh', task, replicas: 1 } });
    const r = await app.inject({ method: 'POST', url: '/v1/services/fresh/rollback' });
    expect(r.statusCode).toBe(409);
    expect(r.json().error.code).toBe('SERVICE_ROLLBACK_REFUSED');
  });

  it('starts the replicas the leader loop decides, and DELETE stops every one of them', async () => {
    const loop = new ServiceLoop({ services: kv.services, tasks: kv.tasks, raft, clock: systemClock, logger: pino({ level: 'silent' }), proposalTimeoutMs: 1000, reconcileIntervalMs: 60_000 });
    kv.services.listener = (name) => loop.touch(name);
    loop.start(1);
    try {
      const view = await waitFor('the replicas of fresh', async () => {
        const r = await app.inject({ method: 'GET', url: '/v1/services/fresh' });
        const body = r.json<ServiceView>();
        return body.tasks.length === 1 ? body : undefined;
      });
      expect(view.tasks[0]).toMatchObject({ version: 1, state: 'pending', desiredState: 'run', health: null, workerId: null, attempt: 1, ports: [] });
      const t = kv.tasks.task(view.tasks[0]!.taskId)!;
      expect(t).toMatchObject({ service: { name: 'fresh', version: 1 }, spec: { restartPolicy: 'always' } });
      const del = await app.inject({ method: 'DELETE', url: '/v1/services/fresh' });
      // The pending replica it stopped at once counts (it said `stopping 0` for 3000 pending ones: outside tester).
      expect(del.json()).toEqual({ name: 'fresh', deleted: true, stopping: 1 });
      expect(kv.tasks.task(t.id)!.state).toBe('stopped');
    } finally {
      loop.stop();
    }
  });

  it('says why a replica of the current version waits when no worker can take it (as task why would), in the rollout\'s message too while one is under way', async () => {
    await app.inject({ method: 'POST', url: '/v1/services', payload: { name: 'stuck', task, replicas: 1 } });
    const loop = new ServiceLoop({ services: kv.services, tasks: kv.tasks, raft, clock: systemClock, logger: pino({ level: 'silent' }), proposalTimeoutMs: 1000, reconcileIntervalMs: 60_000 });
    kv.services.listener = (name) => loop.touch(name);
    loop.start(1);
    try {
      const first = await waitFor('a replica of stuck', async () => {
        const body = (await app.inject({ method: 'GET', url: '/v1/services/stuck' })).json<ServiceView>();
        return body.tasks.length === 1 ? body : undefined;
      });
      // No rollout under way: a pending replica is not the rollout's business, but the view says why it waits.
      expect(first.rollout).toEqual({ state: 'stable', fromVersion: null, message: null });
      const pending = first.tasks[0]!.taskId;
      expect(first.waiting).toBe(`waiting: replica ${pending} of version 1 has no worker to run on (there are no workers; see task why ${pending})`);
      await app.inject({ method: 'PATCH', url: '/v1/services/stuck', payload: { task: { ...task, image: 'img:2' } } });
      const waiting = await waitFor('a replica of version 2', async () => {
        const body = (await app.inject({ method: 'GET', url: '/v1/services/stuck' })).json<ServiceView>();
        return body.tasks.some((t) => t.version === 2) ? body : undefined;
      });
      const replica = waiting.tasks.find((t) => t.version === 2)!;
      expect(waiting.rollout).toEqual({
        state: 'updating', fromVersion: 1, message: `waiting: replica ${replica.taskId} of version 2 has no worker to run on (there are no workers; see task why ${replica.taskId})`,
      });
      expect(waiting.waiting).toBe(waiting.rollout.message);
    } finally {
      loop.stop();
      await app.inject({ method: 'DELETE', url: '/v1/services/stuck' });
    }
  });

  it('a PATCH that moves a service to a namespace without room for all its replicas is 403 QUOTA_EXCEEDED, and a rollback into one too', async () => {
    const { kv: k, raft: r, apply } = inProcessRaft();
    const own = buildManagerApp({ service: new FakeManagerService(), services: new ServiceServiceImpl({ services: k.services, tasks: k.tasks, raft: r, clock: systemClock }) });
    try {
      expect((await own.inject({ method: 'POST', url: '/v1/services', payload: { name: 'nsm', task, replicas: 4 } })).statusCode).toBe(201);
      apply({ op: 'service.reconcile', name: 'nsm', atMs: 2, ifRevision: 1, create: ['r1', 'r2', 'r3', 'r4'], stop: [] });
      apply({ op: 'quota.set', namespace: 'bb71ns', tasksMax: 3 });
      for (const payload of [{ namespace: 'bb71ns' }, { namespace: 'bb71ns', replicas: 8 }]) {
        const moved = await own.inject({ method: 'PATCH', url: '/v1/services/nsm', payload });
        expect([moved.statusCode, moved.json()], JSON.stringify(payload)).toEqual([403, {
          error: { code: 'QUOTA_EXCEEDED', message: `namespace bb71ns: tasksMax 3 would be exceeded (0 live + ${payload.replicas ?? 4} new)` },
        }]);
      }
      // Room for its 4: the move lands (and a scale within the namespace it left is judged as before).
      apply({ op: 'quota.set', namespace: 'bb71ns', tasksMax: 4 });
      expect((await own.inject({ method: 'PATCH', url: '/v1/services/nsm', payload: { namespace: 'bb71ns' } })).json()).toMatchObject({ version: 2, spec: { namespace: 'bb71ns' } });
      for (const id of ['r1', 'r2', 'r3', 'r4']) apply({ op: 'task.stop', taskId: id, atMs: 3 });
      apply({ op: 'quota.set', namespace: 'default', tasksMax: 2 });
      const back = await own.inject({ method: 'POST', url: '/v1/services/nsm/rollback' });
      expect([back.statusCode, back.json()]).toEqual([403, { error: { code: 'QUOTA_EXCEEDED', message: 'namespace default: tasksMax 2 would be exceeded (0 live + 4 new)' } }]);
      // A change that keeps the namespace is no version-10 command: older managers still read it during an upgrade.
      expect((await own.inject({ method: 'PATCH', url: '/v1/services/nsm', payload: { update: { parallelism: 2 } } })).statusCode).toBe(200);
    } finally {
      await own.close();
    }
  });

  it('the view: a scale down answers the replicas it leaves as healthy, a drained replica says so, and waiting says why replicas wait (quota, a failed assignment)', async () => {
    const { kv: k, raft: r, apply } = inProcessRaft();
    const own = buildManagerApp({ service: new FakeManagerService(), services: new ServiceServiceImpl({ services: k.services, tasks: k.tasks, quotas: k.quotas, raft: r, clock: systemClock }) });
    const get = async (): Promise<ServiceView> => (await own.inject({ method: 'GET', url: '/v1/services/web' })).json<ServiceView>();
    try {
      await own.inject({ method: 'POST', url: '/v1/services', payload: { name: 'web', task, replicas: 6 } });
      const ids = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
      apply({ op: 'service.reconcile', name: 'web', atMs: 2, ifRevision: 1, create: ids, stop: [] });
      apply({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.65.1:9000', runtime: 'process', atMs: 2 });
      apply({ op: 'task.place', term: 1, atMs: 3, cursor: 'w1', placements: ids.map((taskId) => ({ taskId, attempt: 1, workerId: 'w1' })) });
      apply({ op: 'task.report', atMs: 4, reports: ids.map((taskId) => ({ taskId, workerId: 'w1', attempt: 1, term: 1, state: 'running' as const, containerId: `c-${taskId}`, exitCode: null, error: null, retryAtMs: 0 })) });
      expect((await get()).replicas).toEqual({ desired: 6, running: 6, healthy: 6 });
      // (a) The reconciler has not stopped the 4 yet: they are about to stop, not healthy replicas of the service.
      const scaled = (await own.inject({ method: 'PATCH', url: '/v1/services/web', payload: { replicas: 2 } })).json<ServiceView>();
      expect(scaled.replicas).toEqual({ desired: 2, running: 6, healthy: 2 });
      expect((await own.inject({ method: 'PATCH', url: '/v1/services/web', payload: { replicas: 0 } })).json<ServiceView>().replicas).toEqual({ desired: 0, running: 6, healthy: 0 });
      await own.inject({ method: 'PATCH', url: '/v1/services/web', payload: { replicas: 6 } });
      // (b) A replica its worker's drain moves says so.
      apply({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 5, paced: true });
      apply({ op: 'service.reconcile', name: 'web', atMs: 5, ifRevision: k.services.service('web')!.revision, create: [], stop: [], drain: ['r1'] });
      const drained = await get();
      expect(drained.tasks.find((t) => t.taskId === 'r1')).toMatchObject({ desiredState: 'run', draining: true, health: null, state: 'running' });
      expect(drained.tasks.filter((t) => t.draining).map((t) => t.taskId)).toEqual(['r1']);
      expect(drained.replicas.healthy).toBe(5);
      apply({ op: 'worker.availability', workerId: 'w1', availability: 'active', atMs: 6 });
      // (c) A replica whose assignment failed (the worker's port range full) waits to be placed again: the view says why.
      apply({
        op: 'task.report', atMs: 7, reports: [{
          taskId: 'r2', workerId: 'w1', attempt: 1, term: 1, state: 'failed', containerId: null, exitCode: null, retryAtMs: 60_000,
          error: { class: 'transient', message: 'the assignment to worker w1 failed: no free port in 26300-26399 (100 held by this worker\'s tasks)' },
        }],
      });
      const retrying = await get();
      expect(retrying.tasks.find((t) => t.taskId === 'r2')).toMatchObject({ state: 'pending', failure: null });
      expect(retrying.waiting).toBe('waiting: replica r2 of version 1 is placed again after attempt 1 failed: the assignment to worker w1 failed: no free port in 26300-26399 (100 held by this worker\'s tasks) (see task get r2)');
      // The namespace's quota leaves no room for a replica it lacks: the reconciler starts none, and the view says so.
      apply({ op: 'task.stop', taskId: 'r2', atMs: 8 });
      apply({ op: 'task.submit', taskId: 'other', spec: { image: 'i' }, atMs: 8 });
      apply({ op: 'quota.set', namespace: 'default', tasksMax: 6 });
      expect((await get()).waiting).toBe('waiting: no room in the namespace for another replica of version 1 (namespace default: tasksMax 6 would be exceeded (6 live + 1 new); see quota ls)');
    } finally {
      await own.close();
    }
  });

  it('survives a snapshot: services, versions and rollout restore as they were', () => {
    const copy = new KvStateMachine();
    copy.restore(kv.snapshot());
    expect(copy.services.services()).toEqual(kv.services.services());
    expect(copy.snapshot()).toEqual(kv.snapshot());
  });
});
