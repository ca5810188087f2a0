// worker.availability in the task store: drain, pause and activate; what a drain does to the tasks on the worker
// (stopped there, then placed again as an attempt that does not count against maxAttempts); that the availability
// survives re-registration and snapshots (whole and lazy restores); and how the command is checked on the wire.
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, tryDecodeCommand, type Command, type TaskReport } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { replicaState } from '../../src/manager/service-decide.js';
import type { TaskSpec } from '../../src/contracts/task-model.js';
import { TaskDriver } from './task-driver.js';

const stats = { cpuUtilization: 0.5, memoryTotalBytes: 100, memoryAvailableBytes: 50, diskFreeBytes: 10, runningTasks: 0 };

function availability(d: TaskDriver, workerId: string, to: 'active' | 'pause' | 'drain', atMs = 4000): ReturnType<TaskDriver['run']> {
  return d.run({ op: 'worker.availability', workerId, availability: to, atMs });
}

function running(d: TaskDriver, id: string, workerId = 'w1', spec: Partial<TaskSpec> = {}): void {
  d.submit(id, spec);
  d.place(id, workerId);
  d.report({ taskId: id, workerId, state: 'running' });
  expect(d.task(id).state).toBe('running');
}

/** What the worker says once it stopped the attempt the drain asked it to stop. */
function stoppedThere(d: TaskDriver, id: string, atMs = 5000, extra: Partial<TaskReport> = {}): void {
  const t = d.task(id);
  d.report({ taskId: id, workerId: t.workerId!, attempt: t.attempt, term: t.term, state: 'stopped', retryAtMs: atMs + 60_000, ...extra }, atMs);
}

