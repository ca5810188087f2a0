// CheckedStorage and the marker (issue 19): a store that lost or damaged what it had acknowledged is found out at
// start and salvaged to what can be trusted; the marker follows every synced write and survives a torn write.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { forceNewCluster } from '../../src/raft/index.js';
import type { Entry } from '../../src/raft/types.js';
import { CheckedStorage } from '../../src/storage/checked.js';
import { damageFound, LevelRaftStorage } from '../../src/storage/level.js';
import { FileMarker, markerPathFor, MemoryMarker } from '../../src/storage/marker.js';
import { entryKey } from '../../src/storage/records.js';
import { rejection } from '../support/errors.js';
import { filesOf } from '../support/data-dir-files.js';

const entries = (from: number, to: number, t = 1): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ term: term(t), index: logIndex(from + i), type: 'command' as const, data: new Uint8Array([from + i]) }));
const hs = (t: number, commit: number) => ({ term: term(t), vote: null, commit: logIndex(commit) });

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'minkube-checked-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function open(marker: MemoryMarker | FileMarker): Promise<CheckedStorage> {
  return new CheckedStorage(await LevelRaftStorage.open(join(dir, 'm1'), { salvage: true }), marker);
}

async function withDb(fn: (db: ClassicLevel<Buffer, Buffer>) => Promise<void>): Promise<void> {
  const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'm1'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

/** Flips the last byte of the stored entry at `index` (its checksum no longer matches). */
async function flipEntryByte(index: number): Promise<void> {
  await withDb(async (db) => {
    const v = (await db.get(entryKey(index)))!;
    v[v.length - 1] = v[v.length - 1]! ^ 0xff;
    await db.put(entryKey(index), v);
  });
}

describe('CheckedStorage', () => {
  it('an intact store starts as it was, and the marker follows each synced write', async () => {
    const marker = new MemoryMarker();
    let s = await open(marker);
    expect((await s.loadChecked()).recovery).toBeNull();
    await s.save(hs(1, 3), entries(1, 10));
    expect(marker.value).toMatchObject({ ackedIndex: 10, ackedTerm: 1, term: 1 });
    // A commit alone (not synced) does not touch it.
    const writes = marker.writes;
    await s.save(hs(1, 10), [], { sync: false });
    expect(marker.writes).toBe(writes);
    await s.close();
    s = await open(marker);
    const loaded = await s.loadChecked();
    expect(loaded.recovery).toBeNull();
    expect(loaded.state.entries).toHaveLength(10);
    await s.close();
  });

  it('a log shorter than what it acknowledged starts recovering towards the acknowledged entry', async () => {
    const marker = new MemoryMarker();
    let s = await open(marker);
    await s.loadChecked();
    await s.save(hs(2, 8), entries(1, 10, 2));
    await s.close();
    await withDb((db) => db.clear({ gte: entryKey(7), lt: entryKey(11) }));
    s = await open(marker);
    const { recovery, state } = await s.loadChecked();
    expect(recovery?.target).toEqual({ index: 10, term: 2 });
    expect(recovery?.reason).toContain('before index 10 (term 2) it had acknowledged');
    expect(state.hardState.commit).toBe(6);
    // While it recovers, the marker never goes below what it had acknowledged (a crash restarts the repair)...
    await s.save(hs(2, 6), entries(7, 8, 2));
    expect(marker.value).toMatchObject({ ackedIndex: 10, ackedTerm: 2 });
    // ...and follows the log again once repaired.
    await s.repaired();
    expect(marker.value).toMatchObject({ ackedIndex: 8, ackedTerm: 2 });
    await s.close();
  });

  it('a damaged entry: the log is kept up to it, the rest deleted, and the store loads plainly afterwards', async () => {
    const marker = new MemoryMarker();
    let s = await open(marker);
    await s.loadChecked();
    await s.save(hs(1, 10), entries(1, 10));
    await s.close();
    await flipEntryByte(5);
    s = await open(marker);
    const { recovery, state } = await s.loadChecked();
    expect(recovery?.reason).toContain('the entry at index 5 is corrupt');
    expect(recovery?.reason).toContain(join(dir, 'm1'));
    expect(state.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    await s.close();
    const plain = await LevelRaftStorage.open(join(dir, 'm1'));
    expect((await plain.load()).entries).toHaveLength(4);
    await plain.close();
  });

  it('--force-new-cluster from a store behind its marker: the forced entry covers the marker, so the next start is not recovering', async () => {
    const marker = new MemoryMarker();
    let s = await open(marker);
    await s.loadChecked();
    await s.save(hs(2, 8), entries(1, 10, 2));
    await s.close();
    // The data directory is an older copy: the node had gone on to acknowledge index 40 in term 5.
    marker.value = { ackedIndex: 40, ackedTerm: 5, term: 5, vote: null };
    s = await open(marker);
    const loaded = await s.loadChecked();
    expect(loaded.recovery?.target).toEqual({ index: 40, term: 5 });
    // What the driver does with --force-new-cluster (prepareInitial): one entry in a term above every term known,
    // the marker's included, so the new end covers what the marker said and the marker follows it.
    const forced = forceNewCluster({ hardState: loaded.state.hardState, entries: loaded.state.entries, applied: logIndex(0) }, nodeId('m1'));
    await s.save(forced.hardState, forced.entries.slice(-1));
    expect(marker.value).toMatchObject({ ackedIndex: 11, ackedTerm: 6, term: 6 });
    await s.close();
    s = await open(marker);
    expect((await s.loadChecked()).recovery).toBeNull();
    await s.close();
  });

  it("opened to check only (--force-new-cluster): a damaged entry is reported, nothing is deleted, noted or written, and the marker is left alone", async () => {
    const marker = new MemoryMarker();
    let s = await open(marker);
    await s.loadChecked();
    await s.save(hs(1, 10), entries(1, 10));
    await s.close();
    await flipEntryByte(5);
    const writes = marker.writes;
    s = new CheckedStorage(await LevelRaftStorage.open(join(dir, 'm1'), { salvage: 'check' }), marker);
    const { recovery, state } = await s.loadChecked({ checkOnly: true });
    expect(recovery?.reason).toContain('the entry at index 5 is corrupt');
    expect(state.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    expect(marker.writes).toBe(writes);
    // What it found damaged it will not write over.
    expect(await rejection(s.save(hs(1, 4), entries(5, 5)))).toMatchObject({ code: 'STORAGE_CORRUPT' });
    await s.close();
    await withDb(async (db) => expect(await db.keys({ gte: entryKey(0), lt: entryKey(11) }).all()).toHaveLength(10));
    // The next (salvaging) start finds it as it was: no notes left by the check, the same damage, then salvaged.
    s = await open(marker);
    const again = await s.loadChecked();
    expect(again.recovery?.reason).toContain('the entry at index 5 is corrupt');
    expect(again.recovery?.reason).not.toContain('an earlier start');
    expect(again.state.entries).toHaveLength(4);
    await s.close();
  });

  it('entries replaced by a less up-to-date log lower the marker before the write', async () => {
    const order: string[] = [];
    const marker = new MemoryMarker();
    const write = marker.write.bind(marker);
    marker.write = async (m) => {
      order.push(`marker ${m.ackedIndex}/${m.ackedTerm}`);
      await write(m);
    };
    const s = await open(marker);
    await s.loadChecked();
    await s.save(hs(3, 2), [...entries(1, 2, 1), ...entries(3, 6, 3)]);
    const inner = s.inner;
    const save = inner.save.bind(inner);
    inner.save = async (...args) => {
      order.push('log');
      await save(...args);
    };
    // A leader of term 4 whose log has term 2 at index 3 (Figure 8): the new end (3, term 2) is behind (6, term 3).
    await s.save(hs(4, 2), entries(3, 3, 2));
    expect(order.slice(-2)).toEqual(['marker 3/2', 'log']);
    await s.close();
  });
});

describe("CheckedStorage on damage inside LevelDB's own files", () => {
  const data = (): string => join(dir, 'm1');
  /** 1,000 entries of term 2 acknowledged (the marker says 1000/2), all in one LevelDB table (the reopen writes it). */
  async function acknowledged(marker: MemoryMarker): Promise<void> {
    const s = await open(marker);
    await s.loadChecked();
    const big = entries(1, 1000, 2).map((e) => ({ ...e, data: new Uint8Array(1000).map((_, j) => (j * 7 + e.index) & 0xff) }));
    await s.save(hs(2, 1000), big);
    await s.close();
    await (await LevelRaftStorage.open(data())).close();
    expect(marker.value).toMatchObject({ ackedIndex: 1000, ackedTerm: 2 });
  }
  const onlyTable = (): string => join(data(), readdirSync(data()).filter((n) => n.endsWith('.ldb'))[0]!);
  /** 16 bytes over a block in the middle of the table: LevelDB opens it and fails only when that block is read. */
  function garbleTable(): void {
    const path = onlyTable();
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('XXXXXXXXXXXXXXXX'), 0, 16, Math.floor(statSync(path).size / 3));
    closeSync(fd);
  }

  /** Opened as a manager opens it: recovering towards 1000/2, and it takes the leader's entries after what it kept. */
  async function expectRecovering(marker: MemoryMarker, words: readonly string[]): Promise<number> {
    let s = await open(marker);
    const { recovery, state } = await s.loadChecked();
    expect(recovery?.target).toEqual({ index: 1000, term: 2 });
    for (const w of words) expect(recovery?.reason).toContain(w);
    const kept = state.entries.at(-1)?.index ?? 0;
    expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: kept }, (_, i) => i + 1));
    // The leader's entries, of a later term: they cover the target, so the marker follows them.
    await s.save(hs(3, kept), entries(kept + 1, 1005, 3));
    expect(marker.value).toMatchObject({ ackedIndex: 1005, ackedTerm: 3 });
    await s.close();
    s = await open(marker);
    const again = await s.loadChecked();
    expect(again.recovery).toBeNull();
    expect(again.state.entries.at(-1)?.index).toBe(1005);
    await s.close();
    return kept;
  }

  it('a damaged table block, found only when read: RepairDB, then the log up to the damage is kept', async () => {
    const marker = new MemoryMarker();
    await acknowledged(marker);
    garbleTable();
    const kept = await expectRecovering(marker, ['RepairDB repaired it']);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(1000);
  });

  it('opened to check only: a damaged table block is the verdict (damageFound), and RepairDB does not run', async () => {
    const marker = new MemoryMarker();
    await acknowledged(marker);
    garbleTable();
    // LevelDB opens it (a new manifest and log: its own housekeeping) and fails only when the block is read.
    const tablesOf = (): Record<string, string> => Object.fromEntries(Object.entries(filesOf(data())).filter(([n]) => n.endsWith('.ldb') || n.startsWith('lost/')));
    const tables = tablesOf();
    const err = await rejection(LevelRaftStorage.open(data(), { salvage: 'check' }));
    expect(err.code).toBe('STORAGE_CORRUPT');
    expect(damageFound(err)).toContain('not repaired');
    expect(damageFound(new Error('x'))).toBeNull();
    expect(tablesOf()).toEqual(tables);
    expect(existsSync(join(data(), 'lost'))).toBe(false);
  });

  it('a garbled CURRENT: RepairDB, and nothing is lost', async () => {
    const marker = new MemoryMarker();
    await acknowledged(marker);
    writeFileSync(join(data(), 'CURRENT'), 'garbage\n');
    // Damage, not a disk that refused a write, also to the strict open tools use.
    await expect(LevelRaftStorage.open(data())).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining('CURRENT') as string });
    expect(await expectRecovering(marker, ['RepairDB repaired it', 'CURRENT'])).toBe(1000);
  });

  it('a deleted MANIFEST: RepairDB, and nothing is lost', async () => {
    const marker = new MemoryMarker();
    await acknowledged(marker);
    for (const n of readdirSync(data())) if (n.startsWith('MANIFEST-')) rmSync(join(data(), n));
    expect(await expectRecovering(marker, ['RepairDB repaired it', 'MANIFEST-'])).toBe(1000);
  });

  it('a database RepairDB cannot mend is set aside, and the log starts empty', async () => {
    const marker = new MemoryMarker();
    await acknowledged(marker);
    const plain = await LevelRaftStorage.open(data());
    await plain.putMeta('joined', new Uint8Array([1]));
    await plain.close();
    garbleTable();
    const repair = vi.spyOn(ClassicLevel, 'repair').mockResolvedValue(undefined);
    try {
      expect(await expectRecovering(marker, ['set aside in', 'damaged-'])).toBe(0);
    } finally {
      repair.mockRestore();
    }
    const aside = readdirSync(data()).filter((n) => n.startsWith('damaged-'));
    expect(aside).toHaveLength(1);
    expect(readdirSync(join(data(), aside[0]!))).toEqual(expect.arrayContaining(['CURRENT', onlyTableName(aside[0]!)]));
    // What the database remembered besides the log (that this manager joined) is carried over.
    const fresh = await LevelRaftStorage.open(data());
    expect(await fresh.getMeta('joined')).toEqual(new Uint8Array([1]));
    await fresh.close();
  });

  it('an intact store is not repaired, and a store another process holds is still DATA_DIR_IN_USE', async () => {
    const marker = new MemoryMarker();
    await acknowledged(marker);
    const s = await open(marker);
    const { recovery } = await s.loadChecked();
    expect(recovery).toBeNull();
    await expect(LevelRaftStorage.open(data(), { salvage: true })).rejects.toMatchObject({ code: 'DATA_DIR_IN_USE' });
    await s.close();
    expect(readdirSync(data()).filter((n) => n === 'lost' || n.startsWith('damaged-'))).toEqual([]);
  });

  function onlyTableName(aside: string): string {
    return readdirSync(join(data(), aside)).find((n) => n.endsWith('.ldb'))!;
  }
});

