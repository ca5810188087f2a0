// A tiny synchronous network of Raft nodes for unit tests: each node persists its Ready to an in-memory disk, applies
// committed entries to a list, and the network delivers messages in order until quiet (with isolation and drop filters).
// Snapshots: a node's snapshot is the list of entries it applied; the network streams it when a 'snapshot' goes out.
import { SeededRandom } from '../../src/lib/random.js';
import { logIndex, nodeId, term, type LogIndex, type NodeId } from '../../src/lib/ids.js';
import { createRaftNode, defaultRaftLimits } from '../../src/raft/index.js';
import type { ConfState, Entry, HardState, Message, RaftConfig, RaftNode, ReadState, Ready, SnapshotMeta, SoftState } from '../../src/raft/index.js';

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A snapshot in the harness: its metadata and the entries the state machine had applied (its "bytes"). */
export interface HarnessSnapshot {
  readonly meta: SnapshotMeta;
  readonly applied: readonly Entry[];
}

export interface Disk {
  hardState: HardState;
  /** The stored log: entries[i] has index entries[0].index + i; after a snapshot it starts after it (or before, with a tail). */
  entries: Entry[];
  snapshot?: HarnessSnapshot;
}

export type ConfigOverrides = Partial<Omit<RaftConfig, 'id' | 'voters' | 'random'>>;

export function makeConfig(id: string, voters: readonly string[], seed: number, o: ConfigOverrides = {}): RaftConfig {
  return {
    id: nodeId(id),
    voters: voters.map(nodeId),
    electionTicks: 10,
    heartbeatTicks: 1,
    random: new SeededRandom(seed),
    preVote: false,
    checkQuorum: false,
    ...defaultRaftLimits,
    ...o,
  };
}

export const emptyHardState: HardState = { term: term(0), vote: null, commit: logIndex(0) };

/** Builds entries with the given terms at indexes 1..n (the shape etcd's tests use to set up logs). */
export function entriesWithTerms(terms: readonly number[]): Entry[] {
  return terms.map((t, i) => ({ term: term(t), index: logIndex(i + 1), type: 'command', data: enc(`e${i + 1}`) }));
}

/**
 * Persists a Ready to a disk the way a real caller must: a snapshot replaces the whole log, entries replace
 * everything from their first index. `received` holds the bytes of a snapshot the node was sent.
 */
export function persist(disk: Disk, rd: Ready, received?: HarnessSnapshot): void {
  if (rd.snapshot !== null) {
    if (received === undefined || received.meta.index !== rd.snapshot.index) throw new Error('a Ready installs a snapshot that never arrived');
    disk.snapshot = received;
    disk.entries = [];
  }
  if (rd.hardState !== null) disk.hardState = rd.hardState;
  if (rd.entries.length > 0) {
    const first = rd.entries[0]!.index;
    const base = disk.entries[0]?.index ?? first;
    disk.entries.length = Math.max(0, first - base);
    for (const e of rd.entries) disk.entries.push(e);
  }
}

export class SimNode {
  raft: RaftNode;
  readonly disk: Disk;
  /** Every entry applied, in order; a snapshot install replaces it with the snapshot's. */
  applied: Entry[] = [];
  readonly readStates: ReadState[] = [];
  readonly softStates: SoftState[] = [];
  readonly confStates: ConfState[] = [];
  /** Snapshots installed from a Ready, in order. */
  readonly installed: SnapshotMeta[] = [];
  /** The bytes of a snapshot streamed to this node, durable, waiting for the core to take it. */
  received: HarnessSnapshot | undefined;

  constructor(
    readonly config: RaftConfig,
    disk: Disk = { hardState: emptyHardState, entries: [] },
  ) {
    this.disk = disk;
    const snap = disk.snapshot;
    if (snap !== undefined) this.applied = snap.applied.slice();
    this.raft = createRaftNode(config, {
      hardState: disk.hardState,
      entries: disk.entries.slice(),
      applied: logIndex(snap?.meta.index ?? 0),
      ...(snap === undefined ? {} : { snapshot: snap.meta }),
    });
  }

