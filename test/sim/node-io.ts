// What the simulator hands each incarnation of a node's real manager driver (src/manager/node.ts): a storage over
// its simulated disk, a transport over the simulated network, a clock whose timers are events of the one event
// queue, a state machine, and a logger that reports the driver's fatal errors to the simulator. When the node
// crashes, its `life` ends: its writes never complete, its messages and timers go nowhere, so the abandoned driver
// can change nothing the cluster sees.
import type { Logger } from 'pino';
import type { Clock, Timer } from '../../src/lib/clock.js';
import { logIndex, type LogIndex, type NodeId } from '../../src/lib/ids.js';
import type { CommandStateMachine } from '../../src/manager/node.js';
import type { Entry, HardState, Message } from '../../src/raft/types.js';
import { checkRange, joinedSnapshot, snapshotInfoOf } from '../../src/storage/common.js';
import type { AckMarker, MarkerRead, MarkerStore, MemoryMarker } from '../../src/storage/marker.js';
import type { LoadedState, RaftStorage, SaveOptions, SnapshotBytes, SnapshotInfo } from '../../src/storage/types.js';
import type { Transport } from '../../src/transport/types.js';
import type { DiskWrite, SimDisk, StoredSnapshot } from './disk.js';
import type { AppliedCommand, SimStateMachine } from './state-machine.js';

/** One incarnation of a node: alive until it crashes. */
export interface Life {
  alive: boolean;
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

const infoCache = new WeakMap<StoredSnapshot, SnapshotInfo>();
function infoOf(s: StoredSnapshot): SnapshotInfo {
  let info = infoCache.get(s);
  if (info === undefined) {
    info = snapshotInfoOf(s.meta, s.data);
    infoCache.set(s, info);
  }
  return info;
}

/** RaftStorage over a SimDisk: reads see the cache; a synced write resolves when `fsync` says it is durable. */
export class SimStorage implements RaftStorage {
  constructor(
    private readonly disk: SimDisk,
    private readonly life: Life,
    /** Resolves once the write (and every one before it) is durable; never, if the node crashes first. */
    private readonly fsync: (w: DiskWrite) => Promise<void>,
  ) {}

  async firstIndex(): Promise<LogIndex> {
    return logIndex(this.disk.cache.firstIndex);
  }

  async lastIndex(): Promise<LogIndex> {
    return logIndex(this.disk.cache.lastIndex);
  }

  async getRange(lo: LogIndex, hi: LogIndex): Promise<Entry[]> {
    const c = this.disk.cache;
    checkRange(lo, hi, c.firstIndex, c.lastIndex);
    return c.entries.slice(lo - c.firstIndex, hi - c.firstIndex);
  }

  async hardState(): Promise<HardState> {
    return this.disk.cache.hardState;
  }

  async load(): Promise<LoadedState> {
    const c = this.disk.cache;
    return { ...c.load(), snapshotData: c.snapshot?.data ?? null };
  }

  /** What a salvaging store loads (LevelRaftStorage's salvage): the log up to its first damaged or missing entry. */
  async salvage(): Promise<{ state: LoadedState; problems: string[] }> {
    const { state, problems } = this.disk.cache.salvage();
    // The salvage rewrites the store (as a LevelDB repair does, synced) before the node writes anything after it.
    if (state !== this.disk.cache) this.disk.salvaged(state);
    return { state: { ...state.load(), snapshotData: state.snapshot?.data ?? null }, problems };
  }

  save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    if (!this.life.alive) return never();
    const received = options.snapshot;
    const snapshot = received === undefined ? null : { meta: { ...received.meta }, data: received.data.slice() };
    let w: DiskWrite;
    try {
      w = this.disk.write({ kind: 'save', hardState: hardState === null ? null : { ...hardState }, entries: entries.slice(), snapshot });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (options.sync === false && snapshot === null) return Promise.resolve();
    return this.fsync(w);
  }

  snapshotInfo(): SnapshotInfo | null {
    const s = this.disk.cache.snapshot;
    return s === null ? null : infoOf(s);
  }

  async readSnapshot(): Promise<{ info: SnapshotInfo; data: Uint8Array } | null> {
    const s = this.disk.cache.snapshot;
    return s === null ? null : { info: infoOf(s), data: s.data };
  }

  saveSnapshot(meta: StoredSnapshot['meta'], data: SnapshotBytes, compactThrough: LogIndex): Promise<void> {
    if (!this.life.alive) return never();
    let w: DiskWrite;
    try {
      w = this.disk.write({ kind: 'snapshot', snapshot: { meta: { ...meta }, data: Uint8Array.prototype.slice.call(joinedSnapshot(data)) }, compactThrough });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.fsync(w);
  }

  async close(): Promise<void> {}
}

/** A node's acknowledged-state marker (beside its data directory), seen by one incarnation: a dead one writes nothing. */
export class LiveMarker implements MarkerStore {
  readonly where = 'the simulated marker';

  constructor(
    private readonly marker: MemoryMarker,
    private readonly life: Life,
    /** The disk's latency for the marker's write (resolves never if the incarnation dies first). */
    private readonly latency: () => Promise<void> = () => Promise.resolve(),
  ) {}

