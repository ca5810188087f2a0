// The simulated cluster: Raft cores on one event queue with simulated time, network and disk, all drawn from one
// seed. Each node runs the loop the real manager runs (take a Ready, persist it unsynced, and only after the sync
// send, install a snapshot, apply and advance); checkers run after every event. Node creation and the state machine
// are pluggable. Nodes snapshot their state machine and compact their log at a threshold; a leader's 'snapshot'
// message becomes an out-of-band stream (delayed, droppable) reported back to it. Spare nodes start outside the
// configuration and join through membership changes.
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { SeededRandom } from '../../src/lib/random.js';
import { createRaftNode, defaultRaftLimits, forceNewCluster } from '../../src/raft/index.js';
import type {
  ConfChange,
  ConfChangeResult,
  ConfState,
  Entry,
  Message,
  MessageType,
  ProposeResult,
  RaftConfig,
  RaftInitialState,
  RaftNode,
  RaftStatus,
  Ready,
  Role,
  SnapshotMessage,
} from '../../src/raft/types.js';
import { SafetyChecker, type CheckedNode } from './checkers.js';
import { SimDisk, type StoredSnapshot } from './disk.js';
import { EventQueue } from './event-queue.js';
import { reliableNetwork, SimNetwork, type NetworkFaults } from './network.js';
import { SessionStateMachine, type AppliedCommand, type SimStateMachine, type StateMachineFactory } from './state-machine.js';
import { describeEntries, describeMessage, type TraceSink } from './trace.js';

export type CoreFactory = (config: RaftConfig, initial: RaftInitialState) => RaftNode;

/** The parts of RaftConfig a simulation chooses (id, voters and random come from the cluster). */
export type RaftParams = Omit<RaftConfig, 'id' | 'voters' | 'random'>;

export const defaultRaftParams: RaftParams = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  lazyCommit: true,
  ...defaultRaftLimits,
};

/** When nodes snapshot: once they applied `everyEntries` past their last snapshot, keeping `retainEntries` of log. */
export interface SnapshotPolicy {
  readonly everyEntries: number;
  readonly retainEntries: number;
}

/** The out-of-band stream of a snapshot: how long it takes and how often it fails. */
export interface SnapshotTransfer {
  readonly delayUnitsMin: number;
  readonly delayUnitsMax: number;
  readonly dropRate: number;
}

export const defaultSnapshotTransfer: SnapshotTransfer = { delayUnitsMin: 50, delayUnitsMax: 400, dropRate: 0 };

export interface ClusterOptions {
  seed: number;
  /** How many voters the cluster starts with (n1..nK). */
  nodes: number;
  /** Nodes after them (n(K+1)..), started as joiners outside the configuration; K + spares <= 9. */
  spares?: number;
  /** Snapshot and compact at a threshold (default: never). */
  snapshots?: SnapshotPolicy | null;
  snapshotTransfer?: Partial<SnapshotTransfer>;
  raft?: Partial<RaftParams>;
  network?: Partial<NetworkFaults>;
  /** A synced write completes after a latency drawn from [min, max] units; 0 and 0 sync at once. */
  diskLatencyUnitsMin?: number;
  diskLatencyUnitsMax?: number;
  /** Simulated time units per tick; message and disk delays are in units, so they can be shorter than a tick. */
  tickUnits?: number;
  createCore?: CoreFactory;
  createStateMachine?: StateMachineFactory;
  /** Run the safety checkers after every event (default true; benchmarks turn them off). */
  checks?: boolean;
  trace?: TraceSink | null;
}

/** A core that hands out this many Readies in one event without waiting on the disk is stuck in a loop. */
const readiesPerEventMax = 10_000;

export type ApplyListener = (node: SimNode, entry: Entry, command: AppliedCommand | null) => void;
export type ClockListener = (tick: number) => void;

