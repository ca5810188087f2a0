// waitVerdict: when `service create|scale|update|rollback --wait` stops following the service, and with which exit.
import { describe, expect, it } from 'vitest';
import { waitVerdict } from '../../src/cli/services.js';
import type { ReplicaView, RolloutState, ServiceView } from '../../src/contracts/service-model.js';

const replica = (taskId: string, version: number, health: string | null = 'healthy'): ReplicaView => ({
  taskId, version, state: 'running', desiredState: 'run', health, workerId: 'w1', attempt: 1, ports: [],
});

function view(state: RolloutState, version: number, tasks: ReplicaView[], desired = 3): ServiceView {
  return {
    name: 'tk2', replicas: { desired, running: tasks.length, healthy: tasks.filter((t) => t.health === 'healthy').length },
    version, previousVersion: version - 1, versions: [version - 1, version], spec: { image: 'x' } as ServiceView['spec'],
    update: {} as ServiceView['update'], rollout: { state, fromVersion: version - 1, message: state === 'paused' ? 'paused: replica t1 of version 3 failed: image nosuch:2 is not present' : null },
    tasks, createdAt: '', updatedAt: '',
  };
}

describe('waitVerdict', () => {
  it('an update that pauses ends the wait at once, failed, though its replicas are of two versions and not all healthy', () => {
    const paused = view('paused', 3, [replica('t1', 3, 'unhealthy'), replica('t2', 2), replica('t3', 2)]);
    expect(waitVerdict(paused, true)).toBe('failed');
  });

  it('a rollback asked for that pauses ends the wait at once, failed', () => {
    // service rollback --wait: the answer is rolling-back (followed); it then pauses on the version it went back to.
    expect(waitVerdict(view('rolling-back', 3, [replica('t2', 2), replica('t3', 2), replica('t4', 2)]), true)).toBe('wait');
    expect(waitVerdict(view('paused', 3, [replica('t1', 3, null), replica('t2', 2), replica('t3', 2)]), true)).toBe('failed');
  });

  it('a followed rollout that rolled back ends failed; one under way waits; one completed is done once all are healthy', () => {
    expect(waitVerdict(view('rolled-back', 2, [replica('t1', 2), replica('t2', 2), replica('t3', 2)]), true)).toBe('failed');
    expect(waitVerdict(view('updating', 3, [replica('t1', 3), replica('t2', 3), replica('t3', 3)]), true)).toBe('wait');
    expect(waitVerdict(view('stable', 3, [replica('t1', 3), replica('t2', 3), replica('t3', 3, 'starting')]), true)).toBe('wait');
    expect(waitVerdict(view('stable', 3, [replica('t1', 3), replica('t2', 3), replica('t3', 3)]), true)).toBe('done');
  });

  it('without a rollout followed (create, scale), an earlier rollback or pause is no failure', () => {
    expect(waitVerdict(view('rolled-back', 2, [replica('t1', 2), replica('t2', 2), replica('t3', 2)]), false)).toBe('done');
    // Scaling a paused service: done once the count is there, whatever the versions and health.
    expect(waitVerdict(view('paused', 3, [replica('t1', 3, 'unhealthy'), replica('t2', 2)]), false)).toBe('wait');
    expect(waitVerdict(view('paused', 3, [replica('t1', 3, 'unhealthy'), replica('t2', 2), replica('t3', 2)]), false)).toBe('done');
  });
});