  get id(): NodeId {
    return this.config.id;
  }

  /** Handles every pending Ready: persist, apply, collect; returns the messages to send. */
  drain(): Message[] {
    const out: Message[] = [];
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      persist(this.disk, rd, this.received);
      for (const m of rd.messages) out.push(m);
      if (rd.snapshot !== null) {
        this.applied = this.received!.applied.slice();
        this.installed.push(rd.snapshot);
      }
      this.received = undefined;
      for (const e of rd.committedEntries) this.applied.push(e);
      for (const r of rd.readStates) this.readStates.push(r);
      if (rd.softState !== null) this.softStates.push(rd.softState);
      if (rd.confState !== null) this.confStates.push(rd.confState);
      this.raft.advance(rd);
    }
    return out;
  }

  /**
   * Snapshots the state machine at the applied index and compacts, keeping `retain` entries before it; returns the
   * snapshot's metadata (the core refused when null).
   */
  takeSnapshot(retain = 0): SnapshotMeta | null {
    const applied = this.raft.status().appliedIndex;
    const meta = this.raft.snapshotMeta(applied);
    if (meta === null) return null;
    const snap: HarnessSnapshot = { meta, applied: this.applied.filter((e) => e.index <= applied) };
    if (!this.raft.compact(meta, retain)) return null;
    this.disk.snapshot = snap;
    const keepFrom = this.raft.status().firstIndex;
    this.disk.entries = this.disk.entries.filter((e) => e.index >= keepFrom);
    return meta;
  }

  appliedCommands(): string[] {
    return this.applied.filter((e) => e.type === 'command').map((e) => dec(e.data));
  }
}

export type DropFilter = (m: Message) => boolean;

export class Network {
  readonly nodes = new Map<string, SimNode>();
  readonly ids: string[];
  /** Every message handed out by a Ready, delivered or not, in order. */
  readonly trace: Message[] = [];
  private queue: Message[] = [];
  private filters: DropFilter[] = [];
  private readonly isolated = new Set<string>();

  constructor(
    n: number,
    private readonly overrides: ConfigOverrides = {},
    private readonly seed = 1,
  ) {
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.ids.forEach((id, i) => this.nodes.set(id, new SimNode(makeConfig(id, this.ids, seed * 1000 + i, overrides))));
  }

