// Two processes with one worker id: the id is held by its newest registration's instance, at once (a restart never
// waits), and the instance it replaced is refused (409 WORKER_REPLACED) at its next heartbeat or assignment fetch,
// so the leader's record and the tasks' copies follow one process. Over the real task service and state machine.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import type { Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import type { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { inProcessRaft } from '../support/in-process.js';

const stats = { cpuUtilization: 0.1, memoryTotalBytes: 100, memoryAvailableBytes: 50, diskFreeBytes: 10, runningTasks: 1 };
const ctx = { deadlineMs: performance.now() + 60_000, requestId: 'r' } as Parameters<TaskServiceImpl['registerWorker']>[1];
const [oldOne, newOne] = ['aaaaaaaaaaaa', 'bbbbbbbbbbbb'];

function cluster(kv = new KvStateMachine()) {
  const inProcess = inProcessRaft(kv);
  const heard: string[] = [];
  const tasks = new TaskServiceImpl({
    store: kv.tasks, raft: inProcess.raft, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock,
    random: new SeededRandom(1), logger: pino({ level: 'silent' }), onHeartbeat: (id) => heard.push(id),
  });
  return { ...inProcess, tasks, heard };
}

/** Q1 placed on bb8c-w1 and running there (attempt 1). */
function runningQ1(apply: (cmd: Command) => unknown): void {
  apply({ op: 'task.submit', taskId: 'Q1', spec: { image: 'i', command: ['sleep', '1000'] }, atMs: Date.now() });
  apply({ op: 'task.place', term: 1, atMs: Date.now(), cursor: 'bb8c-w1', placements: [{ taskId: 'Q1', attempt: 1, workerId: 'bb8c-w1' }] });
  apply({ op: 'task.report', atMs: Date.now(), reports: [{ taskId: 'Q1', workerId: 'bb8c-w1', attempt: 1, term: 1, state: 'running', containerId: 'c1', exitCode: null, error: null, retryAtMs: 0 }] });
}