describe('CheckedStorage when the disk refuses while LevelDB is repaired or set aside', () => {
  // A full disk during a start-up repair used to be taken for damage: RepairDB had moved the write-ahead log and the
  // manifest into lost/ before it failed, the next open failed on the half-repaired directory, and the whole database
  // was set aside, so the next start (with room) began from an empty log and said nothing of it (outside tester).
  const data = (): string => join(dir, 'm1');
  const noSpace = (path: string): Error => Object.assign(new Error(`IO error: ${path}: No space left on device`), { code: 'LEVEL_IO_ERROR' });

  /** 1,000 entries of term 2 in a table and 200 more in the write-ahead log, all acknowledged (the marker says 1200/2). */
  async function acknowledgedWithLog(marker: MemoryMarker): Promise<void> {
    let s = await open(marker);
    await s.loadChecked();
    await s.save(hs(2, 1000), entries(1, 1000, 2));
    await s.close();
    await (await LevelRaftStorage.open(data())).close();
    s = await open(marker);
    await s.loadChecked();
    await s.save(hs(2, 1200), entries(1001, 1200, 2));
    await s.close();
    expect(readdirSync(data()).filter((n) => n.endsWith('.log') && statSync(join(data(), n)).size > 0)).not.toEqual([]);
    expect(marker.value).toMatchObject({ ackedIndex: 1200, ackedTerm: 2 });
  }

  it('RepairDB cut short by a full disk after it moved the log and the manifest into lost/: all put back, STORAGE_FAILED, and the next start repairs it with nothing lost', async () => {
    const marker = new MemoryMarker();
    await acknowledgedWithLog(marker);
    writeFileSync(join(data(), 'CURRENT'), 'garbage\n');
    const before = filesOf(data());
    // What LevelDB's RepairDB does before the disk refuses (the tester's run failed writing CURRENT's temp file): every
    // log and manifest moved into lost/, a table and a manifest begun, CURRENT replaced.
    const repair = vi.spyOn(ClassicLevel, 'repair').mockImplementation(async (location: string) => {
      mkdirSync(join(location, 'lost'), { recursive: true });
      for (const n of readdirSync(location)) if (/^(\d+\.log|MANIFEST-\d+)$/.test(n)) renameSync(join(location, n), join(location, 'lost', n));
      writeFileSync(join(location, '000099.ldb'), 'half a table');
      writeFileSync(join(location, 'MANIFEST-000100'), 'half a manifest');
      writeFileSync(join(location, '000101.dbtmp'), 'MANIFEST-000100\n');
      renameSync(join(location, '000101.dbtmp'), join(location, 'CURRENT'));
      throw noSpace(join(location, '000102.dbtmp'));
    });
    try {
      const err = await rejection(open(marker));
      expect(err.code).toBe('STORAGE_FAILED');
      expect(err.message).toContain(`repairing the damaged data directory ${data()} failed`);
      expect(err.message).toContain('put back as it was');
      expect(err.message).toContain('no space left on the device (free some space, then start this manager again)');
      expect(repair).toHaveBeenCalledTimes(1);
    } finally {
      repair.mockRestore();
    }
    // Nothing moved, nothing set aside, nothing of the repair's left: the directory is as the damage left it.
    expect(filesOf(data())).toEqual(before);
    expect(readdirSync(data()).filter((n) => n === 'lost' || n.startsWith('damaged-') || n.startsWith('CURRENT.'))).toEqual([]);
    // With room, the next start repairs it, and the log (its write-ahead log too) is all there.
    const s = await open(marker);
    const { recovery, state } = await s.loadChecked();
    expect(recovery?.reason).toContain('RepairDB repaired it');
    expect(recovery?.reason).not.toContain('set aside');
    expect(state.entries.at(-1)?.index).toBe(1200);
    await s.close();
  });

  it('a set-aside whose new database the disk refuses: everything put back, STORAGE_FAILED; with room, set aside and said so', async () => {
    const marker = new MemoryMarker();
    await acknowledgedWithLog(marker);
    // A block of the table that fails LevelDB's check, and a RepairDB that mends nothing: the database must go aside.
    const table = join(data(), readdirSync(data()).find((n) => n.endsWith('.ldb'))!);
    const fd = openSync(table, 'r+');
    writeSync(fd, Buffer.from('XXXXXXXXXXXXXXXX'), 0, 16, Math.floor(statSync(table).size / 3));
    closeSync(fd);
    const repair = vi.spyOn(ClassicLevel, 'repair').mockResolvedValue(undefined);
    const realOpen = ClassicLevel.prototype.open;
    // LevelDB making a database in the emptied directory on a full disk: it gets as far as its LOG and a manifest.
    const refuseNew = vi.spyOn(ClassicLevel.prototype, 'open').mockImplementation(function (this: ClassicLevel<Buffer, Buffer>, ...args: unknown[]) {
      if (existsSync(join(this.location, 'CURRENT'))) return (realOpen as (...a: unknown[]) => Promise<void>).apply(this, args);
      writeFileSync(join(this.location, 'LOG'), '');
      writeFileSync(join(this.location, 'MANIFEST-000001'), '');
      return Promise.reject(Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause: noSpace(join(this.location, 'MANIFEST-000001')) }));
    });
    const asides: string[] = [];
    const openAsManager = async (): Promise<CheckedStorage> =>
      new CheckedStorage(await LevelRaftStorage.open(data(), { salvage: true, onSetAside: (path) => asides.push(path) }), marker);
    try {
      // The open itself (which succeeds: the damage shows only when the block is read) turns the write-ahead log into
      // a table, as every LevelDB open does; the damaged table is what must stay where it was, as it was.
      const damaged = filesOf(data())[basename(table)];
      const err = await rejection(openAsManager());
      expect(err.code).toBe('STORAGE_FAILED');
      expect(err.message).toContain(`cannot set the damaged database of ${data()} aside`);
      expect(err.message).toContain('left as it was');
      expect(err.message).toContain('no space left on the device');
      expect(filesOf(data())[basename(table)]).toBe(damaged);
      expect(readdirSync(data()).filter((n) => !/^(\d+\.(ldb|log)|MANIFEST-\d+|CURRENT|LOG|LOG\.old|LOCK)$/.test(n))).toEqual([]);
      expect(asides).toEqual([]);
      refuseNew.mockRestore();
      // With room: set aside, told at once (the daemon logs it at warn), and named in the recovering reason.
      const s = await openAsManager();
      expect(asides).toHaveLength(1);
      expect(readdirSync(data()).filter((n) => n.startsWith('damaged-')).map((n) => join(data(), n))).toEqual(asides);
      const { recovery, state } = await s.loadChecked();
      expect(recovery?.reason).toContain(`set aside in ${asides[0]!}`);
      expect(recovery?.target).toEqual({ index: 1200, term: 2 });
      expect(state.entries).toEqual([]);
      await s.close();
      expect(filesOf(asides[0]!)[basename(table)]).toBe(damaged);
    } finally {
      refuseNew.mockRestore();
      repair.mockRestore();
    }
  });

  it('a start that set the database aside and then failed (its marker write refused): the next start still names the set-aside path', async () => {
    const marker = new MemoryMarker();
    await acknowledgedWithLog(marker);
    for (const n of readdirSync(data())) if (n.startsWith('MANIFEST-')) rmSync(join(data(), n));
    writeFileSync(join(data(), 'CURRENT'), 'garbage\n');
    const repair = vi.spyOn(ClassicLevel, 'repair').mockResolvedValue(undefined);
    const asides: string[] = [];
    try {
      const full = vi.spyOn(marker, 'write').mockRejectedValueOnce(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
      const first = new CheckedStorage(await LevelRaftStorage.open(data(), { salvage: true, onSetAside: (path) => asides.push(path) }), marker);
      const err = await rejection(first.loadChecked());
      expect(err.code).toBe('STORAGE_FAILED');
      await first.close();
      full.mockRestore();
    } finally {
      repair.mockRestore();
    }
    expect(asides).toHaveLength(1);
    // The next start: an empty log, and the reason says where the database went (not only that the log is short).
    let s = await open(marker);
    const { recovery } = await s.loadChecked();
    expect(recovery?.reason).toContain(`set aside in ${asides[0]!}`);
    expect(recovery?.reason).toContain('its log ends at index 0');
    expect(recovery?.target).toEqual({ index: 1200, term: 2 });
    await s.close();
    // Reported once the marker holds the target: the start after says only that the log is behind it.
    s = await open(marker);
    const again = await s.loadChecked();
    expect(again.recovery?.reason).not.toContain('set aside');
    expect(again.recovery?.target).toEqual({ index: 1200, term: 2 });
    await s.close();
  });
});

