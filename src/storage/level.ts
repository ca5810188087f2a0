// RaftStorage on classic-level (LevelDB): one database per data directory holds the hard state, the log and the
// current snapshot's record; the snapshot's bytes are a file in <dir>/snapshots. Each Ready is one synced batch;
// every entry, and every snapshot, carries a checksum that is verified whenever it is read.
import { link, lstat, mkdir, readdir, readFile, rename, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { assert } from '../lib/assert.js';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, term, type LogIndex } from '../lib/ids.js';
import { makeDirs } from '../lib/make-dirs.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { checkRange, checkSave, checkSnapshot, compactedBounds, diskRefusal, emptyHardState, snapshotDataProblem, snapshotInfoOf, storageFailed } from './common.js';
import * as rec from './records.js';
import { readFileIfExists, removeFileIfExists, removeStaleFiles, writeFileDurably } from './snapshot-files.js';
import type { LoadedState, MetaStore, RaftStorage, SaveOptions, SnapshotBytes, SnapshotInfo } from './types.js';

type Db = ClassicLevel<Buffer, Buffer>;
type Batch = ReturnType<Db['batch']>;

const encodings = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;
const READ_CHUNK_ENTRIES = 1024;
const READ_CHUNK_BYTES = 1024 * 1024;
const SNAPSHOTS_DIR = 'snapshots';
/** Salvage notes kept at most (the latest): each start that fails before reporting may add a few. */
const NOTES_MAX = 32;

/** Told where a damaged database was set aside, and why (the daemon logs it at warn). */
export type SetAsideListener = (path: string, reason: string) => void;

export class LevelRaftStorage implements RaftStorage, MetaStore {
  /** Every operation runs after the ones called before it, so a read sees every earlier save. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Set when a write failed: what is on disk is then unknown, so nothing more may be written or trusted. */
  private failure: Error | null = null;
  private closed = false;
  /** saveSnapshot calls under way (their files are written outside the queue): close() waits for them. */
  private readonly savingSnapshots = new Set<Promise<unknown>>();
  /** The LevelDB compactions started after snapshots (see reclaim): at most one running and one waiting. */
  private reclaiming: Promise<void> = Promise.resolve();
  private reclaimWaiting = false;
  /** The waiting compaction reaches the entry keys below this index. */
  private reclaimBelow = 0;
  /** What a salvaging open found wrong (see salvage). */
  private openProblems: string[] = [];
  /** What a salvaging open's salvage found, for the first salvage() call. */
  private salvaged: { state: LoadedState; problems: string[] } | null = null;
  /** Opened to check only (open({ salvage: 'check' })): salvage() then rewrites nothing. */
  private checkOnly = false;
  /** Set when a check-only salvage found damage it left in place: nothing may be written over it. */
  private unrepaired: MinkubeError | null = null;

  private constructor(
    readonly dir: string,
    private readonly db: Db,
    private first: number,
    private last: number,
    private snapshot: SnapshotInfo | null,
  ) {}

  /**
   * Opens (creating if missing) the database in `dir`, and deletes the snapshot files a crash or an earlier save
   * left behind (temp files, and every snapshot but the current one). With `salvage`, it also salvages what it holds
   * at once (salvage() then answers what was found), repairing LevelDB itself when it must (see openSalvaging).
   *
   * With `salvage: 'check'` it judges the same way and changes nothing (for --force-new-cluster, which refuses a
   * damaged store before it is touched): LevelDB reporting damage is the verdict (damageFound says so of the error
   * thrown: no RepairDB, nothing set aside), salvage() rewrites nothing and leaves no notes, no snapshot file is
   * deleted, and a store found damaged refuses every write. LevelDB's own housekeeping at open still runs (its
   * write-ahead log replayed into a table, a new manifest), and drops the records after a damaged log record: the
   * daemon checks a copy of the database for that reason (refuseForcingDamaged).
   */
  static async open(dir: string, options: { salvage?: boolean | 'check'; onSetAside?: SetAsideListener } = {}): Promise<LevelRaftStorage> {
    await makeDirs(dir);
    if (options.salvage === undefined || options.salvage === false) return LevelRaftStorage.openOnce(dir, null);
    return LevelRaftStorage.openSalvaging(dir, options.salvage === 'check', options.onSetAside);
  }

  /**
   * Damage LevelDB itself reports, at open or while the salvage reads the log or deletes its damaged end (a table
   * block that fails LevelDB's check shows only when it is read), is repaired with RepairDB, which keeps every record
   * it can still read, and the open and salvage are tried again. A database still damaged after that is set aside in
   * the data directory and the node starts from an empty log: salvage() says so, the marker beside the directory still
   * says what it had acknowledged, so it recovers and learns everything again from the leader.
   *
   * A disk that refuses to read or write (full, read-only, failing: diskRefusal) at any step is not damage: the open
   * fails with STORAGE_FAILED, and the directory is left as it was (a repair cut short by it is undone), so the next
   * start, once the disk has room, finds what this one found.
   */
  private static async openSalvaging(dir: string, checkOnly: boolean, onSetAside: SetAsideListener | undefined): Promise<LevelRaftStorage> {
    const problems: string[] = [];
    for (let attempt = 1; ; attempt++) {
      let storage: LevelRaftStorage | null = null;
      try {
        storage = await LevelRaftStorage.openOnce(dir, [...problems], checkOnly);
        storage.salvaged = await storage.salvage();
        return storage;
      } catch (err) {
        await storage?.close().catch(() => undefined);
        const refused = refusalOf(dir, err);
        if (refused !== null) throw refused;
        const damage = attempt > 2 ? null : await levelDamage(dir, err);
        if (damage === null) throw err;
        if (checkOnly) throw damageVerdict(dir, damage, err);
        if (attempt === 1) {
          problems.push(await repairDb(dir, damage));
        } else {
          // The new database's notes hold what was found so far: its salvage reports them, or the next start's does.
          const aside = await setAside(dir, damage, problems);
          problems.length = 0;
          onSetAside?.(aside.path, aside.reason);
        }
      }
    }
  }

