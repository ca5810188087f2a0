// The worker's background loops over a scripted ManagerLink: registration retried while every manager is down,
// re-registration on WORKER_NOT_FOUND, heartbeats with the task statuses, reconciliation on its interval once registered.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Assignment, AssignmentList, HeartbeatRequest, HeartbeatResponse, RegisterRequest } from '../../src/contracts/worker.js';
import type { WorkerRecord } from '../../src/contracts/task-model.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { MemoryRuntime } from '../../src/runtime/index.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { WorkerLoops } from '../../src/worker/loops.js';
import type { ManagerLink } from '../../src/worker/managers.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

const logger = pino({ level: 'silent' });
const unreachable = () => new MinkubeError('UNREACHABLE', 'no manager answered');
const replacedError = () => new MinkubeError('WORKER_REPLACED', 'worker w1 is registered by another instance now (bbbbbbbbbbbb, at 127.0.0.2:1)');
/** What a manager answers a certificate issued before the worker's removal (src/api/auth.ts), or (removed: false) another 401. */
const unauthenticated = (removed: boolean) =>
  new MinkubeError('UNAUTHENTICATED', removed ? 'worker w1: its certificate was issued before worker w1 was removed from the cluster (...)' : 'this route is for cluster nodes: no verified client certificate', removed ? { details: { removed: true } } : {});

class ScriptedLink implements ManagerLink {
  up = false;
  knows = false;
  registers = 0;
  heartbeats: HeartbeatRequest[] = [];
  assigned: Assignment[] = [];
  assignmentCalls = 0;
  /** The heartbeat interval the scripted managers ask for. */
  askedIntervalMs = 20;
  /** Task ids whose records the scripted managers removed: answered in `forget` when a heartbeat reports them. */
  removed = new Set<string>();
  /** The managers the scripted answers name (none: the field is left out), and what the loops passed on. */
  managers: string[] | null = null;
  learnt: (readonly string[])[] = [];
  /** Another instance registered the id: every heartbeat and assignment fetch of this one is refused. */
  replaced = false;
  /** The instance each assignment fetch named. */
  askedAs: (string | undefined)[] = [];
  /** Every request is refused 401: as issued before the worker's removal ('removed'), or for another reason ('other'). */
  refused: 'removed' | 'other' | null = null;
  heartbeatCalls = 0;

  learnManagers(addresses: readonly string[]): void {
    this.learnt.push(addresses);
  }

  async register(req: RegisterRequest): Promise<WorkerRecord> {
    this.registers++;
    if (!this.up) throw unreachable();
    if (this.refused !== null) throw unauthenticated(this.refused === 'removed');
    this.knows = true;
    return { id: req.id, apiAddress: req.apiAddress, state: 'ready', runtime: req.runtime, registeredAt: '', lastHeartbeatAt: null, stats: null, taskCount: 0, availability: 'active' };
  }

  async heartbeat(_id: string, req: HeartbeatRequest): Promise<HeartbeatResponse> {
    this.heartbeatCalls++;
    if (!this.up) throw unreachable();
    if (this.refused !== null) throw unauthenticated(this.refused === 'removed');
    if (!this.knows) throw new MinkubeError('WORKER_NOT_FOUND');
    if (this.replaced) throw replacedError();
    this.heartbeats.push(req);
    const forget = req.tasks.filter((t) => this.removed.has(t.taskId)).map((t) => t.taskId);
    return { heartbeatIntervalMs: this.askedIntervalMs, ...(forget.length === 0 ? {} : { forget }), ...(this.managers === null ? {} : { managers: this.managers }) };
  }

  async assignments(_id: string, instance?: string): Promise<AssignmentList> {
    this.assignmentCalls++;
    this.askedAs.push(instance);
    if (!this.up) throw unreachable();
    if (this.replaced) throw replacedError();
    return { items: this.assigned };
  }
}

const running: Array<{ loops: WorkerLoops; agent: WorkerAgent }> = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.loops.stop();
    await r.agent.close();
  }
});

function setup(link: ScriptedLink, intervals: { heartbeatIntervalMs?: number; reconcileIntervalMs?: number; clock?: ManualClock } = {}, runtime = new MemoryRuntime()) {
  const agent = new WorkerAgent({ workerId: 'w1', instance: 'aaaaaaaaaaaa', runtime, logger, stopTimeoutMs: 10 });
  const loops = new WorkerLoops({
    agent, link, logger, registration: { id: 'w1', apiAddress: '127.0.0.1:1', runtime: 'memory', instance: 'aaaaaaaaaaaa' },
    heartbeatIntervalMs: 20, reconcileIntervalMs: 30, random: new SeededRandom(1), registerBackoffBaseMs: 5, registerBackoffCapMs: 20, ...intervals,
  });
  running.push({ loops, agent });
  return { agent, loops };
}

