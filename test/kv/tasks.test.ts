// The state machine's task and worker commands: the transition table, fencing, retries and restart policies,
// idempotency keys, indexes, bounds, snapshots, and (fast-check) determinism of apply.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, type Command, type TaskCommand, type TaskReport } from '../../src/kv/commands.js';
import { TaskDriver as Driver } from './task-driver.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import { canTransition, type TaskSpec } from '../../src/contracts/task-model.js';
import { taskView } from '../../src/kv/task-spec.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const stats = { cpuUtilization: 0.5, memoryTotalBytes: 100, memoryAvailableBytes: 50, diskFreeBytes: 10, runningTasks: 0 };


function running(d: Driver, id: string, spec: Partial<TaskSpec> = {}): void {
  d.submit(id, spec);
  d.place(id, 'w1');
  d.report({ taskId: id, state: 'running' });
  expect(d.task(id).state).toBe('running');
}

describe('task records', () => {
  it('a submission is pending at attempt 1 with defaults filled in and a history entry', () => {
    const d = new Driver();
    expect(d.submit('t1', { command: ['echo'] })).toEqual({ ok: true, key: 't1', version: 1 });
    expect(d.task('t1')).toMatchObject({
      id: 't1', state: 'pending', desiredState: 'run', attempt: 1, workerId: null, containerId: null, exitCode: null, error: null,
      spec: { image: 'img', command: ['echo'], restartPolicy: 'never', maxAttempts: 3 }, createdAt: new Date(1000).toISOString(),
      history: [{ state: 'pending', attempt: 1, atMs: 1000, workerId: null, reason: 'submitted' }],
    });
  });

  it('placement: pending -> scheduled on a ready worker, with the term; the cursor is replicated', () => {
    const d = new Driver();
    d.register('w1');
    d.submit('t1');
    d.place('t1', 'w1', 1, 7);
    expect(d.task('t1')).toMatchObject({ state: 'scheduled', workerId: 'w1', term: 7 });
    expect(d.store.cursor).toBe('w1');
    expect(d.store.activeOn('w1').map((t) => t.id)).toEqual(['t1']);
    expect(d.store.worker('w1')?.taskCount).toBe(1);
  });

  it('placement is skipped for an unknown or unready worker, another attempt, or a task still in backoff', () => {
    const d = new Driver();
    d.register('w1');
    d.submit('t1');
    d.place('t1', 'w9');
    d.place('t1', 'w1', 2);
    expect(d.task('t1').state).toBe('pending');
    d.run({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: 1500, ifHeartbeats: 1, lost: [] });
    d.place('t1', 'w1');
    expect(d.task('t1').state).toBe('pending');
    d.register('w1', 1600);
    d.place('t1', 'w1');
    d.report({ taskId: 't1', state: 'failed', error: { class: 'transient', message: 'disk full' }, retryAtMs: 5000 });
    expect(d.task('t1')).toMatchObject({ state: 'pending', attempt: 2, notBeforeMs: 5000, workerId: null });
    d.place('t1', 'w1', 2, 2, 4999);
    expect(d.task('t1').state).toBe('pending');
    d.place('t1', 'w1', 2, 2, 5000);
    expect(d.task('t1').state).toBe('scheduled');
  });

  it('reports are fenced: another worker, attempt or term changes nothing', () => {
    const d = new Driver();
    d.register('w1');
    d.register('w2');
    d.submit('t1');
    d.place('t1', 'w1', 1, 2);
    d.report({ taskId: 't1', state: 'succeeded', workerId: 'w2' });
    d.report({ taskId: 't1', state: 'succeeded', attempt: 2 });
    d.report({ taskId: 't1', state: 'succeeded', term: 1 });
    expect(d.task('t1').state).toBe('scheduled');
    d.report({ taskId: 't1', state: 'running', containerId: 'abc' });
    expect(d.task('t1')).toMatchObject({ state: 'running', containerId: 'abc' });
  });

  it('the transition table is enforced: a final task never changes again', () => {
    const d = new Driver();
    d.register('w1');
    running(d, 't1');
    d.report({ taskId: 't1', state: 'succeeded', exitCode: 0 });
    const done = d.task('t1');
    expect(done.state).toBe('succeeded');
    d.report({ taskId: 't1', state: 'running' });
    d.report({ taskId: 't1', state: 'failed', exitCode: 1 });
    d.place('t1', 'w1');
    expect(d.task('t1')).toEqual(done);
    expect(d.run({ op: 'task.stop', taskId: 't1', atMs: 5 })).toMatchObject({ ok: false, code: 'TASK_ALREADY_FINAL' });
  });

  it('a permanent failure ends the task at once; a transient one is retried until maxAttempts', () => {
    const d = new Driver();
    d.register('w1');
    d.submit('p', { maxAttempts: 5 });
    d.place('p', 'w1');
    d.report({ taskId: 'p', state: 'failed', error: { class: 'permanent', message: 'command not found: nope' } });
    expect(d.task('p')).toMatchObject({ state: 'failed', attempt: 1, error: { class: 'permanent', message: 'command not found: nope' } });

    d.submit('t', { maxAttempts: 2 });
    d.place('t', 'w1');
    d.report({ taskId: 't', state: 'failed', error: { class: 'transient', message: 'daemon unreachable' } });
    expect(d.task('t')).toMatchObject({ state: 'pending', attempt: 2, notBeforeMs: 3100 });
    d.place('t', 'w1', 2, 2, 3100);
    d.report({ taskId: 't', state: 'failed', error: { class: 'transient', message: 'daemon unreachable' } });
    expect(d.task('t').state).toBe('failed');
    expect(d.task('t').error).toEqual({ class: 'transient', message: 'daemon unreachable (attempt 2 of 2; no attempts left)' });
  });

  it('restart policies: never fails on exit 1; on-failure retries; always restarts after exit 0', () => {
    const d = new Driver();
    d.register('w1');
    running(d, 'never');
    d.report({ taskId: 'never', state: 'failed', exitCode: 1 });
    expect(d.task('never')).toMatchObject({ state: 'failed', attempt: 1, exitCode: 1, error: { class: 'permanent' } });
    running(d, 'onf', { restartPolicy: 'on-failure' });
    d.report({ taskId: 'onf', state: 'failed', exitCode: 1 });
    expect(d.task('onf')).toMatchObject({ state: 'pending', attempt: 2, exitCode: 1 });
    // The retry shows why it waits until it runs; running, its answers (taskView) show no exit or error of the attempt
    // before it, which the record keeps (a service's rollout judges a replica by it).
    d.place('onf', 'w1', 2, 2, 5000);
    expect(taskView(d.task('onf'))).toMatchObject({ state: 'scheduled', attempt: 2, exitCode: 1, error: { class: 'permanent' } });
    d.report({ taskId: 'onf', state: 'running', attempt: 2 });
    expect(d.task('onf')).toMatchObject({ state: 'running', attempt: 2, exitCode: 1, error: { class: 'permanent' } });
    expect(taskView(d.task('onf'))).toMatchObject({ state: 'running', attempt: 2, exitCode: null, error: null });
    expect(d.task('onf').history.at(-3)?.reason).toMatch(/exited with code 1; retrying/);
    running(d, 'onf0', { restartPolicy: 'on-failure' });
    d.report({ taskId: 'onf0', state: 'succeeded', exitCode: 0 });
    expect(d.task('onf0').state).toBe('succeeded');
    running(d, 'alw', { restartPolicy: 'always', maxAttempts: 2 });
    d.report({ taskId: 'alw', state: 'succeeded', exitCode: 0 });
    expect(d.task('alw')).toMatchObject({ state: 'pending', attempt: 2 });
  });

  it("history never goes back in time: a change proposed by a manager whose clock is behind is recorded at the line before's time", () => {
    const d = new Driver();
    d.register('w1');
    d.submit('t1');
    d.place('t1', 'w1', 1, 2, 9000);
    // The worker's report reached a manager 4 s behind the leader that placed it.
    d.report({ taskId: 't1', state: 'running' }, 5000);
    d.report({ taskId: 't1', state: 'failed', exitCode: 1 }, 9500);
    const t = d.task('t1');
    expect(t.history.map((h) => [h.state, h.atMs])).toEqual([['pending', 1000], ['scheduled', 9000], ['running', 9000], ['failed', 9500]]);
    expect(t.updatedAt).toBe(new Date(9500).toISOString());
    // A retry's notBeforeMs stays as proposed (placement's apply compares it, as earlier builds do).
    d.submit('t2', { restartPolicy: 'on-failure' });
    d.place('t2', 'w1', 1, 2, 9000);
    d.report({ taskId: 't2', state: 'running' }, 9100);
    d.report({ taskId: 't2', state: 'failed', exitCode: 1, retryAtMs: 6000 }, 5000);
    expect(d.task('t2')).toMatchObject({ state: 'pending', attempt: 2, notBeforeMs: 6000 });
    expect(d.task('t2').history.at(-1)).toMatchObject({ state: 'pending', atMs: 9100 });
  });

  it('stop: a pending task stops at once; a running one waits for its worker; stopping twice is fine', () => {
    const d = new Driver();
    d.register('w1');
    d.submit('p');
    expect(d.run({ op: 'task.stop', taskId: 'p', atMs: 5 })).toMatchObject({ ok: true, key: 'p' });
    expect(d.task('p')).toMatchObject({ state: 'stopped', desiredState: 'stop' });
    running(d, 'r', { restartPolicy: 'always' });
    d.run({ op: 'task.stop', taskId: 'r', atMs: 5 });
    expect(d.task('r')).toMatchObject({ state: 'running', desiredState: 'stop' });
    expect(d.run({ op: 'task.stop', taskId: 'r', atMs: 6 }).ok).toBe(true);
    // Whatever the exit, a task asked to stop is not restarted.
    d.report({ taskId: 'r', state: 'failed', exitCode: 143 });
    expect(d.task('r').state).toBe('stopped');
    expect(d.run({ op: 'task.stop', taskId: 'r', atMs: 7 }).ok).toBe(true);
    expect(d.run({ op: 'task.stop', taskId: 'nope', atMs: 7 })).toMatchObject({ ok: false, code: 'TASK_NOT_FOUND' });
  });

  it('a worker declared down loses its active attempts: retried with the given time, or stopped if asked to stop', () => {
    const d = new Driver();
    d.register('w1');
    running(d, 'a');
    running(d, 'b');
    d.run({ op: 'task.stop', taskId: 'b', atMs: 5 });
    d.run({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: 4000, ifHeartbeats: 1, lost: [] });
    expect(d.store.worker('w1')?.state).toBe('unreachable');
    const lost = [{ taskId: 'a', attempt: 1, retryAtMs: 4321 }, { taskId: 'b', attempt: 1, retryAtMs: 4321 }];
    d.run({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: 4100, ifHeartbeats: 1, lost });
    expect(d.task('a')).toMatchObject({ state: 'pending', attempt: 2, notBeforeMs: 4321, workerId: null });
    expect(d.task('a').history.slice(-2).map((h) => h.state)).toEqual(['lost', 'pending']);
    expect(d.task('b').state).toBe('stopped');
    expect(d.store.activeOn('w1')).toEqual([]);
    expect(d.store.worker('w1')).toMatchObject({ state: 'down', taskCount: 0 });
    // The worker comes back: a heartbeat makes it ready; its reports about the old attempt change nothing.
    d.run({ op: 'worker.heartbeat', workerId: 'w1', atMs: 5000, stats, reports: [{ taskId: 'a', workerId: 'w1', attempt: 1, term: 2, state: 'running', containerId: 'x', exitCode: null, error: null, retryAtMs: 0 }] });
    expect(d.store.worker('w1')).toMatchObject({ state: 'ready', stats, lastHeartbeatAt: new Date(5000).toISOString() });
    expect(d.task('a').state).toBe('pending');
  });

  it('a verdict decided before a later heartbeat was applied is void', () => {
    const d = new Driver();
    d.register('w1', 1000);
    d.run({ op: 'worker.heartbeat', workerId: 'w1', atMs: 2000, stats, reports: [] });
    expect(d.run({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: 3000, ifHeartbeats: 1, lost: [] }).ok).toBe(true);
    expect(d.store.worker('w1')?.state).toBe('ready');
    expect(d.run({ op: 'worker.heartbeat', workerId: 'w9', atMs: 1, stats, reports: [] })).toMatchObject({ ok: false, code: 'WORKER_NOT_FOUND' });
  });
});

