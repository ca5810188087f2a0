// The in-memory twin of LevelRaftStorage: same contract, no disk. Its state lives in a MemoryDisk that outlives the
// storage object, so a test can "restart" a node by opening a new storage over the same disk.
import { assert } from '../lib/assert.js';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, type LogIndex } from '../lib/ids.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { checkRange, checkSave, checkSnapshot, compactedBounds, emptyHardState, joinedSnapshot, snapshotDataProblem, snapshotInfoOf } from './common.js';
import type { LoadedState, MetaStore, RaftStorage, SaveOptions, SnapshotBytes, SnapshotInfo } from './types.js';

export interface MemoryDisk {
  hardState: HardState;
  /** entries[i] has index firstIndex + i. */
  entries: Entry[];
  firstIndex: number;
  meta: Map<string, Uint8Array>;
  /** The current snapshot; a test may damage `data` to see it refused. */
  snapshot: { info: SnapshotInfo; data: Uint8Array } | null;
}

export function emptyMemoryDisk(): MemoryDisk {
  return { hardState: emptyHardState, entries: [], firstIndex: 1, meta: new Map(), snapshot: null };
}

/** Stored bytes must not change when a caller later reuses its buffer, as with a real disk. */
const copyEntry = (e: Entry): Entry => ({ term: e.term, index: e.index, type: e.type, data: e.data.slice() });

export class MemoryRaftStorage implements RaftStorage, MetaStore {
  private closed = false;

  constructor(readonly disk: MemoryDisk = emptyMemoryDisk()) {}

  /** A new storage over the same disk, as after a clean restart. */
  reopen(): MemoryRaftStorage {
    return new MemoryRaftStorage(this.disk);
  }

  async firstIndex(): Promise<LogIndex> {
    this.checkOpen();
    return logIndex(this.disk.firstIndex);
  }

  async lastIndex(): Promise<LogIndex> {
    this.checkOpen();
    return logIndex(this.last());
  }

  async getRange(lo: LogIndex, hi: LogIndex): Promise<Entry[]> {
    this.checkOpen();
    checkRange(lo, hi, this.disk.firstIndex, this.last());
    if (lo === hi) return [];
    const base = this.disk.firstIndex;
    return this.disk.entries.slice(lo - base, hi - base).map(copyEntry);
  }

  async hardState(): Promise<HardState> {
    this.checkOpen();
    return this.disk.hardState;
  }

  async load(): Promise<LoadedState> {
    this.checkOpen();
    const base = { hardState: this.disk.hardState, entries: this.disk.entries.map(copyEntry), applied: logIndex(0) };
    const snapshot = await this.readSnapshot();
    if (snapshot === null) return { ...base, snapshotData: null };
    return { ...base, snapshot: snapshot.info.meta, snapshotData: snapshot.data };
  }

  async save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    this.checkOpen();
    const received = options.snapshot;
    if (received !== undefined) {
      checkSnapshot(received.meta, received.meta.index, this.disk.snapshot?.info ?? null);
      checkSave(entries, received.meta.index + 1, received.meta.index);
      this.disk.snapshot = { info: snapshotInfoOf(received.meta, received.data), data: received.data.slice() };
      this.disk.entries = [];
      this.disk.firstIndex = received.meta.index + 1;
    } else {
      checkSave(entries, this.disk.firstIndex, this.last(), this.disk.snapshot?.info.meta.index ?? 0);
    }
    if (hardState !== null) this.disk.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    if (entries.length === 0) return;
    const keep = entries[0]!.index - this.disk.firstIndex;
    this.disk.entries.length = keep;
    for (const e of entries) this.disk.entries.push(copyEntry(e));
  }

  snapshotInfo(): SnapshotInfo | null {
    this.checkOpen();
    return this.disk.snapshot?.info ?? null;
  }

  async readSnapshot(): Promise<{ info: SnapshotInfo; data: Uint8Array } | null> {
    this.checkOpen();
    const snapshot = this.disk.snapshot;
    if (snapshot === null) return null;
    const problem = snapshotDataProblem(snapshot.info, snapshot.data);
    if (problem !== null) throw new MinkubeError('STORAGE_CORRUPT', `the in-memory disk is corrupt: ${problem}`);
    return { info: snapshot.info, data: snapshot.data.slice() };
  }

  async saveSnapshot(meta: SnapshotMeta, data: SnapshotBytes, compactThrough: LogIndex): Promise<void> {
    this.checkOpen();
    checkSnapshot(meta, compactThrough, this.disk.snapshot?.info ?? null);
    const { first, last } = compactedBounds(this.disk.firstIndex, this.last(), meta.index, compactThrough);
    this.disk.snapshot = { info: snapshotInfoOf(meta, data), data: Uint8Array.prototype.slice.call(joinedSnapshot(data)) };
    this.disk.entries = first > last ? [] : this.disk.entries.slice(first - this.disk.firstIndex);
    this.disk.firstIndex = first;
  }

  async getMeta(key: string): Promise<Uint8Array | undefined> {
    this.checkOpen();
    return this.disk.meta.get(key)?.slice();
  }

  async putMeta(key: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    this.disk.meta.set(key, value.slice());
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private last(): number {
    return this.disk.firstIndex + this.disk.entries.length - 1;
  }

  private checkOpen(): void {
    assert(!this.closed, 'the storage is closed');
  }
}