describe('WorkerLoops', () => {
  it('wait on the clock they are given: heartbeats and reconciliation happen as it moves on', async () => {
    const link = new ScriptedLink();
    link.up = true;
    const clock = new ManualClock();
    const { loops } = setup(link, { clock });
    loops.start();
    await waitFor('the first heartbeat sent and the next one waiting on the clock', () => link.heartbeats.length === 1 && clock.nextDelayMs() === 20);
    expect(link.assignmentCalls).toBe(0);
    clock.advance(20);
    await waitFor('the second heartbeat', () => link.heartbeats.length === 2);
    expect(link.assignmentCalls).toBe(0);
    clock.advance(10);
    await waitFor('the first reconciliation, at 30 ms', () => link.assignmentCalls === 1);
  });

  it('heartbeat on time when the wall clock steps ten minutes back or forward (an NTP step): the waits are monotonic', async () => {
    const link = new ScriptedLink();
    link.up = true;
    const clock = new ManualClock(1_700_000_000_000);
    const { loops } = setup(link, { clock, reconcileIntervalMs: 30_000_000 });
    loops.start();
    await waitFor('the first heartbeat sent and the next one waiting on the clock', () => link.heartbeats.length === 1 && clock.nextDelayMs() === 20);
    clock.stepWall(-600_000);
    clock.advance(20);
    await waitFor('the second heartbeat, one interval later', () => link.heartbeats.length === 2 && clock.nextDelayMs() === 20);
    clock.stepWall(1_200_000);
    clock.advance(20);
    await waitFor('the third heartbeat, one interval later', () => link.heartbeats.length === 3 && clock.nextDelayMs() === 20);
  });

  it('retries registration in the background while every manager is down, then heartbeats', async () => {
    const link = new ScriptedLink();
    const { loops } = setup(link);
    loops.start();
    await waitFor('several failed registrations', () => link.registers >= 5);
    expect(loops.isRegistered).toBe(false);
    // Nor does it reconcile before it is registered: the id's record may still name another instance (the one this
    // one replaces), and the assignments are not its own yet.
    expect(link.assignmentCalls).toBe(0);
    link.up = true;
    await waitFor('registered and heartbeating', () => loops.isRegistered && link.heartbeats.length >= 2);
    expect(link.heartbeats[0]!.stats).toMatchObject({ runningTasks: 0, cpuUtilization: null });
  });

  it('while no manager answers, says so once, then again every 30 s (of its clock) with how long, and once when they answer', async () => {
    const link = new ScriptedLink();
    const clock = new ManualClock();
    const lines: { msg: string; forS?: number; afterS?: number }[] = [];
    const said = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string }) });
    const agent = new WorkerAgent({ workerId: 'w1', instance: 'aaaaaaaaaaaa', runtime: new MemoryRuntime(), logger, stopTimeoutMs: 10 });
    const loops = new WorkerLoops({
      agent, link, logger: said, clock, registration: { id: 'w1', apiAddress: '127.0.0.1:1', runtime: 'memory', instance: 'aaaaaaaaaaaa' },
      heartbeatIntervalMs: 20, reconcileIntervalMs: 30_000_000, random: new SeededRandom(1), registerBackoffBaseMs: 5_000, registerBackoffCapMs: 5_000,
    });
    running.push({ loops, agent });
    const warned = (prefix: string) => lines.filter((l) => l.msg.startsWith(prefix));
    loops.start();
    await waitFor('the first failed registration', () => link.registers >= 1 && clock.nextDelayMs() !== null);
    expect(warned('no manager answers')).toHaveLength(1);
    // About 25 s of failed registrations: nothing more is said.
    for (let i = 0; i < 5; i++) {
      const registers = link.registers;
      clock.advance(5_000);
      await waitFor('the next try', () => link.registers > registers && clock.nextDelayMs() !== null);
    }
    expect(warned('still no manager answers')).toHaveLength(0);
    const registers = link.registers;
    clock.advance(5_000);
    await waitFor('the try past 30 s', () => link.registers > registers && clock.nextDelayMs() !== null);
    expect(warned('still no manager answers').map((l) => l.forS)).toEqual([30]);
    link.up = true;
    clock.advance(5_000);
    await waitFor('registered', () => loops.isRegistered);
    expect(warned('the managers answer again').map((l) => l.afterS)).toEqual([35]);
  });

  it('registers again when a manager answers WORKER_NOT_FOUND, and reports task statuses', async () => {
    const link = new ScriptedLink();
    link.up = true;
    const { loops, agent } = setup(link);
    link.assigned = [{ taskId: 't1', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' }];
    loops.start();
    await waitFor('t1 reported running', () => link.heartbeats.at(-1)?.tasks.some((t) => t.taskId === 't1' && t.state === 'running') ?? false);
    expect(link.heartbeats.at(-1)!.stats.runningTasks).toBe(1);
    const registers = link.registers;
    link.knows = false; // the managers lost the worker record
    await waitFor('registered again', () => link.registers > registers && link.knows);
    const beats = link.heartbeats.length;
    await waitFor('heartbeats resume', () => link.heartbeats.length > beats);
    expect(agent.get('t1').state).toBe('running');
  });

  it('a heartbeat carries only statuses the managers have not accepted yet, so it stays small', async () => {
    const link = new ScriptedLink();
    link.up = true;
    const { loops } = setup(link);
    link.assigned = [
      { taskId: 't1', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' },
      { taskId: 't2', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' },
    ];
    loops.start();
    await waitFor('both reported running', () => link.heartbeats.some((h) => h.tasks.filter((t) => t.state === 'running').length === 2));
    const after = link.heartbeats.length;
    await waitFor('three more heartbeats', () => link.heartbeats.length >= after + 3);
    // Accepted and unchanged: the next beats carry no task statuses (only liveness and stats).
    expect(link.heartbeats.slice(after, after + 3).map((h) => h.tasks.length)).toEqual([0, 0, 0]);
    expect(link.heartbeats.at(-1)!.stats.runningTasks).toBe(2);
  });

  it('told another instance holds the id (WORKER_REPLACED), it goes quiet for good, and its copies are stopped', async () => {
    const link = new ScriptedLink();
    link.up = true;
    const runtime = new MemoryRuntime();
    const { loops, agent } = setup(link, {}, runtime);
    link.assigned = [{ taskId: 'Q1', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' }];
    loops.start();
    await waitFor('Q1 reported running', () => link.heartbeats.some((h) => h.tasks.some((t) => t.taskId === 'Q1' && t.state === 'running')));
    // Both what it registered with and what it heartbeats and fetches with name its instance.
    expect(link.heartbeats.at(-1)!.instance).toBe('aaaaaaaaaaaa');
    expect(link.askedAs.at(-1)).toBe('aaaaaaaaaaaa');
    let settled = false;
    void loops.replaced.then(() => (settled = true));
    link.replaced = true;
    const err = await loops.replaced;
    expect(err).toMatchObject({ code: 'WORKER_REPLACED' });
    // The loops have ended, not backed off: stop() resolves only once both loops have returned, so no heartbeat,
    // registration or fetch can follow.
    await loops.stop();
    expect(settled).toBe(true);
    // The copy it ran is stopped and removed, and it takes no assignment any more.
    expect(await agent.relinquish()).toBe(1);
    expect(agent.get('Q1').state).toBe('stopped');
    await waitFor('the container removed', async () => (await runtime.list({})).length === 0);
    expect(agent.readiness()).toMatchObject({ ready: false });
    await expect(agent.assign({ taskId: 'Q2', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' })).rejects.toMatchObject({ code: 'NOT_READY' });
  });

  it('an assignment fetch refused as replaced ends the loops too', async () => {
    const link = new ScriptedLink();
    link.up = true;
    link.askedIntervalMs = 60_000;
    const { loops } = setup(link, { heartbeatIntervalMs: 60_000, reconcileIntervalMs: 20 });
    loops.start();
    await waitFor('a heartbeat', () => link.heartbeats.length >= 1);
    link.replaced = true;
    await expect(loops.replaced).resolves.toMatchObject({ code: 'WORKER_REPLACED' });
    await loops.stop();
  });

  it('refused at registration as removed from the cluster (its certificate older than the removal), it ends for good, retrying nothing', async () => {
    const link = new ScriptedLink();
    link.up = true;
    link.refused = 'removed';
    const { loops } = setup(link);
    loops.start();
    await expect(loops.replaced).resolves.toMatchObject({ code: 'UNAUTHENTICATED', details: { removed: true } });
    await loops.stop();
    expect(link.registers).toBe(1);
    expect(link.heartbeats).toEqual([]);
  });

  it('a heartbeat refused as removed ends the loops too; another 401 is retried, as a manager that does not answer is', async () => {
    const link = new ScriptedLink();
    link.up = true;
    const { loops } = setup(link);
    loops.start();
    await waitFor('a heartbeat', () => link.heartbeats.length >= 1);
    let ended = false;
    void loops.replaced.then(() => (ended = true));
    link.refused = 'other';
    const calls = link.heartbeatCalls;
    await waitFor('heartbeats go on after another 401', () => link.heartbeatCalls >= calls + 3);
    expect(ended).toBe(false);
    link.refused = 'removed';
    await expect(loops.replaced).resolves.toMatchObject({ code: 'UNAUTHENTICATED', details: { removed: true } });
    await loops.stop();
  });

  it("passes on the managers a heartbeat's answer names, and nothing when it names none", async () => {
    const link = new ScriptedLink();
    link.up = true;
    const { loops } = setup(link);
    loops.start();
    await waitFor('two heartbeats', () => loops.heartbeatsSent >= 2);
    expect(link.learnt).toEqual([]);
    link.managers = ['127.0.0.4:8004', '127.0.0.1:8001'];
    await waitFor('the managers passed on', () => link.learnt.length > 0);
    expect(link.learnt.at(-1)).toEqual(['127.0.0.4:8004', '127.0.0.1:8001']);
  });

  it('stops promptly: the wait for the next interval is cut short, not waited out', async () => {
    const link = new ScriptedLink();
    link.up = true;
    link.askedIntervalMs = 60_000;
    const { loops } = setup(link, { heartbeatIntervalMs: 60_000, reconcileIntervalMs: 60_000 });
    loops.start();
    // Registered and one beat sent: both loops now wait a minute for their next turn.
    await waitFor('the first heartbeat', () => loops.heartbeatsSent >= 1);
    const t0 = performance.now();
    await loops.stop();
    // Bounded by one interval, which is what a stop that waited for the next turn would take.
    expect(performance.now() - t0).toBeLessThan(60_000);
  });

  it('a task status change goes to the managers at once, not at the next heartbeat a minute later', async () => {
    const link = new ScriptedLink();
    link.up = true;
    link.askedIntervalMs = 60_000;
    const { loops, agent } = setup(link, { heartbeatIntervalMs: 60_000, reconcileIntervalMs: 60_000 });
    loops.start();
    await waitFor('the first heartbeat', () => loops.heartbeatsSent >= 1);
    await agent.assign({ taskId: 't1', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' });
    await waitFor('t1 reported running by an early heartbeat', () => link.heartbeats.some((h) => h.tasks.some((t) => t.taskId === 't1' && t.state === 'running')), 30_000);
    await agent.stop({ taskId: 't1', attempt: 1, term: 1 });
    await waitFor('t1 reported stopped by another', () => link.heartbeats.some((h) => h.tasks.some((t) => t.taskId === 't1' && t.state === 'stopped')), 30_000);
    expect(loops.heartbeatsSent).toBeGreaterThanOrEqual(3);
  });

  it('leaves nothing running in the background once stopped', async () => {
    const stopped = new ScriptedLink();
    stopped.up = true;
    const { loops } = setup(stopped);
    loops.start();
    await waitFor('heartbeats and a reconciliation', () => stopped.heartbeatCalls >= 2 && stopped.assignmentCalls >= 1);
    await loops.stop();
    const callsOf = (l: ScriptedLink): number => l.registers + l.heartbeatCalls + l.assignmentCalls;
    const calls = callsOf(stopped);
    // A twin with the same intervals, started now, shows how much a loop still running would have done meanwhile.
    const twin = new ScriptedLink();
    twin.up = true;
    setup(twin).loops.start();
    await waitFor('the twin heartbeat 5 times and reconciled 3 times', () => twin.heartbeatCalls >= 5 && twin.assignmentCalls >= 3);
    expect(callsOf(stopped)).toBe(calls);
  });

  it("forgets a finished task and its kept output when the managers answer that its record is gone", async () => {
    const link = new ScriptedLink();
    link.up = true;
    const runtime = new MemoryRuntime({ durationMsDefault: 0 });
    const agent = new WorkerAgent({ workerId: 'w1', runtime, logger, stopTimeoutMs: 10, finishedRetentionMs: 3_600_000 });
    const loops = new WorkerLoops({
      agent, link, logger, registration: { id: 'w1', apiAddress: '127.0.0.1:1', runtime: 'memory' },
      heartbeatIntervalMs: 20, reconcileIntervalMs: 30, random: new SeededRandom(1), registerBackoffBaseMs: 5, registerBackoffCapMs: 20,
    });
    running.push({ loops, agent });
    link.assigned = [
      { taskId: 'done', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' },
      { taskId: 'kept', attempt: 1, term: 1, spec: { image: 'x' }, desiredState: 'run' },
    ];
    loops.start();
    await waitFor('both reported succeeded', () => ['done', 'kept'].every((id) => link.heartbeats.some((h) => h.tasks.some((t) => t.taskId === id && t.state === 'succeeded'))));
    link.assigned = [];
    // Only 'done' was removed: a heartbeat that reports it again (statuses are repeated now and then) learns so.
    link.removed.add('done');
    await waitFor('done forgotten', () => agent.list().every((t) => t.taskId !== 'done'));
    expect(agent.get('kept').state).toBe('succeeded');
    await expect(agent.logs('done', 10)).rejects.toMatchObject({ code: 'TASK_NOT_FOUND' });
    await expect(agent.logs('kept', 10)).resolves.toBeTypeOf('string');
  });
});
