// The RaftStorage conformance suite: every implementation (memory, classic-level) runs these same tests, the way
// hono's router/common.case.test.ts is run by each router.
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/lib/assert.js';
import { logIndex, nodeId, term, type LogIndex } from '../../src/lib/ids.js';
import type { Entry, EntryType, HardState, SnapshotMeta } from '../../src/raft/types.js';
import type { MetaStore, RaftStorage } from '../../src/storage/types.js';

export interface StorageFixture {
  storage: RaftStorage;
  /** Closes the current storage and opens a new one over the same data, as a restarted node would. */
  reopen(): Promise<RaftStorage>;
  /** Closes whatever is open and removes the data. */
  cleanup(): Promise<void>;
}

const types: readonly EntryType[] = ['command', 'noop', 'config'];

/** Entries at indexes [from, from + count) with the given term; data varies in size, including empty. */
export function makeEntries(from: number, count: number, t: number, tag = 'x'): Entry[] {
  return Array.from({ length: count }, (_, i) => ({
    term: term(t),
    index: logIndex(from + i),
    type: types[(from + i) % 3]!,
    data: new TextEncoder().encode(`${tag}${from + i}`.repeat((from + i) % 4)),
  }));
}

/** Entries as plain values, so Buffer and Uint8Array data compare equal. */
const plain = (entries: readonly Entry[]): unknown[] =>
  entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: Buffer.from(e.data).toString('hex') }));

const hs = (t: number, vote: string | null, commit: number): HardState => ({
  term: term(t),
  vote: vote === null ? null : nodeId(vote),
  commit: logIndex(commit),
});

const idx = (n: number): LogIndex => logIndex(n);

/** A snapshot's meta at `index` in term `t`, with a configuration that varies with the index. */
export const snapMeta = (index: number, t: number): SnapshotMeta => ({
  index: logIndex(index),
  term: term(t),
  voters: [nodeId('n1'), nodeId('n2'), nodeId(`v${index}`)],
  learners: index % 2 === 0 ? [nodeId('l1')] : [],
});

/** `sizeBytes` of snapshot data that differ with `seed`. */
export function snapData(sizeBytes: number, seed = 1): Uint8Array {
  const data = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) data[i] = (i * 31 + seed * 7) & 0xff;
  return data;
}

const sameBytes = (a: Uint8Array | null | undefined, b: Uint8Array): boolean =>
  a != null && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

