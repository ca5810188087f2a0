// The reconciler's drain decision (drainNext, through decide): a drain moves a service's replicas off a drained worker
// at most `update.parallelism` at a time; the next ones go once those moved are healthy elsewhere, or cannot be
// placed now, or failed by their own doing there (waiting for them would not end).
import { describe, expect, it } from 'vitest';
import type { ServiceRecord } from '../../src/contracts/service-model.js';
import { decide, type ReplicaState } from '../../src/manager/service-decide.js';

const service = (parallelism = 1, o: Partial<ServiceRecord> = {}): ServiceRecord => ({
  name: 'web', replicas: 3, version: 1, previousVersion: null,
  versions: [{ version: 1, spec: { image: 'a' }, createdAtMs: 0 }],
  update: { parallelism, delayS: 0, monitorS: 5, failureAction: 'rollback', order: 'stop-first' },
  rollout: { state: 'stable', fromVersion: null, startedAtMs: 0, monitorUntilMs: null, message: null },
  revision: 3, createdAtMs: 0, updatedAtMs: 0, ...o,
});

/** A healthy replica running on w1, which is being drained, not marked yet. */
const onW1 = (id: string, o: Partial<ReplicaState> = {}): ReplicaState => ({
  id, version: 1, state: 'running', desiredState: 'run', healthy: true, unhealthy: false, failed: false, reason: null, createdAtMs: 10,
  workerId: 'w1', onDrainedWorker: true, ...o,
});

/** Marked draining on w1: being stopped there. */
const marked = (id: string): ReplicaState => onW1(id, { onDrainedWorker: false, draining: true });

/** Moved by the drain: its next attempt, here as `o` says (by default pending, waiting for the scheduler). */
const moved = (id: string, o: Partial<ReplicaState> = {}): ReplicaState => ({
  id, version: 1, state: 'pending', desiredState: 'run', healthy: false, unhealthy: false, failed: false, reason: 'its worker w1 was drained', createdAtMs: 10,
  workerId: null, movedByDrain: true, ...o,
});

describe('drain pacing (decide)', () => {
  it('marks one replica of a parallelism-1 service at a time, the least useful first', () => {
    const d = decide(service(), [onW1('a'), onW1('b', { healthy: false }), onW1('c')], 1000);
    expect(d).toEqual({ create: 0, stop: [], wakeAtMs: null, drain: ['b'] });
  });

  it('marks none while one is being stopped there, or moved and not yet healthy elsewhere', () => {
    expect(decide(service(), [marked('a'), onW1('b'), onW1('c')], 1000).drain).toBeUndefined();
    expect(decide(service(), [moved('a'), onW1('b'), onW1('c')], 1000).drain).toBeUndefined();
    expect(decide(service(), [moved('a', { state: 'scheduled', workerId: 'w2' }), onW1('b'), onW1('c')], 1000).drain).toBeUndefined();
    // Running, its health check not passed yet.
    expect(decide(service(), [moved('a', { state: 'running', workerId: 'w2' }), onW1('b'), onW1('c')], 1000).drain).toBeUndefined();
  });

  it('marks the next once the moved one is healthy on another worker', () => {
    const d = decide(service(), [moved('a', { state: 'running', workerId: 'w2', healthy: true }), onW1('b'), onW1('c')], 1000);
    expect(d.drain).toEqual(['c']);
  });

  it('does not wait for a moved replica that no worker can take now, or that failed by its own doing there', () => {
    expect(decide(service(), [moved('a', { unplaceable: true }), onW1('b'), onW1('c')], 1000).drain).toEqual(['c']);
    expect(decide(service(), [moved('a', { state: 'running', workerId: 'w2', unhealthy: true }), onW1('b'), onW1('c')], 1000).drain).toEqual(['c']);
    // Failed after the move: its record's error is its own failure, so it is no longer moving (replicaState says).
    expect(decide(service(), [moved('a', { movedByDrain: false, failed: true }), onW1('b'), onW1('c')], 1000).drain).toEqual(['c']);
  });

  it('moves parallelism at a time, counting those still moving', () => {
    expect(decide(service(2), [onW1('a'), onW1('b'), onW1('c')], 1000).drain).toEqual(['c', 'b']);
    expect(decide(service(2), [marked('a'), onW1('b'), onW1('c')], 1000).drain).toEqual(['c']);
    expect(decide(service(2), [marked('a'), moved('b'), onW1('c')], 1000).drain).toBeUndefined();
    expect(decide(service(5), [onW1('a'), onW1('b'), onW1('c')], 1000).drain).toHaveLength(3);
  });

  it('counts the service across drained workers, and leaves replicas on other workers and those already stopping alone', () => {
    const elsewhere = onW1('x', { workerId: 'w3', onDrainedWorker: false });
    const stopping = onW1('s', { desiredState: 'stop' });
    expect(decide(service(1, { replicas: 4 }), [marked('a'), onW1('b', { workerId: 'w2' }), elsewhere, stopping], 1000).drain).toBeUndefined();
    expect(decide(service(1, { replicas: 2 }), [elsewhere, stopping], 1000).drain).toBeUndefined();
  });

  it('does not move a replica the same decision stops (a scale down), and moves the others as usual', () => {
    const d = decide(service(1, { replicas: 2 }), [onW1('a'), onW1('b'), onW1('c', { healthy: false })], 1000);
    expect(d.stop).toEqual(['c']);
    expect(d.drain).toHaveLength(1);
    expect(d.drain).not.toContain('c');
  });

  it('moves replicas during a paused rollout too, beside what the rollout decides', () => {
    const paused = service(1, { rollout: { state: 'paused', fromVersion: 1, startedAtMs: 0, monitorUntilMs: null, message: 'paused: x' } });
    expect(decide(paused, [onW1('a'), onW1('b'), onW1('c')], 1000).drain).toEqual(['c']);
  });
});