export class SimNode implements CheckedNode {
  core: RaftNode | null = null;
  incarnation = 0;
  readonly disk = new SimDisk();
  sm: SimStateMachine;
  applied = 0;
  /** The Ready whose write is on its way to disk; no new Ready is taken meanwhile. */
  syncing: Ready | null = null;
  /** For traces: the role, term and leader last reported. */
  lastRole: Role | null = null;
  lastTerm = -1;
  lastLeader: NodeId | null = null;
  lastCommit = -1;
  /** A slow (or fast) disk on this node only: [min, max] units per synced write, instead of the cluster's. */
  diskLatencyUnits: readonly [number, number] | null = null;
  /** A snapshot streamed to this node and taken by its core, waiting for the Ready that installs it. */
  received: StoredSnapshot | null = null;
  /** The snapshot in the Ready being written. */
  installing: StoredSnapshot | null = null;

  constructor(
    readonly id: NodeId,
    readonly index: number,
    /** The root of this node's random streams; each incarnation's core gets a fork. */
    readonly random: SeededRandom,
    sm: SimStateMachine,
    /** Started outside the configuration (a spare): its core runs with join set. */
    readonly joiner: boolean,
  ) {
    this.sm = sm;
  }

  get up(): boolean {
    return this.core !== null;
  }
}

type SimEvent =
  | { time: number; seq: number; kind: 'tick'; node: number; inc: number }
  | { time: number; seq: number; kind: 'deliver'; node: number; inc: number; msg: Message }
  | { time: number; seq: number; kind: 'sync'; node: number; inc: number }
  | { time: number; seq: number; kind: 'clock' }
  | { time: number; seq: number; kind: 'call'; fn: () => void }
  | { time: number; seq: number; kind: 'stream'; from: number; fromInc: number; to: number; toInc: number; msg: SnapshotMessage; snap: StoredSnapshot; lost: boolean };

type EventBody = SimEvent extends infer E ? (E extends SimEvent ? Omit<E, 'time' | 'seq'> : never) : never;

export interface ClusterStats {
  sent: Record<MessageType, number>;
  sentTotal: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  /** Append responses with success = false: how many round trips log backtracking took. */
  rejectedAppends: number;
  diskWrites: number;
  snapshotsTaken: number;
  /** Snapshot streams started, delivered to the follower's core, and failed (lost, or an end went down). */
  snapshotsSent: number;
  snapshotsDelivered: number;
  snapshotsFailed: number;
  snapshotsInstalled: number;
  confChanges: number;
}

function emptyStats(): ClusterStats {
  return {
    sent: {
      append: 0,
      appendResponse: 0,
      heartbeat: 0,
      heartbeatResponse: 0,
      vote: 0,
      voteResponse: 0,
      timeoutNow: 0,
      propose: 0,
      readIndex: 0,
      readIndexResponse: 0,
      snapshot: 0,
    },
    sentTotal: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    rejectedAppends: 0,
    diskWrites: 0,
    snapshotsTaken: 0,
    snapshotsSent: 0,
    snapshotsDelivered: 0,
    snapshotsFailed: 0,
    snapshotsInstalled: 0,
    confChanges: 0,
  };
}

export class SimCluster {
  readonly seed: number;
  readonly ids: readonly NodeId[];
  readonly nodes: readonly SimNode[];
  readonly network: SimNetwork;
  readonly checker: SafetyChecker | null;
  readonly tickUnits: number;
  readonly params: RaftParams;
  stats: ClusterStats = emptyStats();
  /** Simulated time in units. */
  now = 0;
  /** Global ticks elapsed (the clock event at time k * tickUnits is tick k). */
  tick = 0;
  trace: TraceSink | null;
  /**
   * Sees every message as it is sent: return it (or a changed copy) to send it, null to lose it. Scenario tests use
   * it to shape the network more finely than links can (Figure 8 needs appends stripped of the new term's entries).
   */
  intercept: ((m: Message) => Message | null) | null = null;
  diskLatencyUnitsMin: number;
  diskLatencyUnitsMax: number;
  /** The voters the cluster started with (n1..nK); the spares come after them. */
  readonly bootstrap: ConfState;
  snapshotPolicy: SnapshotPolicy | null;
  snapshotTransfer: SnapshotTransfer;
  /** Every node that was ever in a proposed configuration: the simulator never re-adds a removed id. */
  readonly everMember = new Set<NodeId>();

