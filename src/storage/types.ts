// Stable storage for one Raft node. hashicorp/raft splits it into LogStore and StableStore; we keep the split as
// interfaces but one implementation holds both, because one Ready's hard state and entries go to disk as one batch.
import type { LogIndex } from '../lib/ids.js';
import type { Entry, HardState, RaftInitialState, SnapshotMeta } from '../raft/types.js';

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
  /**
   * A snapshot received from the leader (Ready.snapshot with its bytes), persisted with this Ready: it becomes the
   * current snapshot and EVERY stored entry is deleted before `entries` (which all come after it) are written.
   * Always synced. After it, firstIndex is meta.index + 1 and lastIndex is the last of `entries` (or meta.index).
   */
  readonly snapshot?: { readonly meta: SnapshotMeta; readonly data: Uint8Array };
}

/** A snapshot of the state machine as stored: the core's metadata, and the size and crc32 of its bytes. */
export interface SnapshotInfo {
  readonly meta: SnapshotMeta;
  readonly sizeBytes: number;
  readonly crc32: number;
}

/** What load() found: the core's initial state and, when there is a snapshot, its verified bytes. */
export interface LoadedState extends RaftInitialState {
  readonly snapshotData: Uint8Array | null;
}

/**
 * The snapshot half of a node's storage (hashicorp/raft's SnapshotStore): at most one current snapshot. Its bytes
 * are written durably BEFORE the record that makes them current, so a crash between leaves the old one current.
 */
export interface SnapshotStore {
  /** The current snapshot (as of load() or the last save), or null. */
  snapshotInfo(): SnapshotInfo | null;
  /** The current snapshot's bytes, verified against its checksum (STORAGE_CORRUPT naming the directory otherwise). */
  readSnapshot(): Promise<{ info: SnapshotInfo; data: Uint8Array } | null>;
  /**
   * A snapshot this node took: its bytes become the current snapshot, and the stored entries with an index
   * <= compactThrough are deleted (compactThrough <= meta.index; a tail of entries may stay for lagging followers).
   * A meta whose index is not above the current snapshot's is a programmer error (AssertionError), but one overtaken
   * while its bytes were written (a snapshot from the leader installed meanwhile, newer) is dropped: nothing changes,
   * and its file goes. The bytes may
   * be written before the writes queued ahead of it and after the ones called later (a file of tens of MiB does not
   * hold up the log's appends): only what it does to the log is ordered, once its file is durable.
   */
  saveSnapshot(meta: SnapshotMeta, data: SnapshotBytes, compactThrough: LogIndex): Promise<void>;
}

/**
 * A snapshot's bytes: one buffer, or the parts it is made of, in order (written out as they are, never joined in
 * memory: a snapshot of tens of MiB joined was one more copy of it, garbage until a full collection).
 */
export type SnapshotBytes = Uint8Array | readonly Uint8Array[];

export interface RaftStorage extends LogStore, StableStore, SnapshotStore {
  /**
   * Everything the node persisted: the hard state, the current snapshot (meta and bytes) and the entries after the
   * compacted prefix (contiguous; they may start at or below snapshot.index + 1). `applied` is 0. Fails with
   * STORAGE_CORRUPT, naming the data directory, on a bad checksum or a gap.
   */
  load(): Promise<LoadedState>;
  /**
   * One write of a Ready: the hard state (when set) and the entries, replacing every stored entry at an
   * index >= entries[0].index. Synced unless `sync: false`; resolves only when the write is durable.
   * The caller skips the sync only when nothing but the commit index changed (as etcd's MustSync does): a commit
   * index lost in a power failure is learnt again from the leader, and the entries it covers were synced.
   */
  save(hardState: HardState | null, entries: readonly Entry[], options?: SaveOptions): Promise<void>;
  close(): Promise<void>;
  /**
   * Storage that checks itself (CheckedStorage): load() that says whether what it holds is damaged or older than what
   * this node had acknowledged (then the node starts recovering: docs/storage-faults.md). Without it, load().
   */
  loadChecked?(options?: LoadCheckedOptions): Promise<CheckedLoad>;
  /** The node holds again everything it had acknowledged (it left the recovering state). */
  repaired?(): Promise<void>;
}

/** Why a node starts recovering, and what it must hold again before it votes: the log it had acknowledged. */
export interface StorageRecovery {
  readonly reason: string;
  /** The last entry this node had acknowledged; index Number.MAX_SAFE_INTEGER when not known (the marker is lost). */
  readonly target: { readonly index: number; readonly term: number };
}

export interface LoadCheckedOptions {
  /** Judge only: storage found damaged is left as it was (the marker too), for a caller that then refuses to start. */
  readonly checkOnly?: boolean;
}

export interface CheckedLoad {
  readonly state: LoadedState;
  /** null: intact. */
  readonly recovery: StorageRecovery | null;
  /** Things worth a log line that are not damage (a marker created for a data directory that had none). */
  readonly notes: readonly string[];
}

/** A few small values kept beside the log (the cluster id, say). Each put is one synced write. */
export interface MetaStore {
  getMeta(key: string): Promise<Uint8Array | undefined>;
  putMeta(key: string, value: Uint8Array): Promise<void>;
}
