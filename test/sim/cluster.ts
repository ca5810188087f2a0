// The simulated cluster: Raft cores on one event queue with simulated time, network and disk, all drawn from one
// seed. Each node runs the loop the real manager runs (take a Ready, persist it unsynced, and only after the sync
// send, apply and advance); checkers run after every event. Node creation and the state machine are pluggable.
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { SeededRandom } from '../../src/lib/random.js';
import { createRaftNode, defaultRaftLimits } from '../../src/raft/index.js';
import type { Entry, Message, MessageType, ProposeResult, RaftConfig, RaftInitialState, RaftNode, RaftStatus, Ready, Role } from '../../src/raft/types.js';
import { SafetyChecker, type CheckedNode } from './checkers.js';
import { SimDisk } from './disk.js';
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
  ...defaultRaftLimits,
};

export interface ClusterOptions {
  seed: number;
  /** How many voters (n1..nK). */
  nodes: number;
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

  constructor(
    readonly id: NodeId,
    readonly index: number,
    /** The root of this node's random streams; each incarnation's core gets a fork. */
    readonly random: SeededRandom,
    sm: SimStateMachine,
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
  | { time: number; seq: number; kind: 'call'; fn: () => void };

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

  private readonly queue = new EventQueue<SimEvent>();
  private seq = 0;
  private readonly indexOf = new Map<NodeId, number>();
  private readonly diskRandom: SeededRandom;
  private readonly phaseRandom: SeededRandom;
  private readonly spareRandom: SeededRandom;
  private readonly createCore: CoreFactory;
  private readonly createStateMachine: StateMachineFactory;
  private readonly applyListeners: ApplyListener[] = [];
  private readonly clockListeners: ClockListener[] = [];

  constructor(o: ClusterOptions) {
    if (![1, 2, 3, 4, 5, 6, 7, 8, 9].includes(o.nodes)) throw new Error(`a simulated cluster has 1..9 nodes, not ${o.nodes}`);
    this.seed = o.seed;
    const master = new SeededRandom(o.seed);
    this.tickUnits = o.tickUnits ?? 100;
    this.params = { ...defaultRaftParams, ...o.raft };
    this.network = new SimNetwork(o.nodes, master.fork(), { ...reliableNetwork, ...o.network });
    this.diskRandom = master.fork();
    this.phaseRandom = master.fork();
    this.spareRandom = master.fork();
    this.diskLatencyUnitsMin = o.diskLatencyUnitsMin ?? 5;
    this.diskLatencyUnitsMax = o.diskLatencyUnitsMax ?? 50;
    this.createCore = o.createCore ?? createRaftNode;
    this.createStateMachine = o.createStateMachine ?? (() => new SessionStateMachine());
    this.trace = o.trace ?? null;
    this.ids = Array.from({ length: o.nodes }, (_, i) => nodeId(`n${i + 1}`));
    this.ids.forEach((id, i) => this.indexOf.set(id, i));
    this.nodes = this.ids.map((id, i) => new SimNode(id, i, master.fork(), this.createStateMachine()));
    this.checker = o.checks === false ? null : new SafetyChecker(this.nodes);
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

  /** Every live node that believes it is leader (more than one only across terms, e.g. a deposed leader). */
  leaders(): NodeId[] {
    return this.nodes.filter((n) => n.core?.status().role === 'leader').map((n) => n.id);
  }

  liveNodes(): SimNode[] {
    return this.nodes.filter((n) => n.up);
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
    const config: RaftConfig = { id: node.id, voters: this.ids, random: node.random.fork(), ...this.params };
    node.core = this.createCore(config, initial);
    if (this.trace !== null) {
      const hs = initial.hardState;
      this.log(`${node.id} START #${node.incarnation} term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit} entries=${initial.entries.length}`);
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
      const write = rd.hardState !== null || rd.entries.length > 0;
      if (write) {
        node.disk.begin(rd.hardState, rd.entries);
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
    if (rd.committedEntries.length > 0) this.apply(node, rd.committedEntries);
    node.syncing = null;
    core.advance(rd);
  }

  private apply(node: SimNode, entries: readonly Entry[]): void {
    if (this.trace !== null) this.log(`${node.id} apply ${describeEntries(entries)}`);
    const checker = this.checker;
    const listeners = this.applyListeners;
    for (const e of entries) {
      checker?.onApply(node.index, e);
      const cmd = node.sm.apply(e);
      node.applied = e.index;
      for (const l of listeners) l(node, e, cmd);
    }
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