  private readonly queue = new EventQueue<SimEvent>();
  private seq = 0;
  private readonly indexOf = new Map<NodeId, number>();
  private readonly diskRandom: SeededRandom;
  private readonly phaseRandom: SeededRandom;
  private readonly spareRandom: SeededRandom;
  /** Forked after the others, so adding snapshot streams does not shift the other components' draws. */
  private readonly streamRandom: SeededRandom;
  private readonly createCore: CoreFactory;
  private readonly createStateMachine: StateMachineFactory;
  private readonly applyListeners: ApplyListener[] = [];
  private readonly clockListeners: ClockListener[] = [];

  constructor(o: ClusterOptions) {
    const spares = o.spares ?? 0;
    if (![1, 2, 3, 4, 5, 6, 7, 8, 9].includes(o.nodes + spares) || spares < 0) {
      throw new Error(`a simulated cluster has 1..9 nodes, not ${o.nodes} and ${spares} spares`);
    }
    this.seed = o.seed;
    const master = new SeededRandom(o.seed);
    this.tickUnits = o.tickUnits ?? 100;
    this.params = { ...defaultRaftParams, ...o.raft };
    const total = o.nodes + spares;
    this.network = new SimNetwork(total, master.fork(), { ...reliableNetwork, ...o.network });
    this.diskRandom = master.fork();
    this.phaseRandom = master.fork();
    this.spareRandom = master.fork();
    this.diskLatencyUnitsMin = o.diskLatencyUnitsMin ?? 5;
    this.diskLatencyUnitsMax = o.diskLatencyUnitsMax ?? 50;
    this.createCore = o.createCore ?? createRaftNode;
    this.createStateMachine = o.createStateMachine ?? (() => new SessionStateMachine());
    this.trace = o.trace ?? null;
    this.ids = Array.from({ length: total }, (_, i) => nodeId(`n${i + 1}`));
    this.ids.forEach((id, i) => this.indexOf.set(id, i));
    this.bootstrap = { voters: this.ids.slice(0, o.nodes), learners: [] };
    for (const id of this.bootstrap.voters) this.everMember.add(id);
    this.nodes = this.ids.map((id, i) => new SimNode(id, i, master.fork(), this.createStateMachine(), i >= o.nodes));
    this.streamRandom = master.fork();
    this.snapshotPolicy = o.snapshots ?? null;
    this.snapshotTransfer = { ...defaultSnapshotTransfer, ...o.snapshotTransfer };
    this.checker = o.checks === false ? null : new SafetyChecker(this.nodes, this.bootstrap);
    this.schedule({ kind: 'clock' }, this.tickUnits);
    for (let i = 0; i < this.nodes.length; i++) this.start(i);
  }

  // ---- queries ----

  node(id: NodeId | number): SimNode {
    const i = typeof id === 'number' ? id : this.indexOf.get(id);
    const n = i === undefined ? undefined : this.nodes[i];
    if (n === undefined) throw new Error(`no simulated node ${String(id)}`);
    return n;
  }

  index(id: NodeId): number {
    return this.node(id).index;
  }

  status(id: NodeId | number): RaftStatus | null {
    return this.node(id).core?.status() ?? null;
  }

  /** The live node that believes it is leader in the highest term, or null. */
  leader(): NodeId | null {
    let best: RaftStatus | null = null;
    for (const n of this.nodes) {
      const st = n.core?.status();
      if (st?.role === 'leader' && (best === null || st.term > best.term)) best = st;
    }
    return best?.id ?? null;
  }

  /** The entry node `id` holds at `index`, if it is up and holds it. */
  entryAt(id: NodeId, index: number): Entry | undefined {
    return this.node(id).core?.entryAt(index as Entry['index']);
  }

  /** Every live node that believes it is leader (more than one only across terms, e.g. a deposed leader). */
  leaders(): NodeId[] {
    return this.nodes.filter((n) => n.core?.status().role === 'leader').map((n) => n.id);
  }

  liveNodes(): SimNode[] {
    return this.nodes.filter((n) => n.up);
  }