describe('worker.remove', () => {
  it('forgets a down worker with no task placed on it; refuses a live one, one with tasks, and an unknown id; it may register again', () => {
    const d = new Driver();
    d.register('w1', 1000);
    running(d, 'a');
    expect(d.run({ op: 'worker.remove', workerId: 'w1', atMs: 1100 })).toMatchObject({ ok: false, code: 'WORKER_NOT_DOWN', message: expect.stringContaining('is ready') as string });
    d.run({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: 4000, ifHeartbeats: 1, lost: [] });
    // Down, but its verdict listed no task yet: one is still placed on it.
    d.run({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: 4100, ifHeartbeats: 1, lost: [] });
    expect(d.run({ op: 'worker.remove', workerId: 'w1', atMs: 4200 })).toMatchObject({ ok: false, code: 'WORKER_NOT_DOWN', message: expect.stringContaining('1 task(s)') as string });
    d.run({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: 4300, ifHeartbeats: 1, lost: [{ taskId: 'a', attempt: 1, retryAtMs: 5000 }] });
    expect(d.run({ op: 'worker.remove', workerId: 'w1', atMs: 4400 })).toMatchObject({ ok: true, key: 'w1' });
    expect(d.store.worker('w1')).toBeUndefined();
    expect(d.store.allWorkers()).toEqual([]);
    // Its task's record keeps its history (and the worker's id).
    expect(d.task('a')).toMatchObject({ state: 'pending', attempt: 2 });
    expect(d.run({ op: 'worker.remove', workerId: 'w1', atMs: 4500 })).toMatchObject({ ok: false, code: 'WORKER_NOT_FOUND' });
    expect(d.run({ op: 'worker.heartbeat', workerId: 'w1', atMs: 4600, stats, reports: [] })).toMatchObject({ ok: false, code: 'WORKER_NOT_FOUND' });
    d.register('w1', 5000);
    expect(d.store.worker('w1')).toMatchObject({ state: 'ready', taskCount: 0 });
  });

  it('round-trips through the wire form', () => {
    const cmd: Command = { op: 'worker.remove', workerId: 'w1', atMs: 7 };
    expect(decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd })).cmd).toEqual(cmd);
  });
});