export function runRaftStorageConformance(name: string, open: () => Promise<StorageFixture>): void {
  describe(`RaftStorage conformance: ${name}`, () => {
    let fx: StorageFixture;
    let s: RaftStorage;

    beforeEach(async () => {
      fx = await open();
      s = fx.storage;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    async function expectLog(storage: RaftStorage, entries: readonly Entry[], hardState: HardState): Promise<void> {
      const loaded = await storage.load();
      expect(loaded.hardState).toEqual(hardState);
      expect(loaded.applied).toBe(0);
      expect(plain(loaded.entries)).toEqual(plain(entries));
      expect(await storage.hardState()).toEqual(hardState);
      expect(await storage.firstIndex()).toBe(entries[0]?.index ?? 1);
      expect(await storage.lastIndex()).toBe(entries.at(-1)?.index ?? 0);
    }

    it('loads an empty state from a fresh store', async () => {
      await expectLog(s, [], hs(0, null, 0));
      expect(await s.getRange(idx(1), idx(1))).toEqual([]);
    });

    it('roundtrips the hard state and entries of every type', async () => {
      const entries = makeEntries(1, 7, 1);
      await s.save(hs(1, 'n1', 0), entries);
      await expectLog(s, entries, hs(1, 'n1', 0));
    });

    it('keeps the hard state when a save has none, and the log when a save has no entries', async () => {
      const entries = makeEntries(1, 3, 2);
      await s.save(hs(2, 'n2', 1), entries);
      const more = makeEntries(4, 2, 2);
      await s.save(null, more);
      await expectLog(s, [...entries, ...more], hs(2, 'n2', 1));
      await s.save(hs(3, null, 5), []);
      await expectLog(s, [...entries, ...more], hs(3, null, 5));
    });

    it('replaces the stored suffix when a save starts inside the log', async () => {
      await s.save(hs(1, 'n1', 2), makeEntries(1, 10, 1));
      const replacement = makeEntries(6, 2, 2, 'y');
      await s.save(hs(2, 'n2', 2), replacement);
      await expectLog(s, [...makeEntries(1, 5, 1), ...replacement], hs(2, 'n2', 2));
      expect(plain(await s.getRange(idx(5), idx(8)))).toEqual(plain([...makeEntries(5, 1, 1), ...replacement]));
    });

    it('replaces the whole log when a save starts at the first index', async () => {
      await s.save(null, makeEntries(1, 4, 1));
      await s.save(null, makeEntries(1, 2, 3, 'z'));
      await expectLog(s, makeEntries(1, 2, 3, 'z'), hs(0, null, 0));
    });

    it('returns [lo, hi) from getRange and refuses ranges it does not hold', async () => {
      const entries = makeEntries(1, 6, 1);
      await s.save(null, entries);
      expect(plain(await s.getRange(idx(2), idx(5)))).toEqual(plain(entries.slice(1, 4)));
      expect(plain(await s.getRange(idx(1), idx(7)))).toEqual(plain(entries));
      expect(await s.getRange(idx(7), idx(7))).toEqual([]);
      await expect(s.getRange(idx(0), idx(2))).rejects.toBeInstanceOf(AssertionError);
      await expect(s.getRange(idx(5), idx(8))).rejects.toBeInstanceOf(AssertionError);
      await expect(s.getRange(idx(4), idx(3))).rejects.toBeInstanceOf(AssertionError);
    });

    it('refuses a save that would leave a gap or is not contiguous', async () => {
      await s.save(null, makeEntries(1, 3, 1));
      await expect(s.save(null, makeEntries(5, 1, 1))).rejects.toBeInstanceOf(AssertionError);
      const holey = [...makeEntries(4, 1, 1), ...makeEntries(6, 1, 1)];
      await expect(s.save(null, holey)).rejects.toBeInstanceOf(AssertionError);
      await expectLog(s, makeEntries(1, 3, 1), hs(0, null, 0));
    });

    it('keeps what it stored across a reopen, and keeps replacing suffixes correctly after it', async () => {
      await s.save(hs(4, 'n3', 3), makeEntries(1, 8, 4));
      s = await fx.reopen();
      await expectLog(s, makeEntries(1, 8, 4), hs(4, 'n3', 3));
      await s.save(hs(5, null, 3), makeEntries(4, 1, 5));
      s = await fx.reopen();
      await expectLog(s, [...makeEntries(1, 3, 4), ...makeEntries(4, 1, 5)], hs(5, null, 3));
    });

    it('stores a copy: reusing the caller buffer after a save does not change the log', async () => {
      const data = new Uint8Array([1, 2, 3]);
      await s.save(null, [{ term: term(1), index: idx(1), type: 'command', data }]);
      data[0] = 9;
      const [e] = await s.getRange(idx(1), idx(2));
      expect(Array.from(e!.data)).toEqual([1, 2, 3]);
    });

    it('applies concurrent saves in call order', async () => {
      const a = s.save(hs(1, 'n1', 0), makeEntries(1, 5, 1));
      const b = s.save(hs(2, 'n2', 0), makeEntries(3, 1, 2));
      const c = s.save(null, makeEntries(4, 2, 2));
      const range = s.getRange(idx(1), idx(6));
      await Promise.all([a, b, c]);
      const expected = [...makeEntries(1, 2, 1), ...makeEntries(3, 1, 2), ...makeEntries(4, 2, 2)];
      expect(plain(await range)).toEqual(plain(expected));
      await expectLog(s, expected, hs(2, 'n2', 0));
    });

    it('saves 10,000 entries in one batch and reads them back', async () => {
      const entries = makeEntries(1, 10_000, 1);
      await s.save(hs(1, 'n1', 9_000), entries);
      s = await fx.reopen();
      await expectLog(s, entries, hs(1, 'n1', 9_000));
      expect(plain(await s.getRange(idx(4_000), idx(4_100)))).toEqual(plain(entries.slice(3_999, 4_099)));
      await s.save(null, makeEntries(9_001, 1, 2));
      expect(await s.lastIndex()).toBe(9_001);
    });

    describe('snapshots', () => {
      interface Expected {
        snapshot: { meta: SnapshotMeta; data: Uint8Array } | null;
        entries: readonly Entry[];
        hardState: HardState;
        first: number;
        last: number;
      }

      /** What load(), the snapshot calls and the bounds all say, checked against what they should say. */
      async function expectState(storage: RaftStorage, want: Expected): Promise<void> {
        const loaded = await storage.load();
        expect(loaded.hardState).toEqual(want.hardState);
        expect(loaded.applied).toBe(0);
        expect(plain(loaded.entries)).toEqual(plain(want.entries));
        expect(await storage.firstIndex()).toBe(want.first);
        expect(await storage.lastIndex()).toBe(want.last);
        if (want.snapshot === null) {
          expect('snapshot' in loaded).toBe(false);
          expect(loaded.snapshotData).toBeNull();
          expect(storage.snapshotInfo()).toBeNull();
          expect(await storage.readSnapshot()).toBeNull();
          return;
        }
        const { meta, data } = want.snapshot;
        expect(loaded.snapshot).toEqual(meta);
        expect(sameBytes(loaded.snapshotData, data)).toBe(true);
        const info = { meta, sizeBytes: data.length, crc32: crc32(data) };
        expect(storage.snapshotInfo()).toEqual(info);
        const read = await storage.readSnapshot();
        expect(read?.info).toEqual(info);
        expect(sameBytes(read?.data, data)).toBe(true);
      }

      it('has no snapshot on a fresh store', async () => {
        await expectState(s, { snapshot: null, entries: [], hardState: hs(0, null, 0), first: 1, last: 0 });
      });

      it('makes a saved snapshot current and compacts the entries through compactThrough, keeping the rest', async () => {
        const entries = makeEntries(1, 10, 1);
        await s.save(hs(1, 'n1', 9), entries);
        const data = snapData(3000);
        await s.saveSnapshot(snapMeta(8, 1), data, idx(5));
        await expectState(s, { snapshot: { meta: snapMeta(8, 1), data }, entries: entries.slice(5), hardState: hs(1, 'n1', 9), first: 6, last: 10 });
        expect(plain(await s.getRange(idx(6), idx(11)))).toEqual(plain(entries.slice(5)));
        await expect(s.getRange(idx(5), idx(7))).rejects.toBeInstanceOf(AssertionError);
        await expect(s.getRange(idx(1), idx(2))).rejects.toBeInstanceOf(AssertionError);
      });

      it('stores a copy of the snapshot: reusing the caller buffers after a save changes nothing', async () => {
        await s.save(null, makeEntries(1, 4, 1));
        const data = snapData(100);
        const meta = { ...snapMeta(4, 1), voters: [nodeId('a')] };
        await s.saveSnapshot(meta, data, idx(4));
        data.fill(0);
        (meta.voters as string[])[0] = 'b';
        await expectState(s, { snapshot: { meta: { ...snapMeta(4, 1), voters: [nodeId('a')] }, data: snapData(100) }, entries: [], hardState: hs(0, null, 0), first: 5, last: 4 });
      });

      it('leaves an empty log right after the snapshot when it compacts every entry, and appends after it', async () => {
        await s.save(hs(2, 'n2', 5), makeEntries(1, 5, 2));
        const data = snapData(10);
        await s.saveSnapshot(snapMeta(5, 2), data, idx(5));
        await expectState(s, { snapshot: { meta: snapMeta(5, 2), data }, entries: [], hardState: hs(2, 'n2', 5), first: 6, last: 5 });
        expect(await s.getRange(idx(6), idx(6))).toEqual([]);
        await expect(s.save(null, makeEntries(5, 2, 3))).rejects.toBeInstanceOf(AssertionError);
        await expect(s.save(null, makeEntries(7, 1, 3))).rejects.toBeInstanceOf(AssertionError);
        await s.save(hs(3, null, 6), makeEntries(6, 3, 3));
        await s.save(null, makeEntries(8, 2, 4, 'y'));
        const entries = [...makeEntries(6, 2, 3), ...makeEntries(8, 2, 4, 'y')];
        await expectState(s, { snapshot: { meta: snapMeta(5, 2), data }, entries, hardState: hs(3, null, 6), first: 6, last: 9 });
      });

      it('never ends the log below the snapshot: entries left under its index go too', async () => {
        await s.save(null, makeEntries(1, 3, 1));
        const data = snapData(1);
        await s.saveSnapshot(snapMeta(5, 1), data, idx(2));
        await expectState(s, { snapshot: { meta: snapMeta(5, 1), data }, entries: [], hardState: hs(0, null, 0), first: 6, last: 5 });
        const fresh = await fx.reopen();
        s = fresh;
        await s.saveSnapshot(snapMeta(7, 1), data, idx(0));
        await expectState(s, { snapshot: { meta: snapMeta(7, 1), data }, entries: [], hardState: hs(0, null, 0), first: 8, last: 7 });
      });

      it('takes a snapshot given in parts as the bytes they make joined (empty parts too), and reads it back whole', async () => {
        await s.save(hs(1, null, 6), makeEntries(1, 6, 1));
        const data = snapData(5000);
        const parts = [data.subarray(0, 1), new Uint8Array(0), data.subarray(1, 4096), data.subarray(4096), new Uint8Array(0)];
        await s.saveSnapshot(snapMeta(6, 1), parts, idx(6));
        await expectState(s, { snapshot: { meta: snapMeta(6, 1), data }, entries: [], hardState: hs(1, null, 6), first: 7, last: 6 });
        expect(s.snapshotInfo()).toMatchObject({ sizeBytes: 5000, crc32: crc32(data) });
        s = await fx.reopen();
        await expectState(s, { snapshot: { meta: snapMeta(6, 1), data }, entries: [], hardState: hs(1, null, 6), first: 7, last: 6 });
      });

      it('keeps an empty snapshot', async () => {
        await s.save(null, makeEntries(1, 2, 1));
        await s.saveSnapshot(snapMeta(2, 1), new Uint8Array(0), idx(1));
        await expectState(s, { snapshot: { meta: snapMeta(2, 1), data: new Uint8Array(0) }, entries: makeEntries(2, 1, 1), hardState: hs(0, null, 0), first: 2, last: 2 });
        s = await fx.reopen();
        await expectState(s, { snapshot: { meta: snapMeta(2, 1), data: new Uint8Array(0) }, entries: makeEntries(2, 1, 1), hardState: hs(0, null, 0), first: 2, last: 2 });
      });

      it('replaces the first snapshot with a second, also across a reopen', async () => {
        await s.save(hs(1, 'n1', 20), makeEntries(1, 20, 1));
        await s.saveSnapshot(snapMeta(10, 1), snapData(500, 1), idx(8));
        const second = snapData(700, 2);
        await s.saveSnapshot(snapMeta(15, 1), second, idx(12));
        const want: Expected = { snapshot: { meta: snapMeta(15, 1), data: second }, entries: makeEntries(13, 8, 1), hardState: hs(1, 'n1', 20), first: 13, last: 20 };
        await expectState(s, want);
        s = await fx.reopen();
        await expectState(s, want);
      });

      it('compacts no further than asked, and never back below an earlier compaction', async () => {
        await s.save(null, makeEntries(1, 20, 1));
        await s.saveSnapshot(snapMeta(10, 1), snapData(5), idx(10));
        await s.saveSnapshot(snapMeta(12, 1), snapData(6), idx(4));
        expect(await s.firstIndex()).toBe(11);
        await s.saveSnapshot(snapMeta(16, 1), snapData(7), idx(14));
        expect(await s.firstIndex()).toBe(15);
        expect(plain((await s.load()).entries)).toEqual(plain(makeEntries(15, 6, 1)));
      });

      it('refuses a snapshot that is not newer than the current one, or a compaction past its index', async () => {
        await s.save(hs(1, 'n1', 10), makeEntries(1, 10, 1));
        const data = snapData(50);
        await s.saveSnapshot(snapMeta(6, 1), data, idx(3));
        await expect(s.saveSnapshot(snapMeta(6, 1), snapData(9), idx(6))).rejects.toBeInstanceOf(AssertionError);
        await expect(s.saveSnapshot(snapMeta(5, 1), snapData(9), idx(5))).rejects.toBeInstanceOf(AssertionError);
        await expect(s.saveSnapshot(snapMeta(8, 1), snapData(9), idx(9))).rejects.toBeInstanceOf(AssertionError);
        const older = { snapshot: { meta: snapMeta(6, 1), data: snapData(9) } };
        await expect(s.save(null, makeEntries(7, 1, 2), older)).rejects.toBeInstanceOf(AssertionError);
        await expectState(s, { snapshot: { meta: snapMeta(6, 1), data }, entries: makeEntries(4, 7, 1), hardState: hs(1, 'n1', 10), first: 4, last: 10 });
      });

      it('installs a received snapshot with save(): every entry goes, then the hard state and entries after it', async () => {
        await s.save(hs(1, 'n1', 3), makeEntries(1, 10, 1));
        await s.saveSnapshot(snapMeta(3, 1), snapData(20, 1), idx(2));
        const data = snapData(2000, 3);
        const entries = makeEntries(13, 3, 3, 'r');
        await s.save(hs(3, 'n2', 13), entries, { snapshot: { meta: snapMeta(12, 2), data }, sync: false });
        const want: Expected = { snapshot: { meta: snapMeta(12, 2), data }, entries, hardState: hs(3, 'n2', 13), first: 13, last: 15 };
        await expectState(s, want);
        await expect(s.getRange(idx(10), idx(13))).rejects.toBeInstanceOf(AssertionError);
        s = await fx.reopen();
        await expectState(s, want);
        await s.save(null, makeEntries(16, 1, 3));
        expect(await s.lastIndex()).toBe(16);
      });

      it('installs a received snapshot that is ahead of the whole log, with no entries and no hard state', async () => {
        await s.save(hs(1, 'n1', 2), makeEntries(1, 4, 1));
        const data = snapData(64);
        await s.save(null, [], { snapshot: { meta: snapMeta(30, 4), data } });
        const want: Expected = { snapshot: { meta: snapMeta(30, 4), data }, entries: [], hardState: hs(1, 'n1', 2), first: 31, last: 30 };
        await expectState(s, want);
        s = await fx.reopen();
        await expectState(s, want);
        await s.save(hs(4, null, 31), makeEntries(31, 2, 4));
        expect(await s.firstIndex()).toBe(31);
        expect(await s.lastIndex()).toBe(32);
      });

      it('refuses received entries that do not start right after the received snapshot', async () => {
        await s.save(null, makeEntries(1, 4, 1));
        const snapshot = { meta: snapMeta(6, 2), data: snapData(8) };
        await expect(s.save(null, makeEntries(8, 1, 2), { snapshot })).rejects.toBeInstanceOf(AssertionError);
        await expect(s.save(null, makeEntries(6, 2, 2), { snapshot })).rejects.toBeInstanceOf(AssertionError);
        await expectState(s, { snapshot: null, entries: makeEntries(1, 4, 1), hardState: hs(0, null, 0), first: 1, last: 4 });
      });

      it('keeps the snapshot, the entries after the compaction and the hard state across a reopen', async () => {
        await s.save(hs(2, 'n1', 10), makeEntries(1, 12, 2));
        const data = snapData(10_000, 5);
        await s.saveSnapshot(snapMeta(9, 2), data, idx(6));
        await s.save(hs(3, 'n1', 11), makeEntries(11, 3, 3));
        const want: Expected = { snapshot: { meta: snapMeta(9, 2), data }, entries: [...makeEntries(7, 4, 2), ...makeEntries(11, 3, 3)], hardState: hs(3, 'n1', 11), first: 7, last: 13 };
        s = await fx.reopen();
        expect(s.snapshotInfo()?.meta).toEqual(snapMeta(9, 2));
        expect(await s.firstIndex()).toBe(7);
        await expectState(s, want);
        await expect(s.save(null, makeEntries(9, 1, 4))).rejects.toBeInstanceOf(AssertionError);
        await s.save(null, makeEntries(12, 1, 4));
        expect(plain((await s.load()).entries)).toEqual(plain([...makeEntries(7, 4, 2), ...makeEntries(11, 1, 3), ...makeEntries(12, 1, 4)]));
      });

      it('takes a snapshot and saves called together to the same end state, the appends after it kept', async () => {
        const a = s.save(hs(1, 'n1', 10), makeEntries(1, 10, 1));
        const b = s.saveSnapshot(snapMeta(10, 1), snapData(30), idx(10));
        const c = s.save(null, makeEntries(11, 2, 2));
        await Promise.all([a, b, c]);
        expect(await s.firstIndex()).toBe(11);
        await expectState(s, { snapshot: { meta: snapMeta(10, 1), data: snapData(30) }, entries: makeEntries(11, 2, 2), hardState: hs(1, 'n1', 10), first: 11, last: 12 });
      });

      it('compacts 10,000 entries under a 20 MB snapshot', async () => {
        await s.save(hs(1, 'n1', 10_000), makeEntries(1, 10_000, 1));
        const data = snapData(20 * 1024 * 1024, 9);
        await s.saveSnapshot(snapMeta(10_000, 1), data, idx(9_900));
        s = await fx.reopen();
        const loaded = await s.load();
        expect(plain(loaded.entries)).toEqual(plain(makeEntries(9_901, 100, 1)));
        expect(sameBytes(loaded.snapshotData, data)).toBe(true);
        expect(await s.firstIndex()).toBe(9_901);
      });
    });

    it('keeps meta values across a reopen, when it has a meta store', async () => {
      const meta = s as Partial<MetaStore>;
      if (meta.getMeta === undefined || meta.putMeta === undefined) return;
      expect(await meta.getMeta('cluster')).toBeUndefined();
      await meta.putMeta('cluster', new Uint8Array([7, 8]));
      const reopened = (await fx.reopen()) as RaftStorage & MetaStore;
      expect(Array.from((await reopened.getMeta('cluster'))!)).toEqual([7, 8]);
    });

    it('refuses to be used once closed', async () => {
      await s.close();
      await s.close();
      await expect(async () => s.load()).rejects.toBeInstanceOf(AssertionError);
    });
  });
}