  read(): Promise<MarkerRead> {
    return this.marker.read();
  }

  async write(m: AckMarker): Promise<void> {
    if (!this.life.alive) return never();
    await this.latency();
    // A crash while it was on its way: the write never happened (the marker file keeps the slot before it).
    return this.life.alive ? this.marker.write(m) : never();
  }

  reset(): Promise<void> {
    return this.life.alive ? this.marker.reset() : never();
  }

  async close(): Promise<void> {}
}

/** A Transport over the simulated network: `out` puts a message on the wire, the simulator calls `deliver`. */
export class SimTransport implements Transport {
  private handler: ((m: Message) => void) | null = null;
  private peers: ReadonlySet<NodeId> | null = null;

  constructor(
    private readonly life: Life,
    private readonly out: (m: Message) => void,
    private readonly linkUp: (peer: NodeId) => boolean,
  ) {}

  send(messages: readonly Message[]): void {
    if (!this.life.alive) return;
    const peers = this.peers;
    for (const m of messages) if (peers === null || peers.has(m.to)) this.out(m);
  }

  onMessage(handler: (m: Message) => void): void {
    this.handler = handler;
  }

  reachable(peer: NodeId): boolean {
    return this.life.alive && (this.peers === null || this.peers.has(peer)) && this.linkUp(peer);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.peers = new Set(peers.keys());
  }

  async close(): Promise<void> {}

  /** A message arrives: false when nobody listens (the node is down or not started yet). */
  deliver(m: Message): boolean {
    if (!this.life.alive || this.handler === null) return false;
    this.handler(m);
    return true;
  }
}

/** A Clock on simulated time (1 unit = 1 ms): its timers are events of the simulator's queue. */
export class SimClock implements Clock {
  constructor(
    private readonly time: { readonly now: number },
    private readonly life: Life,
    private readonly schedule: (delayMs: number, fn: () => void) => void,
  ) {}

  nowMs(): number {
    return this.time.now;
  }

  monoMs(): number {
    return this.time.now;
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    let cancelled = false;
    this.schedule(Math.max(0, Math.ceil(delayMs)), () => {
      if (!cancelled && this.life.alive) fn();
    });
    return { cancel: () => (cancelled = true) };
  }
}

// ---- the driver's proposals: the workload's command, then (magic, the driver's client tag, its seq) ----

const TRAILER_MAGIC = 0x44525631; // 'DRV1'
const TRAILER_BYTES = 12;

export function withTrailer(command: Uint8Array, clientTag: number, seq: number): Uint8Array {
  const out = new Uint8Array(command.length + TRAILER_BYTES);
  out.set(command);
  const view = new DataView(out.buffer);
  view.setUint32(command.length, TRAILER_MAGIC);
  view.setUint32(command.length + 4, clientTag);
  view.setUint32(command.length + 8, seq);
  return out;
}

function readTrailer(data: Uint8Array): { clientTag: number; seq: number } | null {
  if (data.length < TRAILER_BYTES + 8) return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const at = data.length - TRAILER_BYTES;
  if (view.getUint32(at) !== TRAILER_MAGIC) return null;
  return { clientTag: view.getUint32(at + 4), seq: view.getUint32(at + 8) };
}

/**
 * The driver's state machine over a SimStateMachine: applies commands, answers the driver which of its proposals an
 * entry was (by the trailer), and remembers what the last command meant for the simulator's listeners.
 */
export class SimCommandMachine implements CommandStateMachine<AppliedCommand | null> {
  lastIndex = 0;
  lastCommand: AppliedCommand | null = null;

  constructor(
    readonly sm: SimStateMachine,
    private readonly onCapture: () => void,
    private readonly onRestore: () => void,
  ) {}

  apply(index: number, data: Uint8Array): { clientId: string; seq: number; result: AppliedCommand | null } | null {
    const command = this.sm.apply({ term: 0 as Entry['term'], index: index as Entry['index'], type: 'command', data });
    this.lastIndex = index;
    this.lastCommand = command;
    const t = readTrailer(data);
    return t === null ? null : { clientId: String(t.clientTag), seq: t.seq, result: command };
  }

  captureSnapshot(): () => Promise<Uint8Array> {
    const bytes = this.sm.snapshot();
    this.onCapture();
    return async () => bytes;
  }

  restore(bytes: Uint8Array): void {
    this.sm.restore(bytes);
    this.onRestore();
  }
}

/** A logger that says nothing, and hands a fatal error (the driver stopping itself) to `onFatal`. */
export function simLogger(onFatal: (err: unknown) => void): Logger {
  const quiet = (): void => undefined;
  const logger = {
    level: 'silent',
    trace: quiet,
    debug: quiet,
    info: quiet,
    warn: quiet,
    error: quiet,
    fatal: (obj: unknown): void => onFatal((obj as { err?: unknown } | null)?.err ?? obj),
    child: (): unknown => logger,
    isLevelEnabled: (): boolean => false,
  };
  return logger as unknown as Logger;
}
