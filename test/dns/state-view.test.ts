// The DNS view of a manager's state: which task records make a service, its healthy replicas (running, and healthy
// by their check when they have one), placed tasks' addresses, services the service store holds without replicas.
import { describe, expect, it } from 'vitest';
import type { HealthCheckSpec, StoredWorker, TaskRecord, TaskSpec } from '../../src/contracts/task-model.js';
import type { ServiceRecord } from '../../src/contracts/service-model.js';
import { TaskStore } from '../../src/kv/task-store.js';
import type { TaskCommand } from '../../src/kv/task-commands.js';
import { encodeTaskSnapshot } from '../../src/kv/task-snapshot.js';
import { StateDnsView } from '../../src/manager/dns/state-view.js';
import type { ServiceStore } from '../../src/kv/service-store.js';
import { ServiceServiceImpl } from '../../src/manager/service-service.js';
import type { Proposer } from '../../src/manager/task-service.js';
import { ManualClock } from '../support/manual-clock.js';

const check: HealthCheckSpec = { type: 'http', port: 'http', intervalS: 1, timeoutS: 1, retries: 1, startPeriodS: 0 };

function record(id: string, o: Omit<Partial<TaskRecord>, 'spec'> & { spec?: Partial<TaskSpec>; noPorts?: boolean } = {}): TaskRecord {
  const { spec, noPorts, ...rest } = o;
  return {
    id, spec: { image: 'i', ...(noPorts === true ? {} : { ports: [{ name: 'http' }] }), ...spec }, state: 'running', desiredState: 'run', workerId: 'w1', attempt: 1, term: 1,
    containerId: null, exitCode: null, error: null, notBeforeMs: 0, createdAt: '', updatedAt: '', history: [], ...rest,
  };
}

const worker = (id: string, apiAddress: string): StoredWorker => ({ id, apiAddress, state: 'ready', runtime: 'process', registeredAtMs: 0, lastHeartbeatAtMs: 0, stats: null, heartbeats: 1 });
const svc = { name: 'web', version: 1 };
const port = (hostPort: number, host = '127.0.0.1') => [{ name: 'http', hostPort, address: `${host}:${hostPort}` }];

describe('dns state view', () => {
  it('healthy replicas only; the service and its ports are known while any replica lives', () => {
    const store = new TaskStore();
    store.restore(encodeTaskSnapshot({
      tasks: [
        record('t1', { service: svc, ports: port(20001) }),
        record('t2', { service: svc, ports: port(20002, '10.0.0.2'), spec: { healthCheck: check }, health: 'healthy' }),
        record('t3', { service: svc, ports: port(20003), spec: { healthCheck: check }, health: 'starting' }),
        record('t4', { service: svc, state: 'scheduled', workerId: 'w2' }),
        record('t5', { service: { name: 'db', version: 1 }, state: 'pending', workerId: null }),
        record('t6', { service: svc, state: 'failed', ports: port(20006) }),
        record('t7', { workerId: 'w2', noPorts: true }),
      ],
      workers: [worker('w1', '127.0.0.1:9001'), worker('w2', '127.0.0.5:9002')],
      cursor: null,
      idempotency: [],
    }));
    const view = new StateDnsView({ store, clock: new ManualClock(0), appliedIndex: () => 1, leaderId: () => null, members: () => [] });
    const web = view.service('web')!;
    expect(web.healthy.map((t) => [t.id, t.address?.ip, t.ports.get('http')])).toEqual([['t1', '127.0.0.1', 20001], ['t2', '10.0.0.2', 20002]]);
    expect([...web.portNames]).toEqual(['http']);
    expect(view.service('db')!.healthy).toEqual([]);
    expect(view.service('nope')).toBeUndefined();
    // Placed tasks resolve (a scheduled one and one without ports by their worker's host); ended and pending ones do not.
    expect(view.task('t4')!.address).toEqual({ family: 4, ip: '127.0.0.5' });
    expect(view.task('t7')!.address).toEqual({ family: 4, ip: '127.0.0.5' });
    expect(view.task('t6')).toBeUndefined();
    expect(view.task('t5')).toBeUndefined();
  });

  it('services of the service store exist with their ports even without a replica; managers from their API addresses', () => {
    const store = new TaskStore();
    const spec: TaskSpec = { image: 'i', ports: [{ name: 'grpc' }] };
    const service = { name: 'Api', version: 2, versions: [{ version: 2, spec, createdAtMs: 0 }] } as unknown as ServiceRecord;
    const view = new StateDnsView({
      store, clock: new ManualClock(0), appliedIndex: () => 7, leaderId: () => 'm2', services: () => [service],
      members: () => [{ id: 'm1', apiAddress: '127.0.0.1:8001' }, { id: 'm2', apiAddress: 'localhost:8002' }, { id: 'm3', apiAddress: 'manager3.example:8003' }],
    });
    expect([...view.service('api')!.portNames]).toEqual(['grpc']);
    expect(view.managers()).toEqual([
      { id: 'm1', address: { family: 4, ip: '127.0.0.1' }, apiPort: 8001 },
      { id: 'm2', address: { family: 4, ip: '127.0.0.1' }, apiPort: 8002 },
      { id: 'm3', address: null, apiPort: 8003 },
    ]);
    expect(view.serial()).toBe(7);
  });
});

