// A worker id is held by its newest registration's instance: in log order, a heartbeat of an instance another one's
// registration replaced changes nothing (its reports included), the record and its snapshot keep the instance, and
// entries and snapshots written before instances still apply and load.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { commandVersion, decodeCommand, encodeCommand, type TaskReport } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { TaskDriver } from './task-driver.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const stats = { cpuUtilization: 0.5, memoryTotalBytes: 100, memoryAvailableBytes: 50, diskFreeBytes: 10, runningTasks: 1 };

function registered(d: TaskDriver, instance: string | undefined, apiAddress: string, atMs = 1000) {
  return d.run({ op: 'worker.register', workerId: 'w1', apiAddress, runtime: 'process', atMs, ...(instance === undefined ? {} : { instance }) });
}

function beat(d: TaskDriver, instance: string | undefined, reports: TaskReport[] = [], atMs = 5000) {
  return d.run({ op: 'worker.heartbeat', workerId: 'w1', atMs, stats, reports, ...(instance === undefined ? {} : { instance }) });
}

/** t1 running on w1 at attempt 1. */
function withRunningTask(d: TaskDriver): void {
  d.submit('t1');
  d.place('t1', 'w1');
  d.report({ taskId: 't1', state: 'running' });
}

describe('worker instances in the task store', () => {
  it('the newest registration holds the id: a heartbeat of the instance it replaced is refused and applies nothing, reports included', () => {
    const d = new TaskDriver();
    registered(d, 'aaaaaaaaaaaa', '127.0.23.11:9001');
    withRunningTask(d);
    // Another process registers the id from another data directory while the first is cut off: accepted at once.
    expect(registered(d, 'bbbbbbbbbbbb', '127.0.23.21:9001', 2000)).toMatchObject({ ok: true });
    expect(d.store.worker('w1')).toMatchObject({ apiAddress: '127.0.23.21:9001', state: 'ready', instance: 'bbbbbbbbbbbb' });
    const before = d.store.storedWorker('w1')!;
    // The first one comes back: its heartbeat says its copy of t1 ended.
    const ended: TaskReport = { taskId: 't1', workerId: 'w1', attempt: 1, term: 2, state: 'stopped', containerId: 'c1', exitCode: 143, error: null, retryAtMs: 0 };
    const refused = beat(d, 'aaaaaaaaaaaa', [ended], 9000);
    expect(refused).toMatchObject({ ok: false, code: 'WORKER_REPLACED' });
    expect(refused.ok ? '' : refused.message).toContain('worker w1 is registered by another instance now (bbbbbbbbbbbb, at 127.0.23.21:9001)');
    expect(d.store.storedWorker('w1')).toEqual(before);
    expect(d.task('t1')).toMatchObject({ state: 'running', attempt: 1 });
    // The holder's heartbeat is taken.
    expect(beat(d, 'bbbbbbbbbbbb', [], 9000)).toMatchObject({ ok: true });
    expect(d.store.storedWorker('w1')!.lastHeartbeatAtMs).toBe(9000);
  });

  it('a restart of the same instance at a new address is a registration like any other, at once', () => {
    const d = new TaskDriver();
    registered(d, 'aaaaaaaaaaaa', '127.0.23.11:9001');
    expect(registered(d, 'aaaaaaaaaaaa', '127.0.23.12:9001', 1500)).toMatchObject({ ok: true });
    expect(d.store.worker('w1')).toMatchObject({ apiAddress: '127.0.23.12:9001', state: 'ready', instance: 'aaaaaaaaaaaa' });
    expect(beat(d, 'aaaaaaaaaaaa')).toMatchObject({ ok: true });
  });

  it('workers that predate instances are never refused, and their registration leaves the id held by none', () => {
    const d = new TaskDriver();
    registered(d, undefined, '127.0.23.11:9001');
    expect(beat(d, undefined)).toMatchObject({ ok: true });
    expect(beat(d, 'aaaaaaaaaaaa')).toMatchObject({ ok: true });
    registered(d, 'aaaaaaaaaaaa', '127.0.23.11:9001');
    expect(beat(d, undefined)).toMatchObject({ ok: true });
    registered(d, undefined, '127.0.23.11:9001');
    expect(d.store.worker('w1')!.instance).toBeUndefined();
    expect(beat(d, 'bbbbbbbbbbbb')).toMatchObject({ ok: true });
  });

  it('snapshots keep the instance (both restore paths), and rows written before instances still load', async () => {
    const d = new TaskDriver();
    registered(d, 'aaaaaaaaaaaa', '127.0.23.11:9001');
    d.run({ op: 'worker.register', workerId: 'w2', apiAddress: '127.0.23.12:9001', runtime: 'process', atMs: 1000, instance: 'cccccccccccc', labels: { zone: 'a' } });
    d.register('w3');
    const snap = d.sm.snapshot();
    const copy = new KvStateMachine();
    copy.restore(snap);
    expect(copy.tasks.storedWorker('w1')!.instance).toBe('aaaaaaaaaaaa');
    expect(copy.tasks.storedWorker('w2')).toMatchObject({ instance: 'cccccccccccc', labels: { zone: 'a' } });
    expect(copy.tasks.storedWorker('w3')!.instance).toBeUndefined();
    expect(Buffer.from(copy.snapshot()).equals(Buffer.from(snap))).toBe(true);
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(snap, async () => {}))();
    expect(lazy.tasks.storedWorker('w1')!.instance).toBe('aaaaaaaaaaaa');
    // The fenced-off instance is refused after a restore too.
    const after = new TaskDriver(lazy);
    [after.index, after.seq] = [d.index, d.seq];
    expect(beat(after, 'bbbbbbbbbbbb')).toMatchObject({ ok: false, code: 'WORKER_REPLACED' });

    // A snapshot from before instances (a worker without one is written as then: 8 fields, 9 with labels) loads.
    const old = new TaskDriver();
    old.register('w3');
    const oldCopy = new KvStateMachine();
    oldCopy.restore(old.sm.snapshot());
    expect(oldCopy.tasks.storedWorker('w3')).toMatchObject({ id: 'w3', state: 'ready' });
    expect(oldCopy.tasks.storedWorker('w3')!.instance).toBeUndefined();
  });

  it('commands: an instance makes a registration or heartbeat version 5; one without is written and decoded as before', () => {
    const versionOf = (bytes: Uint8Array) => (packr.unpack(bytes) as { v: number }).v;
    const plain = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'worker.register', workerId: 'w1', apiAddress: 'h:1', runtime: 'process', atMs: 1 } });
    expect(versionOf(plain)).toBe(1);
    expect(decodeCommand(plain).cmd).toEqual({ op: 'worker.register', workerId: 'w1', apiAddress: 'h:1', runtime: 'process', atMs: 1 });
    // An entry of an older manager, written before `v` existed, still decodes.
    expect(decodeCommand(packr.pack({ clientId: 'c', seq: 1, cmd: { op: 'worker.heartbeat', workerId: 'w1', atMs: 1, stats, reports: [] } })).cmd).not.toHaveProperty('instance');
    const fenced = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'worker.heartbeat', workerId: 'w1', atMs: 1, stats, reports: [], instance: 'aaaaaaaaaaaa' } });
    expect(versionOf(fenced)).toBe(5);
    expect(decodeCommand(fenced).cmd).toMatchObject({ op: 'worker.heartbeat', instance: 'aaaaaaaaaaaa' });
    expect(versionOf(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'worker.register', workerId: 'w1', apiAddress: 'h:1', runtime: 'process', atMs: 1, labels: {}, instance: 'aaaaaaaaaaaa' } }))).toBe(5);
    // A bad instance never enters the log.
    expect(() => decodeCommand(packr.pack({ clientId: 'c', seq: 1, v: 5, cmd: { op: 'worker.register', workerId: 'w1', apiAddress: 'h:1', runtime: 'process', atMs: 1, instance: '' } }))).toThrow(/malformed command: worker.register: \/instance/);
  });
});

