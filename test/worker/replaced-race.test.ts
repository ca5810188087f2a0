// Two processes with one worker id, over the real task service and state machine: the newer one's registration is
// held back past its reconcile interval (a loaded leader), and exactly the newer one must survive. Before the fix its
// first assignment fetch, sent before it was registered, was answered WORKER_REPLACED (the record still named the
// older instance) and taken as its own replacement; then its registration was applied and the older one was refused
// too: both exited, and the id had no worker (outside tester).
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkerRecord } from '../../src/contracts/task-model.js';
import type { AssignmentList, HeartbeatRequest, HeartbeatResponse, RegisterRequest } from '../../src/contracts/worker.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import type { TaskServiceImpl } from '../../src/manager/task-service.js';
import { MemoryHost, MemoryRuntime } from '../../src/runtime/index.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { holderEngineOf, WorkerLoops } from '../../src/worker/loops.js';
import type { ManagerLink } from '../../src/worker/managers.js';
import { inProcessRaft, inProcessTasks } from '../support/in-process.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

const logger = pino({ level: 'silent' });
const [older, newer] = ['aaaaaaaaaaaa', 'bbbbbbbbbbbb'];
const ctx = () => ({ deadlineMs: performance.now() + 60_000, requestId: 'r' }) as Parameters<TaskServiceImpl['registerWorker']>[1];

/** The worker routes of one manager, called in process; a registration waits while `held` is set. */
class ServiceLink implements ManagerLink {
  held: Promise<void> | null = null;
  registered = 0;
  fetches: Array<{ code: string | null }> = [];

  constructor(private readonly tasks: TaskServiceImpl) {}

  async register(req: RegisterRequest): Promise<WorkerRecord> {
    if (this.held !== null) await this.held;
    const record = await this.tasks.registerWorker(req, ctx());
    this.registered++;
    return record;
  }

  heartbeat(workerId: string, req: HeartbeatRequest): Promise<HeartbeatResponse> {
    return this.tasks.workerHeartbeat(workerId, req, ctx());
  }

  async assignments(workerId: string, instance?: string): Promise<AssignmentList> {
    try {
      const items = await this.tasks.workerAssignments(workerId, ctx(), instance);
      this.fetches.push({ code: null });
      return { items };
    } catch (err) {
      this.fetches.push({ code: err instanceof MinkubeError ? err.code : 'other' });
      throw err;
    }
  }
}

const running: Array<{ loops: WorkerLoops; agent: WorkerAgent }> = [];
/** Registrations a test holds back, let go before the loops stop (a failed test must not leave one waiting). */
const held: Array<() => void> = [];
afterEach(async () => {
  for (const release of held.splice(0)) release();
  for (const r of running.splice(0)) {
    await r.loops.stop();
    await r.agent.close();
  }
});

/** `on`: the runtime it runs its containers in, and the engine it registers (as the daemon asks it of the runtime). */
function workerProcess(link: ManagerLink, instance: string, apiAddress: string, clock: ManualClock, on: { runtime: MemoryRuntime; engine?: string } = { runtime: new MemoryRuntime() }) {
  const agent = new WorkerAgent({ workerId: 'w1', instance, runtime: on.runtime, logger, stopTimeoutMs: 10 });
  const engine = on.engine === undefined ? {} : { engine: on.engine };
  const loops = new WorkerLoops({
    agent, link, logger, clock, registration: { id: 'w1', apiAddress, runtime: 'memory', instance, ...engine },
    heartbeatIntervalMs: 1_000, reconcileIntervalMs: 300, random: new SeededRandom(1), registerBackoffBaseMs: 5, registerBackoffCapMs: 20,
  });
  running.push({ loops, agent });
  let replaced: MinkubeError | null = null;
  void loops.replaced.then((err) => (replaced = err));
  return { loops, agent, replaced: () => replaced };
}

