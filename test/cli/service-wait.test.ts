// ServiceWait: when `service create|scale|update|rollback --wait` stops following the service, and with which exit;
// summary: the progress line, with why the service is short of healthy replicas.
import { describe, expect, it } from 'vitest';
import { replicaRows, ServiceWait, summary } from '../../src/cli/services.js';
import type { ReplicaView, RolloutState, ServiceView } from '../../src/contracts/service-model.js';

const replica = (taskId: string, version: number, health: string | null = 'healthy', o: Partial<ReplicaView> = {}): ReplicaView => ({
  taskId, version, state: 'running', desiredState: 'run', draining: false, health, workerId: 'w1', attempt: 1, ports: [], failure: null, ...o,
});

function view(state: RolloutState, version: number, tasks: ReplicaView[], desired = 3, monitorS = 10): ServiceView {
  return {
    name: 'tk2', replicas: { desired, running: tasks.filter((t) => t.state === 'running').length, healthy: tasks.filter((t) => t.state === 'running' && t.health !== 'starting' && t.health !== 'unhealthy').length },
    version, previousVersion: version - 1, versions: [version - 1, version], spec: { image: 'x' } as ServiceView['spec'],
    update: { parallelism: 1, delayS: 0, monitorS, failureAction: 'rollback', order: 'stop-first' }, rollout: { state, fromVersion: version - 1, message: state === 'paused' ? 'paused: replica t1 of version 3 failed: image nosuch:2 is not present' : null },
    waiting: null, tasks, createdAt: '', updatedAt: '',
  };
}

/** The verdicts of one wait over readings taken at the given times (ms). */
function verdicts(first: ServiceView, rollout: boolean, readings: [number, ServiceView][]): string[] {
  const wait = new ServiceWait(first, rollout);
  return readings.map(([atMs, s]) => {
    const v = wait.step(s, atMs);
    return v.verdict === 'failed' ? `failed: ${v.message}` : v.verdict;
  });
}

