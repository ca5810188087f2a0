// RaftStorage on classic-level (LevelDB): one database per data directory holds the hard state and the log. Each
// Ready is one synced batch; every entry carries a checksum that is verified whenever it is read.
import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { assert } from '../lib/assert.js';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, type LogIndex } from '../lib/ids.js';
import type { Entry, HardState, RaftInitialState } from '../raft/types.js';
import { checkRange, checkSave, emptyHardState } from './common.js';
import * as rec from './records.js';
import type { MetaStore, RaftStorage, SaveOptions } from './types.js';

type Db = ClassicLevel<Buffer, Buffer>;
type Batch = ReturnType<Db['batch']>;

const encodings = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;
const READ_CHUNK_ENTRIES = 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

export class LevelRaftStorage implements RaftStorage, MetaStore {
  /** Every operation runs after the ones called before it, so a read sees every earlier save. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Set when a write failed: what is on disk is then unknown, so nothing more may be written or trusted. */
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly db: Db,
    private first: number,
    private last: number,
  ) {}

  /** Opens (creating if missing) the database in `dir`. */
  static async open(dir: string): Promise<LevelRaftStorage> {
    await mkdir(dir, { recursive: true });
    const db: Db = new ClassicLevel<Buffer, Buffer>(dir, encodings);
    try {
      await db.open();
    } catch (err) {
      throw openError(dir, err);
    }
    try {
      await checkFormat(dir, db);
      const { first, last } = await logBounds(dir, db);
      return new LevelRaftStorage(dir, db, first, last);
    } catch (err) {
      await db.close();
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

  load(): Promise<RaftInitialState> {
    return this.serial(async () => {
      const hardState = await this.readHardState();
      const entries = await this.readEntries(rec.entryKey(0), rec.entryKeyEnd, null);
      const last = entries.at(-1)?.index ?? 0;
      if (hardState.commit > last) {
        throw this.corrupt(`the hard state commits index ${hardState.commit} but the log ends at index ${last}`);
      }
      this.first = entries[0]?.index ?? 1;
      this.last = entries.at(-1)?.index ?? this.first - 1;
      return { hardState, entries, applied: logIndex(0) };
    });
  }

  /** One synced batch: the hard state, the entries, and deletes of the stored entries after the new last index. */
  save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    return this.serial(async () => {
      const newLast = checkSave(entries, this.first, this.last);
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
    this.closed = true;
    await this.tail;
    await this.db.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    assert(!this.closed, `the storage in ${this.dir} is closed`);
    const run = this.tail.then(() => {
      if (this.failure !== null) throw this.failure;
      return fn();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** One synced write. A chained batch: abstract-level's array form costs several times more per operation. */
  private async write(fill: (batch: Batch) => void, sync = true): Promise<void> {
    const batch = this.db.batch();
    try {
      fill(batch);
      await batch.write({ sync });
    } catch (err) {
      await batch.close().catch(() => undefined);
      this.failure = new MinkubeError('INTERNAL', `writing to the data directory ${this.dir} failed: ${describe(err)}`, { cause: err });
      throw this.failure;
    }
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

  private corrupt(what: string): MinkubeError {
    return new MinkubeError('STORAGE_CORRUPT', `the data directory ${this.dir} is corrupt: ${what}`);
  }
}

async function checkFormat(dir: string, db: Db): Promise<void> {
  const value = await db.get(rec.formatKey);
  if (value === undefined) {
    await db.put(rec.formatKey, Buffer.from([rec.FORMAT_VERSION]), { sync: true });
  } else if (value.length !== 1 || value[0] !== rec.FORMAT_VERSION) {
    throw new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} has an unknown format (${value.toString('hex')})`);
  }
}

/** The first and last stored indexes, from one seek at each end of the entry range (no scan). */
async function logBounds(dir: string, db: Db): Promise<{ first: number; last: number }> {
  const range = { gte: rec.entryKey(0), lt: rec.entryKeyEnd, limit: 1 };
  const [firstKey] = await db.keys(range).all();
  const [lastKey] = await db.keys({ ...range, reverse: true }).all();
  if (firstKey === undefined || lastKey === undefined) return { first: 1, last: 0 };
  const first = rec.indexOfEntryKey(firstKey);
  const last = rec.indexOfEntryKey(lastKey);
  if (first < 0 || last < first) {
    throw new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: an entry key is malformed`);
  }
  return { first, last };
}

function openError(dir: string, err: unknown): MinkubeError {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  switch (cause?.code) {
    case 'LEVEL_LOCKED':
      return new MinkubeError('INTERNAL', `the data directory ${dir} is in use by another process`, { cause: err });
    case 'LEVEL_CORRUPTION':
      return new MinkubeError('STORAGE_CORRUPT', `the data directory ${dir} is corrupt: ${describe(cause)}`, { cause: err });
    default:
      return new MinkubeError('INTERNAL', `cannot open the data directory ${dir}: ${describe(cause ?? err)}`, { cause: err });
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
