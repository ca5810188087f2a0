// The in-memory twin of LevelRaftStorage: same contract, no disk. Its state lives in a MemoryDisk that outlives the
// storage object, so a test can "restart" a node by opening a new storage over the same disk.
import { assert } from '../lib/assert.js';
import { logIndex, type LogIndex } from '../lib/ids.js';
import type { Entry, HardState, RaftInitialState } from '../raft/types.js';
import { checkRange, checkSave, emptyHardState } from './common.js';
import type { MetaStore, RaftStorage } from './types.js';

export interface MemoryDisk {
  hardState: HardState;
  /** entries[i] has index firstIndex + i. */
  entries: Entry[];
  firstIndex: number;
  meta: Map<string, Uint8Array>;
}

export function emptyMemoryDisk(): MemoryDisk {
  return { hardState: emptyHardState, entries: [], firstIndex: 1, meta: new Map() };
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

  async load(): Promise<RaftInitialState> {
    this.checkOpen();
    return { hardState: this.disk.hardState, entries: this.disk.entries.map(copyEntry), applied: logIndex(0) };
  }

  async save(hardState: HardState | null, entries: readonly Entry[]): Promise<void> {
    this.checkOpen();
    checkSave(entries, this.disk.firstIndex, this.last());
    if (hardState !== null) this.disk.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    if (entries.length === 0) return;
    const keep = entries[0]!.index - this.disk.firstIndex;
    this.disk.entries.length = keep;
    for (const e of entries) this.disk.entries.push(copyEntry(e));
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
