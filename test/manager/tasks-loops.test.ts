// The leader loops without Raft or HTTP: a proposer that applies commands straight to a state machine, and a fake
// worker API. Placement batching and the cursor, assignment failures by class, stops, worker health, step-down.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Assignment, WorkerTaskStatus } from '../../src/contracts/worker.js';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { LeaderLoops } from '../../src/manager/leader-loops.js';
import type { Proposer } from '../../src/manager/task-service.js';
import type { WorkerApi, WorkerCallOptions } from '../../src/manager/worker-client.js';
import { eventually, waitFor } from '../support/wait.js';

const stats = { cpuUtilization: 0.1, memoryTotalBytes: 1, memoryAvailableBytes: 1, diskFreeBytes: 1, runningTasks: 0 };

class DirectRaft implements Proposer {
  readonly sm = new KvStateMachine();
  readonly proposed: Command[] = [];
  private index = 0;
  private seq = 0;
  async proposeCommand(cmd: Command): Promise<ApplyResult> {
    this.proposed.push(cmd);
    await Promise.resolve();
    return this.sm.apply(++this.index, encodeCommand({ clientId: 'leader', seq: ++this.seq, cmd }));
  }
  async barrier(): Promise<void> {}
}

type Answer = (a: Assignment) => Promise<WorkerTaskStatus>;

class FakeWorkers implements WorkerApi {
  readonly calls: { address: string; a: Assignment }[] = [];
  /** Sizes of the batch calls. */
  readonly batches: number[] = [];
  answer: Answer = async (a) => status(a, a.desiredState === 'stop' ? 'stopped' : 'running');
  async assign(address: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus> {
    this.calls.push({ address, a });
    if (o.signal?.aborted === true) throw new MinkubeError('WORKER_UNAVAILABLE', 'aborted');
    return this.answer(a);
  }
  async assignMany(address: string, as: readonly Assignment[], o: WorkerCallOptions): Promise<(WorkerTaskStatus | MinkubeError)[]> {
    this.batches.push(as.length);
    return Promise.all(as.map((a) => this.assign(address, a, o).catch((err: unknown) => err as MinkubeError)));
  }
  async logs(): Promise<string> {
    return '';
  }
  async followLogs(): Promise<AsyncIterable<Uint8Array>> {
    throw new Error('not used here');
  }
}

function status(a: Assignment, state: WorkerTaskStatus['state'], extra: Partial<WorkerTaskStatus> = {}): WorkerTaskStatus {
  return { taskId: a.taskId, attempt: a.attempt, term: a.term, state, containerId: `c-${a.taskId}`, exitCode: null, error: null, startedAt: null, finishedAt: null, ...extra };
}

const opened: LeaderLoops[] = [];
afterEach(() => {
  for (const l of opened.splice(0)) l.close();
});

function setup(tasks: Partial<typeof clusterConfigDefaults.tasks> = {}, logger = pino({ level: 'silent' })): { raft: DirectRaft; workers: FakeWorkers; loops: LeaderLoops } {
  const raft = new DirectRaft();
  const workers = new FakeWorkers();
  const loops = new LeaderLoops({
    store: raft.sm.tasks, raft, workers, clock: systemClock, random: new SeededRandom(1), logger, proposalTimeoutMs: 1000,
    tasks: { ...clusterConfigDefaults.tasks, workerHeartbeatIntervalMs: 20, workerTtlMs: 150, lostGraceMs: 100, reconcileIntervalMs: 50, backoffBaseMs: 10, backoffCapMs: 40, ...tasks },
  });
  raft.sm.tasks.listener = loops;
  opened.push(loops);
  return { raft, workers, loops };
}

async function register(raft: DirectRaft, id: string): Promise<void> {
  await raft.proposeCommand({ op: 'worker.register', workerId: id, apiAddress: `${id}:1`, runtime: 'memory', atMs: Date.now() });
}

async function submit(raft: DirectRaft, n: number, spec = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `t${String(i).padStart(4, '0')}`;
    await raft.proposeCommand({ op: 'task.submit', taskId: id, spec: { image: 'i', ...spec }, atMs: Date.now() });
    ids.push(id);
  }
  return ids;
}