  /** The configuration the current leader (highest term) has in effect, or null without a leader. */
  config(): ConfState | null {
    const id = this.leader();
    if (id === null) return null;
    const st = this.status(id)!;
    return { voters: st.voters, learners: st.learners };
  }

  /** The nodes of the leader's configuration (voters and learners), or every node without a leader. */
  memberNodes(): SimNode[] {
    const conf = this.config();
    if (conf === null) return this.nodes.slice();
    return this.nodes.filter((n) => conf.voters.includes(n.id) || conf.learners.includes(n.id));
  }

  /** A random stream for components built on the cluster (workload, schedules), forked from the seed. */
  forkRandom(): SeededRandom {
    return this.spareRandom.fork();
  }

  onApply(listener: ApplyListener): void {
    this.applyListeners.push(listener);
  }

  /** Called at every global tick boundary, before the nodes' own ticks of that period. */
  onClock(listener: ClockListener): void {
    this.clockListeners.push(listener);
  }

  resetStats(): void {
    this.stats = emptyStats();
  }

  // ---- driving ----

  /** Processes the next event; false when the queue is empty. */
  step(): boolean {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    this.now = ev.time;
    switch (ev.kind) {
      case 'tick':
        this.onNodeTick(ev.node, ev.inc);
        break;
      case 'deliver':
        this.onDeliver(ev.node, ev.inc, ev.msg);
        break;
      case 'sync':
        this.onSync(ev.node, ev.inc);
        break;
      case 'clock':
        this.tick++;
        this.schedule({ kind: 'clock' }, this.tickUnits);
        for (const l of this.clockListeners) l(this.tick);
        break;
      case 'call':
        ev.fn();
        break;
      case 'stream':
        this.onStreamEnd(ev);
        break;
    }
    return true;
  }

  /** Runs every event up to `ticks` ticks from now. */
  runTicks(ticks: number): void {
    const end = this.now + ticks * this.tickUnits;
    for (let ev = this.queue.peek(); ev !== undefined && ev.time <= end; ev = this.queue.peek()) this.step();
    this.now = end;
  }

  /** Runs until `done()` holds (checked after every event) or `ticksMax` ticks pass; returns whether it held. */
  runUntil(done: () => boolean, ticksMax: number): boolean {
    if (done()) return true;
    const end = this.now + ticksMax * this.tickUnits;
    for (let ev = this.queue.peek(); ev !== undefined && ev.time <= end; ev = this.queue.peek()) {
      this.step();
      if (done()) return true;
    }
    this.now = end;
    return done();
  }

  /** Calls fn at `delayUnits` from now, in event order. */
  at(delayUnits: number, fn: () => void): void {
    this.schedule({ kind: 'call', fn }, delayUnits);
  }

  // ---- client and operator actions ----

  /** Proposes through node `id`'s core, as a client talking to that node would; null while the node is down. */
  propose(id: NodeId | number, commands: readonly Uint8Array[]): ProposeResult | null {
    const node = this.node(id);
    if (node.core === null) return null;
    const r = node.core.propose(commands);
    if (this.trace !== null) this.log(`${node.id} propose n=${commands.length} -> ${r.ok ? `ok${r.forwardedTo === null ? '' : ` via ${r.forwardedTo}`}` : r.reason}`);
    this.pump(node.index);
    this.afterEvent(node.index);
    return r;
  }

  /** An operator's membership change through node `id`'s core (the leader's); null while the node is down. */
  proposeConfChange(id: NodeId | number, change: ConfChange): ConfChangeResult | null {
    const node = this.node(id);
    if (node.core === null) return null;
    const r = node.core.proposeConfChange(change);
    if (r.ok) {
      this.stats.confChanges++;
      this.everMember.add(change.nodeId);
    }
    if (this.trace !== null) this.log(`${node.id} conf change ${change.type} ${change.nodeId} -> ${r.ok ? `ok at ${r.index}` : r.reason}`);
    this.pump(node.index);
    this.afterEvent(node.index);
    return r;
  }