  node(id: string): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: string): RaftNode {
    return this.node(id).raft;
  }

  leader(): SimNode | undefined {
    const leaders = [...this.nodes.values()].filter((n) => n.raft.status().role === 'leader');
    return leaders.sort((a, b) => b.raft.status().term - a.raft.status().term)[0];
  }

  isolate(id: string): void {
    this.isolated.add(id);
  }

  heal(): void {
    this.isolated.clear();
    this.filters = [];
  }

  /** Drops every message the filter matches, until heal() or the returned remover is called. */
  drop(filter: DropFilter): () => void {
    this.filters.push(filter);
    return () => {
      this.filters = this.filters.filter((f) => f !== filter);
    };
  }

  /** Adds a node outside the configuration (a joiner, unless overrides say otherwise), with an empty disk. */
  addNode(id: string, overrides: ConfigOverrides = { join: true }): SimNode {
    const config = { ...makeConfig(id, [], this.seed * 1000 + this.nodes.size, { ...this.overrides, ...overrides }) };
    const node = new SimNode(config);
    this.nodes.set(id, node);
    return node;
  }

  /** Collects the Ready of every node; messages go to the queue unless isolated or filtered. */
  flush(): void {
    for (const node of this.nodes.values()) {
      for (const m of node.drain()) {
        this.trace.push(m);
        this.queue.push(m);
      }
    }
  }

  private dropped(m: Message): boolean {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return true;
    return this.filters.some((f) => f(m));
  }

  /** Delivers messages (and the messages they cause) until nothing is left. */
  stabilize(stepsMax = 1_000_000): void {
    for (let steps = 0; steps < stepsMax; steps++) {
      this.flush();
      const m = this.queue.shift();
      if (m === undefined) return;
      if (m.type === 'snapshot') {
        this.streamSnapshot(m);
        continue;
      }
      if (this.dropped(m)) continue;
      this.nodes.get(m.to)?.raft.step(m);
    }
    throw new Error('the network did not go quiet');
  }

  /**
   * The caller's side of a 'snapshot' message: stream the sender's snapshot bytes (lost like any message the
   * filters drop), step the metadata into the receiver, and report the outcome to the sender.
   */
  private streamSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
    const sender = this.nodes.get(m.from);
    const receiver = this.nodes.get(m.to);
    const snap = sender?.disk.snapshot;
    if (sender === undefined || snap === undefined) throw new Error(`${m.from} asked to send a snapshot it does not hold`);
    if (receiver === undefined || this.dropped(m)) {
      sender.raft.reportSnapshot(m.to, 'failure');
      return;
    }
    receiver.received = snap;
    receiver.raft.step({ ...m, snapshot: snap.meta });
    sender.raft.reportSnapshot(m.to, 'finish');
  }

  /** Queued messages, without delivering them (after flushing every Ready). */
  pending(): Message[] {
    this.flush();
    return this.queue.slice();
  }

  clearQueue(): void {
    this.queue = [];
  }

  tick(id: string, n = 1): void {
    for (let i = 0; i < n; i++) this.raft(id).tick();
  }

  /** Ticks every node n times, stabilizing after each round of ticks. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.raft.tick();
      this.stabilize();
    }
  }

  /** Makes `id` campaign and delivers everything. */
  elect(id: string): void {
    this.raft(id).campaign();
    this.stabilize();
  }

  propose(id: string, ...commands: string[]): ReturnType<RaftNode['propose']> {
    const r = this.raft(id).propose(commands.map(enc));
    this.stabilize();
    return r;
  }

  /** Rebuilds a node from its disk, as after a crash (unpersisted state is lost). */
  restart(id: string): void {
    const old = this.node(id);
    const disk: Disk = { hardState: old.disk.hardState, entries: old.disk.entries.slice(), ...(old.disk.snapshot === undefined ? {} : { snapshot: old.disk.snapshot }) };
    const random = new SeededRandom(this.seed * 7919 + this.ids.indexOf(id));
    const config = this.ids.includes(id) ? makeConfig(id, this.ids, this.seed * 7919 + this.ids.indexOf(id), this.overrides) : { ...old.config, random };
    this.nodes.set(id, new SimNode(config, disk));
  }
}

/** Drives a single node by hand: step, then read the messages its Ready hands out. */
export function readMessages(node: RaftNode): Message[] {
  const out: Message[] = [];
  while (node.hasReady()) {
    const rd = node.ready();
    out.push(...rd.messages);
    node.advance(rd);
  }
  return out;
}

export const idx = (n: number): LogIndex => logIndex(n);

// ---- single-node helpers, in the manner of etcd's raft_paper_test.go ----

export const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);

export interface NodeSetup {
  size?: number;
  /** Terms of the persisted log at indexes 1..n. */
  terms?: readonly number[];
  hardState?: Partial<{ term: number; vote: string | null; commit: number }>;
  overrides?: ConfigOverrides;
  seed?: number;
}

export function newNode(id = 'n1', setup: NodeSetup = {}): RaftNode {
  const entries = entriesWithTerms(setup.terms ?? []);
  const lastTerm = entries.at(-1)?.term ?? 0;
  const hs = setup.hardState ?? {};
  const vote = hs.vote ?? null;
  return createRaftNode(makeConfig(id, ids(setup.size ?? 3), setup.seed ?? 1, setup.overrides), {
    hardState: { term: term(hs.term ?? lastTerm), vote: vote === null ? null : nodeId(vote), commit: logIndex(hs.commit ?? 0) },
    entries,
    applied: logIndex(0),
  });
}