describe('leader loops', () => {
  it('place in batches with the round-robin cursor, then assign each task to its worker and record it running', async () => {
    const { raft, workers, loops } = setup();
    await register(raft, 'w1');
    await register(raft, 'w2');
    const ids = await submit(raft, 10);
    loops.onRoleChange('leader', 3);
    await eventually(async () => (ids.every((id) => raft.sm.tasks.task(id)?.state === 'running') ? true : undefined), 3000, 'all running');
    const places = raft.proposed.filter((c) => c.op === 'task.place');
    expect(places).toHaveLength(1);
    expect(raft.sm.tasks.listTasks({ limit: 10 }).items.map((t) => t.workerId)).toEqual(['w1', 'w2', 'w1', 'w2', 'w1', 'w2', 'w1', 'w2', 'w1', 'w2']);
    expect(raft.sm.tasks.cursor).toBe('w2');
    expect(workers.calls.map((c) => [c.a.taskId, c.address, c.a.term, c.a.attempt])).toContainEqual(['t0000', 'w1:1', 3, 1]);
    expect(workers.calls).toHaveLength(10);
    // Placed together, so sent together: one call per worker.
    expect(workers.batches).toEqual([5, 5]);
  });

  it('a permanent refusal fails the task; a transient one retries elsewhere; a stale token changes nothing', async () => {
    const { raft, workers, loops } = setup();
    await register(raft, 'w1');
    await register(raft, 'w2');
    workers.answer = async (a) => {
      if (a.taskId === 't0000') throw new MinkubeError('INVALID_TASK_SPEC', 'spec.command: bad');
      if (a.taskId === 't0001' && a.attempt === 1) throw new MinkubeError('WORKER_UNAVAILABLE', 'connection refused');
      if (a.taskId === 't0002') throw new MinkubeError('TASK_STALE_FENCING_TOKEN', 'newer seen');
      return status(a, 'running');
    };
    loops.onRoleChange('leader', 1);
    await submit(raft, 3);
    await eventually(async () => (raft.sm.tasks.task('t0001')?.state === 'running' ? true : undefined), 3000, 't0001 retried');
    expect(raft.sm.tasks.task('t0000')).toMatchObject({ state: 'failed', attempt: 1, error: { class: 'permanent', message: expect.stringMatching(/spec.command: bad/) as string } });
    const retried = raft.sm.tasks.task('t0001')!;
    expect(retried.attempt).toBe(2);
    expect(retried.history.find((h) => h.state === 'pending' && h.attempt === 2)?.reason).toMatch(/assignment to worker w2 failed: connection refused/);
    expect(retried.workerId).toBe('w1');
    expect(raft.sm.tasks.task('t0002')).toMatchObject({ state: 'scheduled', attempt: 1 });
  });

  it('an assignment whose outcome is unknown (timeout, connection lost midway) is neither sent again nor placed elsewhere', async () => {
    // Long TTLs: the worker stays ready, so only the assignment's failure could move the task.
    const { raft, workers, loops } = setup({ workerTtlMs: 60_000, lostGraceMs: 60_000 } as unknown as Parameters<typeof setup>[0]);
    await register(raft, 'w1');
    workers.answer = async (a) => {
      if (a.taskId === 't0000') throw new MinkubeError('TIMEOUT', 'POST http://w1:1/v1/tasks: no answer within 100 ms; the outcome is unknown');
      const lost = new MinkubeError('UNREACHABLE', 'cannot reach http://w1:1/v1/tasks (other side closed); the outcome is unknown', { cause: { code: 'UND_ERR_SOCKET' } });
      throw new MinkubeError('WORKER_UNAVAILABLE', lost.message, { cause: lost });
    };
    loops.onRoleChange('leader', 1);
    await submit(raft, 2);
    await eventually(async () => (workers.calls.length >= 2 ? true : undefined), 3000, 'both assignments sent');
    // Three more reconcile passes (one each 50 ms), each of which would have sent them again: still scheduled on
    // w1, attempt 1, each sent once.
    const passes = loops.scheduler.reconcilePasses;
    await waitFor('three more reconcile passes', () => loops.scheduler.reconcilePasses >= passes + 3, 3000);
    for (const id of ['t0000', 't0001']) {
      expect(raft.sm.tasks.task(id)).toMatchObject({ state: 'scheduled', attempt: 1, workerId: 'w1' });
      expect(workers.calls.filter((c) => c.a.taskId === id)).toHaveLength(1);
    }
  });

  it('a worker whose connection is refused (restarting) gets the assignment again at a later pass, at no cost of an attempt', async () => {
    const { raft, workers, loops } = setup({ workerTtlMs: 60_000, lostGraceMs: 60_000 } as unknown as Parameters<typeof setup>[0]);
    await register(raft, 'w1');
    let refusals = 4;
    workers.answer = async (a) => {
      if (refusals-- > 0) {
        const refused = new MinkubeError('UNREACHABLE', 'cannot reach http://w1:1/v1/tasks (ECONNREFUSED)', { cause: { code: 'ECONNREFUSED' } });
        throw new MinkubeError('WORKER_UNAVAILABLE', refused.message, { cause: refused });
      }
      return status(a, 'running');
    };
    loops.onRoleChange('leader', 1);
    const [id] = await submit(raft, 1);
    await eventually(async () => (raft.sm.tasks.task(id!)?.state === 'running' ? true : undefined), 3000, 'running once the worker is back');
    expect(raft.sm.tasks.task(id!)).toMatchObject({ attempt: 1, workerId: 'w1' });
  });

  it("a server at the worker's address with another node's certificate: the assignment waits, at no attempt, and a warn line says so once", async () => {
    const lines: { level: number; msg: string; worker?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const { raft, workers, loops } = setup({ workerTtlMs: 60_000, lostGraceMs: 60_000 } as unknown as Parameters<typeof setup>[0], logger);
    await register(raft, 'w1');
    let refusals = 4;
    workers.answer = async (a) => {
      if (refusals-- > 0) {
        const refused = new MinkubeError('UNREACHABLE', "cannot reach https://w1:1/v1/tasks (TLS: the server's certificate is refused: it names worker w10, not worker w1)", { cause: { code: 'ERR_TLS_SERVER_REFUSED' } });
        throw new MinkubeError('WORKER_UNAVAILABLE', refused.message, { cause: refused });
      }
      return status(a, 'running');
    };
    loops.onRoleChange('leader', 1);
    const [id] = await submit(raft, 1);
    await eventually(async () => (raft.sm.tasks.task(id!)?.state === 'running' ? true : undefined), 3000, 'running once the right worker answers');
    expect(raft.sm.tasks.task(id!)).toMatchObject({ attempt: 1, workerId: 'w1' });
    const warned = lines.filter((l) => l.level === 40 && l.msg.includes("is not worker w1"));
    expect(warned.map((l) => l.msg)).toEqual(["the server at worker w1's address is not worker w1: its assignments wait (said at most once a minute)"]);
  });

  it('a worker that is full (WORKER_FULL) gets the assignment again at a later reconcile pass, and it costs no attempt', async () => {
    const { raft, workers, loops } = setup({ workerTtlMs: 60_000, lostGraceMs: 60_000 } as unknown as Parameters<typeof setup>[0]);
    await register(raft, 'w1');
    let refusals = 3;
    workers.answer = async (a) => {
      if (refusals-- > 0) throw new MinkubeError('WORKER_FULL', 'worker w1 holds 1000 tasks (the limit); none can be evicted yet');
      return status(a, 'running');
    };
    loops.onRoleChange('leader', 1);
    const [id] = await submit(raft, 1);
    await eventually(async () => (raft.sm.tasks.task(id!)?.state === 'running' ? true : undefined), 3000, 'running once the worker has room');
    expect(raft.sm.tasks.task(id!)).toMatchObject({ attempt: 1, workerId: 'w1' });
    expect(workers.calls.filter((c) => c.a.taskId === id)).toHaveLength(4);
  });

  it('a stop is sent to the worker, fenced with the current token, and the answer ends the task', async () => {
    const { raft, workers, loops } = setup();
    await register(raft, 'w1');
    loops.onRoleChange('leader', 2);
    const [id] = await submit(raft, 1);
    await eventually(async () => (raft.sm.tasks.task(id!)?.state === 'running' ? true : undefined), 3000, 'running');
    await raft.proposeCommand({ op: 'task.stop', taskId: id!, atMs: Date.now() });
    await eventually(async () => (raft.sm.tasks.task(id!)?.state === 'stopped' ? true : undefined), 3000, 'stopped');
    const stop = workers.calls.find((c) => c.a.desiredState === 'stop')!;
    expect(stop.a).toMatchObject({ taskId: id, attempt: 1, term: 2 });
  });

  it('a silent worker goes unreachable, then down; its tasks are retried on the other worker', async () => {
    const { raft, loops } = setup();
    await register(raft, 'w1');
    await register(raft, 'w2');
    loops.onRoleChange('leader', 1);
    const ids = await submit(raft, 2);
    await eventually(async () => (ids.every((id) => raft.sm.tasks.task(id)?.state === 'running') ? true : undefined), 3000, 'running');
    // Only w2 keeps beating.
    const beat = setInterval(() => void raft.proposeCommand({ op: 'worker.heartbeat', workerId: 'w2', atMs: Date.now(), stats, reports: [] }), 20);
    try {
      await eventually(async () => (raft.sm.tasks.worker('w1')?.state === 'unreachable' ? true : undefined), 3000, 'w1 unreachable');
      await eventually(async () => (raft.sm.tasks.worker('w1')?.state === 'down' ? true : undefined), 3000, 'w1 down');
      await eventually(async () => (ids.every((id) => raft.sm.tasks.task(id)?.workerId === 'w2' && raft.sm.tasks.task(id)?.state === 'running') ? true : undefined), 3000, 'all on w2');
    } finally {
      clearInterval(beat);
    }
    expect(raft.sm.tasks.task('t0000')!.history.map((h) => h.state)).toEqual(['pending', 'scheduled', 'running', 'lost', 'pending', 'scheduled', 'running']);
    expect(raft.sm.tasks.worker('w2')?.state).toBe('ready');
  });

  it('stepping down stops everything: no placement, no calls, until leadership comes back', async () => {
    const { raft, workers, loops } = setup();
    await register(raft, 'w1');
    loops.onRoleChange('leader', 1);
    loops.onRoleChange('follower', 2);
    expect(loops.active).toBe(false);
    // A twin that stays leader, given the same worker and tasks at the same moment, shows when a leader would have
    // placed and assigned them: the stepped-down loops are checked once it has (an event, not a fixed sleep).
    const twin = setup();
    await register(twin.raft, 'w1');
    twin.loops.onRoleChange('leader', 1);
    await Promise.all([submit(raft, 3), submit(twin.raft, 3)]);
    await eventually(async () => (twin.raft.sm.tasks.countIn('running') === 3 ? true : undefined), 3000, 'the twin leader placed and started them');
    expect(raft.sm.tasks.countIn('pending')).toBe(3);
    expect(workers.calls).toHaveLength(0);
    loops.onRoleChange('leader', 3);
    await eventually(async () => (raft.sm.tasks.countIn('running') === 3 ? true : undefined), 3000, 'placed by the new leadership');
    expect(raft.sm.tasks.task('t0000')!.term).toBe(3);
  });

  it('in-flight calls are abandoned on step-down and their failures recorded nowhere', async () => {
    const { raft, workers, loops } = setup();
    await register(raft, 'w1');
    let release: () => void = () => {};
    workers.answer = (a) => new Promise((resolve, reject) => {
      release = () => reject(new MinkubeError('WORKER_UNAVAILABLE', `gave up on ${a.taskId}`));
    });
    loops.onRoleChange('leader', 1);
    // A twin that stays leader, with the same call failing at the same moment, shows when the failure would be recorded.
    const twin = setup();
    await register(twin.raft, 'w1');
    let releaseTwin: () => void = () => {};
    twin.workers.answer = (a) => new Promise((resolve, reject) => {
      releaseTwin = () => reject(new MinkubeError('WORKER_UNAVAILABLE', `gave up on ${a.taskId}`));
    });
    twin.loops.onRoleChange('leader', 1);
    await Promise.all([submit(raft, 1), submit(twin.raft, 1)]);
    await eventually(async () => (workers.calls.length === 1 && twin.workers.calls.length === 1 ? true : undefined), 3000, 'an assignment in flight on both');
    loops.onRoleChange('follower', 2);
    release();
    releaseTwin();
    await eventually(async () => (twin.raft.proposed.some((c) => c.op === 'task.report') ? true : undefined), 3000, 'the twin leader recorded the failure');
    expect(raft.sm.tasks.task('t0000')).toMatchObject({ state: 'scheduled', attempt: 1 });
    expect(raft.proposed.filter((c) => c.op === 'task.report')).toHaveLength(0);
  });
});