  /** Leadership transfer through node `id`'s core. */
  transferLeadership(id: NodeId | number, target: NodeId | null): boolean {
    const node = this.node(id);
    if (node.core === null) return false;
    const r = node.core.transferLeadership(target);
    if (this.trace !== null) this.log(`${node.id} transfer to ${target ?? 'any'} -> ${r.ok ? r.target : r.reason}`);
    this.pump(node.index);
    this.afterEvent(node.index);
    return r.ok;
  }

  campaign(id: NodeId | number): void {
    const node = this.node(id);
    if (node.core === null) return;
    node.core.campaign();
    this.pump(node.index);
    this.afterEvent(node.index);
  }

  crash(id: NodeId | number): void {
    const node = this.node(id);
    if (node.core === null) return;
    node.core = null;
    node.syncing = null;
    node.received = null;
    node.installing = null;
    node.disk.dropUnsynced();
    node.lastRole = null;
    this.checker?.onCrash(node.index);
    if (this.trace !== null) this.log(`${node.id} CRASH (applied ${node.applied}, synced ${node.disk.lastIndex} entries, commit ${node.disk.hardState.commit})`);
  }

  restart(id: NodeId | number): void {
    const node = this.node(id);
    if (node.core !== null) return;
    this.start(node.index);
  }

  /**
   * Disaster recovery on a crashed node: rewrite its disk with forceNewCluster (a one-voter cluster of itself),
   * as an operator would before restarting it. The other nodes must never come back.
   */
  forceNewCluster(id: NodeId | number): void {
    const node = this.node(id);
    if (node.core !== null) throw new Error(`${node.id} must be down to be forced into a new cluster`);
    const forced = forceNewCluster(node.disk.load(), node.id);
    node.disk.begin(forced.hardState, forced.entries.slice(-1));
    node.disk.sync();
    this.checker?.onPersisted(node.index, forced.entries.slice(-1));
    if (this.trace !== null) this.log(`${node.id} FORCED into a new cluster at ${forced.hardState.commit}/t${forced.hardState.term}`);
  }

  partition(groups: readonly (readonly (NodeId | number)[])[]): void {
    this.network.partition(groups.map((g) => g.map((x) => (typeof x === 'number' ? x : this.index(x)))));
    this.logNetwork('partition');
  }

  isolate(id: NodeId | number): void {
    this.network.isolate(this.node(id).index);
    this.logNetwork(`isolate ${this.node(id).id}`);
  }

  /** Messages from `from` to `to` are lost; the other direction still works. */
  cutOneWay(from: NodeId | number, to: NodeId | number): void {
    this.network.cutOneWay(this.node(from).index, this.node(to).index);
    this.logNetwork(`cut ${this.node(from).id}->${this.node(to).id}`);
  }

  heal(): void {
    this.network.heal();
    this.logNetwork('heal');
  }

  setNetwork(faults: Partial<NetworkFaults>): void {
    this.network.faults = { ...this.network.faults, ...faults };
    if (this.trace !== null) {
      const f = this.network.faults;
      this.log(`network drop=${f.dropRate} dup=${f.dupRate} reorder=${f.reorderRate} delay=${f.delayUnitsMin}..${f.delayUnitsMax}`);
    }
  }

  // ---- the node loop ----

  private start(i: number): void {
    const node = this.nodes[i]!;
    node.incarnation++;
    node.applied = 0;
    node.sm = this.createStateMachine();
    const initial = node.disk.load();
    this.checker?.onRestart(i);
    const snap = node.disk.snapshot;
    if (snap !== null) {
      node.sm.restore(snap.data);
      node.applied = snap.meta.index;
      this.checker?.onSnapshot(i, snap.meta, node.sm.digest(), 'restored');
    }
    const membership = node.joiner ? { voters: [], join: true } : { voters: this.bootstrap.voters };
    const config: RaftConfig = { id: node.id, random: node.random.fork(), ...this.params, ...membership };
    node.core = this.createCore(config, initial);
    if (this.trace !== null) {
      const hs = initial.hardState;
      const from = snap === null ? '' : ` snapshot=${snap.meta.index}/t${snap.meta.term}`;
      this.log(`${node.id} START #${node.incarnation} term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit}${from} entries=${initial.entries.length}`);
    }
    this.schedule({ kind: 'tick', node: i, inc: node.incarnation }, 1 + this.phaseRandom.int(this.tickUnits - 1));
    this.pump(i);
    this.afterEvent(i);
  }