describe('replicas being stopped', () => {
  it('a replica asked to stop leaves DNS at once; a removed service is gone though its replicas still stop', () => {
    const store = new TaskStore();
    const spec: TaskSpec = { image: 'i', ports: [{ name: 'http' }] };
    store.restore(encodeTaskSnapshot({
      tasks: [
        record('t1', { service: svc, ports: port(20001) }),
        record('t2', { service: svc, ports: port(20002), desiredState: 'stop' }),
        record('t3', { service: { name: 'gone', version: 1 }, ports: port(20003) }),
      ],
      workers: [worker('w1', '127.0.0.1:9001')],
      cursor: null,
      idempotency: [],
    }));
    const web = { name: 'web', version: 1, versions: [{ version: 1, spec, createdAtMs: 0 }] } as unknown as ServiceRecord;
    const view = new StateDnsView({ store, clock: new ManualClock(0), appliedIndex: () => 1, leaderId: () => null, members: () => [], services: () => [web] });
    expect(view.service('web')!.healthy.map((t) => t.id)).toEqual(['t1']);
    expect(view.service('gone')).toBeUndefined();
    // Still a placed task: its own name resolves until it ends.
    expect(view.task('t3')).toBeDefined();
  });
});

describe('replicas the cluster is stopping, by every path', () => {
  const spec: TaskSpec = { image: 'i', ports: [{ name: 'http' }] };
  const web = { name: 'web', version: 1, versions: [{ version: 1, spec, createdAtMs: 0 }] } as unknown as ServiceRecord;

  /** Four replicas of web, three on w2 (127.0.0.2) and one on w1, as the drain repro had them; applying moves the index. */
  function cluster(): { store: TaskStore; view: StateDnsView; apply: (cmd: TaskCommand) => void } {
    const store = new TaskStore();
    store.restore(encodeTaskSnapshot({
      tasks: [
        record('t1', { service: svc, ports: port(20001) }),
        record('t2', { service: svc, workerId: 'w2', ports: port(20002, '127.0.0.2') }),
        record('t3', { service: svc, workerId: 'w2', ports: port(20003, '127.0.0.2') }),
        record('t4', { service: svc, workerId: 'w2', ports: port(20004, '127.0.0.2') }),
      ],
      workers: [worker('w1', '127.0.0.1:9001'), worker('w2', '127.0.0.2:9002')],
      cursor: null,
      idempotency: [],
    }));
    let index = 1;
    // No rebuild interval: each applied entry is seen by the next query, as it is once rebuildIntervalMs passed.
    const view = new StateDnsView({ store, clock: new ManualClock(0), appliedIndex: () => index, leaderId: () => null, members: () => [], services: () => [web], rebuildIntervalMs: 0 });
    const apply = (cmd: TaskCommand): void => {
      expect(store.apply(cmd).ok).toBe(true);
      index++;
    };
    return { store, view, apply };
  }
  const answered = (view: StateDnsView) => view.service('web')!.healthy.map((t) => t.id);

  it('a drain: the replicas on the drained worker leave DNS once it is applied, while their desired state is still run', () => {
    const { store, view, apply } = cluster();
    expect(answered(view)).toEqual(['t1', 't2', 't3', 't4']);
    apply({ op: 'worker.availability', workerId: 'w2', availability: 'drain', atMs: 1000 });
    // What GET /v1/tasks says at that moment: still running, desired run, draining.
    expect(['t2', 't3', 't4'].map((id) => [store.task(id)!.state, store.task(id)!.desiredState, store.task(id)!.draining])).toEqual(Array(3).fill(['running', 'run', true]));
    expect(answered(view)).toEqual(['t1']);
    expect(view.service('web')!.healthy.map((t) => t.address?.ip)).toEqual(['127.0.0.1']);
    // As for a rollout's stop: a task's own name resolves until it has stopped (an SRV answer read just before may name it).
    expect(view.task('t2')).toBeDefined();
  });

  it("the service's healthy count agrees: a drained replica is not counted healthy while it stops, though it still wants to run", () => {
    const { store, apply } = cluster();
    const record = {
      ...web, replicas: 4, previousVersion: null, update: { parallelism: 1, delayS: 0, monitorS: 10, failureAction: 'rollback', order: 'stop-first' },
      rollout: { state: 'stable', fromVersion: null, startedAtMs: 0, monitorUntilMs: null, message: null }, revision: 1, createdAtMs: 0, updatedAtMs: 0,
    } as unknown as ServiceRecord;
    const services = new ServiceServiceImpl({ services: {} as ServiceStore, tasks: store, raft: {} as Proposer, clock: new ManualClock(0) });
    expect(services.view(record).replicas).toEqual({ desired: 4, running: 4, healthy: 4 });
    apply({ op: 'worker.availability', workerId: 'w2', availability: 'drain', atMs: 1000 });
    expect(services.view(record).replicas).toEqual({ desired: 4, running: 4, healthy: 1 });
  });

  it('a record marked draining with desired state run is not answered (the rule reads the record, not the command)', () => {
    const store = new TaskStore();
    store.restore(encodeTaskSnapshot({
      tasks: [record('t1', { service: svc, ports: port(20001) }), record('t2', { service: svc, ports: port(20002), draining: true })],
      workers: [worker('w1', '127.0.0.1:9001')],
      cursor: null,
      idempotency: [],
    }));
    const view = new StateDnsView({ store, clock: new ManualClock(0), appliedIndex: () => 1, leaderId: () => null, members: () => [], services: () => [web] });
    expect(answered(view)).toEqual(['t1']);
  });

  it('a pause keeps what runs there answered; a stop of a task and a worker declared down take replicas out at once', () => {
    const { view, apply } = cluster();
    apply({ op: 'worker.availability', workerId: 'w2', availability: 'pause', atMs: 1000 });
    expect(answered(view)).toEqual(['t1', 't2', 't3', 't4']);
    // A rollout's or a scale-down's stops, and a removal's, apply as this one does (service-store.ts: stopMany).
    apply({ op: 'task.stop', taskId: 't2', atMs: 1100 });
    expect(answered(view)).toEqual(['t1', 't3', 't4']);
    // A worker declared down: its attempts are lost and placed again (pending), not answered meanwhile.
    apply({ op: 'worker.state', workerId: 'w2', state: 'down', ifHeartbeats: 1, atMs: 1200, lost: [{ taskId: 't3', attempt: 1, retryAtMs: 1200 }, { taskId: 't4', attempt: 1, retryAtMs: 1200 }] });
    expect(answered(view)).toEqual(['t1']);
  });
});