describe("the engine of a worker's registration", () => {
  const engine = 'docker:0f5c3ab1-7d2e-4c65-9a1b-2e8d9c0f4a77';
  const register = (d: TaskDriver, instance: string, apiAddress: string, extra: { engine?: string } = {}, atMs = 1000) =>
    d.run({ op: 'worker.register', workerId: 'w1', apiAddress, runtime: 'docker', atMs, instance, ...extra });

  it('is kept with the record; a registration without it (another instance, or the same one restarted) clears it', () => {
    const d = new TaskDriver();
    register(d, 'aaaaaaaaaaaa', '127.0.23.11:9001', { engine });
    expect(d.store.storedWorker('w1')).toMatchObject({ instance: 'aaaaaaaaaaaa', engine });
    // An instance that could not ask its engine (it did not answer) holds the id with none: nobody is told a stale one.
    register(d, 'bbbbbbbbbbbb', '127.0.23.21:9001', {}, 2000);
    expect(d.store.storedWorker('w1')).toMatchObject({ instance: 'bbbbbbbbbbbb' });
    expect(d.store.storedWorker('w1')!.engine).toBeUndefined();
    register(d, 'bbbbbbbbbbbb', '127.0.23.21:9001', { engine: 'docker:other' }, 3000);
    expect(d.store.storedWorker('w1')!.engine).toBe('docker:other');
  });

  it('commands: an engine makes a registration version 11 (the newest); one without keeps its version; the schema is strict', () => {
    const versionOf = (bytes: Uint8Array) => (packr.unpack(bytes) as { v: number }).v;
    const cmd = { op: 'worker.register', workerId: 'w1', apiAddress: 'h:1', runtime: 'docker', atMs: 1, instance: 'aaaaaaaaaaaa' } as const;
    expect(commandVersion).toBe(12);
    const withEngine = encodeCommand({ clientId: 'c', seq: 1, cmd: { ...cmd, engine } });
    expect(versionOf(withEngine)).toBe(11);
    expect(decodeCommand(withEngine).cmd).toEqual({ ...cmd, engine });
    const without = encodeCommand({ clientId: 'c', seq: 1, cmd });
    expect(versionOf(without)).toBe(5);
    expect(decodeCommand(without).cmd).toEqual(cmd);
    // An engine never enters the log empty, too long or as anything but a string.
    for (const bad of ['', 'x'.repeat(129), 7]) {
      expect(() => decodeCommand(packr.pack({ clientId: 'c', seq: 1, v: 11, cmd: { ...cmd, engine: bad } }))).toThrow(/malformed command: worker.register: \/engine/);
    }
    // Nor on a heartbeat: the engine is the registration's alone.
    const beat = { op: 'worker.heartbeat', workerId: 'w1', atMs: 1, stats, reports: [], instance: 'aaaaaaaaaaaa', engine };
    expect(() => decodeCommand(packr.pack({ clientId: 'c', seq: 1, v: 11, cmd: beat }))).toThrow(/malformed command: worker.heartbeat/);
  });

  it('snapshots keep it (both restore paths) beside every other optional field, and rows without one keep their shape', async () => {
    const d = new TaskDriver();
    register(d, 'aaaaaaaaaaaa', '127.0.23.11:9001', { engine });
    // No instance, drained, labels: the fields before the engine are written as null where absent.
    d.run({ op: 'worker.register', workerId: 'w2', apiAddress: '127.0.23.12:9001', runtime: 'docker', atMs: 1000, engine: 'docker:two' });
    d.run({ op: 'worker.register', workerId: 'w3', apiAddress: '127.0.23.13:9001', runtime: 'docker', atMs: 1000, instance: 'cccccccccccc', engine: 'docker:three', labels: { zone: 'a' } });
    d.run({ op: 'worker.availability', workerId: 'w3', availability: 'drain', atMs: 1500 });
    d.run({ op: 'worker.register', workerId: 'w4', apiAddress: '127.0.23.14:9001', runtime: 'process', atMs: 1000, instance: 'dddddddddddd' });
    d.run({ op: 'worker.availability', workerId: 'w4', availability: 'pause', atMs: 1500 });
    d.register('w5');
    const snap = d.sm.snapshot();
    const whole = new KvStateMachine();
    whole.restore(snap);
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(snap, async () => {}))();
    for (const copy of [whole, lazy]) {
      expect(copy.tasks.allWorkers()).toEqual(d.store.allWorkers());
      expect(copy.tasks.storedWorker('w1')).toMatchObject({ instance: 'aaaaaaaaaaaa', engine });
      expect(copy.tasks.storedWorker('w2')).toMatchObject({ engine: 'docker:two' });
      expect(copy.tasks.storedWorker('w2')).not.toHaveProperty('instance');
      expect(copy.tasks.storedWorker('w2')).not.toHaveProperty('availability');
      expect(copy.tasks.storedWorker('w3')).toMatchObject({ instance: 'cccccccccccc', engine: 'docker:three', labels: { zone: 'a' }, availability: 'drain' });
      expect(copy.tasks.storedWorker('w4')).toMatchObject({ instance: 'dddddddddddd', availability: 'pause' });
      for (const id of ['w4', 'w5']) expect(copy.tasks.storedWorker(id)).not.toHaveProperty('engine');
      expect(Buffer.from(copy.snapshot()).equals(Buffer.from(snap))).toBe(true);
    }
    // A registration without one leaves the record a store that never saw one holds, and so writes its row as before.
    const before = new TaskDriver();
    before.run({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.23.11:9001', runtime: 'docker', atMs: 1000, instance: 'aaaaaaaaaaaa' });
    const after = new TaskDriver();
    after.run({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.23.11:9001', runtime: 'docker', atMs: 500, instance: 'aaaaaaaaaaaa', engine });
    after.run({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.23.11:9001', runtime: 'docker', atMs: 1000, instance: 'aaaaaaaaaaaa' });
    expect(after.store.storedWorker('w1')).toEqual({ ...before.store.storedWorker('w1'), registeredAtMs: 500, heartbeats: 2 });
    const beforeRow = new KvStateMachine();
    beforeRow.restore(after.sm.snapshot());
    expect(beforeRow.tasks.storedWorker('w1')).not.toHaveProperty('engine');
  });
});
