// KvTable: a capture sees the table as it was when it began, and a compaction turns records into rows a slice at a
// time, with reads and writes between its slices answering as if it had not run (the state machine's property test,
// lazy-restore.property.test.ts, checks the same through whole snapshots).
import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/kv/commands.js';
import { KvTable, type KvRecord } from '../../src/kv/kv-table.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { SlicedPacker } from '../../src/kv/sliced-pack.js';
import { Packr } from 'msgpackr';

const rec = (key: string, value: string, version: number): KvRecord => ({ key, value, version });

/** Packs the capture's records as the state machine does, and answers the bytes and where each row starts. */
async function packed(capture: ReturnType<KvTable['capture']>, keys: string[]): Promise<{ whole: Uint8Array; starts: number[] }> {
  const p = new SlicedPacker(new Packr({ useRecords: false, moreTypes: false }), async () => {});
  const starts: number[] = [];
  await p.arrayOf(
    keys,
    3,
    (key) => {
      const v = capture.valueOf(key)!;
      return typeof v === 'number' ? capture.rowOf(v) : null;
    },
    (key) => {
      const r = capture.valueOf(key) as KvRecord;
      return [r.key, r.value, r.version];
    },
    starts,
  );
  return { whole: await p.bytes(), starts };
}

describe('KvTable', () => {
  it('a capture answers what each key it held when it began held then, whatever is written after', () => {
    const t = new KvTable();
    t.set('a', rec('a', '1', 1));
    t.set('b', rec('b', '2', 2));
    const c = t.capture();
    t.set('a', rec('a', 'new', 3));
    t.delete('b');
    t.set('c', rec('c', '3', 4));
    t.set('a', rec('a', 'newer', 5));
    expect(c.valueOf('a')).toEqual(rec('a', '1', 1));
    expect(c.valueOf('b')).toEqual(rec('b', '2', 2));
    // A key added since: what the table holds (no capture reads it, and none kept anything for it).
    expect(c.valueOf('c')).toEqual(rec('c', '3', 4));
    expect(t.get('a')).toEqual(rec('a', 'newer', 5));
    c.release();
  });

  it('compacts a slice at a time; reads and writes between slices see the same records, and the old rows are let go', async () => {
    const t = new KvTable();
    const keys = Array.from({ length: 100 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    keys.forEach((k, i) => t.set(k, rec(k, `v${i}`, i + 1)));
    // Twice, so the second compaction moves every row from one side (buffer) to the other.
    for (const round of [1, 2]) {
      const c = t.capture();
      const { whole, starts } = await packed(c, keys);
      let yields = 0;
      const yieldFn = async (): Promise<void> => {
        yields++;
        // Between slices: a record read, one replaced, one deleted and added back.
        const k = keys[yields * 10]!;
        expect(t.get(k)).toEqual(rec(k, `v${yields * 10}`, yields * 10 + 1));
        t.set(keys[yields * 10 + 1]!, rec(keys[yields * 10 + 1]!, `r${round}`, 1000));
        t.delete(keys[yields * 10 + 2]!);
        t.set(keys[yields * 10 + 2]!, rec(keys[yields * 10 + 2]!, `v${yields * 10 + 2}`, yields * 10 + 3));
      };
      const turned = await t.compact(c, keys, whole, starts, yieldFn, 10);
      expect(yields).toBe(9);
      // Every record not written since the capture became a row (those read between slices included, when their slice came later).
      expect(turned).toBe(100 - 2 * 9);
      expect(t.rowCount).toBe(turned);
      for (const [i, k] of keys.entries()) {
        const replaced = i % 10 === 1 && i >= 11;
        expect(t.get(k)).toEqual(replaced ? rec(k, `r${round}`, 1000) : rec(k, `v${i}`, i + 1));
      }
      expect(t.rowCount).toBe(0);
      // Written back as they were, for the next round.
      keys.forEach((k, i) => t.set(k, rec(k, `v${i}`, i + 1)));
    }
  });

  it('keeps the buffer a compaction writes into while it runs, even when every row written so far was read back', async () => {
    const t = new KvTable();
    const keys = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    keys.forEach((k, i) => t.set(k, rec(k, `v${i}`, i + 1)));
    const c = t.capture();
    const { whole, starts } = await packed(c, keys);
    let done = 0;
    // Between slices of 3: every row made so far is read back (decoded), so none is left on the side being written.
    await t.compact(c, keys, whole, starts, async () => {
      done += 3;
      for (const k of keys.slice(0, done)) t.get(k);
      expect(t.rowCount).toBe(0);
    }, 3);
    expect(t.rowCount).toBe(3);
    keys.forEach((k, i) => expect(t.get(k)).toEqual(rec(k, `v${i}`, i + 1)));
  });

  it('a compaction that starts while another runs does nothing, and releases its capture', async () => {
    const t = new KvTable();
    const keys = ['a', 'b', 'c', 'd'];
    for (const k of keys) t.set(k, rec(k, k, 1));
    const first = t.capture();
    const second = t.capture();
    const a = await packed(first, keys);
    const b = await packed(second, keys);
    let resume: () => void = () => {};
    const running = t.compact(first, keys, a.whole, a.starts, () => new Promise<void>((r) => (resume = r)), 1);
    expect(await t.compact(second, keys, b.whole, b.starts, async () => {}, 1)).toBe(0);
    // The second capture no longer keeps what is replaced; the first still does.
    t.set('d', rec('d', 'new', 2));
    expect(second.valueOf('d')).toEqual(rec('d', 'new', 2));
    expect(first.valueOf('d')).toEqual(rec('d', 'd', 1));
    for (let i = 0; i < 3; i++) {
      resume();
      await new Promise((r) => setImmediate(r));
    }
    expect(await running).toBe(3);
    expect(keys.map((k) => t.get(k)!.value)).toEqual(['a', 'b', 'c', 'new']);
  });
});

describe('KvStateMachine snapshots of a large state', () => {
  it('of a few large values: the capture is cheap and the encoding gives the loop back about every MiB, not once for all', async () => {
    let yields = 0;
    const sm = new KvStateMachine({ snapshotYield: () => new Promise<void>((resolve) => setImmediate(() => (yields++, resolve()))) });
    const big = 'x'.repeat(900_000);
    for (let i = 1; i <= 40; i++) sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `big/${i}`, value: `${big}${i}` } }));
    const expected = Buffer.from(sm.snapshot());
    const encode = sm.captureSnapshotParts();
    // Nothing packed yet when the capture answers; then a slice ends once it holds 1 MiB: two values of 900 KB.
    expect(yields).toBe(0);
    const parts = await encode();
    expect(yields).toBeGreaterThanOrEqual(20);
    expect(Buffer.concat(parts).equals(expected)).toBe(true);
  });


  it('give the event loop back while they encode and while they compact, and answer the state as of the capture', async () => {
    let yields = 0;
    const sm = new KvStateMachine({ snapshotYield: () => new Promise<void>((resolve) => setImmediate(() => (yields++, resolve()))), compactSliceKeys: 1000 });
    const n = 50_000;
    const put = (i: number, value: string): void => void sm.apply(i, encodeCommand({ clientId: 'c', seq: i, cmd: { op: 'put', key: `key/${String(i % n).padStart(6, '0')}`, value } }));
    for (let i = 1; i <= n; i++) put(i, 'x'.repeat(40));
    // Twice: the first compacts objects into rows, the second moves rows from one buffer to the other.
    for (let round = 0; round < 2; round++) {
      const expected = Buffer.from(sm.snapshot());
      yields = 0;
      const encode = sm.captureSnapshotParts();
      let timerRan = false;
      setTimeout(() => (timerRan = true), 0);
      // Written while the snapshot is encoded: not in it.
      put(n + 1 + round, `late ${round}`);
      const parts = await encode();
      expect(timerRan).toBe(true);
      // 50 slices of 1,024 records packed, then 50 of 1,000 compacted.
      expect(yields).toBeGreaterThanOrEqual(Math.ceil(n / 1024) + n / 1000 - 1);
      expect(Buffer.concat(parts).equals(expected)).toBe(true);
    }
    expect(sm.get('key/000001')).toEqual({ key: 'key/000001', value: 'late 0', version: n + 1 });
    expect(sm.get('key/000002')).toEqual({ key: 'key/000002', value: 'late 1', version: n + 2 });
    expect(sm.get('key/000003')).toEqual({ key: 'key/000003', value: 'x'.repeat(40), version: 3 });
  });
});
