// Retention's selection (src/kv/retention.ts) as properties over random task stores, and the task.remove command as
// the state machine applies it: only final records go, every index forgets them, and it round-trips the wire.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { finalTaskStates, type TaskState } from '../../src/contracts/task-model.js';
import { decodeCommand, encodeCommand, validateCommand } from '../../src/kv/commands.js';
import { endedAtMs, finishedCount, selectForRemoval } from '../../src/kv/retention.js';
import { limits } from '../../src/lib/limits.js';
import { TaskDriver } from '../kv/task-driver.js';

type Fate = 'pending' | 'scheduled' | 'running' | 'succeeded' | 'failed' | 'stopped';

/** A store with one task per fate, in id order t0000.., each ending (if it ends) at endMs. */
function storeOf(tasks: readonly { fate: Fate; endMs: number }[]): TaskDriver {
  const d = new TaskDriver();
  d.register('w1');
  tasks.forEach(({ fate, endMs }, i) => {
    const id = `t${String(i).padStart(4, '0')}`;
    d.submit(id, { restartPolicy: 'never' });
    if (fate === 'pending') return;
    if (fate === 'stopped') {
      d.run({ op: 'task.stop', taskId: id, atMs: endMs });
      return;
    }
    d.place(id, 'w1', 1, 2, 1500);
    if (fate === 'scheduled') return;
    d.report({ taskId: id, state: 'running' }, 1600);
    if (fate === 'running') return;
    d.report({ taskId: id, state: fate, exitCode: fate === 'failed' ? 1 : 0 }, endMs);
  });
  return d;
}

const fateArb = fc.constantFrom<Fate>('pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped');
const storeArb = fc.array(fc.record({ fate: fateArb, endMs: fc.integer({ min: 2000, max: 100_000 }) }), { maxLength: 60 });
const policyArb = fc.record({ finishedMax: fc.integer({ min: 0, max: 30 }), finishedAgeS: fc.integer({ min: 1, max: 120 }) });

describe('selectForRemoval', () => {
  it('never chooses a task that has not ended (pending, scheduled, running), nor more than batchMax', () => {
    fc.assert(
      fc.property(storeArb, policyArb, fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 20 }), (tasks, policy, nowMs, batchMax) => {
        const d = storeOf(tasks);
        const chosen = selectForRemoval(d.store, policy, nowMs, batchMax);
        expect(chosen.length).toBeLessThanOrEqual(batchMax);
        for (const id of chosen) expect(finalTaskStates.has(d.task(id).state)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('chooses oldest first: the chosen ids are ascending, and every finished task older than a chosen one that is due is chosen too', () => {
    fc.assert(
      fc.property(storeArb, policyArb, fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 1, max: 20 }), (tasks, policy, nowMs, batchMax) => {
        const d = storeOf(tasks);
        const chosen = selectForRemoval(d.store, policy, nowMs, batchMax);
        expect([...chosen].sort()).toEqual(chosen);
        const finished = (['succeeded', 'failed', 'stopped'] as TaskState[]).flatMap((s) => [...d.store.idsIn(s)]).sort();
        const overCount = Math.max(0, finished.length - policy.finishedMax);
        // The over-count part: the oldest `min(overCount, batchMax)` finished tasks, whatever their age.
        expect(chosen.slice(0, Math.min(overCount, batchMax))).toEqual(finished.slice(0, Math.min(overCount, batchMax)));
        // The age part: in order, every finished task that ended long enough ago, until the batch is full.
        const due = finished.filter((id, i) => i < overCount || endedAtMs(d.task(id)) <= nowMs - policy.finishedAgeS * 1000);
        expect(chosen).toEqual(due.slice(0, batchMax));
      }),
      { numRuns: 150 },
    );
  });

  it('brings the finished count down to finishedMax and removes every aged one, a batch at a time, through task.remove', () => {
    fc.assert(
      fc.property(storeArb, policyArb, fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 1, max: 7 }), (tasks, policy, nowMs, batchMax) => {
        const d = storeOf(tasks);
        const active = d.store.taskCount - finishedCount(d.store);
        for (let round = 0; round < 100; round++) {
          const ids = selectForRemoval(d.store, policy, nowMs, batchMax);
          if (ids.length === 0) break;
          expect(d.run({ op: 'task.remove', atMs: nowMs, taskIds: ids }).ok).toBe(true);
          for (const id of ids) expect(d.store.task(id)).toBeUndefined();
        }
        expect(finishedCount(d.store)).toBeLessThanOrEqual(policy.finishedMax);
        expect(d.store.taskCount - finishedCount(d.store)).toBe(active);
        for (const s of finalTaskStates) for (const id of d.store.idsIn(s)) expect(endedAtMs(d.task(id))).toBeGreaterThan(nowMs - policy.finishedAgeS * 1000);
      }),
      { numRuns: 100 },
    );
  });
});

describe('task.remove', () => {
  it('forgets only final records, from every list and index; others and unknown ids are skipped', () => {
    const d = storeOf([
      { fate: 'succeeded', endMs: 5000 },
      { fate: 'running', endMs: 0 },
      { fate: 'failed', endMs: 6000 },
      { fate: 'pending', endMs: 0 },
      { fate: 'stopped', endMs: 7000 },
    ]);
    const r = d.run({ op: 'task.remove', atMs: 9000, taskIds: ['t0000', 't0001', 't0002', 't0003', 't0004', 'nope'] });
    expect(r.ok).toBe(true);
    expect(d.store.taskCount).toBe(2);
    expect([...d.store.idsIn('running')]).toEqual(['t0001']);
    expect([...d.store.idsIn('pending')]).toEqual(['t0003']);
    for (const s of finalTaskStates) expect(d.store.countIn(s)).toBe(0);
    expect(d.store.listTasks({ limit: 10 }).items.map((t) => t.id)).toEqual(['t0001', 't0003']);
    expect(d.store.listTasks({ workerId: 'w1', limit: 10 }).items.map((t) => t.id)).toEqual(['t0001']);
    // A snapshot taken after it restores the same store.
    const copy = new TaskDriver();
    copy.sm.restore(d.sm.snapshot());
    expect(copy.store.taskCount).toBe(2);
  });

  it('is checked before the log: at most retentionBatchMax ids, each once, none empty', () => {
    const enc = (taskIds: string[]): Uint8Array => encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'task.remove', atMs: 1, taskIds } });
    expect(validateCommand(enc(['a', 'b']))).toBeNull();
    expect(decodeCommand(enc(['a', 'b'])).cmd).toEqual({ op: 'task.remove', atMs: 1, taskIds: ['a', 'b'] });
    expect(validateCommand(enc([]))).toMatch(/task.remove/);
    expect(validateCommand(enc(['a', 'a']))).toMatch(/task.remove/);
    expect(validateCommand(enc(['']))).toMatch(/task.remove/);
    expect(validateCommand(enc(Array.from({ length: limits.retentionBatchMax + 1 }, (_, i) => `t${i}`)))).toMatch(/task.remove/);
  });
});