describe('idempotency keys, indexes and bounds', () => {
  it('a known Idempotency-Key answers the task it created', () => {
    const d = new Driver();
    expect(d.submit('t1', {}, 'k')).toMatchObject({ ok: true, key: 't1' });
    expect(d.submit('t2', {}, 'k')).toMatchObject({ ok: true, key: 't1' });
    expect(d.store.taskCount).toBe(1);
  });

  it('a known Idempotency-Key with another spec is refused with IDEMPOTENCY_KEY_REUSED, and creates nothing', () => {
    const d = new Driver();
    expect(d.submit('t1', { command: ['echo', 'a'] }, 'k')).toMatchObject({ ok: true, key: 't1' });
    expect(d.submit('t2', { command: ['echo', 'b'] }, 'k')).toEqual({
      ok: false, code: 'IDEMPOTENCY_KEY_REUSED', currentVersion: 0,
      message: 'the Idempotency-Key "k" was used for a different request (another spec); use a new key for a new request',
    });
    // Defaults spelt out make the same spec.
    expect(d.submit('t3', { command: ['echo', 'a'], restartPolicy: 'never', maxAttempts: 3 }, 'k')).toMatchObject({ ok: true, key: 't1' });
    expect(d.store.taskCount).toBe(1);
  });

  it('a batch compares key i with spec i; one reused key refuses the whole batch', () => {
    const d = new Driver();
    const batch = (images: string[], ids: string[]): ApplyResult =>
      d.run({ op: 'task.submitBatch', atMs: 1000, tasks: images.map((image, i) => ({ taskId: ids[i]!, spec: { image }, idempotencyKey: `k ${i}` })) });
    expect(batch(['a', 'b'], ['t1', 't2'])).toMatchObject({ ok: true });
    expect(batch(['a', 'b'], ['t3', 't4'])).toMatchObject({ ok: true, key: 't1' });
    expect(batch(['a', 'c', 'd'], ['t5', 't6', 't7'])).toMatchObject({
      ok: false, code: 'IDEMPOTENCY_KEY_REUSED', message: expect.stringMatching(/^tasks\[1\]: the Idempotency-Key "k" was used/),
    });
    expect(d.store.taskCount).toBe(2);
  });

  it('a batch with one task id twice does not decode (the store would index it twice)', () => {
    const cmd = { op: 'task.submitBatch', atMs: 1, tasks: [{ taskId: 't', spec: { image: 'x' } }, { taskId: 't', spec: { image: 'y' } }] } as Command;
    expect(() => decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd }))).toThrow(/\/tasks\/1\/taskId "t" appears twice/);
    const d = new Driver();
    expect(d.run(cmd)).toMatchObject({ ok: false, code: 'INVALID_COMMAND' });
    expect(d.store.taskCount).toBe(0);
  });

  it('the key map is bounded, oldest first', () => {
    const d = new Driver(new KvStateMachine({ tasks: { idempotencyKeysMax: 2 } }));
    d.submit('t1', {}, 'a');
    d.submit('t2', {}, 'b');
    d.submit('t3', {}, 'c');
    expect(d.submit('t4', {}, 'a')).toMatchObject({ key: 't4' });
    expect(d.submit('t5', {}, 'c')).toMatchObject({ key: 't3' });
  });

  it('lists by state and by worker in id order, with paging', () => {
    const d = new Driver();
    d.register('w1');
    d.register('w2');
    for (const id of ['t1', 't2', 't3', 't4', 't5']) d.submit(id);
    d.place('t2', 'w1');
    d.place('t4', 'w2');
    d.place('t5', 'w1');
    const ids = (o: Parameters<typeof d.store.listTasks>[0]) => {
      const r = d.store.listTasks(o);
      return [r.items.map((t) => t.id), r.more];
    };
    expect(ids({ state: 'pending', limit: 10 })).toEqual([['t1', 't3'], false]);
    expect(ids({ workerId: 'w1', limit: 1 })).toEqual([['t2'], true]);
    expect(ids({ workerId: 'w1', limit: 1, after: 't2' })).toEqual([['t5'], false]);
    expect(ids({ limit: 2, after: 't3' })).toEqual([['t4', 't5'], false]);
    expect(ids({ workerId: 'w2', state: 'pending', limit: 5 })).toEqual([[], false]);
    expect(d.store.countIn('scheduled')).toBe(3);
  });

  it('filters by name, and a page that looks at its bound of records ends early with a cursor past them', () => {
    const d = new Driver();
    d.register('w1');
    for (const [id, name] of [['t1', 'web-1'], ['t2', 'batch'], ['t3', 'web-2'], ['t4', undefined], ['t5', 'api-web']] as const) {
      d.submit(id, name === undefined ? {} : { name });
    }
    d.place('t3', 'w1');
    const page = (o: Parameters<typeof d.store.listTasks>[0]) => {
      const r = d.store.listTasks(o);
      return [r.items.map((t) => t.id), r.more, r.lastSeen];
    };
    expect(page({ nameContains: 'web', limit: 10 })).toEqual([['t1', 't3', 't5'], false, 't5']);
    expect(page({ nameContains: 'web', limit: 1 })).toEqual([['t1'], true, 't1']);
    expect(page({ nameContains: 'web', state: 'pending', limit: 10 })).toEqual([['t1', 't5'], false, 't5']);
    expect(page({ nameContains: 'nothing', limit: 10 })).toEqual([[], false, 't5']);
    // At most two records looked at per page: the second page starts after t2 even though it skipped it.
    expect(page({ nameContains: 'web', limit: 10, scanMax: 2 })).toEqual([['t1'], true, 't2']);
    expect(page({ nameContains: 'web', limit: 10, scanMax: 2, after: 't2' })).toEqual([['t3'], true, 't4']);
    expect(page({ nameContains: 'web', limit: 10, scanMax: 2, after: 't4' })).toEqual([['t5'], false, 't5']);
  });

  it('past tasksMax the oldest final task is forgotten; with none final, QUEUE_FULL', () => {
    const d = new Driver(new KvStateMachine({ tasks: { tasksMax: 2 } }));
    d.submit('t1');
    d.submit('t2');
    expect(d.submit('t3')).toMatchObject({ ok: false, code: 'QUEUE_FULL' });
    d.run({ op: 'task.stop', taskId: 't2', atMs: 1 });
    expect(d.submit('t3').ok).toBe(true);
    expect(d.store.task('t2')).toBeUndefined();
    expect(d.store.listTasks({ limit: 10 }).items.map((t) => t.id)).toEqual(['t1', 't3']);
  });

  it('a batch creates all its tasks or, without room for all, none; known ones are answered, not created again', () => {
    const d = new Driver(new KvStateMachine({ tasks: { tasksMax: 3 } }));
    const batch = (ids: string[], keyOf = (i: number) => `k ${i}`): ApplyResult =>
      d.run({ op: 'task.submitBatch', atMs: 1000, tasks: ids.map((taskId, i) => ({ taskId, spec: { image: 'img' }, idempotencyKey: keyOf(i) })) });
    expect(batch(['a', 'b'])).toMatchObject({ ok: true, key: 'a' });
    expect(d.store.submitted({ taskId: 'x', spec: { image: 'img' }, idempotencyKey: 'k 1' })).toBe('b');
    // The same keys again: nothing new, and room is not needed for them.
    expect(batch(['c', 'd'])).toMatchObject({ ok: true, key: 'a' });
    expect(batch(['e', 'f'], (i) => `other ${i}`)).toMatchObject({ ok: false, code: 'QUEUE_FULL' });
    expect(d.store.listTasks({ limit: 10 }).items.map((t) => t.id)).toEqual(['a', 'b']);
    d.run({ op: 'task.stop', taskId: 'a', atMs: 1 });
    expect(batch(['e', 'f'], (i) => `other ${i}`)).toMatchObject({ ok: true, key: 'e' });
    expect(d.store.listTasks({ limit: 10 }).items.map((t) => t.id)).toEqual(['b', 'e', 'f']);
    expect(d.task('f')).toMatchObject({ state: 'pending', attempt: 1, spec: { image: 'img', restartPolicy: 'never' } });
  });

  it('history is bounded, oldest dropped first', () => {
    const d = new Driver(new KvStateMachine({ tasks: { historyMax: 3 } }));
    d.register('w1');
    running(d, 't1');
    expect(d.task('t1').history.map((h) => h.state)).toEqual(['pending', 'scheduled', 'running']);
    d.report({ taskId: 't1', state: 'succeeded', exitCode: 0 });
    expect(d.task('t1').history.map((h) => h.state)).toEqual(['scheduled', 'running', 'succeeded']);
  });
});