describe('one worker id, two processes', () => {
  it("the tester's scenario: the second registration holds the id at once, and the first is refused from then on", async () => {
    const { tasks, apply, kv, heard } = cluster();
    await tasks.registerWorker({ id: 'bb8c-w1', apiAddress: '127.0.23.11:9001', runtime: 'process', instance: oldOne }, ctx);
    runningQ1(apply);
    // Cut off from the managers, the first process is still 'ready' when another one registers the id elsewhere.
    expect(kv.tasks.storedWorker('bb8c-w1')!.state).toBe('ready');
    await expect(tasks.registerWorker({ id: 'bb8c-w1', apiAddress: '127.0.23.21:9001', runtime: 'process', instance: newOne }, ctx))
      .resolves.toMatchObject({ id: 'bb8c-w1', apiAddress: '127.0.23.21:9001', state: 'ready', instance: newOne });
    expect(await tasks.getWorker('bb8c-w1', 'linearizable', ctx)).toMatchObject({ apiAddress: '127.0.23.21:9001', instance: newOne });

    // The first one comes back: its heartbeat (reporting its copy) and its assignment fetch are refused, and it does
    // not count as a sign of life.
    const record = kv.tasks.storedWorker('bb8c-w1');
    const heartbeat = tasks.workerHeartbeat('bb8c-w1', { stats, tasks: [], instance: oldOne }, ctx);
    await expect(heartbeat).rejects.toMatchObject({ code: 'WORKER_REPLACED', status: 409 });
    await expect(heartbeat).rejects.toThrow(`worker bb8c-w1 is registered by another instance now (${newOne}, at 127.0.23.21:9001); this one (${oldOne}) was replaced and must stop`);
    await expect(tasks.workerAssignments('bb8c-w1', ctx, oldOne)).rejects.toMatchObject({ code: 'WORKER_REPLACED' });
    expect(heard).toEqual([]);
    expect(kv.tasks.storedWorker('bb8c-w1')).toBe(record);

    // The holder goes on: its heartbeats are taken and Q1 is its to run (a stop of the first copy never reaches the record).
    await expect(tasks.workerHeartbeat('bb8c-w1', { stats, tasks: [], instance: newOne }, ctx)).resolves.toMatchObject({ heartbeatIntervalMs: expect.any(Number) as number });
    expect(heard).toEqual(['bb8c-w1']);
    expect((await tasks.workerAssignments('bb8c-w1', ctx, newOne)).map((a) => [a.taskId, a.attempt])).toEqual([['Q1', 1]]);
    expect(kv.tasks.task('Q1')).toMatchObject({ state: 'running', workerId: 'bb8c-w1' });
  });

  it("an assignment the record says runs there is marked started; the cluster's own task ids, removed ones included, are known, others not", async () => {
    const { tasks, apply } = cluster();
    await tasks.registerWorker({ id: 'bb8c-w1', apiAddress: '127.0.23.11:9001', runtime: 'docker', instance: newOne }, ctx);
    apply({ op: 'task.submit', taskId: 'q2', spec: { image: 'i' }, atMs: Date.now() });
    apply({ op: 'task.place', term: 1, atMs: Date.now(), cursor: 'bb8c-w1', placements: [{ taskId: 'q2', attempt: 1, workerId: 'bb8c-w1' }] });
    // Placed, not yet said to run: the worker may start it. Running: a worker without it lost it (never a second run).
    expect((await tasks.workerAssignments('bb8c-w1', ctx, newOne)).map((a) => [a.taskId, a.started])).toEqual([['q2', undefined]]);
    runningQ1(apply);
    expect((await tasks.workerAssignments('bb8c-w1', ctx, newOne)).map((a) => [a.taskId, a.started])).toEqual([['Q1', true], ['q2', undefined]]);

    apply({ op: 'task.submit', taskId: 'gone1', spec: { image: 'i' }, atMs: Date.now() });
    apply({ op: 'task.stop', taskId: 'gone1', atMs: Date.now() });
    apply({ op: 'task.remove', atMs: Date.now(), taskIds: ['gone1'] });
    expect(tasks.knownTaskIds(['q2', 'gone1', 'tother-cluster'])).toEqual(['q2', 'gone1']);
  });

  it('a worker restarted within its TTL, same instance, new address: registered at once, its heartbeats taken', async () => {
    const { tasks, kv } = cluster();
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', instance: oldOne }, ctx);
    await tasks.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx);
    expect(kv.tasks.storedWorker('w1')!.state).toBe('ready');
    await expect(tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.2:9001', runtime: 'process', instance: oldOne }, ctx)).resolves.toMatchObject({ apiAddress: '127.0.0.2:9001', state: 'ready' });
    await expect(tasks.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx)).resolves.toBeDefined();
    await expect(tasks.workerAssignments('w1', ctx, oldOne)).resolves.toEqual([]);
  });

  it('an emptied data directory (a new instance) restarting within the TTL is registered at once too', async () => {
    const { tasks } = cluster();
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', instance: oldOne }, ctx);
    await expect(tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', instance: newOne }, ctx)).resolves.toMatchObject({ state: 'ready', instance: newOne });
    await expect(tasks.workerHeartbeat('w1', { stats, tasks: [], instance: newOne }, ctx)).resolves.toBeDefined();
  });

  it('a manager whose state trails the log catches up before refusing: the instance that registered elsewhere a moment ago is taken', async () => {
    const kv = new KvStateMachine();
    const { tasks, apply } = cluster(kv);
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', instance: oldOne }, ctx);
    // The new instance registered through another manager: committed, not yet applied here (the barrier applies it).
    const pending: Command[] = [{ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.3:9001', runtime: 'process', atMs: Date.now(), instance: newOne }];
    const trailing = new TaskServiceImpl({
      store: kv.tasks, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock, random: new SeededRandom(1), logger: pino({ level: 'silent' }),
      raft: {
        proposeCommand: async (cmd) => apply(cmd),
        barrier: async () => {
          for (const cmd of pending.splice(0)) apply(cmd);
        },
      },
    });
    await expect(trailing.workerHeartbeat('w1', { stats, tasks: [], instance: newOne }, ctx)).resolves.toBeDefined();
    expect(kv.tasks.storedWorker('w1')).toMatchObject({ instance: newOne, apiAddress: '127.0.0.3:9001' });
    await expect(trailing.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx)).rejects.toMatchObject({ code: 'WORKER_REPLACED' });
  });

  it("WORKER_REPLACED names the holder's engine in its details (a replaced process on it leaves the containers to it), and none when it registered none", async () => {
    const { tasks, kv } = cluster();
    const engine = 'docker:0f5c3ab1-7d2e-4c65-9a1b-2e8d9c0f4a77';
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'docker', instance: oldOne, engine }, ctx);
    expect(kv.tasks.storedWorker('w1')).toMatchObject({ instance: oldOne, engine });
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.2:9001', runtime: 'docker', instance: newOne, engine }, ctx);
    await expect(tasks.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx)).rejects.toMatchObject({ code: 'WORKER_REPLACED', details: { engine } });
    await expect(tasks.workerAssignments('w1', ctx, oldOne)).rejects.toMatchObject({ code: 'WORKER_REPLACED', details: { engine } });
    // A holder that could not tell its engine (or predates engines) is no engine to anyone.
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.2:9001', runtime: 'docker', instance: newOne }, ctx);
    const refused = await tasks.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: 'WORKER_REPLACED' });
    expect((refused as MinkubeError).details).toBeUndefined();
  });

  it("a heartbeat refused at apply (the holder's registration came first in the log) names the holder's engine too", async () => {
    const kv = new KvStateMachine();
    const { apply } = cluster(kv);
    // Registered long ago: its heartbeat is due to be committed.
    apply({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'docker', atMs: 1, instance: oldOne, engine: 'docker:e1' });
    // Checked against the record before, the heartbeat's entry comes after the new instance's registration.
    const racing = new TaskServiceImpl({
      store: kv.tasks, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock, random: new SeededRandom(1), logger: pino({ level: 'silent' }),
      raft: {
        proposeCommand: async (cmd) => {
          if (cmd.op === 'worker.heartbeat') apply({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.2:9001', runtime: 'docker', atMs: Date.now(), instance: newOne, engine: 'docker:e1' });
          return apply(cmd);
        },
        barrier: async () => {},
      },
    });
    await expect(racing.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx)).rejects.toMatchObject({ code: 'WORKER_REPLACED', details: { engine: 'docker:e1' } });
    expect(kv.tasks.storedWorker('w1')).toMatchObject({ instance: newOne });
  });

  it('workers that send no instance (older ones) are neither fenced nor fence anyone', async () => {
    const { tasks } = cluster();
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'memory' }, ctx);
    await expect(tasks.workerHeartbeat('w1', { stats, tasks: [] }, ctx)).resolves.toBeDefined();
    await expect(tasks.workerHeartbeat('w1', { stats, tasks: [], instance: oldOne }, ctx)).resolves.toBeDefined();
    await expect(tasks.workerAssignments('w1', ctx)).resolves.toEqual([]);
  });
});