  private onNodeTick(i: number, inc: number): void {
    const node = this.nodes[i]!;
    if (node.core === null || node.incarnation !== inc) return;
    this.schedule({ kind: 'tick', node: i, inc }, this.tickUnits);
    node.core.tick();
    this.pump(i);
    this.afterEvent(i);
  }

  private onDeliver(i: number, inc: number, m: Message): void {
    const node = this.nodes[i]!;
    const from = this.indexOf.get(m.from)!;
    if (node.core === null || node.incarnation !== inc || !this.network.linkUp(from, i)) {
      this.stats.dropped++;
      if (this.trace !== null) this.log(`drop ${describeMessage(m)} (${node.core === null || node.incarnation !== inc ? 'receiver down' : 'cut'})`);
      return;
    }
    this.stats.delivered++;
    if (this.trace !== null) this.log(`deliver ${describeMessage(m)}`);
    node.core.step(m);
    this.pump(i);
    this.afterEvent(i);
  }

  private onSync(i: number, inc: number): void {
    const node = this.nodes[i]!;
    const rd = node.syncing;
    if (node.core === null || node.incarnation !== inc || rd === null) return;
    this.finishReady(i, rd);
    this.pump(i);
    this.afterEvent(i);
  }

  /** Takes Readies while no write is in flight: a Ready with a write waits for its sync, one without finishes now. */
  private pump(i: number): void {
    const node = this.nodes[i]!;
    for (let rounds = 0; node.core !== null && node.syncing === null && node.core.hasReady(); rounds++) {
      if (rounds === readiesPerEventMax) throw new Error(`${node.id} kept producing Readies (${rounds} in one event)`);
      const rd = node.core.ready();
      node.syncing = rd;
      const write = rd.hardState !== null || rd.entries.length > 0 || rd.snapshot !== null;
      if (write) {
        node.installing = rd.snapshot === null ? null : this.takeReceived(node, rd);
        node.disk.begin(rd.hardState, rd.entries, node.installing);
        const [min, max] = node.diskLatencyUnits ?? [this.diskLatencyUnitsMin, this.diskLatencyUnitsMax];
        if (max > 0) {
          const latency = min + (max > min ? this.diskRandom.int(max - min + 1) : 0);
          this.schedule({ kind: 'sync', node: i, inc: node.incarnation }, latency);
          return;
        }
      }
      this.finishReady(i, rd);
    }
  }

  /** The write of `rd` is durable: now send its messages, apply its committed entries and advance. */
  private finishReady(i: number, rd: Ready): void {
    const node = this.nodes[i]!;
    const core = node.core!;
    if (node.disk.hasPendingWrite()) {
      node.disk.sync();
      this.stats.diskWrites++;
      this.checker?.onPersisted(i, rd.entries);
      if (this.trace !== null && rd.entries.length > 0) this.log(`${node.id} synced ${describeEntries(rd.entries)}`);
    }
    for (const m of rd.messages) this.send(i, m);
    if (rd.snapshot !== null) this.install(node, node.installing!);
    if (rd.committedEntries.length > 0) this.apply(node, rd.committedEntries);
    node.syncing = null;
    node.installing = null;
    core.advance(rd);
    this.maybeSnapshot(node);
  }

  private apply(node: SimNode, entries: readonly Entry[]): void {
    if (this.trace !== null) this.log(`${node.id} apply ${describeEntries(entries)}`);
    const checker = this.checker;
    const listeners = this.applyListeners;
    for (const e of entries) {
      checker?.onApply(node.index, e);
      const cmd = node.sm.apply(e);
      node.applied = e.index;
      checker?.afterApply(node.index, e.index, node.sm.digest());
      for (const l of listeners) l(node, e, cmd);
    }
  }

