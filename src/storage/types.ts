// Stable storage for one Raft node. hashicorp/raft splits it into LogStore and StableStore; we keep the split as
// interfaces but one implementation holds both, because one Ready's hard state and entries go to disk as one batch.
import type { LogIndex } from '../lib/ids.js';
import type { Entry, HardState, RaftInitialState } from '../raft/types.js';

export interface LogStore {
  /** The first stored index (1 on a fresh log), and the last (0 on an empty log). */
  firstIndex(): Promise<LogIndex>;
  lastIndex(): Promise<LogIndex>;
  /**
   * Entries in [lo, hi), each verified against its checksum. Requires firstIndex <= lo <= hi <= lastIndex + 1:
   * asking for entries the store does not hold is a programmer error (AssertionError).
   */
  getRange(lo: LogIndex, hi: LogIndex): Promise<Entry[]>;
}

export interface StableStore {
  hardState(): Promise<HardState>;
}

export interface SaveOptions {
  /** Default true. */
  readonly sync?: boolean;
}

export interface RaftStorage extends LogStore, StableStore {
  /** Everything the node persisted. Fails with STORAGE_CORRUPT, naming the data directory, on a bad checksum or a gap. */
  load(): Promise<RaftInitialState>;
  /**
   * One write of a Ready: the hard state (when set) and the entries, replacing every stored entry at an
   * index >= entries[0].index. Synced unless `sync: false`; resolves only when the write is durable.
   * The caller skips the sync only when nothing but the commit index changed (as etcd's MustSync does): a commit
   * index lost in a power failure is learnt again from the leader, and the entries it covers were synced.
   */
  save(hardState: HardState | null, entries: readonly Entry[], options?: SaveOptions): Promise<void>;
  close(): Promise<void>;
}

/** A few small values kept beside the log (the cluster id, say). Each put is one synced write. */
export interface MetaStore {
  getMeta(key: string): Promise<Uint8Array | undefined>;
  putMeta(key: string, value: Uint8Array): Promise<void>;
}
