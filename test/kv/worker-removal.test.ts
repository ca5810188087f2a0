// A worker's removal in the state machine (command version 9): `worker.remove` with `revoke` remembers when the
// worker was removed (so that the managers refuse its certificates issued until then), in log order, bounded, and
// through snapshots (whole, lazy, and the sliced capture managers write); an earlier build's removal and snapshot
// remember nothing.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, tryDecodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { TaskDriver } from './task-driver.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Registers `id` and makes it down with nothing placed on it, so that a removal applies. */
function downWorker(d: TaskDriver, id: string, atMs = 1000): void {
  d.register(id, atMs);
  const heartbeats = d.store.allWorkers().find((w) => w.id === id)!.heartbeats;
  d.run({ op: 'worker.state', workerId: id, state: 'unreachable', atMs: atMs + 1, ifHeartbeats: heartbeats, lost: [] });
  d.run({ op: 'worker.state', workerId: id, state: 'down', atMs: atMs + 2, ifHeartbeats: heartbeats, lost: [] });
}

function remove(d: TaskDriver, id: string, atMs: number, revoke = true): ReturnType<TaskDriver['run']> {
  return d.run({ op: 'worker.remove', workerId: id, atMs, ...(revoke ? { revoke: true as const } : {}) });
}

describe('worker.remove with revoke', () => {
  it('remembers when each worker was removed; a refused removal remembers nothing; a later one moves the time on', () => {
    const d = new TaskDriver();
    d.register('w1', 1000);
    expect(remove(d, 'w1', 1500)).toMatchObject({ ok: false, code: 'WORKER_NOT_DOWN' });
    expect(remove(d, 'w9', 1500)).toMatchObject({ ok: false, code: 'WORKER_NOT_FOUND' });
    expect(d.store.workerRemovedAtMs('w1')).toBeUndefined();
    expect(d.store.workerRemovedAtMs('w9')).toBeUndefined();
    downWorker(d, 'w1', 2000);
    expect(remove(d, 'w1', 2500)).toMatchObject({ ok: true, key: 'w1' });
    expect(d.store.workerRemovedAtMs('w1')).toBe(2500);
    // It registers again (a new certificate let it in): the removal stays, so the old certificate stays refused.
    d.register('w1', 3000);
    expect(d.store.worker('w1')).toMatchObject({ state: 'ready' });
    expect(d.store.workerRemovedAtMs('w1')).toBe(2500);
    downWorker(d, 'w1', 4000);
    expect(remove(d, 'w1', 4500)).toMatchObject({ ok: true });
    expect(d.store.workerRemovedAtMs('w1')).toBe(4500);
    // A proposer whose clock is behind never moves it back.
    downWorker(d, 'w1', 5000);
    expect(remove(d, 'w1', 100)).toMatchObject({ ok: true });
    expect(d.store.workerRemovedAtMs('w1')).toBe(4500);
  });

  it('a removal without revoke (an earlier build wrote it) forgets the record and remembers nothing, as it did then', () => {
    const d = new TaskDriver();
    downWorker(d, 'w1');
    expect(remove(d, 'w1', 2500, false)).toMatchObject({ ok: true });
    expect(d.store.worker('w1')).toBeUndefined();
    expect(d.store.workerRemovedAtMs('w1')).toBeUndefined();
    expect(d.store.removedWorkerEntries()).toEqual([]);
  });

  it('keeps at most removedWorkersMax removals, forgetting the oldest first, the same on every manager', () => {
    const d = new TaskDriver(new KvStateMachine({ tasks: { removedWorkersMax: 2 } }));
    for (const [i, id] of ['w1', 'w2', 'w3'].entries()) {
      downWorker(d, id, 1000 * (i + 1));
      remove(d, id, 1000 * (i + 1) + 500);
    }
    expect(d.store.removedWorkerEntries()).toEqual([['w2', 2500], ['w3', 3500]]);
    // Removed again, w2 is the newest now: w3 goes first next.
    downWorker(d, 'w2', 4000);
    remove(d, 'w2', 4500);
    downWorker(d, 'w4', 5000);
    remove(d, 'w4', 5500);
    expect(d.store.removedWorkerEntries()).toEqual([['w2', 4500], ['w4', 5500]]);
  });

  it('survives a snapshot (whole, lazy, and the sliced capture), in order, and goes on alike', async () => {
    const d = new TaskDriver(new KvStateMachine({ tasks: { removedWorkersMax: 3 } }));
    for (const [i, id] of ['w2', 'w1', 'w3'].entries()) {
      downWorker(d, id, 1000 * (i + 1));
      remove(d, id, 1000 * (i + 1) + 500);
    }
    const bytes = d.sm.snapshot();
    const captured = Buffer.concat(await d.sm.captureSnapshotParts()());
    expect(captured.equals(Buffer.from(bytes))).toBe(true);
    expect((packr.unpack(bytes) as { removedWorkers: unknown }).removedWorkers).toEqual([['w2', 1500], ['w1', 2500], ['w3', 3500]]);
    const whole = new KvStateMachine({ tasks: { removedWorkersMax: 3 } });
    whole.restore(bytes);
    const lazy = new KvStateMachine({ tasks: { removedWorkersMax: 3 } });
    (await lazy.prepareRestore(bytes))();
    for (const copy of [whole, lazy]) {
      expect(Buffer.from(copy.snapshot()).equals(Buffer.from(bytes))).toBe(true);
      expect(copy.tasks.workerRemovedAtMs('w1')).toBe(2500);
      expect(copy.tasks.removedWorkerEntries()).toEqual(d.store.removedWorkerEntries());
      // The next removal forgets the oldest (w2) on the copy as on the original.
      const again = new TaskDriver(copy);
      again.index = d.index;
      again.seq = 1000;
      downWorker(again, 'w4', 9000);
      remove(again, 'w4', 9500);
      expect(copy.tasks.removedWorkerEntries()).toEqual([['w1', 2500], ['w3', 3500], ['w4', 9500]]);
    }
  });

  it('a snapshot without removals keeps its earlier shape, and one from an earlier build (none) loads with none', async () => {
    const d = new TaskDriver();
    downWorker(d, 'w1');
    const before = d.sm.snapshot();
    expect(Object.keys(packr.unpack(before) as object)).not.toContain('removedWorkers');
    // A restore replaces what the machine remembered: an old snapshot brings no removal back.
    remove(d, 'w1', 2500);
    expect(d.store.workerRemovedAtMs('w1')).toBe(2500);
    const whole = new KvStateMachine();
    const other = new TaskDriver(whole);
    downWorker(other, 'w5');
    remove(other, 'w5', 1);
    expect(whole.tasks.removedWorkerEntries()).toEqual([['w5', 1]]);
    whole.restore(before);
    expect(whole.tasks.removedWorkerEntries()).toEqual([]);
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(d.sm.snapshot()))();
    (await lazy.prepareRestore(before))();
    expect(lazy.tasks.removedWorkerEntries()).toEqual([]);
    expect(lazy.tasks.worker('w1')).toMatchObject({ state: 'down' });
  });

  it('a malformed removedWorkers section is STORAGE_CORRUPT, and changes nothing', async () => {
    const d = new TaskDriver();
    downWorker(d, 'w1');
    remove(d, 'w1', 2500);
    const good = packr.unpack(d.sm.snapshot()) as Record<string, unknown>;
    for (const bad of [{}, [['w1']], [['w1', 0]], [['w1', 1.5]], [[7, 1]], [['w1', 1], ['w1', 2]]]) {
      const bytes = packr.pack({ ...good, removedWorkers: bad });
      const sm = new KvStateMachine();
      expect(() => sm.restore(bytes)).toThrow(/STORAGE_CORRUPT|removed worker|removedWorkers/);
      await expect(sm.prepareRestore(bytes)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
      expect(sm.tasks.allWorkers()).toEqual([]);
    }
  });

  it('is command version 9 on the wire, round-trips, and refuses another value', () => {
    const cmd: Command = { op: 'worker.remove', workerId: 'w1', atMs: 7, revoke: true };
    const encoded = encodeCommand({ clientId: 'c', seq: 1, cmd });
    expect((packr.unpack(encoded) as { v: number }).v).toBe(9);
    expect(decodeCommand(encoded).cmd).toEqual(cmd);
    const bad = packr.pack({ clientId: 'c', seq: 1, v: 9, cmd: { op: 'worker.remove', workerId: 'w1', atMs: 7, revoke: false } });
    expect(tryDecodeCommand(bad)).toMatchObject({ ok: false });
  });
});
