// The RaftStorage conformance suite: every implementation (memory, classic-level) runs these same tests, the way
// hono's router/common.case.test.ts is run by each router.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/lib/assert.js';
import { logIndex, nodeId, term, type LogIndex } from '../../src/lib/ids.js';
import type { Entry, EntryType, HardState } from '../../src/raft/types.js';
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
