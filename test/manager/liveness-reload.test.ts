// A worker's liveness record is committed at most every max(heartbeat interval, workerTtlMs / 3): a reload that lowers
// workerTtlMs (the config object changed in place) takes that pace at the next heartbeat. Kept at the old pace, the
// leader heard of healthy workers only every third of the old TTL, and marked them unreachable and their tasks lost
// within a second of any cut (a black-box tester's finding).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import { inProcessRaft } from '../support/in-process.js';
import { ManualClock } from '../support/manual-clock.js';

const stats = { cpuUtilization: null, memoryTotalBytes: 1, memoryAvailableBytes: 1, diskFreeBytes: 1, runningTasks: 0 };

/** A task service over an in-process Raft, on a manual clock, with worker w1 registered. */
async function oneWorker() {
  const { kv, raft } = inProcessRaft();
  const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
  const tasks = { ...clusterConfigDefaults.tasks, workerHeartbeatIntervalMs: 500, workerTtlMs: 6000, lostGraceMs: 4000 };
  const service = new TaskServiceImpl({ store: kv.tasks, raft, tasks, workers: {} as WorkerApi, clock, random: new SeededRandom(1), logger: pino({ level: 'silent' }) });
  const ctx = { deadlineMs: Number.MAX_SAFE_INTEGER, requestId: 'r' } as Parameters<typeof service.workerHeartbeat>[2];
  await service.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process' }, ctx);
  return { kv, raft, clock, tasks, service, ctx };
}

describe('the liveness record after a reload of workerTtlMs', () => {
  it('is committed at the new pace from the next heartbeat', async () => {
    const { kv, clock, tasks, service, ctx } = await oneWorker();
    const recorded = () => kv.tasks.storedWorker('w1')!.lastHeartbeatAtMs;
    const startMs = clock.nowMs();

    // At TTL 6 s the record is kept at most every 2 s: a beat 1 s after the last record changes nothing.
    clock.advance(1000);
    await service.workerHeartbeat('w1', { stats, tasks: [] }, ctx);
    expect(recorded()).toBe(startMs);

    // The reload sets the running config in place (reload.ts): TTL 2 s, so a record at most every 666 ms.
    tasks.workerTtlMs = 2000;
    tasks.lostGraceMs = 1000;
    await service.workerHeartbeat('w1', { stats, tasks: [] }, ctx);
    expect(recorded()).toBe(startMs + 1000);
    clock.advance(500);
    await service.workerHeartbeat('w1', { stats, tasks: [] }, ctx);
    expect(recorded()).toBe(startMs + 1000);
    clock.advance(200);
    await service.workerHeartbeat('w1', { stats, tasks: [] }, ctx);
    expect(recorded()).toBe(startMs + 1700);
  });
});

describe('the liveness record after a manager whose clock ran ahead wrote it', () => {
  it('is committed by a manager with the right time, and brought back to it, rather than left in the future', async () => {
    const { kv, raft, clock, service, ctx } = await oneWorker();
    // Another manager, two hours ahead, committed a heartbeat.
    const aheadMs = clock.nowMs() + 2 * 3600_000;
    await raft.proposeCommand({ op: 'worker.heartbeat', workerId: 'w1', atMs: aheadMs, stats, reports: [] }, Number.MAX_SAFE_INTEGER, 'r2');
    expect(kv.tasks.storedWorker('w1')!.lastHeartbeatAtMs).toBe(aheadMs);
    // This one's next heartbeat, 100 ms later by its own clock, is committed: the record's time says nothing of it.
    clock.advance(100);
    const seen = kv.tasks.storedWorker('w1')!.heartbeats;
    await service.workerHeartbeat('w1', { stats, tasks: [] }, ctx);
    expect(kv.tasks.storedWorker('w1')!.heartbeats).toBe(seen + 1);
    expect(kv.tasks.storedWorker('w1')!.lastHeartbeatAtMs).toBe(clock.nowMs());
  });
});