describe('ServiceWait', () => {
  it('an update that pauses ends the wait at once, failed, though its replicas are of two versions and not all healthy', () => {
    const paused = view('paused', 3, [replica('t1', 3, 'unhealthy', { failure: 'unhealthy: http 503 from /' }), replica('t2', 2), replica('t3', 2)]);
    expect(verdicts(view('updating', 3, []), true, [[0, paused]])).toEqual([`failed: service tk2 ${paused.rollout.message}`]);
  });

  it('a rollback asked for that pauses ends the wait at once, failed', () => {
    // service rollback --wait: the answer is rolling-back (followed); it then pauses on the version it went back to.
    const back = view('rolling-back', 3, [replica('t2', 2), replica('t3', 2), replica('t4', 2)]);
    expect(verdicts(back, true, [[0, back], [1, view('paused', 3, [replica('t1', 3, null), replica('t2', 2), replica('t3', 2)])]])).toEqual([
      'wait', expect.stringMatching(/^failed: service tk2 paused: replica t1 of version 3 failed/),
    ]);
  });

  it('an update rolling back by itself waits for the way back, and fails once a replica of the version it goes back to fails too (it never ended: outside tester)', () => {
    const message = 'rolled back: replica t4 of version 3 failed: unhealthy: exec exited 1';
    const back = (tasks: ReplicaView[]) => ({ ...view('rolling-back', 2, tasks), rollout: { state: 'rolling-back' as const, fromVersion: 3, message } });
    const start = view('updating', 3, [replica('t1', 2), replica('t2', 2), replica('t3', 2)]);
    // The failed version's replica is still there, unhealthy: that is what the rollback is about, not a reason to stop.
    const goingBack = back([replica('t1', 2), replica('t2', 2), replica('t4', 3, 'unhealthy', { failure: 'unhealthy: exec exited 1' })]);
    const oldFails = back([replica('t1', 2, 'unhealthy', { failure: 'unhealthy: exec exited 1' }), replica('t2', 2), replica('t5', 2, 'starting')]);
    expect(verdicts(start, true, [[0, goingBack], [1, oldFails]])).toEqual([
      'wait',
      `failed: service tk2 ${message}; on the way back, replica t1 of version 2 failed too: unhealthy: exec exited 1 (the service goes on replacing it)`,
    ]);
    // A rollback that gets there ends failed as before, with the update's reason.
    const done = { ...view('rolled-back', 2, [replica('t1', 2), replica('t2', 2), replica('t3', 2)]), rollout: { state: 'rolled-back' as const, fromVersion: 3, message } };
    expect(verdicts(start, true, [[0, goingBack], [1, done]])).toEqual(['wait', `failed: service tk2 ${message}`]);
  });

  it('a followed rollout that rolled back ends failed; one under way waits; one completed is done once all are healthy (it watched its batches itself)', () => {
    const start = view('updating', 3, []);
    expect(verdicts(start, true, [[0, view('rolled-back', 2, [replica('t1', 2), replica('t2', 2), replica('t3', 2)])]])[0]).toMatch(/^failed: service tk2 rolled-back: no reason/);
    expect(verdicts(start, true, [
      [0, view('updating', 3, [replica('t1', 3), replica('t2', 3), replica('t3', 3)])],
      [1, view('stable', 3, [replica('t1', 3), replica('t2', 3), replica('t3', 3, 'starting')])],
      [2, view('stable', 3, [replica('t1', 3), replica('t2', 3), replica('t3', 3)])],
    ])).toEqual(['wait', 'wait', 'done']);
  });

  it('without a rollout followed (create, scale), an earlier rollback or pause is no failure', () => {
    const healthy = view('rolled-back', 2, [replica('t1', 2), replica('t2', 2), replica('t3', 2)], 3, 0);
    expect(verdicts(healthy, false, [[0, healthy]])).toEqual(['done']);
    // Scaling a paused service: done once the count is there, whatever the versions and health.
    const two = view('paused', 3, [replica('t1', 3, 'unhealthy', { failure: 'unhealthy: http 503 from /' }), replica('t2', 2)]);
    const three = view('paused', 3, [replica('t1', 3, 'unhealthy', { failure: 'unhealthy: http 503 from /' }), replica('t2', 2), replica('t3', 2)]);
    expect(verdicts(two, false, [[0, two], [1, three]])).toEqual(['wait', 'done']);
  });

  it('is done only once every replica has stayed healthy, the same attempts, for the service\'s monitorS', () => {
    const created = view('stable', 1, [], 2, 10);
    const up = view('stable', 1, [replica('t1', 1, null), replica('t2', 1, null)], 2, 10);
    expect(verdicts(created, false, [[0, created], [1000, up], [6000, up], [10_999, up], [11_000, up]])).toEqual(['wait', 'wait', 'wait', 'wait', 'done']);
    // A replica replaced meanwhile for a reason not its own (its worker lost: no failure) starts the watch again.
    const moved = view('stable', 1, [replica('t1', 1, null), replica('t2', 1, null, { attempt: 2, workerId: 'w2' })], 2, 10);
    expect(verdicts(created, false, [[1000, up], [6000, moved], [11_000, moved], [16_000, moved]])).toEqual(['wait', 'wait', 'wait', 'done']);
    // monitorS 0: done as soon as they are healthy.
    const now = view('stable', 1, [replica('t1', 1, null), replica('t2', 1, null)], 2, 0);
    expect(verdicts(view('stable', 1, [], 2, 0), false, [[0, now]])).toEqual(['done']);
  });

  it('a replica that crash-loops (running at times, healthy without a check) fails the wait with its reason', () => {
    const created = view('stable', 1, [], 2);
    const up = view('stable', 1, [replica('t1', 1, null), replica('t2', 1, null)], 2);
    const crashed = view('stable', 1, [replica('t1', 1, null, { attempt: 2, state: 'pending', workerId: null, failure: 'the container exited with code 3' }), replica('t2', 1, null)], 2);
    // Seen running again at its next attempt: it failed since the wait began all the same.
    const again = view('stable', 1, [replica('t1', 1, null, { attempt: 2, failure: 'the container exited with code 3' }), replica('t2', 1, null)], 2);
    const failed = 'failed: service tk2: replica t1 of version 1 failed: the container exited with code 3';
    expect(verdicts(created, false, [[0, up], [500, crashed]])).toEqual(['wait', failed]);
    expect(verdicts(created, false, [[0, up], [500, again]])).toEqual(['wait', failed]);
  });

  it('a replica that turns unhealthy fails the wait at once; one that failed before the wait began and runs now does not', () => {
    const unhealthy = view('stable', 1, [replica('t1', 1, 'unhealthy', { failure: 'unhealthy: http 503 from /healthz' }), replica('t2', 1, 'starting')], 2);
    expect(verdicts(view('stable', 1, [], 2), false, [[0, unhealthy]])).toEqual(['failed: service tk2: replica t1 of version 1 failed: unhealthy: http 503 from /healthz']);
    // service scale --wait on a service whose replica crashed once, long ago: its attempt is the one the answer showed.
    const recovered = view('stable', 1, [replica('t1', 1, 'healthy', { attempt: 4, failure: 'the container exited with code 3' })], 2, 1);
    const scaled = view('stable', 1, [replica('t1', 1, 'healthy', { attempt: 4, failure: 'the container exited with code 3' }), replica('t2', 1)], 2, 1);
    expect(verdicts(recovered, false, [[0, recovered], [100, scaled], [1100, scaled]])).toEqual(['wait', 'wait', 'done']);
  });
});