describe('task commands on the wire', () => {
  it('roundtrip, with the spec normalised', () => {
    const cmd: TaskCommand = { op: 'task.submit', taskId: 't', spec: { image: 'x', env: { B: '1', A: '2' } }, atMs: 5, idempotencyKey: 'k' };
    const decoded = decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd })).cmd;
    expect(decoded).toEqual({ ...cmd, spec: { image: 'x', env: { A: '2', B: '1' }, restartPolicy: 'never', maxAttempts: 3 } });
  });

  it('a batch roundtrips; an empty one is malformed', () => {
    const cmd: TaskCommand = { op: 'task.submitBatch', atMs: 5, tasks: [{ taskId: 't1', spec: { image: 'x' } }, { taskId: 't2', spec: { image: 'y' }, idempotencyKey: 'k 1' }] };
    const decoded = decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd })).cmd;
    const normal = { restartPolicy: 'never', maxAttempts: 3 };
    expect(decoded).toEqual({ ...cmd, tasks: [{ taskId: 't1', spec: { image: 'x', ...normal } }, { taskId: 't2', spec: { image: 'y', ...normal }, idempotencyKey: 'k 1' }] });
    const empty = { op: 'task.submitBatch', atMs: 5, tasks: [] } as unknown as Command;
    expect(() => decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: empty }))).toThrow(/malformed command: task.submitBatch: \/tasks/);
  });

  it('reject a malformed task command naming the field', () => {
    const bad = { op: 'task.place', term: 1, atMs: 1, cursor: null, placements: [{ taskId: 't', attempt: 0, workerId: 'w' }] } as unknown as Command;
    expect(() => decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v' } }))).not.toThrow();
    expect(() => decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: bad }))).toThrow(/malformed command: task.place: \/placements\/0\/attempt/);
  });
});