describe('CheckedStorage on a LevelDB table cut short', () => {
  // LevelDB reads a table as long as its manifest says it is: a shorter one fails as an I/O error ("Invalid
  // argument"), not as corruption, and the manager used to fail at every start (INTERNAL) until wiped by hand.
  const data = (): string => join(dir, 'm1');
  const tables = (): string[] => readdirSync(data()).filter((n) => n.endsWith('.ldb')).sort();
  /** Opened as a manager opens it at start-up (daemon/manager.ts): salvaging, with its marker beside the directory. */
  async function openAsManager(): Promise<CheckedStorage> {
    return new CheckedStorage(await LevelRaftStorage.open(data(), { salvage: true }), new FileMarker(markerPathFor(data())));
  }
  /** Entries of term 2 acknowledged in rounds of these sizes, each in a LevelDB table of its own (the reopen writes it). */
  async function acknowledgedInTables(sizes: readonly number[]): Promise<void> {
    let last = 0;
    for (const size of sizes) {
      const s = await openAsManager();
      expect((await s.loadChecked()).recovery).toBeNull();
      await s.save(hs(2, last + size), entries(last + 1, last + size, 2));
      await s.close();
      await (await LevelRaftStorage.open(data())).close();
      last += size;
    }
    expect(tables()).toHaveLength(sizes.length);
  }
  /** Bytes LevelDB cannot compress (its tables are compressed), from a seed. */
  function noise(length: number, seed: number): Uint8Array {
    let x = seed * 2654435761;
    return Uint8Array.from({ length }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
  }
  /** Cuts the table to `size(its size)` bytes; its name and the size it was cut to. */
  function cut(name: string, size: (was: number) => number): { name: string; sizeBytes: number } {
    const sizeBytes = size(statSync(join(data(), name)).size);
    truncateSync(join(data(), name), sizeBytes);
    return { name, sizeBytes };
  }

  /**
   * It starts, recovering towards 2000/2 with the damage named; it holds a clean prefix of its log; and the leader's
   * entries of a later term repair it, so the next start is clean. Returns the last index it kept.
   */
  async function expectStartsRecovering(words: readonly string[]): Promise<number> {
    let s = await openAsManager();
    const { recovery, state } = await s.loadChecked();
    expect(recovery?.target).toEqual({ index: 2000, term: 2 });
    for (const w of words) expect(recovery?.reason).toContain(w);
    const kept = state.entries.at(-1)?.index ?? 0;
    expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: kept }, (_, i) => i + 1));
    expect(state.hardState.commit).toBeLessThanOrEqual(kept);
    await s.save(hs(3, kept), entries(kept + 1, 2005, 3));
    await s.close();
    s = await openAsManager();
    const again = await s.loadChecked();
    expect(again.recovery).toBeNull();
    expect(again.state.entries.map((e) => e.index)).toEqual(Array.from({ length: 2005 }, (_, i) => i + 1));
    await s.close();
    return kept;
  }

  it.each([
    ['to 60%', (was: number) => Math.floor((was * 6) / 10)],
    ['to 0 bytes', () => 0],
    ['in its 48-byte footer', (was: number) => was - 20],
  ])('one table of 2,000 entries cut %s: RepairDB keeps it in lost/, and the manager starts with an empty log, recovering', async (_, size) => {
    await acknowledgedInTables([2000]);
    const damaged = cut(tables()[0]!, size);
    // Damage, not a fault of Minkube's own, to the strict open tools use too.
    await expect(LevelRaftStorage.open(data())).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining(damaged.name) as string });
    expect(await expectStartsRecovering(['RepairDB repaired it', `kept in ${join(data(), 'lost')}: ${damaged.name}`, 'Invalid argument'])).toBe(0);
    // Nothing deleted: the cut table is kept as it was.
    expect(statSync(join(data(), 'lost', damaged.name)).size).toBe(damaged.sizeBytes);
  });

  it('the newer of two tables cut to 60%: the 1,000 entries of the older are kept', async () => {
    await acknowledgedInTables([1000, 1000]);
    const damaged = cut(tables()[1]!, (was) => Math.floor((was * 6) / 10));
    expect(await expectStartsRecovering(['RepairDB repaired it', damaged.name])).toBe(1000);
    expect(statSync(join(data(), 'lost', damaged.name)).size).toBe(damaged.sizeBytes);
  });

  it('the older of two tables cut to 60%: what follows the gap is not kept, and the log starts empty', async () => {
    await acknowledgedInTables([1000, 1000]);
    const damaged = cut(tables()[0]!, (was) => Math.floor((was * 6) / 10));
    expect(await expectStartsRecovering(['RepairDB repaired it', damaged.name, 'entry 1 is missing'])).toBe(0);
    expect(statSync(join(data(), 'lost', damaged.name)).size).toBe(damaged.sizeBytes);
  });

  it('a table of a compacted log cut to 60%, found only when the scan reaches it: the entries before it are kept', async () => {
    // 2,000 entries of 3 KB, compacted into tables of about 2 MB each, which LevelDB opens only as a read reaches them.
    const s = await openAsManager();
    await s.loadChecked();
    await s.save(hs(2, 2000), entries(1, 2000, 2).map((e) => ({ ...e, data: noise(3000, e.index) })));
    await s.close();
    await withDb((db) => db.compactRange(entryKey(0), entryKey(1_000_000)));
    expect(tables().length).toBeGreaterThanOrEqual(3);
    const damaged = cut(tables().at(-1)!, (was) => Math.floor((was * 6) / 10));
    const kept = await expectStartsRecovering(['RepairDB repaired it', damaged.name]);
    expect(kept).toBeGreaterThan(1000);
    expect(kept).toBeLessThan(2000);
    expect(statSync(join(data(), 'lost', damaged.name)).size).toBe(damaged.sizeBytes);
  });

  it('a cut table RepairDB cannot mend: the database is set aside in damaged-<time>, and the log starts empty', async () => {
    await acknowledgedInTables([2000]);
    const damaged = cut(tables()[0]!, (was) => Math.floor((was * 6) / 10));
    const repair = vi.spyOn(ClassicLevel, 'repair').mockResolvedValue(undefined);
    try {
      expect(await expectStartsRecovering(['set aside in', 'damaged-', 'Invalid argument'])).toBe(0);
    } finally {
      repair.mockRestore();
    }
    const aside = readdirSync(data()).filter((n) => n.startsWith('damaged-'));
    expect(aside).toHaveLength(1);
    expect(statSync(join(data(), aside[0]!, damaged.name)).size).toBe(damaged.sizeBytes);
  });
});

describe('FileMarker', () => {
  it('a torn write spoils one slot: the other still holds the marker before it; both spoilt is damage', async () => {
    const path = join(dir, 'm1.marker');
    const m = new FileMarker(path);
    await m.write({ ackedIndex: 5, ackedTerm: 1, term: 1, vote: null });
    await m.write({ ackedIndex: 9, ackedTerm: 2, term: 2, vote: null });
    await m.close();
    const bytes = readFileSync(path);
    // The second write went to slot 0 (sequence 2): spoil it.
    bytes[20] = bytes[20]! ^ 0xff;
    writeFileSync(path, bytes);
    expect(await new FileMarker(path).read()).toEqual({ kind: 'ok', marker: { ackedIndex: 5, ackedTerm: 1, term: 1, vote: null } });
    bytes[512 + 20] = bytes[512 + 20]! ^ 0xff;
    writeFileSync(path, bytes);
    expect((await new FileMarker(path).read()).kind).toBe('damaged');
    const none = new FileMarker(join(dir, 'other.marker'));
    expect(await none.read()).toEqual({ kind: 'none' });
  });
});