  // ---- snapshots ----

  /** The snapshot a Ready installs must be the one streamed to this node (and taken by its core). */
  private takeReceived(node: SimNode, rd: Ready): StoredSnapshot {
    const snap = node.received;
    const want = rd.snapshot!;
    if (snap === null || snap.meta.index !== want.index || snap.meta.term !== want.term) {
      throw new Error(`${node.id}'s Ready installs snapshot ${want.index}/t${want.term}, which it never received`);
    }
    node.received = null;
    return snap;
  }

  private install(node: SimNode, snap: StoredSnapshot): void {
    node.sm.restore(snap.data);
    node.applied = snap.meta.index;
    this.stats.snapshotsInstalled++;
    if (this.trace !== null) this.log(`${node.id} installed snapshot ${snap.meta.index}/t${snap.meta.term}`);
    this.checker?.onSnapshot(node.index, snap.meta, node.sm.digest(), 'installed');
  }

  /** Past the threshold, snapshot the state machine at its applied index and compact (the snapshot is durable at once). */
  private maybeSnapshot(node: SimNode): void {
    const policy = this.snapshotPolicy;
    const core = node.core;
    if (policy === null || core === null) return;
    const last = node.disk.snapshot?.meta.index ?? 0;
    if (node.applied - last < policy.everyEntries) return;
    const meta = core.snapshotMeta(node.applied as Entry['index']);
    if (meta === null) return;
    const snap: StoredSnapshot = { meta, data: node.sm.snapshot() };
    if (!core.compact(meta, policy.retainEntries)) throw new Error(`${node.id}'s core refused the snapshot it described at ${meta.index}`);
    node.disk.compact(snap, meta.index - policy.retainEntries);
    this.stats.snapshotsTaken++;
    if (this.trace !== null) this.log(`${node.id} snapshot at ${meta.index}/t${meta.term}, log from ${core.status().firstIndex}`);
    this.checker?.onSnapshot(node.index, meta, node.sm.digest(), 'taken');
  }

  /**
   * A leader asks for a snapshot to go to a follower: stream the one on its disk (it may be newer than the message
   * says), taking a while, and lost on a cut link or at the transfer's drop rate.
   */
  private streamSnapshot(i: number, m: SnapshotMessage): void {
    const leader = this.nodes[i]!;
    const snap = leader.disk.snapshot;
    if (snap === null || snap.meta.index < m.snapshot.index) throw new Error(`${leader.id} asked to send snapshot ${m.snapshot.index} without holding it`);
    const to = this.indexOf.get(m.to);
    if (to === undefined) throw new Error(`${m.from} sent a snapshot to unknown node ${m.to}`);
    const t = this.snapshotTransfer;
    const span = t.delayUnitsMax - t.delayUnitsMin;
    const delay = t.delayUnitsMin + (span > 0 ? this.streamRandom.int(span + 1) : 0);
    const lost = !this.network.linkUp(i, to) || (t.dropRate > 0 && this.streamRandom.next() < t.dropRate);
    this.stats.snapshotsSent++;
    if (this.trace !== null) this.log(`${leader.id} streams snapshot ${snap.meta.index}/t${snap.meta.term} to ${m.to}${lost ? ' (will be lost)' : ''}`);
    const msg: SnapshotMessage = { ...m, snapshot: snap.meta };
    this.schedule({ kind: 'stream', from: i, fromInc: leader.incarnation, to, toInc: this.nodes[to]!.incarnation, msg, snap, lost }, delay);
  }

