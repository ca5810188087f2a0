// KvStateMachine.prepareRestore: a snapshot decoded and indexed a slice at a time off to the side, then swapped in;
// the same state as restore(), the event loop given back between slices, the live state untouched until the swap.
import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { sleep } from '../support/wait.js';

/** A state machine holding `n` keys and `n` tasks in several states, two workers and idempotency keys. */
function filled(n: number): KvStateMachine {
  const sm = new KvStateMachine();
  let index = 0;
  let seq = 0;
  const run = (cmd: Command): void => {
    seq++;
    const r = sm.apply(++index, encodeCommand({ clientId: 'c1', seq, ...(seq > 1 ? { ackSeq: seq - 1 } : {}), cmd }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
  };
  for (let i = 0; i < n; i++) run({ op: 'put', key: `key-${String(i).padStart(6, '0')}`, value: `value ${i} ${'v'.repeat(i % 40)}` });
  for (const w of ['w1', 'w2']) run({ op: 'worker.register', workerId: w, apiAddress: `127.0.0.1:${w === 'w1' ? 1 : 2}`, runtime: 'memory', atMs: 1 });
  const id = (i: number): string => `t${String(i).padStart(17, '0')}`;
  for (let b = 0; b < n; b += 100) {
    const tasks = Array.from({ length: Math.min(100, n - b) }, (_, i) => ({ taskId: id(b + i), spec: { name: `job-${b + i}`, image: 'busybox', command: ['true'], env: { I: String(b + i) } }, idempotencyKey: `k ${b + i}` }));
    run({ op: 'task.submitBatch', atMs: 1000 + b, tasks });
  }
  // A third of the tasks placed, and half of those finished.
  const placed = Array.from({ length: Math.floor(n / 3) }, (_, i) => ({ taskId: id(i), attempt: 1, workerId: i % 2 === 0 ? 'w1' : 'w2' }));
  run({ op: 'task.place', term: 1, atMs: 5000, cursor: 'w2', placements: placed });
  const reports = placed.slice(0, Math.floor(placed.length / 2)).map((p) => ({ taskId: p.taskId, workerId: p.workerId, attempt: 1, term: 1, state: 'succeeded' as const, containerId: 'c', exitCode: 0, error: null, retryAtMs: 0 }));
  run({ op: 'task.report', atMs: 6000, reports });
  return sm;
}

describe('KvStateMachine.prepareRestore (a snapshot installed in slices)', () => {
  it('gives exactly the state restore() gives, and reads the same afterwards', async () => {
    const original = filled(3000);
    const bytes = original.snapshot();
    const sliced = new KvStateMachine();
    const swap = await sliced.prepareRestore(bytes);
    swap();
    const whole = new KvStateMachine();
    whole.restore(bytes);
    expect(Buffer.from(sliced.snapshot()).equals(Buffer.from(whole.snapshot()))).toBe(true);
    expect(Buffer.from(sliced.snapshot()).equals(Buffer.from(bytes))).toBe(true);
    expect(sliced.appliedIndex).toBe(original.appliedIndex);
    expect(sliced.get('key-000042')).toEqual(original.get('key-000042'));
    expect(sliced.tasks.countIn('succeeded')).toBe(original.tasks.countIn('succeeded'));
    expect(sliced.tasks.activeCount('w1')).toBe(original.tasks.activeCount('w1'));
    expect(sliced.tasks.usage.of('default')).toEqual(original.tasks.usage.of('default'));
  });

  it('packs a capture into one buffer, the unread rows copied in as they are, and compacts the records into it', async () => {
    const bytes = filled(3000).snapshot();
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(bytes))();
    const parts = await lazy.captureSnapshotParts()();
    expect(parts).toHaveLength(1);
    expect(Buffer.from(parts[0]!).equals(Buffer.from(bytes))).toBe(true);
    // A record read in the middle of a section is packed again, to the same bytes; then the records live in the
    // capture's buffer (compacted), and the next capture is the same bytes again.
    expect(lazy.get('key-001500')).toEqual(filled(3000).get('key-001500'));
    const again = await lazy.captureSnapshotParts()();
    expect(Buffer.from(again[0]!).equals(Buffer.from(bytes))).toBe(true);
    expect(lazy.get('key-001500')).toEqual(filled(3000).get('key-001500'));
    expect(Buffer.from(lazy.snapshot()).equals(Buffer.from(bytes))).toBe(true);
  });

  it('keeps records nothing read as their bytes: a capture writes them out as they came, and reading or changing them matches restore()', async () => {
    const original = filled(3000);
    const bytes = original.snapshot();
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(bytes))();
    // Nothing read yet: the capture is the snapshot it came from, byte for byte.
    expect(Buffer.from(await lazy.captureSnapshot()()).equals(Buffer.from(bytes))).toBe(true);
    const whole = new KvStateMachine();
    whole.restore(bytes);
    // Some records read, some changed (a put over a kept key, a task stopped, a retried submission), some forgotten.
    let index = original.appliedIndex;
    let seq = 100;
    const run = (cmd: Command): void => {
      seq++;
      const [a, b] = [lazy, whole].map((sm) => sm.apply(index + 1, encodeCommand({ clientId: 'c2', seq, cmd })));
      expect(a).toEqual(b);
      expect(a!.ok, JSON.stringify(a)).toBe(true);
      index++;
    };
    expect(lazy.get('key-000007')).toEqual(whole.get('key-000007'));
    expect(lazy.tasks.task('t00000000000000042')).toEqual(whole.tasks.task('t00000000000000042'));
    run({ op: 'put', key: 'key-000100', value: 'new', ifVersion: whole.get('key-000100')!.version });
    run({ op: 'delete', key: 'key-000200' });
    run({ op: 'task.stop', taskId: 't00000000000002999', atMs: 9000 });
    run({ op: 'task.submit', taskId: 't99999999999999999', spec: { name: 'job-7', image: 'busybox', command: ['true'], env: { I: '7' } }, atMs: 9001, idempotencyKey: 'k 7' });
    run({ op: 'task.remove', taskIds: ['t00000000000000001', 't00000000000000003'], atMs: 9002 });
    expect(lazy.tasks.taskCount).toBe(whole.tasks.taskCount);
    expect(lazy.list('key-0001', { limit: 5 })).toEqual(whole.list('key-0001', { limit: 5 }));
    expect(Buffer.from(await lazy.captureSnapshot()()).equals(Buffer.from(await whole.captureSnapshot()()))).toBe(true);
    expect(Buffer.from(lazy.snapshot()).equals(Buffer.from(whole.snapshot()))).toBe(true);
  });

  it("counts a lazily restored live task's namespace and resources as restore() does", async () => {
    const sm = new KvStateMachine();
    const specs = [
      { name: 'a', image: 'busybox', namespace: 'team-a', resources: { cpus: 0.5, memoryMb: 64 } },
      { name: 'b', image: 'busybox', namespace: 'team-a', resources: { memoryMb: 32 } },
      { name: 'c', image: 'busybox', resources: { cpus: 2 } },
      { name: 'd', image: 'busybox', namespace: 'team-b' },
    ];
    specs.forEach((spec, i) => {
      const r = sm.apply(i + 1, encodeCommand({ clientId: 'c1', seq: i + 1, cmd: { op: 'task.submit', taskId: `t${i}`, spec, atMs: 1 } }));
      expect(r.ok, JSON.stringify(r)).toBe(true);
    });
    const bytes = sm.snapshot();
    const lazy = new KvStateMachine();
    (await lazy.prepareRestore(bytes))();
    for (const ns of ['team-a', 'team-b', 'default']) expect(lazy.tasks.usage.of(ns)).toEqual(sm.tasks.usage.of(ns));
    expect(lazy.tasks.usage.of('team-a')).toEqual({ tasks: 2, cpus: 0.5, memoryMb: 96 });
  });

  it('gives the event loop back between slices: a timer set before it runs while it decodes', async () => {
    const bytes = filled(6000).snapshot();
    const target = new KvStateMachine();
    let yields = 0;
    let timerRanBeforeSwap = false;
    setTimeout(() => (timerRanBeforeSwap = true), 0);
    const swap = await target.prepareRestore(bytes, async () => {
      yields++;
      await sleep(0);
    });
    expect(timerRanBeforeSwap).toBe(true);
    // 6,000 kv records, 6,000 task rows and 6,000 idempotency keys scanned (and indexed as they are) in slices of 1,024.
    expect(yields).toBeGreaterThanOrEqual(Math.ceil(6000 / 1024) * 3);
    swap();
    expect(target.tasks.taskCount).toBe(6000);
  });

  it('leaves the live state alone until the swap', async () => {
    const target = filled(50);
    const before = target.snapshot();
    const swap = await target.prepareRestore(filled(500).snapshot());
    expect(Buffer.from(target.snapshot()).equals(Buffer.from(before))).toBe(true);
    swap();
    expect(target.tasks.taskCount).toBe(500);
  });

  it('rejects malformed bytes with STORAGE_CORRUPT and changes nothing', async () => {
    const target = filled(20);
    const before = target.snapshot();
    const good = filled(200).snapshot();
    const bad = [new Uint8Array([1, 2, 3]), good.subarray(0, good.length - 7), Buffer.concat([good, Buffer.from([0xc0])])];
    for (const bytes of bad) {
      await expect(target.prepareRestore(bytes)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    }
    expect(Buffer.from(target.snapshot()).equals(Buffer.from(before))).toBe(true);
  });
});