describe('worker.availability', () => {
  it('is refused for an unknown worker, and shown as active by default', () => {
    const d = new TaskDriver();
    d.register('w1');
    expect(d.store.worker('w1')).toMatchObject({ availability: 'active' });
    expect(availability(d, 'w9', 'drain')).toMatchObject({ ok: false, code: 'WORKER_NOT_FOUND', message: 'no worker w9' });
  });

  it('pause: nothing new is placed there (a placement chosen before is skipped), what runs stays; activate: placed again', () => {
    const d = new TaskDriver();
    d.register('w1');
    running(d, 'a');
    expect(availability(d, 'w1', 'pause')).toMatchObject({ ok: true });
    expect(d.store.worker('w1')).toMatchObject({ availability: 'pause', taskCount: 1 });
    expect(d.task('a')).toMatchObject({ state: 'running', desiredState: 'run', draining: undefined });
    d.submit('b');
    d.place('b', 'w1');
    expect(d.task('b').state).toBe('pending');
    availability(d, 'w1', 'active');
    expect(d.store.worker('w1')).toMatchObject({ availability: 'active' });
    expect(d.store.storedWorker('w1')!.availability).toBeUndefined();
    d.place('b', 'w1');
    expect(d.task('b')).toMatchObject({ state: 'scheduled', workerId: 'w1' });
  });

  it('drain: its attempts are stopped there, then placed again at once as an attempt that does not count', () => {
    const d = new TaskDriver();
    d.register('w1');
    running(d, 'a', 'w1', { maxAttempts: 1, restartPolicy: 'on-failure' });
    d.submit('b');
    d.place('b', 'w1');
    running(d, 'c');
    d.run({ op: 'task.stop', taskId: 'c', atMs: 3500 });
    expect(availability(d, 'w1', 'drain', 4000)).toMatchObject({ ok: true });
    // Still on the worker until it says it stopped them; one already stopping is left to end as it was asked.
    expect(d.store.worker('w1')).toMatchObject({ availability: 'drain', taskCount: 3 });
    expect(d.task('a')).toMatchObject({ state: 'running', desiredState: 'run', draining: true });
    expect(d.task('b')).toMatchObject({ state: 'scheduled', draining: true });
    expect(d.task('c')).toMatchObject({ desiredState: 'stop', draining: undefined });
    // Draining again changes nothing.
    expect(availability(d, 'w1', 'drain', 4100)).toMatchObject({ ok: true });
    stoppedThere(d, 'a', 5000);
    expect(d.task('a')).toMatchObject({
      state: 'pending', desiredState: 'run', attempt: 2, drainedAttempts: 1, workerId: null, notBeforeMs: 5000, draining: undefined,
      error: { class: 'transient', message: 'its worker w1 was drained' },
    });
    expect(d.task('a').history.at(-1)).toMatchObject({ state: 'pending', attempt: 2, reason: expect.stringMatching(/^drained: worker w1 is drained \(stopped there\); placed again as attempt 2, not counted against maxAttempts$/) as string });
    stoppedThere(d, 'b');
    stoppedThere(d, 'c');
    expect(d.task('c').state).toBe('stopped');
    expect(d.store.worker('w1')).toMatchObject({ taskCount: 0 });
    // maxAttempts 1: the drained attempt did not use it up, so the task still has its one attempt.
    d.register('w2');
    d.place('a', 'w2', 2, 2, 6000);
    d.report({ taskId: 'a', workerId: 'w2', attempt: 2, state: 'failed', exitCode: 1 }, 6000);
    expect(d.task('a')).toMatchObject({ state: 'failed', attempt: 2, error: { message: 'the container exited with code 1 (attempt 1 of 1; no attempts left)' } });
  });

  it('a draining attempt that ends by itself follows its own rules; one asked to stop meanwhile ends stopped', () => {
    const d = new TaskDriver();
    d.register('w1');
    running(d, 'a');
    running(d, 'b');
    availability(d, 'w1', 'drain');
    d.report({ taskId: 'a', state: 'succeeded', exitCode: 0 }, 4500);
    expect(d.task('a')).toMatchObject({ state: 'succeeded', drainedAttempts: undefined });
    d.run({ op: 'task.stop', taskId: 'b', atMs: 4600 });
    expect(d.task('b')).toMatchObject({ state: 'running', desiredState: 'stop', draining: undefined });
    stoppedThere(d, 'b');
    expect(d.task('b')).toMatchObject({ state: 'stopped', attempt: 1 });
  });

  it('a drained worker found down: its draining attempts are placed again, not counted', () => {
    const d = new TaskDriver();
    d.register('w1');
    running(d, 'a', 'w1', { maxAttempts: 1 });
    availability(d, 'w1', 'drain');
    d.run({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: 6000, ifHeartbeats: 1, lost: [] });
    d.run({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: 7000, ifHeartbeats: 1, lost: [{ taskId: 'a', attempt: 1, retryAtMs: 9000 }] });
    expect(d.task('a')).toMatchObject({ state: 'pending', attempt: 2, drainedAttempts: 1, notBeforeMs: 7000 });
    expect(d.task('a').history.at(-1)!.reason).toMatch(/^drained: worker w1 is drained \(lost before it stopped the task\)/);
  });

  it("a replica moved by a drain is no failure of its service's version", () => {
    const d = new TaskDriver();
    d.register('w1');
    running(d, 'a');
    availability(d, 'w1', 'drain');
    stoppedThere(d, 'a');
    expect(replicaState(d.task('a'))).toMatchObject({ failed: false });
  });

  it('a restarted worker registering again keeps its availability, as does a heartbeat', () => {
    const d = new TaskDriver();
    d.register('w1');
    availability(d, 'w1', 'drain');
    d.register('w1', 5000);
    expect(d.store.worker('w1')).toMatchObject({ state: 'ready', availability: 'drain' });
    d.run({ op: 'worker.heartbeat', workerId: 'w1', atMs: 5100, stats, reports: [] });
    availability(d, 'w1', 'pause');
    d.register('w1', 5200);
    expect(d.store.worker('w1')).toMatchObject({ availability: 'pause' });
  });

  it('survives a snapshot, restored whole or lazily: the availability, draining attempts and drained attempts', async () => {
    const d = new TaskDriver();
    d.register('w1');
    d.register('w2');
    d.run({ op: 'worker.register', workerId: 'w3', apiAddress: '127.0.0.1:9300', runtime: 'memory', atMs: 1000, instance: 'i-3', labels: { zone: 'a' } });
    running(d, 'a');
    running(d, 'b');
    availability(d, 'w1', 'drain');
    availability(d, 'w2', 'pause');
    availability(d, 'w3', 'drain');
    stoppedThere(d, 'a');
    const whole = new KvStateMachine();
    whole.restore(d.sm.snapshot());
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(d.sm.snapshot()))();
    for (const copy of [whole, lazy]) {
      expect(Buffer.from(copy.snapshot()).equals(Buffer.from(d.sm.snapshot()))).toBe(true);
      expect(copy.tasks.allWorkers()).toEqual(d.store.allWorkers());
      expect(copy.tasks.worker('w1')).toMatchObject({ availability: 'drain', taskCount: 1 });
      expect(copy.tasks.worker('w2')).toMatchObject({ availability: 'pause' });
      expect(copy.tasks.worker('w3')).toMatchObject({ availability: 'drain', instance: 'i-3', labels: { zone: 'a' } });
      expect(copy.tasks.task('a')).toEqual(d.task('a'));
      expect(copy.tasks.task('a')).toMatchObject({ drainedAttempts: 1 });
      expect(copy.tasks.task('b')).toMatchObject({ draining: true });
      // It goes on as the original would.
      const again = new TaskDriver(copy);
      again.index = d.index;
      again.seq = 1000;
      stoppedThere(again, 'b');
      expect(again.task('b')).toMatchObject({ state: 'pending', attempt: 2, drainedAttempts: 1 });
    }
  });

  it('round-trips through the wire form; a bad availability or an extra field is refused by name', () => {
    const cmd: Command = { op: 'worker.availability', workerId: 'w1', availability: 'pause', atMs: 7 };
    expect(decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd })).cmd).toEqual(cmd);
    const bad = encodeCommand({ clientId: 'c', seq: 1, cmd: { ...cmd, availability: 'maintenance' } as unknown as Command });
    expect(tryDecodeCommand(bad)).toMatchObject({ ok: false, problem: expect.stringMatching(/worker\.availability: \/availability Expected union value$/) as string });
  });
});