describe('summary', () => {
  it('says why a replica waits to be placed, or why the first replica that is not healthy now failed', () => {
    const waiting = 'waiting: replica t2 of version 1 has no worker to run on (w1: label zone!=a (it is b); see task why t2)';
    expect(summary({ ...view('stable', 1, [replica('t1', 1), replica('t2', 1, null, { state: 'pending', workerId: null })], 2), waiting })).toBe(
      `service tk2: 1/2 healthy, 1 running, version 1; ${waiting}`,
    );
    // Said once when the rollout's message says it already.
    const rolling = view('updating', 2, [replica('t1', 1), replica('t2', 2, null, { state: 'pending', workerId: null })], 2);
    const rollingWaiting = { ...rolling, waiting: waiting.replace('version 1', 'version 2'), rollout: { ...rolling.rollout, message: waiting.replace('version 1', 'version 2') } };
    expect(summary(rollingWaiting)).toBe(`service tk2: 1/2 healthy, 1 running, version 2, rollout updating (${rollingWaiting.waiting})`);
    const failing = view('stable', 1, [
      replica('t1', 1, null, { failure: 'the container exited with code 3', attempt: 3 }), // running again now: not shown
      replica('t2', 1, null, { state: 'pending', workerId: null, attempt: 4, failure: 'the container exited with code 3' }),
      replica('t3', 1, 'unhealthy', { attempt: 2, failure: 'unhealthy: http 503 from /' }),
    ]);
    expect(summary(failing)).toBe('service tk2: 1/3 healthy, 2 running, version 1; replica t2 of version 1 failed: the container exited with code 3');
    expect(summary(view('stable', 1, [replica('t1', 1)], 1))).toBe('service tk2: 1/1 healthy, 1 running, version 1');
  });
});

describe('replicaRows', () => {
  it("marks a replica its worker's drain is stopping (it still wants to run, elsewhere, and may show healthy)", () => {
    expect(replicaRows({ tasks: [replica('t1', 1), replica('t2', 1, 'healthy', { draining: true })] })).toEqual([
      ['t1', '1', 'running', 'run', 'healthy', 'w1', '-'],
      ['t2', '1', 'running', 'run (draining)', 'healthy', 'w1', '-'],
    ]);
  });
});