describe('a second process with a live worker id', () => {
  it('a registration slower than the reconcile interval: the newer instance survives, the older one alone is replaced', async () => {
    const inProcess = inProcessRaft();
    const tasks = inProcessTasks(inProcess);
    const clockA = new ManualClock();
    const clockB = new ManualClock();

    const linkA = new ServiceLink(tasks);
    const a = workerProcess(linkA, older, '127.0.66.1:9001', clockA);
    a.loops.start();
    await waitFor('the older instance registered and heartbeating', () => a.loops.heartbeatsSent >= 1 && clockA.nextDelayMs() !== null);

    // The newer one starts; its registration reaches the leader only after several reconcile intervals.
    const linkB = new ServiceLink(tasks);
    let release!: () => void;
    linkB.held = new Promise((resolve) => (release = resolve));
    held.push(release);
    const b = workerProcess(linkB, newer, '127.0.66.2:9001', clockB);
    b.loops.start();
    for (let i = 0; i < 5; i++) {
      clockB.advance(300);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // It neither fetched the older instance's assignments nor took an answer about them as its own replacement.
    expect(linkB.fetches).toEqual([]);
    expect(b.replaced()).toBeNull();
    expect(inProcess.kv.tasks.storedWorker('w1')).toMatchObject({ instance: older });

    release();
    linkB.held = null;
    await waitFor('the newer instance registered', () => b.loops.isRegistered && linkB.registered === 1);
    expect(inProcess.kv.tasks.storedWorker('w1')).toMatchObject({ instance: newer, apiAddress: '127.0.66.2:9001' });

    // The older one's next heartbeat is refused: it, and it alone, is replaced.
    clockA.advance(1_000);
    await waitFor('the older instance replaced', () => a.replaced() !== null);
    expect(a.replaced()).toMatchObject({ code: 'WORKER_REPLACED' });
    expect(a.replaced()!.message).toContain(`registered by another instance now (${newer}`);

    // The newer one goes on: its heartbeats and its assignment fetches are taken.
    const beats = b.loops.heartbeatsSent;
    clockB.advance(1_000);
    await waitFor('a heartbeat and a reconciliation of the newer instance', () => b.loops.heartbeatsSent > beats && b.loops.reconciliations >= 1);
    expect(linkB.fetches.length).toBeGreaterThanOrEqual(1);
    expect(linkB.fetches.every((f) => f.code === null)).toBe(true);
    expect(b.replaced()).toBeNull();
  });

  it('an answer WORKER_REPLACED before its own registration was acknowledged does not end it: it registers and runs', async () => {
    // However such an answer comes (here: a registration attempt answered so), it is about the record before this
    // instance's registration, which names the instance this one replaces.
    const inProcess = inProcessRaft();
    const tasks = inProcessTasks(inProcess);
    await tasks.registerWorker({ id: 'w1', apiAddress: '127.0.66.1:9001', runtime: 'memory', instance: older }, ctx());
    const clock = new ManualClock();
    const link = new ServiceLink(tasks);
    let attempts = 0;
    const refusedFirst: ManagerLink = {
      register: async (req) => {
        if (++attempts === 1) await tasks.workerAssignments('w1', ctx(), newer);
        return link.register(req);
      },
      heartbeat: (id, req) => link.heartbeat(id, req),
      assignments: (id, instance) => link.assignments(id, instance),
    };
    const b = workerProcess(refusedFirst, newer, '127.0.66.2:9001', clock);
    b.loops.start();
    await waitFor('the first attempt refused, then retried after its backoff', () => attempts === 1 && (clock.nextDelayMs() !== null || b.replaced() !== null));
    expect(b.replaced()).toBeNull();
    await waitFor('registered', async () => {
      if (b.loops.isRegistered) return true;
      clock.advance(20);
      return false;
    });
    expect(attempts).toBe(2);
    expect(inProcess.kv.tasks.storedWorker('w1')).toMatchObject({ instance: newer });
    clock.advance(300);
    await waitFor('a reconciliation', () => b.loops.reconciliations >= 1);
    expect(b.replaced()).toBeNull();
  });
});

/** Advances `clock` a step at a time until `check` holds (the loops wait on it). */
async function advanceUntil(what: string, clock: ManualClock, stepMs: number, check: () => boolean): Promise<void> {
  await waitFor(what, async () => {
    if (check()) return true;
    clock.advance(stepMs);
    await new Promise((resolve) => setImmediate(resolve));
    return false;
  });
}

/** Q1 (restartPolicy never) submitted and placed on w1, as the leader would. */
function placeQ1(inProcess: ReturnType<typeof inProcessRaft>): void {
  inProcess.apply({ op: 'task.submit', taskId: 'Q1', spec: { image: 'i', command: ['sleep', '1000'], restartPolicy: 'never' }, atMs: Date.now() });
  inProcess.apply({ op: 'task.place', term: 1, atMs: Date.now(), cursor: 'w1', placements: [{ taskId: 'Q1', attempt: 1, workerId: 'w1' }] });
}

const runningIn = async (runtime: MemoryRuntime) => (await runtime.list({})).filter((c) => c.state === 'running').map((c) => c.name);

describe('a second process of a live worker id on the same engine, or on another', () => {
  it('on its own engine: the replaced process leaves the containers to the holder, which runs the task on and ends it stopped when asked', async () => {
    const inProcess = inProcessRaft();
    const tasks = inProcessTasks(inProcess);
    // One engine, reached by two processes: one host of containers, one identity.
    const host = new MemoryHost();
    const engine = 'memory:engine-1';
    const [clockA, clockB] = [new ManualClock(), new ManualClock()];
    const runtimeA = new MemoryRuntime({ host, engine });
    const a = workerProcess(new ServiceLink(tasks), older, '127.0.66.1:9001', clockA, { runtime: runtimeA, engine });
    a.loops.start();
    await waitFor('the older instance registered', () => a.loops.isRegistered);
    expect(inProcess.kv.tasks.storedWorker('w1')).toMatchObject({ instance: older, engine });
    placeQ1(inProcess);
    await advanceUntil('Q1 reported running by the older instance', clockA, 300, () => inProcess.kv.tasks.task('Q1')?.state === 'running');

    // The newer process (another data directory, same engine) registers and adopts the container: it carries the token.
    const runtimeB = new MemoryRuntime({ host, engine });
    const b = workerProcess(new ServiceLink(tasks), newer, '127.0.66.2:9001', clockB, { runtime: runtimeB, engine });
    b.loops.start();
    await advanceUntil('the newer instance holds Q1', clockB, 300, () => b.loops.isRegistered && b.agent.list().some((t) => t.taskId === 'Q1' && t.state === 'running'));
    const container = b.agent.get('Q1').containerId;
    expect(container).toBe(a.agent.get('Q1').containerId);

    // The older one is refused, told the holder's engine, and stands down as the daemon has it: this engine is its own.
    await advanceUntil('the older instance replaced', clockA, 1_000, () => a.replaced() !== null);
    expect(a.replaced()).toMatchObject({ code: 'WORKER_REPLACED', details: { engine } });
    expect(holderEngineOf(a.replaced())).toBe(engine);
    await expect(a.agent.standDown(holderEngineOf(a.replaced()))).resolves.toEqual({ kind: 'left', tasks: 1, engine });
    expect(await runningIn(runtimeB)).toEqual(['minkube-Q1-1-1']);
    expect(b.agent.get('Q1')).toMatchObject({ state: 'running', containerId: container });
    expect(inProcess.kv.tasks.task('Q1')).toMatchObject({ state: 'running', attempt: 1 });
    expect(a.agent.readiness()).toMatchObject({ ready: false });

    // Stopped by the cluster, the task ends stopped (a copy stopped under the holder would end it failed, 143). The
    // older process, still watching, neither stops nor removes anything: the exit and the container are the holder's.
    inProcess.apply({ op: 'task.stop', taskId: 'Q1', atMs: Date.now() });
    await advanceUntil('Q1 stopped', clockB, 300, () => inProcess.kv.tasks.task('Q1')?.state === 'stopped');
    expect(inProcess.kv.tasks.task('Q1')).toMatchObject({ state: 'stopped', attempt: 1 });
    expect(b.replaced()).toBeNull();
    await a.loops.stop();
    await a.agent.close();
    expect([runtimeA.calls.stop, runtimeA.calls.remove]).toEqual([0, 0]);
  });

  for (const holder of [
    { case: 'on another engine', engine: 'memory:engine-2', otherEngine: true },
    { case: 'whose holder names no engine (a worker or a manager that predates engines), even on the same host', engine: undefined, otherEngine: false },
  ]) {
    it(`${holder.case}: the replaced process stops its copies, so no task runs twice`, async () => {
      const inProcess = inProcessRaft();
      const tasks = inProcessTasks(inProcess);
      const hostA = new MemoryHost();
      const [clockA, clockB] = [new ManualClock(), new ManualClock()];
      const runtimeA = new MemoryRuntime({ host: hostA, engine: 'memory:engine-1' });
      const a = workerProcess(new ServiceLink(tasks), older, '127.0.66.1:9001', clockA, { runtime: runtimeA, engine: 'memory:engine-1' });
      a.loops.start();
      await waitFor('the older instance registered', () => a.loops.isRegistered);
      placeQ1(inProcess);
      await advanceUntil('Q1 running under the older instance', clockA, 300, () => a.agent.list().some((t) => t.taskId === 'Q1' && t.state === 'running'));

      const runtimeB = new MemoryRuntime({ host: holder.otherEngine ? new MemoryHost() : hostA, ...(holder.engine === undefined ? {} : { engine: holder.engine }) });
      const b = workerProcess(new ServiceLink(tasks), newer, '127.0.66.2:9001', clockB, { runtime: runtimeB, ...(holder.engine === undefined ? {} : { engine: holder.engine }) });
      b.loops.start();
      await waitFor('the newer instance registered', () => b.loops.isRegistered);
      await advanceUntil('the older instance replaced', clockA, 1_000, () => a.replaced() !== null);
      expect(holderEngineOf(a.replaced())).toBe(holder.engine);
      const outcome = await a.agent.standDown(holderEngineOf(a.replaced()));
      expect(outcome).toEqual({ kind: 'stopped', tasks: 1, engine: 'memory:engine-1', holderEngine: holder.engine, otherEngine: holder.otherEngine });
      expect(a.agent.get('Q1').state).toBe('stopped');
      expect(await runtimeA.list({ 'minkube.instance': older })).toEqual([]);
    });
  }
});