type Msg<T extends Message['type']> = Extract<Message, { type: T }>;

export function append(
  from: string,
  to: string,
  t: number,
  prevLogIndex: number,
  prevLogTerm: number,
  entries: Entry[] = [],
  commit = 0,
): Msg<'append'> {
  return {
    type: 'append',
    from: nodeId(from),
    to: nodeId(to),
    term: term(t),
    prevLogIndex: logIndex(prevLogIndex),
    prevLogTerm: term(prevLogTerm),
    entries,
    commit: logIndex(commit),
  };
}

export function heartbeat(from: string, to: string, t: number, commit = 0, context = ''): Msg<'heartbeat'> {
  return { type: 'heartbeat', from: nodeId(from), to: nodeId(to), term: term(t), commit: logIndex(commit), context };
}

export function vote(
  from: string,
  to: string,
  t: number,
  lastLogIndex = 0,
  lastLogTerm = 0,
  o: { preVote?: boolean; transfer?: boolean; configIndex?: number; configTerm?: number } = {},
): Msg<'vote'> {
  return {
    type: 'vote',
    from: nodeId(from),
    to: nodeId(to),
    term: term(t),
    preVote: o.preVote ?? false,
    lastLogIndex: logIndex(lastLogIndex),
    lastLogTerm: term(lastLogTerm),
    transfer: o.transfer ?? false,
    ...(o.configIndex === undefined ? {} : { configIndex: logIndex(o.configIndex) }),
    ...(o.configTerm === undefined ? {} : { configTerm: term(o.configTerm) }),
  };
}

export function voteResponse(from: string, to: string, t: number, granted: boolean, preVote = false): Msg<'voteResponse'> {
  return { type: 'voteResponse', from: nodeId(from), to: nodeId(to), term: term(t), preVote, granted };
}

export function appendResponse(
  from: string,
  to: string,
  t: number,
  success: boolean,
  index: number,
  conflictTerm = 0,
  conflictIndex = 0,
): Msg<'appendResponse'> {
  return {
    type: 'appendResponse',
    from: nodeId(from),
    to: nodeId(to),
    term: term(t),
    success,
    index: logIndex(index),
    conflictTerm: term(conflictTerm),
    conflictIndex: logIndex(conflictIndex),
  };
}

export function heartbeatResponse(from: string, to: string, t: number, context = ''): Msg<'heartbeatResponse'> {
  return { type: 'heartbeatResponse', from: nodeId(from), to: nodeId(to), term: term(t), context };
}

/** The answer a follower with a matching log gives to an append. */
export function acceptAndReply(m: Msg<'append'>): Msg<'appendResponse'> {
  return appendResponse(m.to, m.from, m.term, true, m.prevLogIndex + m.entries.length);
}

export function ofType<T extends Message['type']>(msgs: readonly Message[], type: T): Msg<T>[] {
  return msgs.filter((m): m is Msg<T> => m.type === type);
}

/** Campaigns and collects every vote from the other voters: the node ends up leader (its no-op unacknowledged). */
export function becomeLeader(node: RaftNode): void {
  node.campaign();
  // Pre-vote takes two rounds; the leader's own messages stay unread for the test.
  for (let round = 0; round < 2 && node.status().role !== 'leader'; round++) {
    for (const m of ofType(readMessages(node), 'vote')) node.step(voteResponse(m.to, m.from, m.term, true, m.preVote));
  }
  if (node.status().role !== 'leader') throw new Error(`could not make ${node.status().id} leader`);
}

/** Makes a fresh leader commit its no-op by acknowledging its appends from every follower. */
export function commitNoop(node: RaftNode): void {
  for (const m of readMessages(node)) {
    if (m.type === 'append') node.step(acceptAndReply(m));
  }
  readMessages(node);
}

export function entry(index: number, t: number, data = `e${index}`): Entry {
  return { term: term(t), index: logIndex(index), type: 'command', data: enc(data) };
}
