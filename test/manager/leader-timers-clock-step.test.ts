// The leader's timers armed from stored wall times (a task's notBeforeMs after a failure, a rollout's delay after its
// monitor window) against a manual clock whose wall reading steps on its own: the record keeps its wall time, the wait
// is counted on the monotonic reading, and a step of the wall clock back never makes it longer than the one asked for.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import type { Assignment, WorkerTaskStatus } from '../../src/contracts/worker.js';
import { SeededRandom } from '../../src/lib/random.js';
import { roundRobin } from '../../src/scheduler/index.js';
import { SchedulerLoop } from '../../src/manager/scheduler-loop.js';
import { ServiceLoop } from '../../src/manager/service-loop.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { DirectRaft } from '../support/direct-raft.js';
import { ManualClock } from '../support/manual-clock.js';

const tenMinutesMs = 600_000;
const backoffMs = 3000;
const backoffCapMs = 5000;


/** A worker that never answers: an assignment stays scheduled, which is all these tests look at. */
class SilentWorkers implements WorkerApi {
  assign(): Promise<WorkerTaskStatus> {
    return new Promise(() => undefined);
  }
  assignMany(_address: string, as: readonly Assignment[]): Promise<WorkerTaskStatus[]> {
    return as.length === 0 ? Promise.resolve([]) : new Promise(() => undefined);
  }
  async logs(): Promise<string> {
    return '';
  }
  async followLogs(): Promise<AsyncIterable<Uint8Array>> {
    throw new Error('not used here');
  }
}

/** Lets proposals apply and the loops' setImmediate passes run (no time passes on the manual clock). */
async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

/** A task whose first attempt failed (transient) at the clock's wall time, so that it waits backoffMs for its retry. */
async function taskInBackoff(clock: ManualClock): Promise<{ raft: DirectRaft; loop: SchedulerLoop }> {
  const raft = new DirectRaft();
  const atMs = clock.nowMs();
  await raft.proposeCommand({ op: 'worker.register', workerId: 'w1', apiAddress: 'w1:1', runtime: 'memory', atMs });
  await raft.proposeCommand({ op: 'task.submit', taskId: 't1', spec: { image: 'i', restartPolicy: 'on-failure', maxAttempts: 3 }, atMs });
  await raft.proposeCommand({ op: 'task.place', term: 1, atMs, cursor: 'w1', placements: [{ taskId: 't1', attempt: 1, workerId: 'w1' }] });
  await raft.proposeCommand({
    op: 'task.report', atMs, reports: [{
      taskId: 't1', workerId: 'w1', attempt: 1, term: 1, state: 'failed', containerId: null, exitCode: null,
      error: { class: 'transient', message: 'the runtime was busy' }, retryAtMs: atMs + backoffMs,
    }],
  });
  expect(raft.sm.tasks.task('t1')).toMatchObject({ state: 'pending', attempt: 2, notBeforeMs: atMs + backoffMs });
  const loop = new SchedulerLoop({
    store: raft.sm.tasks, raft, workers: new SilentWorkers(), policy: roundRobin, clock, random: new SeededRandom(1),
    logger: pino({ level: 'silent' }), proposalTimeoutMs: 1000,
    tasks: { ...clusterConfigDefaults.tasks, backoffBaseMs: 1000, backoffCapMs, reconcileIntervalMs: 60_000 },
  });
  raft.sm.tasks.listener = {
    taskChanged: (t, prev) => loop.onTaskChanged(t, prev),
    workerSeen: () => undefined,
    workerChanged: (w) => (w.state === 'ready' ? loop.onWorkerReady() : undefined),
  };
  stops.push(() => loop.stop());
  return { raft, loop };
}

