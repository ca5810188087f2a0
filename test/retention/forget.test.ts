// A heartbeat that reports a finished task whose record retention removed is answered with `forget`, so the worker
// drops the task's kept output now instead of after workers[].containerRetentionS (the worker's side is in
// test/worker/loops.test.ts). Over the real task service and state machine, proposals applied in process.
import { describe, expect, it } from 'vitest';
import type { WorkerTaskStatus } from '../../src/contracts/worker.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';

const inProcess = inProcessRaft();
const { kv, apply } = inProcess;
const tasks = inProcessTasks(inProcess);
const ctx = { deadlineMs: performance.now() + 60_000 } as Parameters<typeof tasks.workerHeartbeat>[2];
const stats = { cpuUtilization: null, memoryTotalBytes: 1, memoryAvailableBytes: 1, diskFreeBytes: 1, runningTasks: 0 };

function status(taskId: string, state: WorkerTaskStatus['state']): WorkerTaskStatus {
  const t = kv.tasks.task(taskId)!;
  return { taskId, attempt: t.attempt, term: t.term, state, containerId: 'c1', exitCode: state === 'running' ? null : 0, error: null } as WorkerTaskStatus;
}

describe('heartbeat forget', () => {
  it('names the reported final tasks whose records were removed, and nothing else', async () => {
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.0.1:1', runtime: 'memory' }, ctx);
    for (const id of ['gone', 'done', 'live']) apply({ op: 'task.submit', taskId: id, spec: { image: 'img' }, atMs: 1000 });
    apply({ op: 'task.place', term: 1, atMs: 2000, cursor: 'w1', placements: ['gone', 'done', 'live'].map((taskId) => ({ taskId, attempt: 1, workerId: 'w1' })) });
    const first = await tasks.workerHeartbeat('w1', { stats, tasks: [status('gone', 'succeeded'), status('done', 'succeeded'), status('live', 'running')] }, ctx);
    expect(first.forget).toBeUndefined();
    expect(kv.tasks.task('gone')!.state).toBe('succeeded');
    const gone = status('gone', 'succeeded');
    apply({ op: 'task.remove', atMs: 3000, taskIds: ['gone'] });
    expect(kv.tasks.task('gone')).toBeUndefined();
    const next = await tasks.workerHeartbeat('w1', { stats, tasks: [gone, status('done', 'succeeded'), status('live', 'running')] }, ctx);
    expect(next.forget).toEqual(['gone']);
    // A task id no manager ever held (or one this manager has not applied yet) is not forgotten on a guess.
    const unknown = await tasks.workerHeartbeat('w1', { stats, tasks: [{ ...gone, taskId: 'never' }] }, ctx);
    expect(unknown.forget).toBeUndefined();
  });
});