describe('snapshots with tasks', () => {
  it('restore(snapshot()) gives the same tasks, workers, cursor, keys and indexes', () => {
    const d = new Driver();
    d.register('w1');
    d.submit('t1', { env: { A: '1' } }, 'key');
    running(d, 't2');
    d.run({ op: 'worker.heartbeat', workerId: 'w1', atMs: 9, stats, reports: [] });
    const copy = new KvStateMachine();
    copy.restore(d.sm.snapshot());
    expect(copy.snapshot()).toEqual(d.sm.snapshot());
    expect(copy.tasks.task('t2')).toEqual(d.task('t2'));
    expect(copy.tasks.activeOn('w1').map((t) => t.id)).toEqual(['t2']);
    expect(copy.tasks.worker('w1')).toEqual(d.store.worker('w1'));
    expect(copy.tasks.cursor).toBe('w1');
    const again = new Driver(copy);
    again.index = d.index;
    again.seq = 100;
    // The key's fingerprint came through the snapshot: the same spec answers t1, another is refused.
    expect(again.submit('t9', { env: { A: '1' } }, 'key')).toMatchObject({ key: 't1' });
    expect(again.submit('t9', {}, 'key')).toMatchObject({ ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it('loads a snapshot written before fingerprints; its keys answer their task whatever the spec', () => {
    const d = new Driver();
    d.submit('t1', { env: { A: '1' } }, 'key');
    const snap = d.sm.snapshot();
    const unpacked = packr.unpack(snap) as { tasks: unknown[] };
    const keys = unpacked.tasks[3] as unknown[][];
    expect(keys).toEqual([['key', 't1', expect.any(String)]]);
    unpacked.tasks[3] = keys.map((row) => row.slice(0, 2));
    const copy = new Driver(new KvStateMachine());
    copy.sm.restore(packr.pack(unpacked));
    copy.index = d.index;
    expect(copy.submit('t9', { image: 'other' }, 'key')).toMatchObject({ ok: true, key: 't1' });
  });
});

describe('captured snapshots (encoded a slice at a time)', () => {
  it('give the bytes snapshot() gave at the capture, whatever is applied while they are encoded', async () => {
    const d = new Driver();
    d.register('w1');
    // Enough records for several slices, so the encoder yields to the event loop in between.
    for (let i = 0; i < 2500; i++) d.run({ op: 'put', key: `k/${String(i).padStart(5, '0')}`, value: `v${i}` });
    for (let i = 0; i < 1500; i++) d.submit(`t${String(i).padStart(5, '0')}`, {}, `idem-${i}`);
    running(d, 'tx');
    const expected = Buffer.from(d.sm.snapshot());
    const encode = d.sm.captureSnapshot();
    const encoding = encode();
    for (let i = 0; i < 50; i++) d.run({ op: 'put', key: `k/${String(i).padStart(5, '0')}`, value: 'changed' });
    d.submit('t-late', {}, 'idem-late');
    const bytes = Buffer.from(await encoding);
    expect(bytes.equals(expected)).toBe(true);
    const copy = new KvStateMachine();
    copy.restore(bytes);
    expect(copy.get('k/00000')?.value).toBe('v0');
    expect(copy.tasks.task('t-late')).toBeUndefined();
    expect(copy.tasks.task('t01499')).toBeDefined();
  });
});

// ---- properties ----

const idArb = fc.constantFrom('t1', 't2', 't3');
const workerArb = fc.constantFrom('w1', 'w2');
const reportArb: fc.Arbitrary<TaskReport> = fc.record({
  taskId: idArb, workerId: workerArb, attempt: fc.integer({ min: 1, max: 3 }), term: fc.integer({ min: 0, max: 2 }),
  state: fc.constantFrom('running', 'succeeded', 'failed', 'stopped'), containerId: fc.constantFrom(null, 'c1', 'c2'),
  exitCode: fc.constantFrom(null, 0, 1), error: fc.constantFrom(null, { class: 'transient' as const, message: 'x' }, { class: 'permanent' as const, message: 'y' }),
  retryAtMs: fc.nat(100),
});
const taskCmdArb: fc.Arbitrary<TaskCommand> = fc.oneof(
  fc.record({ op: fc.constant('task.submit' as const), taskId: idArb, spec: fc.record({ image: fc.constant('i'), restartPolicy: fc.constantFrom('never' as const, 'on-failure' as const, 'always' as const), maxAttempts: fc.integer({ min: 1, max: 3 }) }), atMs: fc.nat(100), idempotencyKey: fc.constantFrom('a', 'b') }, { requiredKeys: ['op', 'taskId', 'spec', 'atMs'] }),
  fc.record({ op: fc.constant('task.place' as const), term: fc.integer({ min: 0, max: 2 }), atMs: fc.nat(100), cursor: fc.constantFrom(null, 'w1'), placements: fc.array(fc.record({ taskId: idArb, attempt: fc.integer({ min: 1, max: 3 }), workerId: workerArb }), { maxLength: 3 }) }),
  fc.record({ op: fc.constant('task.report' as const), atMs: fc.nat(100), reports: fc.array(reportArb, { maxLength: 3 }) }),
  fc.record({ op: fc.constant('task.stop' as const), taskId: idArb, atMs: fc.nat(100) }),
  fc.record({ op: fc.constant('worker.register' as const), workerId: workerArb, apiAddress: fc.constant('h:1'), runtime: fc.constant('memory'), atMs: fc.nat(100) }),
  fc.record({ op: fc.constant('worker.heartbeat' as const), workerId: workerArb, atMs: fc.nat(100), stats: fc.constant(stats), reports: fc.array(reportArb, { maxLength: 2 }) }),
  fc.record({ op: fc.constant('worker.state' as const), workerId: workerArb, state: fc.constantFrom('unreachable' as const, 'down' as const), atMs: fc.nat(100), ifHeartbeats: fc.nat(4), lost: fc.array(fc.record({ taskId: idArb, attempt: fc.integer({ min: 1, max: 3 }), retryAtMs: fc.nat(100) }), { maxLength: 2 }) }),
  fc.record({ op: fc.constant('worker.availability' as const), workerId: workerArb, availability: fc.constantFrom('active' as const, 'pause' as const, 'drain' as const), atMs: fc.nat(100) }),
);

describe('task commands: properties', () => {
  it('apply is deterministic: the same commands give the same results and snapshots on two machines', () => {
    fc.assert(
      fc.property(fc.array(taskCmdArb, { maxLength: 60 }), (cmds) => {
        const [x, y] = [new KvStateMachine({ tasks: { tasksMax: 2, historyMax: 4 } }), new KvStateMachine({ tasks: { tasksMax: 2, historyMax: 4 } })];
        cmds.forEach((cmd, i) => {
          const data = encodeCommand({ clientId: 'c', seq: i + 1, cmd });
          expect(x.applyEntry(i + 1, data)).toEqual(y.applyEntry(i + 1, data));
        });
        expect(x.snapshot()).toEqual(y.snapshot());
      }),
    );
  });

  it('every transition in every history is one the table allows, and the indexes agree with the records', () => {
    fc.assert(
      fc.property(fc.array(taskCmdArb, { maxLength: 80 }), (cmds) => {
        const sm = new KvStateMachine();
        cmds.forEach((cmd, i) => sm.applyEntry(i + 1, encodeCommand({ clientId: 'c', seq: i + 1, cmd })));
        const all = sm.tasks.listTasks({ limit: 100 }).items;
        for (const t of all) {
          for (let i = 1; i < t.history.length; i++) expect(canTransition(t.history[i - 1]!.state, t.history[i]!.state)).toBe(true);
          expect(t.history.at(-1)!.state).toBe(t.state);
          expect(sm.tasks.listTasks({ state: t.state, limit: 100 }).items).toContainEqual(t);
          if (t.workerId !== null) expect(sm.tasks.listTasks({ workerId: t.workerId, limit: 100 }).items).toContainEqual(t);
        }
        for (const w of ['w1', 'w2']) {
          const active = all.filter((t) => t.workerId === w && (t.state === 'scheduled' || t.state === 'running')).map((t) => t.id);
          expect(sm.tasks.activeOn(w).map((t) => t.id)).toEqual(active);
        }
      }),
    );
  });

  it('snapshot then restore goes on identically', () => {
    fc.assert(
      fc.property(fc.array(taskCmdArb, { maxLength: 40 }), fc.array(taskCmdArb, { maxLength: 20 }), (head, tail) => {
        const original = new KvStateMachine();
        head.forEach((cmd, i) => original.applyEntry(i + 1, encodeCommand({ clientId: 'c', seq: i + 1, cmd })));
        const copy = new KvStateMachine();
        copy.restore(original.snapshot());
        tail.forEach((cmd, i) => {
          const data = encodeCommand({ clientId: 'c', seq: head.length + i + 1, cmd });
          expect(copy.applyEntry(head.length + i + 1, data)).toEqual(original.applyEntry(head.length + i + 1, data));
        });
        expect(copy.snapshot()).toEqual(original.snapshot());
      }),
    );
  });
});