describe('a task in failure backoff, on a leader whose wall clock steps', () => {
  it('is placed after its backoff, not ten minutes later, when the wall clock steps ten minutes back meanwhile', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { raft, loop } = await taskInBackoff(clock);
    loop.start(1);
    await settled();
    clock.advance(1000);
    clock.stepWall(-tenMinutesMs);
    clock.advance(backoffMs - 1000 - 1);
    await settled();
    expect(raft.sm.tasks.task('t1')?.state).toBe('pending'); // not before its backoff
    clock.advance(1);
    await settled();
    expect(raft.sm.tasks.task('t1')).toMatchObject({ state: 'scheduled', attempt: 2, workerId: 'w1' });
    // The record's times stay wall times: the placement is not stamped before the backoff it waited for.
    const place = raft.proposed.filter((c) => c.op === 'task.place').at(-1)!;
    expect(place.op === 'task.place' && place.atMs).toBe(1_700_000_000_000 + backoffMs);
  });

  it('waits no longer than the maximum backoff when the step came before this leader first looked', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { raft, loop } = await taskInBackoff(clock);
    clock.stepWall(-tenMinutesMs); // the record now looks ten minutes and three seconds away
    loop.start(1);
    await settled();
    clock.advance(backoffCapMs - 1);
    await settled();
    expect(raft.sm.tasks.task('t1')?.state).toBe('pending');
    clock.advance(1);
    await settled();
    expect(raft.sm.tasks.task('t1')?.state).toBe('scheduled');
  });

  it('is not placed early when the wall clock steps ten minutes forward during its backoff', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { raft, loop } = await taskInBackoff(clock);
    loop.start(1);
    await settled();
    clock.stepWall(tenMinutesMs);
    clock.advance(backoffMs - 1);
    loop.onWorkerReady(); // a placement pass while the backoff still runs
    await settled();
    expect(raft.sm.tasks.task('t1')?.state).toBe('pending');
    clock.advance(1);
    await settled();
    expect(raft.sm.tasks.task('t1')?.state).toBe('scheduled');
  });
});

describe('a rollout waiting out its monitor window and delay, on a leader whose wall clock steps', () => {
  it.each([
    ['back', 'not ten minutes later', -tenMinutesMs],
    ['forward', 'not at the step', tenMinutesMs],
  ])('steps %s: starts its next batch after monitorS + delayS, %s', async (_dir, _when, stepMs) => {
    const clock = new ManualClock(1_700_000_000_000);
    const raft = new DirectRaft();
    const kv = raft.sm;
    const loop = new ServiceLoop({ services: kv.services, tasks: kv.tasks, raft, clock, logger: pino({ level: 'silent' }), proposalTimeoutMs: 1000, reconcileIntervalMs: 3_600_000 });
    kv.services.listener = (name: string) => loop.touch(name);
    kv.tasks.listener = { taskChanged: (t) => (t.service === undefined ? undefined : loop.touch(t.service.name)), workerSeen: () => undefined, workerChanged: () => undefined };
    stops.push(() => loop.stop());
    const update = { parallelism: 1, delayS: 2, monitorS: 3, failureAction: 'pause' as const, order: 'stop-first' as const };
    await raft.proposeCommand({ op: 'service.create', name: 'web', atMs: clock.nowMs(), replicas: 2, spec: { image: 'v1' }, update });
    loop.start(1);
    await settled();
    const running = async (): Promise<void> => {
      // Every replica of the service runs, healthy (what workers would report), on one registered worker.
      if (kv.tasks.worker('w1') === undefined) await raft.proposeCommand({ op: 'worker.register', workerId: 'w1', apiAddress: 'w1:1', runtime: 'memory', atMs: clock.nowMs() });
      const ids = [...kv.tasks.idsOfService('web')].filter((id) => kv.tasks.task(id)!.state === 'pending');
      if (ids.length === 0) return;
      await raft.proposeCommand({ op: 'task.place', term: 1, atMs: clock.nowMs(), cursor: 'w1', placements: ids.map((taskId) => ({ taskId, attempt: 1, workerId: 'w1' })) });
      await raft.proposeCommand({
        op: 'task.report', atMs: clock.nowMs(),
        reports: ids.map((taskId) => ({ taskId, workerId: 'w1', attempt: 1, term: 1, state: 'running' as const, containerId: `c-${taskId}`, exitCode: null, error: null, retryAtMs: 0 })),
      });
      await settled();
    };
    await running();
    const versions = (): string[] => [...kv.tasks.idsOfService('web')].map((id) => kv.tasks.task(id)!).filter((t) => t.desiredState === 'run').map((t) => t.spec.image).sort();
    expect(versions()).toEqual(['v1', 'v1']);
    await raft.proposeCommand({ op: 'service.update', name: 'web', atMs: clock.nowMs(), spec: { image: 'v2' } });
    await settled();
    await running(); // the first batch (one replica) is replaced and healthy: its monitor window starts
    await settled();
    expect(versions()).toEqual(['v1', 'v2']);
    expect(kv.services.service('web')!.rollout.monitorUntilMs).toBe(clock.nowMs() + 3000);
    clock.stepWall(stepMs);
    // A look right after the step (a replica's report would bring one).
    loop.touch('web');
    await settled();
    expect(versions()).toEqual(['v1', 'v2']);
    clock.advance(5000 - 2);
    await settled();
    await running();
    expect(versions()).toEqual(['v1', 'v2']); // the window and the delay are not over yet
    clock.advance(10);
    await settled();
    expect(versions()).toEqual(['v2']); // the next batch began: its old replica is stopped first (stop-first)
  });
});
