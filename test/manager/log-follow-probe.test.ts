// A followed log relayed by a manager that no longer reaches the task's worker (cut off from this manager alone: the
// worker still heartbeats to the leader, so the record shows it running) is cut, not left open and silent for good.
// Over the real task service and state machine, a manual clock, and a worker API that stops answering.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { inProcessRaft } from '../support/in-process.js';
import { ManualClock } from '../support/manual-clock.js';

/** 'hello\n', then nothing until the follow is ended (then the abort, as the HTTP client throws it). */
async function* helloThenSilence(signal: AbortSignal): AsyncGenerator<Uint8Array> {
  yield Buffer.from('hello\n');
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  throw new MinkubeError('UNREACHABLE', 'abandoned');
}

function setup() {
  const kv = new KvStateMachine();
  const { raft, apply } = inProcessRaft(kv);
  const clock = new ManualClock(Date.now());
  const worker = { reachable: true, probes: 0 };
  const workers = {
    followLogs: async (_address: string, _id: string, _tail: number, o: { signal: AbortSignal }) => helloThenSilence(o.signal),
    logs: async (_address: string, _id: string, tail: number) => {
      expect(tail).toBe(0);
      worker.probes++;
      if (!worker.reachable) throw new MinkubeError('TIMEOUT', `GET http://127.0.0.1:9001/v1/tasks/Q1/logs?tail=0: no answer within ${limits.logFollowProbeTimeoutMs} ms`);
      return '';
    },
  } as unknown as WorkerApi;
  const tasks = new TaskServiceImpl({ store: kv.tasks, raft, tasks: clusterConfigDefaults.tasks, workers, clock, random: new SeededRandom(1), logger: pino({ level: 'silent' }) });
  const now = Date.now();
  apply({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process', atMs: now });
  apply({ op: 'task.submit', taskId: 'Q1', spec: { image: 'i', command: ['sleep', '1000'] }, atMs: now });
  apply({ op: 'task.place', term: 1, atMs: now, cursor: 'w1', placements: [{ taskId: 'Q1', attempt: 1, workerId: 'w1' }] });
  apply({ op: 'task.report', atMs: now, reports: [{ taskId: 'Q1', workerId: 'w1', attempt: 1, term: 1, state: 'running', containerId: 'c1', exitCode: null, error: null, retryAtMs: 0 }] });
  return { tasks, clock, worker };
}

/** Moves the clock on a second at a time, letting the probes' promises settle in between. */
async function seconds(clock: ManualClock, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    clock.advance(1000);
    for (let j = 0; j < 5; j++) await Promise.resolve();
  }
}

describe('a followed log, relayed', () => {
  it('asks a silent worker whether it is still reached, goes on while it answers, and is cut after two questions unanswered', async () => {
    const { tasks, clock, worker } = setup();
    const ctx = { deadlineMs: Date.now() + 60_000, requestId: 'r' } as Parameters<TaskServiceImpl['followTaskLogs']>[2];
    const stream = (await tasks.followTaskLogs('Q1', 10, ctx, new AbortController().signal))[Symbol.asyncIterator]();
    expect(Buffer.from((await stream.next()).value as Uint8Array).toString()).toBe('hello\n');
    let settled: unknown = 'pending';
    const next = stream.next().then((r) => (settled = r), (err: unknown) => (settled = err));

    // Quiet, not cut off: one question per idle period, answered, and the follow goes on.
    await seconds(clock, limits.logFollowProbeIdleMs / 1000 - 1);
    expect(worker.probes).toBe(0);
    await seconds(clock, 1);
    expect(worker.probes).toBe(1);
    await seconds(clock, limits.logFollowProbeIdleMs / 1000);
    expect(worker.probes).toBe(2);
    expect(settled).toBe('pending');

    // Cut off: the next question goes unanswered, then one more a second later, and the follow is cut.
    worker.reachable = false;
    await seconds(clock, limits.logFollowProbeIdleMs / 1000);
    expect(worker.probes).toBe(3);
    expect(settled).toBe('pending');
    await seconds(clock, 1);
    await next;
    expect(worker.probes).toBe(4);
    expect(settled).toBeInstanceOf(MinkubeError);
    expect(settled).toMatchObject({ code: 'WORKER_UNAVAILABLE' });
    expect((settled as Error).message).toMatch(/^this manager no longer reaches worker w1 \(GET .*no answer within 5000 ms\): the output of task Q1's attempt 1 is cut here; another manager may reach it$/);
    // Nothing is asked once it is cut.
    await seconds(clock, 30);
    expect(worker.probes).toBe(4);
  });
});
