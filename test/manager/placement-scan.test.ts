// Which pending tasks a placement pass looks at: the head of the queue every pass, and a window beyond it that goes on
// where the previous pass stopped, so a task behind any number of tasks that fit nowhere is placed within bounded passes.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Assignment, WorkerTaskStatus } from '../../src/contracts/worker.js';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import type { TaskSubmission } from '../../src/kv/task-commands.js';
import { KvStateMachine, type ApplyResult } from '../../src/kv/state-machine.js';
import { systemClock } from '../../src/lib/clock.js';
import { SeededRandom } from '../../src/lib/random.js';
import { SchedulerLoop } from '../../src/manager/scheduler-loop.js';
import type { Proposer } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { roundRobin } from '../../src/scheduler/round-robin.js';

class DirectRaft implements Proposer {
  readonly sm = new KvStateMachine();
  private index = 0;
  private seq = 0;
  async proposeCommand(cmd: Command): Promise<ApplyResult> {
    await Promise.resolve();
    return this.sm.apply(++this.index, encodeCommand({ clientId: 'leader', seq: ++this.seq, cmd }));
  }
  async barrier(): Promise<void> {}
}

/** Workers that never answer: placement is all this file looks at. */
const silentWorkers: WorkerApi = {
  assign: () => new Promise<WorkerTaskStatus>(() => {}),
  assignMany: (_address: string, as: readonly Assignment[]) => new Promise(() => void as),
  logs: async () => '',
  followLogs: async () => {
    throw new Error('not used here');
  },
};

const loops: SchedulerLoop[] = [];
afterEach(() => {
  for (const l of loops.splice(0)) l.stop();
});

/** A leader's scheduling loop over one ready worker, with no reconcile pass but the first: a test runs each pass. */
async function setup(scan?: { max: number; headMax: number }): Promise<{ raft: DirectRaft; loop: SchedulerLoop }> {
  const raft = new DirectRaft();
  const loop = new SchedulerLoop({
    store: raft.sm.tasks, raft, workers: silentWorkers, policy: roundRobin, clock: systemClock, random: new SeededRandom(1),
    logger: pino({ level: 'silent' }), proposalTimeoutMs: 1000, tasks: { ...clusterConfigDefaults.tasks, reconcileIntervalMs: 3_600_000 },
    ...(scan === undefined ? {} : { scan }),
  });
  loops.push(loop);
  raft.sm.tasks.listener = { taskChanged: (t, prev) => loop.onTaskChanged(t, prev), workerSeen: () => {}, workerChanged: () => {} };
  await raft.proposeCommand({ op: 'worker.register', workerId: 'w1', apiAddress: 'w1:1', runtime: 'memory', atMs: Date.now() });
  return { raft, loop };
}

async function submit(raft: DirectRaft, ids: readonly string[], spec: Record<string, unknown> = {}): Promise<void> {
  for (let i = 0; i < ids.length; i += 1000) {
    const tasks: TaskSubmission[] = ids.slice(i, i + 1000).map((taskId) => ({ taskId, spec: { image: 'i', ...spec } }));
    const r = await raft.proposeCommand({ op: 'task.submitBatch', atMs: Date.now(), tasks });
    expect(r.ok).toBe(true);
  }
}

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(6, '0')}`);

/** Lets the pass kicked last run to its end (no proposal is made by a pass that places nothing). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** Runs passes until `id` is scheduled; answers how many it took (Infinity past `max`). */
async function passesUntilScheduled(raft: DirectRaft, loop: SchedulerLoop, id: string, max: number): Promise<number> {
  for (let pass = 1; pass <= max; pass++) {
    if (pass === 1) loop.start(1);
    else loop.onWorkerReady();
    await settle();
    if (raft.sm.tasks.task(id)?.state === 'scheduled') return pass;
  }
  return Infinity;
}

const nowhere = { constraints: ['nowhere'] };

describe('placement scan', () => {
  it('a placeable task behind more than a pass looks at (20,000) of tasks that fit nowhere is placed within two passes', async () => {
    const { raft, loop } = await setup();
    await submit(raft, ids('a', 20_001), nowhere);
    await submit(raft, ['b000000']);
    expect(await passesUntilScheduled(raft, loop, 'b000000', 5)).toBe(2);
    expect(raft.sm.tasks.countIn('pending')).toBe(20_001);
  }, 60_000);

  it('with a smaller window, every task is looked at within ceil(queue / window) + 1 passes, wherever it waits', async () => {
    // Head 2, window 3: 20 unplaceable tasks, then one placeable task in each of the positions below.
    for (const at of [2, 7, 13, 20]) {
      const { raft, loop } = await setup({ max: 5, headMax: 2 });
      const front = ids('a', at);
      await submit(raft, front, nowhere);
      await submit(raft, ['b000000']);
      await submit(raft, ids('c', 20 - at), nowhere);
      const passes = await passesUntilScheduled(raft, loop, 'b000000', 20);
      expect(passes, `placeable task at ${at}`).toBeLessThanOrEqual(Math.ceil(21 / 3) + 1);
      loop.stop();
    }
  });

  it('the head of the queue is looked at every pass: a new high-priority task is placed at the next pass, the window going on', async () => {
    const { raft, loop } = await setup({ max: 5, headMax: 2 });
    await submit(raft, ids('a', 30), nowhere);
    expect(await passesUntilScheduled(raft, loop, 'none', 3)).toBe(Infinity);
    await submit(raft, ['h000000'], { priority: 'high' });
    loop.onWorkerReady();
    await settle();
    expect(raft.sm.tasks.task('h000000')?.state).toBe('scheduled');
    // A placeable normal task at the end of the queue is still reached by the window: 30 behind the head, 3 a pass.
    await submit(raft, ['z000000']);
    let passes = 0;
    while (raft.sm.tasks.task('z000000')?.state !== 'scheduled' && passes < 20) {
      loop.onWorkerReady();
      await settle();
      passes++;
    }
    expect(passes).toBeLessThanOrEqual(Math.ceil(30 / 3) + 1);
  });

  it('within a pass the queue is served by priority, then age: with room for one, the high-priority task gets it', async () => {
    const { raft, loop } = await setup({ max: 5, headMax: 2 });
    await raft.proposeCommand({ op: 'worker.register', workerId: 'w1', apiAddress: 'w1:1', runtime: 'memory', capacity: { cpus: 1, memoryMb: 1024 }, atMs: Date.now() });
    await submit(raft, ids('a', 10), nowhere);
    await submit(raft, ['n000000'], { resources: { cpus: 1 } });
    await submit(raft, ['p000000'], { resources: { cpus: 1 }, priority: 'high' });
    await passesUntilScheduled(raft, loop, 'p000000', 1);
    expect(raft.sm.tasks.task('p000000')?.state).toBe('scheduled');
    expect(raft.sm.tasks.task('n000000')?.state).toBe('pending');
  });
});