  /** The stream ends: the follower's core gets the snapshot if it arrived whole, and the leader hears the outcome. */
  private onStreamEnd(ev: Extract<SimEvent, { kind: 'stream' }>): void {
    const leader = this.nodes[ev.from]!;
    const node = this.nodes[ev.to]!;
    const leaderUp = leader.core !== null && leader.incarnation === ev.fromInc;
    const delivered = !ev.lost && leaderUp && node.core !== null && node.incarnation === ev.toInc && this.network.linkUp(ev.from, ev.to);
    if (delivered) {
      this.stats.snapshotsDelivered++;
      if (this.trace !== null) this.log(`deliver ${describeMessage(ev.msg)}`);
      const core = node.core!;
      core.step(ev.msg);
      // The bytes stay only if the core took them: its snapshot is now this one, with nothing after it yet.
      const st = core.status();
      if (st.snapshot !== null && st.snapshot.index === ev.msg.snapshot.index && st.snapshot.term === ev.msg.snapshot.term && st.firstIndex === ev.msg.snapshot.index + 1) {
        node.received = ev.snap;
      }
      this.pump(ev.to);
      this.afterEvent(ev.to);
    } else {
      this.stats.snapshotsFailed++;
      if (this.trace !== null) this.log(`snapshot stream ${leader.id}->${node.id} failed`);
    }
    if (!leaderUp) return;
    leader.core!.reportSnapshot(node.id, delivered ? 'finish' : 'failure');
    this.pump(ev.from);
    this.afterEvent(ev.from);
  }

  private send(i: number, sent: Message): void {
    const s = this.stats;
    s.sent[sent.type]++;
    s.sentTotal++;
    if (sent.type === 'appendResponse' && !sent.success) s.rejectedAppends++;
    this.checker?.onSend(i, sent);
    const m = this.intercept === null ? sent : this.intercept(sent);
    if (m === null) {
      s.dropped++;
      if (this.trace !== null) this.log(`drop ${describeMessage(sent)} (intercepted)`);
      // A snapshot stream that never starts still ends, in failure: the leader must hear of it.
      if (sent.type === 'snapshot') this.at(0, () => this.failStream(i, sent));
      return;
    }
    if (m.type === 'snapshot') {
      this.streamSnapshot(i, m);
      return;
    }
    const to = this.indexOf.get(m.to);
    if (to === undefined) throw new Error(`${m.from} sent a message to unknown node ${m.to}`);
    if (!this.network.linkUp(i, to)) {
      s.dropped++;
      if (this.trace !== null) this.log(`drop ${describeMessage(m)} (cut)`);
      return;
    }
    const delays = this.network.plan();
    if (delays.length === 0) {
      s.dropped++;
      if (this.trace !== null) this.log(`drop ${describeMessage(m)} (lost)`);
      return;
    }
    if (delays.length > 1) s.duplicated++;
    const inc = this.nodes[to]!.incarnation;
    for (const d of delays) this.schedule({ kind: 'deliver', node: to, inc, msg: m }, d);
  }

  private failStream(i: number, m: SnapshotMessage): void {
    const core = this.nodes[i]!.core;
    this.stats.snapshotsFailed++;
    if (core === null) return;
    core.reportSnapshot(m.to, 'failure');
    this.pump(i);
    this.afterEvent(i);
  }

  private afterEvent(i: number): void {
    this.checker?.afterEvent(i);
    if (this.trace !== null) this.traceRole(i);
  }

  private traceRole(i: number): void {
    const node = this.nodes[i]!;
    const st = node.core?.status();
    if (st === undefined) return;
    if (st.role !== node.lastRole || st.term !== node.lastTerm || st.leaderId !== node.lastLeader) {
      this.log(`${node.id} is ${st.role} term=${st.term} leader=${st.leaderId ?? '-'} commit=${st.commitIndex} last=${st.lastIndex}`);
      node.lastRole = st.role;
      node.lastTerm = st.term;
      node.lastLeader = st.leaderId;
    } else if (st.commitIndex !== node.lastCommit) {
      this.log(`${node.id} commit=${st.commitIndex}`);
    }
    node.lastCommit = st.commitIndex;
  }

  private schedule(body: EventBody, delayUnits: number): void {
    (body as SimEvent).time = this.now + delayUnits;
    (body as SimEvent).seq = this.seq++;
    this.queue.push(body as SimEvent);
  }

  private logNetwork(what: string): void {
    if (this.trace !== null) this.log(`${what}: ${this.network.describe()}`);
  }

  log(line: string): void {
    if (this.trace !== null) this.trace(`${String(this.now).padStart(8)} ${line}`);
  }
}