  /** One open: strict (`problems` null), or noting in `problems` what salvage must drop; `checkOnly`: see open. */
  private static async openOnce(dir: string, problems: string[] | null, checkOnly = false): Promise<LevelRaftStorage> {
    const db = await openDb(dir);
    try {
      await checkFormat(dir, db);
      const snapshot = await readSnapshotRecord(dir, db).catch((err: unknown) => {
        if (problems === null || !(err instanceof MinkubeError)) throw err;
        problems.push(err.message);
        return null;
      });
      const bounds = await logBounds(dir, db, snapshot?.meta.index ?? 0).catch((err: unknown) => {
        if (problems === null || isLevelDamage(dir, err) || diskRefusal(err) !== null) throw err;
        problems.push(describe(err));
        return { first: (snapshot?.meta.index ?? 0) + 1, last: snapshot?.meta.index ?? 0 };
      });
      const { first, last } = bounds;
      const keep = snapshot === null ? null : rec.snapshotFileName(snapshot);
      // Not when checking only: a damaged database may name an older snapshot than a file it holds (or none, its
      // record unreadable), and that file may be the only copy. The next open that may change things cleans them.
      if (!checkOnly) {
        await removeStaleFiles(join(dir, SNAPSHOTS_DIR), keep).catch((err: unknown) => {
          const refused = diskRefusal(err);
          if (refused !== null) throw storageFailed(`cannot clean the snapshots of the data directory ${dir}`, refused);
          throw new MinkubeError('INTERNAL', `cannot clean the snapshots of the data directory ${dir}: ${describe(err)}`, { cause: err });
        });
      }
      const storage = new LevelRaftStorage(dir, db, first, last, snapshot);
      storage.openProblems = problems ?? [];
      storage.checkOnly = checkOnly;
      return storage;
    } catch (err) {
      await db.close();
      // A table cut short is damage, not a fault of Minkube's own (INTERNAL), for the strict open too.
      if (!(err instanceof MinkubeError) && isLevelDamage(dir, err)) {
        throw new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: ${describe(err)}`, { cause: err });
      }
      throw err;
    }
  }

  firstIndex(): Promise<LogIndex> {
    return this.serial(async () => logIndex(this.first));
  }

  lastIndex(): Promise<LogIndex> {
    return this.serial(async () => logIndex(this.last));
  }

  getRange(lo: LogIndex, hi: LogIndex): Promise<Entry[]> {
    return this.serial(async () => {
      checkRange(lo, hi, this.first, this.last);
      if (lo === hi) return [];
      const entries = await this.readEntries(rec.entryKey(lo), rec.entryKey(hi), lo);
      if (entries.length !== hi - lo) throw this.corrupt(`entry ${lo + entries.length} is missing`);
      return entries;
    });
  }

  hardState(): Promise<HardState> {
    return this.serial(() => this.readHardState());
  }

  load(): Promise<LoadedState> {
    return this.serial(async () => {
      const hardState = await this.readHardState();
      const snapshot = this.snapshot;
      // Both read at once; both are awaited before either's failure is thrown, so no read outlives the call.
      const [dataRead, entriesRead] = await Promise.allSettled([
        snapshot === null ? null : this.readSnapshotData(snapshot),
        this.readEntries(rec.entryKey(0), rec.entryKeyEnd, null),
      ]);
      if (dataRead.status === 'rejected') throw dataRead.reason;
      if (entriesRead.status === 'rejected') throw entriesRead.reason;
      const [snapshotData, entries] = [dataRead.value, entriesRead.value];
      const snapshotIndex = snapshot?.meta.index ?? 0;
      this.checkLoaded(hardState, entries, snapshotIndex);
      this.first = entries[0]?.index ?? snapshotIndex + 1;
      this.last = entries.at(-1)?.index ?? snapshotIndex;
      const state = { hardState, entries, applied: logIndex(0) };
      return snapshot === null ? { ...state, snapshotData: null } : { ...state, snapshot: snapshot.meta, snapshotData };
    });
  }

  /**
   * Loads what can be trusted and rewrites the store to it, saying what it dropped (nothing when the store is
   * intact): use it instead of load() after open({ salvage: true }). Kept: the hard state (an empty one when it is
   * unreadable), the snapshot when its record and file are intact, and the log from its start up to the first entry
   * that is missing, malformed, fails its checksum, goes back in term, or cannot be read (a snapshot that is dropped
   * takes the log after it along: it has nothing to start from). Everything after is deleted, and the hard state's
   * commit lowered to what is left, so the node learns the rest from the leader. See docs/storage-faults.md.
   * What it found is kept in the store's notes (with what an earlier start found and left there, reported again) until
   * salvageReported(), so a start that fails before it has reported them leaves them for the next one.
   * Opened to check only (see open), it rewrites nothing and keeps no notes: it only says what it would drop.
   */
  salvage(): Promise<{ state: LoadedState; problems: string[] }> {
    const done = this.salvaged;
    if (done !== null) {
      this.salvaged = null;
      return this.serial(async () => done);
    }
    return this.serial(async () => {
      const problems = [...(await this.readNotes()), ...this.openProblems];
      this.openProblems = [];
      const hardState = await this.readHardState().catch((err: unknown) => {
        // LevelDB's own damage is for openSalvaging to repair, and a disk that refuses for it to report: not a hard
        // state to drop.
        if (isLevelDamage(this.dir, err) || diskRefusal(err) !== null) throw err;
        problems.push(describe(err));
        return emptyHardState;
      });
      let snapshot = this.snapshot;
      // The snapshot file and the log are read at once (a file read and LevelDB's iterator both run in libuv's pool).
      const [read, scanned] = await Promise.all([
        snapshot === null ? null : this.readSnapshotData(snapshot).then((data) => ({ data }), (err: unknown) => ({ problem: describe(err), err })),
        this.scanLog(snapshot?.meta ?? null),
      ]);
      let snapshotData: Uint8Array | null = null;
      let scan = scanned;
      const refused = read !== null && 'err' in read ? diskRefusal(read.err) : null;
      if (refused !== null) throw storageFailed(`reading the snapshot of the data directory ${this.dir} failed`, refused);
      if (read !== null && 'problem' in read) {
        problems.push(read.problem);
        // A dropped snapshot takes the log after it along: the log is judged again without it.
        snapshot = null;
        scan = await this.scanLog(null);
      } else if (read !== null) {
        snapshotData = read.data;
      }
      if (scan.problem !== null) problems.push(scan.problem);
      const found = [...new Set(problems)].slice(-NOTES_MAX);
      const snapshotIndex = snapshot?.meta.index ?? 0;
      const last = scan.entries.at(-1)?.index ?? snapshotIndex;
      const lastTerm = scan.entries.at(-1)?.term ?? snapshot?.meta.term ?? 0;
      const kept: HardState =
        lastTerm > hardState.term
          ? { term: term(lastTerm), vote: null, commit: logIndex(Math.min(hardState.commit, last)) }
          : { ...hardState, commit: logIndex(Math.min(hardState.commit, last)) };
      if (found.length > 0 && this.checkOnly) {
        this.unrepaired = this.corrupt(`it was opened to check only, and is damaged (left as it was): ${found.join('; ')}`);
      } else if (found.length > 0) {
        await this.rewriteSalvaged(kept, snapshot, scan.entries[0]?.index ?? last + 1, last, found);
      }
      this.first = scan.entries[0]?.index ?? snapshotIndex + 1;
      this.last = last;
      const state = { hardState: kept, entries: scan.entries, applied: logIndex(0) };
      const loaded: LoadedState = snapshot === null ? { ...state, snapshotData: null } : { ...state, snapshot: snapshot.meta, snapshotData };
      return { state: loaded, problems: found.map((p) => (p.includes(this.dir) ? p : `in the data directory ${this.dir}, ${p}`)) };
    });
  }

  /** What salvage() found is reported now (the marker holds its target, the recovering reason says it): notes go. */
  salvageReported(): Promise<void> {
    return this.serial(async () => {
      if ((await this.db.get(rec.notesKey)) === undefined) return;
      await this.write((batch) => batch.del(rec.notesKey));
    });
  }

  /** The notes an earlier salvage left (see salvage). */
  private async readNotes(): Promise<string[]> {
    const value = await this.db.get(rec.notesKey);
    if (value === undefined) return [];
    const notes = rec.decodeNotes(value);
    return typeof notes === 'string' ? [`the notes an earlier start left of what it found are unreadable (${notes})`] : notes;
  }

  /**
   * The log's trustworthy run: contiguous from its first entry, non-decreasing in term, reaching the snapshot (when
   * there is one) and after it starting with its term; and why it stops early, if it does.
   */
  private async scanLog(snap: SnapshotMeta | null): Promise<{ entries: Entry[]; problem: string | null }> {
    const entries: Entry[] = [];
    const snapshotIndex = snap?.index ?? 0;
    let problem: string | null = null;
    const it = this.db.iterator({ gte: rec.entryKey(0), lt: rec.entryKeyEnd, highWaterMarkBytes: READ_CHUNK_BYTES });
    try {
      outer: for (;;) {
        const items = await it.nextv(READ_CHUNK_ENTRIES);
        if (items.length === 0) break;
        for (const [key, value] of items) {
          const next = this.nextEntry(key, value, entries.at(-1), snapshotIndex);
          if (typeof next === 'string') {
            problem = next;
            break outer;
          }
          entries.push(next);
        }
      }
    } catch (err) {
      // A disk that refuses a read says nothing of the entries after: they stay, and the start fails.
      const refused = diskRefusal(err);
      if (refused !== null) throw storageFailed(`reading the log of the data directory ${this.dir} failed`, refused);
      problem = `the log cannot be read past index ${entries.at(-1)?.index ?? 0}: ${describe(err)}`;
      // A damaged LevelDB table: RepairDB may still read the entries after it (openSalvaging), and the damaged table
      // would fail the deletion of the log's end anyway.
      if (isLevelDamage(this.dir, err)) throw this.corrupt(problem, err);
    } finally {
      await it.close().catch(() => undefined);
    }
    if (snap === null || entries.length === 0) return { entries, problem };
    const first = entries[0]!.index;
    const last = entries.at(-1)!.index;
    if (first > snapshotIndex + 1) return { entries: [], problem: problem ?? `the log starts at index ${first}, after the snapshot at index ${snapshotIndex}` };
    if (last < snapshotIndex) return { entries: [], problem: problem ?? `the log ends at index ${last}, before the snapshot at index ${snapshotIndex}` };
    const at = entries.find((e) => e.index === snapshotIndex);
    if (at !== undefined && at.term !== snap.term) return { entries: [], problem: `the entry at the snapshot's index ${snapshotIndex} has term ${at.term}, not ${snap.term}` };
    return { entries, problem };
  }

  /** The entry under `key`, decoded once (its checksum checked), or why it cannot follow `prev`. */
  private nextEntry(key: Buffer, value: Buffer, prev: Entry | undefined, snapshotIndex: number): Entry | string {
    const index = rec.indexOfEntryKey(key);
    if (index < 0) return `an entry key is malformed (${key.toString('hex')})`;
    if (prev === undefined && snapshotIndex === 0 && index !== 1) return `entry 1 is missing (the log starts at index ${index})`;
    if (prev !== undefined && index !== prev.index + 1) return `entry ${prev.index + 1} is missing (found index ${index})`;
    const entry = rec.decodeEntry(index, value);
    if (typeof entry === 'string') return `the entry at index ${index} is corrupt: ${entry}`;
    if (prev !== undefined && entry.term < prev.term) return `the entry at index ${index} has term ${entry.term}, below the term ${prev.term} before it`;
    return entry;
  }

  /** Deletes what salvage dropped, and writes the hard state it kept and the notes of what it found, in one synced batch. */
  private async rewriteSalvaged(hardState: HardState, snapshot: SnapshotInfo | null, first: number, last: number, notes: readonly string[]): Promise<void> {
    const dropped = this.snapshot !== null && snapshot === null ? this.snapshot : null;
    try {
      await this.db.clear({ gte: rec.entryKey(0), lt: rec.entryKey(first) });
      await this.db.clear({ gte: rec.entryKey(last + 1), lt: rec.entryKeyEnd });
    } catch (err) {
      const refused = diskRefusal(err);
      if (refused !== null) throw storageFailed(`deleting the damaged entries after index ${last} from the data directory ${this.dir} failed`, refused);
      throw this.corrupt(`the damaged entries after index ${last} cannot be deleted: ${describe(err)}`, err);
    }
    await this.write((batch) => {
      batch.put(rec.hardStateKey, rec.encodeHardState(hardState));
      batch.put(rec.notesKey, rec.encodeNotes(notes));
      if (dropped !== null) batch.del(rec.snapshotKey);
    });
    this.snapshot = snapshot;
    if (dropped !== null) await removeFileIfExists(this.snapshotPath(dropped)).catch(() => undefined);
  }

  /**
   * One synced batch: the hard state, the entries, and deletes of the stored entries after the new last index.
   * With a received snapshot, its file is written first and the batch also makes it current and deletes every entry.
   */
  save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    return this.serial(async () => {
      if (options.snapshot !== undefined) return this.installSnapshot(hardState, entries, options.snapshot);
      const newLast = checkSave(entries, this.first, this.last, this.snapshot?.meta.index ?? 0);
      if (hardState === null && entries.length === 0) return;
      await this.write((batch) => {
        if (hardState !== null) batch.put(rec.hardStateKey, rec.encodeHardState(hardState));
        for (const e of entries) batch.put(rec.entryKey(e.index), rec.encodeEntry(e));
        if (entries.length > 0) {
          for (let i = newLast + 1; i <= this.last; i++) batch.del(rec.entryKey(i));
        }
      }, options.sync ?? true);
      if (entries.length > 0) {
        if (this.last < this.first) this.first = entries[0]!.index;
        this.last = newLast;
      }
    });
  }

  snapshotInfo(): SnapshotInfo | null {
    assert(!this.closed, `the storage in ${this.dir} is closed`);
    return this.snapshot;
  }

  readSnapshot(): Promise<{ info: SnapshotInfo; data: Uint8Array } | null> {
    return this.serial(async () => {
      const info = this.snapshot;
      return info === null ? null : { info, data: await this.readSnapshotData(info) };
    });
  }

  /**
   * The bytes go to their file first, outside the queue the log's writes take turns in: writing and syncing tens of
   * MiB took half a second, and every append waited behind it, so a follower stopped answering its leader (with
   * every member taking its snapshot at about the same index, the leader lost its quorum's answers and stepped
   * down). Then one synced batch, in the queue, makes them current and deletes the compacted entries.
   */
  async saveSnapshot(meta: SnapshotMeta, data: SnapshotBytes, compactThrough: LogIndex): Promise<void> {
    assert(!this.closed, `the storage in ${this.dir} is closed`);
    checkSnapshot(meta, compactThrough, this.snapshot);
    const info = snapshotInfoOf(meta, data);
    const saving = this.writeSnapshotFile(info, data).then(() =>
      this.serial(async () => {
        // A snapshot from the leader may have been installed while the file was written: this one is then older
        // than the current one, and is dropped (its file with it; never the current one's, were they one name).
        const current = this.snapshot;
        if (current !== null && meta.index <= current.meta.index) {
          if (this.snapshotPath(info) !== this.snapshotPath(current)) await removeFileIfExists(this.snapshotPath(info)).catch(() => undefined);
          return;
        }
        checkSnapshot(meta, compactThrough, current);
        const bounds = compactedBounds(this.first, this.last, meta.index, compactThrough);
        await this.makeSnapshotCurrent(info, (batch) => {
          for (let i = this.first; i < bounds.first && i <= this.last; i++) batch.del(rec.entryKey(i));
        });
        this.first = bounds.first;
        this.last = bounds.last;
        this.reclaim(bounds.first);
      }),
    );
    // close() lets a save begun before it finish, as it lets what the queue holds finish.
    const tracked = saving.catch(() => undefined);
    this.savingSnapshots.add(tracked);
    void tracked.then(() => this.savingSnapshots.delete(tracked));
    await saving;
  }

  getMeta(key: string): Promise<Uint8Array | undefined> {
    return this.serial(async () => {
      const value = await this.db.get(rec.metaKey(key));
      if (value === undefined) return undefined;
      const bytes = rec.decodeMeta(value);
      if (typeof bytes === 'string') throw this.corrupt(`meta value "${key}": ${bytes}`);
      return bytes;
    });
  }

  putMeta(key: string, value: Uint8Array): Promise<void> {
    return this.serial(() => this.write((batch) => batch.put(rec.metaKey(key), rec.encodeMeta(value))));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all(this.savingSnapshots);
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await this.reclaiming;
    await this.db.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    assert(!this.closed, `the storage in ${this.dir} is closed`);
    const run = this.tail.then(() => {
      if (this.failure !== null) throw this.failure;
      return fn();
    });
    // Not the result: the tail would keep it alive until the next operation (a loaded snapshot's whole buffer).
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** One synced write. A chained batch: abstract-level's array form costs several times more per operation. */
  private async write(fill: (batch: Batch) => void, sync = true): Promise<void> {
    if (this.unrepaired !== null) throw this.unrepaired;
    const batch = this.db.batch();
    try {
      fill(batch);
      await batch.write({ sync });
    } catch (err) {
      await batch.close().catch(() => undefined);
      this.failure = storageFailed(`writing to the data directory ${this.dir} failed`, err);
      throw this.failure;
    }
  }

  private async installSnapshot(
    hardState: HardState | null,
    entries: readonly Entry[],
    { meta, data }: { readonly meta: SnapshotMeta; readonly data: Uint8Array },
  ): Promise<void> {
    checkSnapshot(meta, meta.index, this.snapshot);
    const newLast = checkSave(entries, meta.index + 1, meta.index);
    await this.replaceSnapshot(snapshotInfoOf(meta, data), data, (batch) => {
      for (let i = this.first; i <= this.last; i++) batch.del(rec.entryKey(i));
      if (hardState !== null) batch.put(rec.hardStateKey, rec.encodeHardState(hardState));
      for (const e of entries) batch.put(rec.entryKey(e.index), rec.encodeEntry(e));
    });
    const deletedBelow = Math.max(this.last, meta.index) + 1;
    this.first = meta.index + 1;
    this.last = newLast;
    this.reclaim(deletedBelow);
  }

  /**
   * LevelDB keeps deleted entries on disk until a compaction happens to reach them: with its default thresholds a
   * compacted log lingers as tens of megabytes (about 60 MB after five rounds of 10,000 1 KB entries). Compacting
   * the deleted key range brings that to the live data, at ~150 ms per 10 MB; it runs beside later writes, not
   * before them, and snapshots that come faster than it share the waiting one. A failure only leaves the space to
   * LevelDB's own compactions.
   */
  private reclaim(below: number): void {
    this.reclaimBelow = Math.max(this.reclaimBelow, below);
    if (this.reclaimWaiting) return;
    this.reclaimWaiting = true;
    this.reclaiming = this.reclaiming
      .then(() => {
        this.reclaimWaiting = false;
        return this.db.compactRange(rec.entryKey(0), rec.entryKey(this.reclaimBelow));
      })
      .catch(() => undefined);
  }

  /**
   * Writes the snapshot's file durably, then one synced batch: its record and whatever `fill` adds. Until that batch
   * is on disk the old snapshot stays current (a crash leaves only a stray file, deleted on open); after it, the
   * old snapshot's file goes.
   */
  private async replaceSnapshot(info: SnapshotInfo, data: SnapshotBytes, fill: (batch: Batch) => void): Promise<void> {
    await this.writeSnapshotFile(info, data);
    await this.makeSnapshotCurrent(info, fill);
  }

  /** The snapshot's file, written durably under its final name (not current until makeSnapshotCurrent). */
  private async writeSnapshotFile(info: SnapshotInfo, data: SnapshotBytes): Promise<void> {
    try {
      await writeFileDurably(this.snapshotsDir(), rec.snapshotFileName(info), data);
    } catch (err) {
      throw storageFailed(`writing a snapshot to the data directory ${this.dir} failed`, err);
    }
  }

  /** One synced batch: the snapshot's record and whatever `fill` adds; then the old snapshot's file goes. */
  private async makeSnapshotCurrent(info: SnapshotInfo, fill: (batch: Batch) => void): Promise<void> {
    await this.write((batch) => {
      batch.put(rec.snapshotKey, rec.encodeSnapshot(info));
      fill(batch);
    });
    const old = this.snapshot;
    this.snapshot = info;
    // A file that cannot be deleted now is deleted on the next open.
    if (old !== null) await removeFileIfExists(this.snapshotPath(old)).catch(() => undefined);
  }

  /** The snapshot's bytes from its file, verified against its record. */
  private async readSnapshotData(info: SnapshotInfo): Promise<Uint8Array> {
    const path = this.snapshotPath(info);
    let file: Buffer | null;
    try {
      file = await readFileIfExists(path);
    } catch (err) {
      throw new MinkubeError('INTERNAL', `cannot read the snapshot file ${path}: ${describe(err)}`, { cause: err });
    }
    if (file === null) throw this.corrupt(`the snapshot file ${path} is missing`);
    const problem = snapshotDataProblem(info, file);
    if (problem !== null) throw this.corrupt(`the snapshot file ${path} is damaged: ${problem}`);
    // readFile gives the file a buffer of its own: a view of it spares copying tens of megabytes.
    return new Uint8Array(file.buffer, file.byteOffset, file.length);
  }

  /** The loaded log must run on from the snapshot without a gap, and cover the hard state's commit. */
  private checkLoaded(hardState: HardState, entries: readonly Entry[], snapshotIndex: number): void {
    const first = entries[0]?.index ?? snapshotIndex + 1;
    const last = entries.at(-1)?.index ?? snapshotIndex;
    if (first > snapshotIndex + 1) throw this.corrupt(`entry ${snapshotIndex + 1} is missing (the log starts at index ${first})`);
    if (last < snapshotIndex) throw this.corrupt(`the log ends at index ${last}, before the snapshot's index ${snapshotIndex}`);
    if (hardState.commit > last) {
      throw this.corrupt(`the hard state commits index ${hardState.commit} but the log ends at index ${last}`);
    }
  }

  private snapshotsDir(): string {
    return join(this.dir, SNAPSHOTS_DIR);
  }

  private snapshotPath(info: SnapshotInfo): string {
    return join(this.snapshotsDir(), rec.snapshotFileName(info));
  }

  private async readHardState(): Promise<HardState> {
    const value = await this.db.get(rec.hardStateKey);
    if (value === undefined) return emptyHardState;
    const hs = rec.decodeHardState(value);
    if (typeof hs === 'string') throw this.corrupt(`the hard state is unreadable: ${hs}`);
    return hs;
  }

  /** Entries with keys in [gte, lt), checked one by one and for contiguity (from `expectFirst` when given). */
  private async readEntries(gte: Buffer, lt: Buffer, expectFirst: number | null): Promise<Entry[]> {
    const entries: Entry[] = [];
    let expected = expectFirst;
    // nextv reads in large steps: for-await costs a promise per entry, which dominates loading a long log.
    const it = this.db.iterator({ gte, lt, highWaterMarkBytes: READ_CHUNK_BYTES });
    try {
      for (let items = await it.nextv(READ_CHUNK_ENTRIES); items.length > 0; items = await it.nextv(READ_CHUNK_ENTRIES)) {
        for (const [key, value] of items) {
          const index = rec.indexOfEntryKey(key);
          if (index < 0) throw this.corrupt(`an entry key is malformed (${key.toString('hex')})`);
          if (expected !== null && index !== expected) throw this.corrupt(`entry ${expected} is missing (found index ${index})`);
          const entry = rec.decodeEntry(index, value);
          if (typeof entry === 'string') throw this.corrupt(`the entry at index ${index} is corrupt: ${entry}`);
          entries.push(entry);
          expected = index + 1;
        }
      }
    } finally {
      await it.close();
    }
    return entries;
  }

  private corrupt(what: string, cause?: unknown): MinkubeError {
    return new MinkubeError('STORAGE_CORRUPT', `the data directory ${this.dir} is corrupt: ${what}`, cause === undefined ? {} : { cause });
  }
}

async function openDb(dir: string): Promise<Db> {
  const db: Db = new ClassicLevel<Buffer, Buffer>(dir, encodings);
  try {
    await db.open();
    return db;
  } catch (err) {
    throw await openError(dir, err);
  }
}

/**
 * RepairDB on `dir`, and what to say of it. RepairDB deletes nothing: what it cannot read (a table cut short, a block
 * that fails its check) it moves into `<dir>/lost`, where it stays for the operator; the reason names those tables.
 *
 * RepairDB moves every write-ahead log and the manifest into lost/ whether or not it could turn them into a table and
 * a new manifest, and a log it could not convert (no space) it skips without failing: on a full disk it used to lose
 * the whole log to lost/. So it runs only with room for everything it may write (checkRoomToRepair), and should the
 * disk still refuse it, what it moved and made is put back (undoRepair), CURRENT from a hard link taken before.
 */
async function repairDb(dir: string, damage: string): Promise<string> {
  await checkRoomToRepair(dir, damage);
  const lost = join(dir, LOST_DIR);
  const before: FilesBefore = { top: new Set(await readdir(dir)), lost: new Set(await readdir(lost).catch(() => [])) };
  const current = await keepCurrent(dir, damage);
  try {
    await ClassicLevel.repair(dir);
  } catch (err) {
    const refused = diskRefusal(err);
    if (refused !== null) throw await undoRepair(dir, before, current, damage, refused);
    return `LevelDB reported it damaged (${damage}), and RepairDB failed: ${describe(err)}`;
  } finally {
    if (current !== null) await unlink(current).catch(() => undefined);
  }
  const moved = (await readdir(lost).catch(() => [])).filter((n) => !before.lost.has(n) && TABLE_FILE.test(n));
  const kept = moved.length === 0 ? '' : ` (the tables it could not read whole are kept in ${lost}: ${moved.sort().join(', ')})`;
  return `LevelDB reported it damaged and RepairDB repaired it, keeping every record it could read${kept}: ${damage}`;
}

const LOST_DIR = 'lost';
/** A hard link to CURRENT as it was before RepairDB (which replaces the file, never writes into it). */
const CURRENT_BEFORE_REPAIR = 'CURRENT.before-repair';
/** Room kept beyond the logs and tables for what else RepairDB writes (a manifest, CURRENT, its LOG). */
const REPAIR_MARGIN_BYTES = 1024 * 1024;
/** Files RepairDB makes: tables from logs, copies of damaged tables, manifests, temp files. */
const REPAIR_OUTPUT = /^(\d+\.(ldb|sst|log|dbtmp)|MANIFEST-\d+)$/;

interface FilesBefore {
  readonly top: ReadonlySet<string>;
  readonly lost: ReadonlySet<string>;
}

/**
 * STORAGE_FAILED, before anything is changed, unless the disk has room for all RepairDB may write: a table for each
 * write-ahead log, a copy of each table it finds damaged, and a margin. (Something else may still fill the disk while
 * it runs: undoRepair is for that.) A file system that cannot say how full it is is not checked.
 */
async function checkRoomToRepair(dir: string, damage: string): Promise<void> {
  let freeBytes: number;
  try {
    const fs = await statfs(dir);
    freeBytes = fs.bavail * fs.bsize;
  } catch {
    return;
  }
  let needBytes = REPAIR_MARGIN_BYTES;
  for (const name of await readdir(dir)) {
    if (/^\d+\.(ldb|sst|log)$/.test(name)) needBytes += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
  }
  if (freeBytes >= needBytes) return;
  const full = Object.assign(new Error(`${freeBytes} bytes free`), { code: 'ENOSPC' });
  throw storageFailed(
    `cannot repair the damaged data directory ${dir}, left as it was (LevelDB reported it damaged: ${damage}): RepairDB may write up to ${needBytes} bytes and ${freeBytes} are free`,
    full,
  );
}

/** The path of a hard link to `dir`'s CURRENT (null when it has none), for undoRepair; STORAGE_FAILED when refused. */
async function keepCurrent(dir: string, damage: string): Promise<string | null> {
  const kept = join(dir, CURRENT_BEFORE_REPAIR);
  // One a start cut short left behind is older than CURRENT now.
  await unlink(kept).catch(() => undefined);
  try {
    await link(join(dir, 'CURRENT'), kept);
    return kept;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw storageFailed(`cannot repair the damaged data directory ${dir}, left as it was (LevelDB reported it damaged: ${damage})`, diskRefusal(err) ?? err);
  }
}

/**
 * Puts `dir` back as it was before a RepairDB the disk refused: what it moved into lost/ comes back, what it made goes,
 * CURRENT is the one it had. Returns the STORAGE_FAILED to throw, which says whether all of it went back.
 */
async function undoRepair(dir: string, before: FilesBefore, current: string | null, damage: string, refused: Error): Promise<MinkubeError> {
  const lost = join(dir, LOST_DIR);
  const what = `repairing the damaged data directory ${dir} failed (LevelDB reported it damaged: ${damage})`;
  try {
    for (const name of await readdir(lost).catch(() => [])) {
      if (!before.lost.has(name)) await rename(join(lost, name), join(dir, name));
    }
    for (const name of await readdir(dir)) {
      if (!before.top.has(name) && REPAIR_OUTPUT.test(name)) await unlink(join(dir, name));
    }
    if (current !== null) await rename(current, join(dir, 'CURRENT'));
    if (!before.top.has(LOST_DIR)) await rmdir(lost).catch(() => undefined);
  } catch (err) {
    return storageFailed(`${what}, and what it had moved into ${lost} could not all be put back (${describe(err)})`, refused);
  }
  return storageFailed(`${what}, and it was put back as it was`, refused);
}

/** LevelDB's files (its tables, write-ahead logs, manifests, RepairDB's lost/) and the snapshots: what setAside moves. */
const DATABASE_FILE = /^(\d+\.(ldb|sst|log)|MANIFEST-\d+|CURRENT|CURRENT\.before-repair|LOG|LOG\.old|lost|snapshots)$/;

/**
 * Moves the damaged database (and its snapshots, whose record it held) into `<dir>/damaged-<time>`, for the operator
 * to look at or delete: nothing is deleted, and the next open finds a new database. What `dir` holds besides (the
 * node's certificates, its audit log) stays. Its meta values (a manager that joined remembers it there) are carried
 * over when the damaged database still yields them, and the new database's notes say what was found (`found`, and
 * the set-aside): its salvage reports them, or, should this start fail first, the next start's. The move and the new
 * database are one step: if the new database cannot be written (a full disk), everything is put back and the open
 * fails with STORAGE_FAILED.
 */
async function setAside(dir: string, damage: string, found: readonly string[]): Promise<{ path: string; reason: string }> {
  const kept = await readKept(dir).catch(() => ({ meta: [], notes: [] }));
  const aside = join(dir, `damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const reason = `LevelDB still reported it damaged after RepairDB (${damage}): the database was set aside in ${aside}, its snapshots with it, and the log starts empty`;
  const names = (await readdir(dir)).filter((n) => DATABASE_FILE.test(n));
  const moved: string[] = [];
  try {
    await mkdir(aside);
    for (const name of names) {
      await rename(join(dir, name), join(aside, name));
      moved.push(name);
    }
    const db = await openDb(dir);
    try {
      const batch = db.batch();
      batch.put(rec.formatKey, Buffer.from([rec.FORMAT_VERSION]));
      for (const [key, value] of kept.meta) batch.put(key, value);
      batch.put(rec.notesKey, rec.encodeNotes([...kept.notes, ...found, reason].slice(-NOTES_MAX)));
      await batch.write({ sync: true });
    } finally {
      await db.close();
    }
  } catch (err) {
    throw await putBack(dir, aside, { names, moved }, err);
  }
  return { path: aside, reason };
}

/**
 * After a set-aside that failed: the new database's files go (those of a name that was not there, or was moved out),
 * the moved ones come back. The error to throw.
 */
async function putBack(dir: string, aside: string, files: { names: readonly string[]; moved: readonly string[] }, err: unknown): Promise<MinkubeError> {
  const what = `cannot set the damaged database of ${dir} aside in ${aside}`;
  const cause = diskRefusal(err) ?? err;
  const stayed = new Set(files.names.filter((n) => !files.moved.includes(n)));
  try {
    for (const name of await readdir(dir)) {
      if (DATABASE_FILE.test(name) && !stayed.has(name) && !(await lstat(join(dir, name))).isDirectory()) await unlink(join(dir, name));
    }
    for (const name of files.moved) await rename(join(aside, name), join(dir, name));
    await rmdir(aside).catch(() => undefined);
  } catch (undo) {
    return storageFailed(`${what}, nor put it back (${describe(undo)}): move what ${aside} holds back into ${dir}`, cause);
  }
  return storageFailed(`${what}, so it was left as it was`, cause);
}

/** What a set-aside carries over from the damaged database: its meta values and its notes. */
async function readKept(dir: string): Promise<{ meta: [Buffer, Buffer][]; notes: string[] }> {
  const db = await openDb(dir);
  try {
    const meta = await db.iterator({ gte: rec.metaKey(''), lt: rec.metaKeyEnd }).all();
    const value = await db.get(rec.notesKey).catch(() => undefined);
    const notes = value === undefined ? [] : rec.decodeNotes(value);
    return { meta, notes: typeof notes === 'string' ? [] : notes };
  } finally {
    await db.close();
  }
}

/** The errors of a check-only open on a database LevelDB reported damaged (see damageFound). */
const verdicts = new WeakSet<Error>();

/** STORAGE_CORRUPT: LevelDB reported `dir` damaged, and a check-only open leaves it as it was. */
function damageVerdict(dir: string, damage: string, cause: unknown): MinkubeError {
  const err = new MinkubeError('STORAGE_CORRUPT', `LevelDB reported the data directory ${dir} damaged, and it was left as it was (not repaired): ${damage}`, { cause });
  verdicts.add(err);
  return err;
}

/**
 * What a check-only open (open({ salvage: 'check' })) found, when `err` is its verdict that LevelDB reported the
 * database damaged (nothing repaired); null for any other failure (a disk that refuses, a directory in use).
 */
export function damageFound(err: unknown): string | null {
  return err instanceof Error && verdicts.has(err) ? err.message : null;
}

/** STORAGE_FAILED for `err` when the disk refused (diskRefusal), keeping one that says so already; else null. */
function refusalOf(dir: string, err: unknown): MinkubeError | null {
  const refused = diskRefusal(err);
  if (refused === null) return null;
  return err instanceof MinkubeError && err.code === 'STORAGE_FAILED' ? err : storageFailed(`cannot open the data directory ${dir}`, refused);
}

const TABLE_FILE = /^\d+\.(ldb|sst)$/;

/**
 * A table LevelDB could not read back, in its own words (it gives no errno code): one shorter than its manifest says,
 * as a file cut short is (the bounds check on the mapped file says "Invalid argument"). A missing table LevelDB
 * reports as corruption at open. Other I/O errors (no space, a read-only, refused or failing disk) are the system
 * refusing, not damage: they stay STORAGE_FAILED.
 */
const TABLE_CUT_SHORT = /^IO error: (.+): Invalid argument$/;

/**
 * Whether LevelDB reported `err` (or an error that caused it) as damage to its own files of `dir`: corruption, or a
 * table cut short (TABLE_CUT_SHORT), at open, while reading, or in a compaction that then failed a write.
 */
function isLevelDamage(dir: string, err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === 'LEVEL_CORRUPTION') return true;
    const path = TABLE_CUT_SHORT.exec(e.message)?.[1];
    if (path !== undefined && TABLE_FILE.test(basename(path)) && resolve(dirname(path)) === resolve(dir)) return true;
  }
  return false;
}

/**
 * What says that LevelDB's own files are damaged, given what failed: corruption LevelDB reported, or what it reports
 * as an I/O error: a table cut short, or a CURRENT that does not name a manifest that exists (garbled, or its manifest
 * deleted). null for anything else: a database another process holds (DATA_DIR_IN_USE), a disk that fails or refuses
 * a write.
 */
async function levelDamage(dir: string, err: unknown): Promise<string | null> {
  if (err instanceof MinkubeError && err.code === 'DATA_DIR_IN_USE') return null;
  if (isLevelDamage(dir, err)) return describe(err);
  const manifest = await manifestProblem(dir);
  if (manifest === null) return null;
  return describe(err).includes(manifest) ? describe(err) : `${manifest} (${describe(err)})`;
}

/** What is wrong with the CURRENT file of `dir`, when it is readable and does not name a manifest that exists. */
async function manifestProblem(dir: string): Promise<string | null> {
  let current: string;
  try {
    current = await readFile(join(dir, 'CURRENT'), 'latin1');
  } catch {
    return null;
  }
  const name = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (name === undefined) return `its CURRENT file does not name a manifest (${JSON.stringify(current.slice(0, 40))})`;
  try {
    await stat(join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `its CURRENT file names ${name}, which is missing`;
  }
  return null;
}

async function checkFormat(dir: string, db: Db): Promise<void> {
  const value = await db.get(rec.formatKey);
  if (value === undefined) {
    await db.put(rec.formatKey, Buffer.from([rec.FORMAT_VERSION]), { sync: true });
  } else if (value.length !== 1 || value[0] !== rec.FORMAT_VERSION) {
    throw new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} has an unknown format (${value.toString('hex')})`);
  }
}

async function readSnapshotRecord(dir: string, db: Db): Promise<SnapshotInfo | null> {
  const value = await db.get(rec.snapshotKey);
  if (value === undefined) return null;
  const info = rec.decodeSnapshot(value);
  if (typeof info === 'string') {
    throw new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: the snapshot record is unreadable: ${info}`);
  }
  return info;
}

/**
 * The first and last stored indexes, from one seek at each end of the entry range (no scan). An empty log starts
 * right after the snapshot. (load() checks that the entries reach the snapshot.)
 */
async function logBounds(dir: string, db: Db, snapshotIndex: number): Promise<{ first: number; last: number }> {
  const range = { gte: rec.entryKey(0), lt: rec.entryKeyEnd, limit: 1 };
  const [firstKey] = await db.keys(range).all();
  const [lastKey] = await db.keys({ ...range, reverse: true }).all();
  if (firstKey === undefined || lastKey === undefined) return { first: snapshotIndex + 1, last: snapshotIndex };
  const first = rec.indexOfEntryKey(firstKey);
  const last = rec.indexOfEntryKey(lastKey);
  if (first < 0 || last < first) {
    throw new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: an entry key is malformed`);
  }
  return { first, last };
}

async function openError(dir: string, err: unknown): Promise<MinkubeError> {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  switch (cause?.code) {
    case 'LEVEL_LOCKED':
      return new MinkubeError('DATA_DIR_IN_USE', `the data directory ${dir} is in use by another process (a node of the same id still running?)`, { cause: err });
    case 'LEVEL_CORRUPTION':
      return new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: ${describe(cause)}`, { cause: err });
    default: {
      if (isLevelDamage(dir, err)) return new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: ${describe(cause ?? err)}`, { cause: err });
      // LevelDB says "IO error" for a garbled CURRENT or a deleted manifest: damage, not a disk refusing a write.
      const manifest = await manifestProblem(dir);
      if (manifest !== null) return new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: ${manifest} (${describe(cause ?? err)})`, { cause: err });
      return storageFailed(`cannot open the data directory ${dir}`, cause ?? err);
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
