// A heartbeat saying the worker's engine is unreachable: the managers commit it (worker.engine) apart from the
// heartbeat, GET /v1/workers shows it, and a heartbeat without it clears it. Over the real task service and state machine.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { inProcessRaft } from '../support/in-process.js';
import { waitFor } from '../support/wait.js';

const stats = { cpuUtilization: 0.1, memoryTotalBytes: 100, memoryAvailableBytes: 50, diskFreeBytes: 10, runningTasks: 0 };
const ctx = { deadlineMs: performance.now() + 60_000, requestId: 'r' } as Parameters<TaskServiceImpl['registerWorker']>[1];

describe('a heartbeat naming the engine unreachable', () => {
  it('is committed, shown in the worker record, and cleared by a heartbeat without it', async () => {
    const kv = new KvStateMachine();
    const { raft } = inProcessRaft(kv);
    const tasks = new TaskServiceImpl({
      store: kv.tasks, raft, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock, random: new SeededRandom(1), logger: pino({ level: 'silent' }),
    });
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.62.11:9001', runtime: 'docker', instance: 'aaaaaaaaaaaa' }, ctx);
    const sinceMs = Date.parse('2026-12-07T20:00:00.000Z');
    const reason = 'Docker is not reachable at unix:///tmp/x.sock: connect ECONNREFUSED /tmp/x.sock';
    await tasks.workerHeartbeat('w1', { stats, tasks: [], instance: 'aaaaaaaaaaaa', engineUnreachable: { reason, sinceMs } }, ctx);
    const shown = await waitFor('the engine state committed', async () => (await tasks.getWorker('w1', 'linearizable', ctx)).engineUnreachable);
    expect(shown).toEqual({ reason, since: '2026-12-07T20:00:00.000Z' });
    const page = await tasks.listWorkers({ limit: 10, consistency: 'linearizable' }, ctx);
    expect(page.items[0]?.engineUnreachable).toEqual(shown);
    await tasks.workerHeartbeat('w1', { stats, tasks: [], instance: 'aaaaaaaaaaaa' }, ctx);
    await waitFor('the engine state cleared', async () => (await tasks.getWorker('w1', 'linearizable', ctx)).engineUnreachable === undefined);
  });
});
