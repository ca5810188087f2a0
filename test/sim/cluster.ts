// The simulated cluster: each node runs the REAL manager driver (src/manager/node.ts: its ready loop, proposal and
// read trackers, snapshot sender and receiver) over simulated time, network and disk, all drawn from one seed, on
// one event queue. Between events the simulator lets every pending promise settle, so the driver's asynchronous
// loop runs as it would on Node's event loop, and checkers run after every event. Nodes snapshot their state machine
// and compact their log at a threshold (the driver's own policy); snapshot streams are the driver's chunks, each a
// delayed, droppable round trip. Spare nodes start outside the configuration and join through membership changes.
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { SeededRandom } from '../../src/lib/random.js';
import { encodeMemberContext, type Member } from '../../src/manager/members.js';
import { RaftNodeDriver } from '../../src/manager/node.js';
import type { ChunkPoster } from '../../src/manager/snapshot-transfer.js';
import { createRaftNode, defaultRaftLimits } from '../../src/raft/index.js';
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
  Role,
  SnapshotMeta,
} from '../../src/raft/types.js';
import { SafetyChecker, SafetyViolation, type CheckedNode } from './checkers.js';
import { SimDisk, type DiskState, type DiskWrite } from './disk.js';
import { EventQueue } from './event-queue.js';

/** Events in one tick past which a run fails (liveness): sane runs stay under a few thousand. */
const EVENTS_PER_TICK_MAX = 100_000;
import { reliableNetwork, SimNetwork, type NetworkFaults } from './network.js';
import { CheckedStorage } from '../../src/storage/checked.js';
import { MemoryMarker } from '../../src/storage/marker.js';
import { LiveMarker, SimClock, SimCommandMachine, simLogger, SimStorage, SimTransport, withTrailer, type Life } from './node-io.js';
import type { StorageFault } from './schedule.js';
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

/**
 * When nodes snapshot: once they applied `everyEntries` past their last snapshot (the driver's
 * snapshotThresholdEntries). The driver keeps a quarter of that as a log tail; `retainEntries` is not used.
 */
export interface SnapshotPolicy {
  readonly everyEntries: number;
  readonly retainEntries: number;
}

/** A snapshot chunk's round trip: how long it takes and how often it is lost. */
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
  /** Simulated time units (ms) per tick; message and disk delays are in units, so they can be shorter than a tick. */
  tickUnits?: number;
  createCore?: CoreFactory;
  createStateMachine?: StateMachineFactory;
  /** Run the safety checkers after every event (default true; benchmarks turn them off). */
  checks?: boolean;
  trace?: TraceSink | null;
}

export type ApplyListener = (node: SimNode, entry: Entry, command: AppliedCommand | null) => void;
export type ClockListener = (tick: number) => void;

/** What a command proposed through a node's driver resolves with: what applying it meant. */
export type Submitted = AppliedCommand | null;

export class SimNode implements CheckedNode {
  /** The running incarnation's core and driver (null while down or starting). */
  core: RaftNode | null = null;
  driver: RaftNodeDriver<Submitted> | null = null;
  transport: SimTransport | null = null;
  /** The running incarnation (starting or up); null while crashed. */
  life: Life | null = null;
  incarnation = 0;
  readonly disk = new SimDisk();
  sm: SimStateMachine;
  applied = 0;
  /** For traces: the role, term and leader last reported. */
  lastRole: Role | null = null;
  lastTerm = -1;
  lastLeader: NodeId | null = null;
  lastCommit = -1;
  /** A slow (or fast) disk on this node only: [min, max] units per synced write, instead of the cluster's. */
  diskLatencyUnits: readonly [number, number] | null = null;
  /** Synced writes complete in order: none before this time. */
  fsyncDoneAt = 0;
  /** Start the next incarnation as the only voter of a new cluster (disaster recovery). */
  forceNewCluster = false;
  /** The acknowledged-state marker beside the data directory: storage faults never touch it. */
  readonly marker = new MemoryMarker();
  /** Older copies of the data directory (taken at crashes), for a fault that restores one. */
  readonly backups: DiskState[] = [];
  /** A storage fault hit this node and it is not a voter with repaired storage again yet. */
  damaged = false;

  constructor(
    readonly id: NodeId,
    readonly index: number,
    /** The root of this node's random streams; each incarnation's driver gets a fork. */
    readonly random: SeededRandom,
    sm: SimStateMachine,
    /** Started outside the configuration (a spare): its driver runs with join set. */
    readonly joiner: boolean,
  ) {
    this.sm = sm;
  }

  get up(): boolean {
    return this.core !== null;
  }
}

type SimEvent =
  | { time: number; seq: number; kind: 'node'; node: number; inc: number; fn: () => void }
  | { time: number; seq: number; kind: 'deliver'; node: number; inc: number; msg: Message }
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
  /** Synced writes completed. */
  diskWrites: number;
  /** Unsynced writes a crash took away. */
  writesLost: number;
  /** Storage faults applied to synced data, and the damaged nodes that came back as voters. */
  storageFaults: number;
  storageRepairs: number;
  snapshotsTaken: number;
  /** Snapshot streams started (first chunk sent), delivered whole to the follower, and chunks lost or refused. */
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
    writesLost: 0,
    storageFaults: 0,
    storageRepairs: 0,
    snapshotsTaken: 0,
    snapshotsSent: 0,
    snapshotsDelivered: 0,
    snapshotsFailed: 0,
    snapshotsInstalled: 0,
    confChanges: 0,
  };
}

/** Lets every pending promise (the drivers' loops, storage writes, proposals) run before the next event. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class SimCluster {
  readonly seed: number;
  readonly ids: readonly NodeId[];
  readonly nodes: readonly SimNode[];
  readonly network: SimNetwork;
  readonly checker: SafetyChecker | null;
  readonly tickUnits: number;
  readonly params: RaftParams;
  stats: ClusterStats = emptyStats();
  /** Simulated time in units (ms). */
  now = 0;
  /** Global ticks elapsed (the clock event at time k * tickUnits is tick k). */
  tick = 0;
  private eventsThisTick = 0;
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
  private readonly markerRandom: SeededRandom;
  private readonly spareRandom: SeededRandom;
  /** Forked after the others, so adding snapshot streams does not shift the other components' draws. */
  private readonly streamRandom: SeededRandom;
  private readonly createCore: CoreFactory;
  private readonly createStateMachine: StateMachineFactory;
  private readonly applyListeners: ApplyListener[] = [];
  private readonly clockListeners: ClockListener[] = [];
  /** The bootstrap voters' addresses (a node's address is its id). */
  private readonly members: readonly Member[];
  private readonly allAddresses: readonly Member[];
  /** Nodes an event touched: the checkers look at them once the event's promises settled. */
  private readonly touched = new Set<number>();
  /** The first error a driver stopped on (or a checker threw inside a driver's loop); thrown after the event. */
  private failure: unknown = null;

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
    this.markerRandom = master.fork();
    this.diskLatencyUnitsMin = o.diskLatencyUnitsMin ?? 5;
    this.diskLatencyUnitsMax = o.diskLatencyUnitsMax ?? 50;
    this.createCore = o.createCore ?? createRaftNode;
    this.createStateMachine = o.createStateMachine ?? (() => new SessionStateMachine());
    this.trace = o.trace ?? null;
    this.ids = Array.from({ length: total }, (_, i) => nodeId(`n${i + 1}`));
    this.ids.forEach((id, i) => this.indexOf.set(id, i));
    this.bootstrap = { voters: this.ids.slice(0, o.nodes), learners: [] };
    this.members = this.bootstrap.voters.map((id) => ({ id, raftAddress: id, apiAddress: id }));
    this.allAddresses = this.ids.map((id) => ({ id, raftAddress: id, apiAddress: id }));
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

  /** Processes the next event and lets the promises it started settle; false when the queue is empty. */
  async step(): Promise<boolean> {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    this.now = ev.time;
    // A storm of messages that feeds itself never lets the clock move: fail the run rather than spin for good.
    if (++this.eventsThisTick > EVENTS_PER_TICK_MAX) {
      throw new SafetyViolation('liveness', `over ${EVENTS_PER_TICK_MAX} events in tick ${this.tick}: a message storm`);
    }
    switch (ev.kind) {
      case 'node': {
        const node = this.nodes[ev.node]!;
        if (node.incarnation === ev.inc && node.life?.alive === true) {
          this.touched.add(ev.node);
          ev.fn();
        }
        break;
      }
      case 'deliver':
        this.onDeliver(ev.node, ev.inc, ev.msg);
        break;
      case 'clock':
        this.tick++;
        this.eventsThisTick = 0;
        this.schedule({ kind: 'clock' }, this.tickUnits);
        for (let i = 0; i < this.nodes.length; i++) this.touched.add(i);
        for (const l of this.clockListeners) l(this.tick);
        break;
      case 'call':
        for (let i = 0; i < this.nodes.length; i++) this.touched.add(i);
        ev.fn();
        break;
    }
    await this.settleAndCheck();
    return true;
  }

  /** Runs every event up to `ticks` ticks from now. */
  async runTicks(ticks: number): Promise<void> {
    await this.settleAndCheck();
    const end = this.now + ticks * this.tickUnits;
    for (let ev = this.queue.peek(); ev !== undefined && ev.time <= end; ev = this.queue.peek()) await this.step();
    this.now = end;
  }

  /** Runs until `done()` holds (checked after every event) or `ticksMax` ticks pass; returns whether it held. */
  async runUntil(done: () => boolean, ticksMax: number): Promise<boolean> {
    await this.settleAndCheck();
    if (done()) return true;
    const end = this.now + ticksMax * this.tickUnits;
    for (let ev = this.queue.peek(); ev !== undefined && ev.time <= end; ev = this.queue.peek()) {
      await this.step();
      if (done()) return true;
    }
    this.now = end;
    return done();
  }

  /** Calls fn at `delayUnits` from now, in event order. */
  at(delayUnits: number, fn: () => void): void {
    this.schedule({ kind: 'call', fn }, delayUnits);
  }

  private async settleAndCheck(): Promise<void> {
    await settle();
    if (this.failure !== null) {
      const err = this.failure;
      this.failure = null;
      throw err instanceof Error ? err : new Error(JSON.stringify(err));
    }
    for (const i of this.touched) this.afterEvent(i);
    this.touched.clear();
  }

  // ---- client and operator actions ----

  /**
   * Proposes straight to node `id`'s core (past the driver's proposal tracker), as a Raft lab's tests do; null while
   * the node is down. The driver takes the Ready it leads to.
   */
  propose(id: NodeId | number, commands: readonly Uint8Array[]): ProposeResult | null {
    const node = this.node(id);
    const driver = node.driver;
    if (driver === null) return null;
    const r = driver.withCore((core) => core.propose(commands));
    this.touched.add(node.index);
    if (this.trace !== null) this.log(`${node.id} propose n=${commands.length} -> ${r.ok ? `ok${r.forwardedTo === null ? '' : ` via ${r.forwardedTo}`}` : r.reason}`);
    return r;
  }

  /**
   * A client's write through node `id`'s driver (its proposal tracker: forwarding, resends, the deadline): resolves
   * with what applying it meant once that node applied it, rejects at the deadline; null while the node is down. A
   * node that crashes meanwhile never settles it.
   */
  submit(id: NodeId | number, command: Uint8Array, deadlineUnits: number): Promise<Submitted> | null {
    const node = this.node(id);
    const driver = node.driver;
    if (driver === null) return null;
    const tag = clientTag(node);
    this.touched.add(node.index);
    return whileAlive(node.life!, driver.propose((seq) => withTrailer(command, tag, seq), this.now + deadlineUnits));
  }

  /** A linearizable read's barrier through node `id`'s driver (ReadIndex); null while the node is down. */
  read(id: NodeId | number, deadlineUnits: number): Promise<void> | null {
    const node = this.node(id);
    const driver = node.driver;
    if (driver === null) return null;
    this.touched.add(node.index);
    return whileAlive(node.life!, driver.linearizableBarrier(this.now + deadlineUnits));
  }

  /** An operator's membership change through node `id`'s driver (the leader's); null while the node is down. */
  proposeConfChange(id: NodeId | number, change: ConfChange): ConfChangeResult | null {
    const node = this.node(id);
    const driver = node.driver;
    if (driver === null) return null;
    // A node's addresses are its id; the config entry carries them, as `member add` does.
    const withAddresses = change.type === 'addLearner' ? { ...change, context: encodeMemberContext({ raftAddress: change.nodeId, apiAddress: change.nodeId }) } : change;
    const r = driver.proposeConfChange(withAddresses);
    if (r.ok) {
      this.stats.confChanges++;
      this.everMember.add(change.nodeId);
    }
    this.touched.add(node.index);
    if (this.trace !== null) this.log(`${node.id} conf change ${change.type} ${change.nodeId} -> ${r.ok ? `ok at ${r.index}` : r.reason}`);
    return r;
  }

  /** Leadership transfer through node `id`'s driver. */
  transferLeadership(id: NodeId | number, target: NodeId | null): boolean {
    const node = this.node(id);
    const driver = node.driver;
    if (driver === null) return false;
    const r = driver.transferLeadership(target);
    this.touched.add(node.index);
    if (this.trace !== null) this.log(`${node.id} transfer to ${target ?? 'any'} -> ${r.ok ? r.target : r.reason}`);
    return r.ok;
  }

  campaign(id: NodeId | number): void {
    const node = this.node(id);
    node.driver?.withCore((core) => core.campaign());
    this.touched.add(node.index);
  }

  crash(id: NodeId | number): void {
    const node = this.node(id);
    const life = node.life;
    if (life === null) return;
    life.alive = false;
    node.life = null;
    node.core = null;
    node.driver = null;
    node.transport = null;
    node.lastRole = null;
    this.checker?.onCrash(node.index);
    const lost = node.disk.crash(this.diskRandom, (w) => this.onDurable(node, w));
    this.stats.writesLost += lost;
    node.backups.push(node.disk.durable.copy());
    if (node.backups.length > 3) node.backups.shift();
    this.touched.add(node.index);
    if (this.trace !== null) {
      this.log(`${node.id} CRASH (applied ${node.applied}, synced ${node.disk.lastIndex} entries, commit ${node.disk.hardState.commit}, ${lost} unsynced writes lost)`);
    }
  }

  /**
   * A storage fault on node `id`'s synced data: the node crashes (if up) and its disk comes back damaged. Refused
   * (false) when it would leave a majority of the voters damaged at once: at most (voters - 1) / 2 nodes may be
   * damaged and not yet repaired, so every acknowledged write stays on a majority of intact disks.
   */
  damage(id: NodeId | number, fault: StorageFault): boolean {
    const node = this.node(id);
    const voters = this.config()?.voters.length ?? this.bootstrap.voters.length;
    const damagedNow = this.nodes.filter((n) => n.damaged && n !== node).length;
    if (damagedNow + 1 > Math.floor((voters - 1) / 2)) return false;
    this.crash(node.index);
    const random = this.diskRandom;
    let what: string;
    switch (fault) {
      case 'flip': {
        const index = node.disk.flipBit(random);
        what = index === null ? 'no entry to flip' : `a flipped bit in entry ${index}`;
        break;
      }
      case 'tail':
        what = `its last ${node.disk.loseTail(random)} entries lost`;
        break;
      case 'range': {
        const from = node.disk.loseRange(random);
        what = from === null ? 'no range to lose' : `entries from ${from} lost`;
        break;
      }
      case 'stale': {
        const older = node.backups.length === 0 ? undefined : node.backups[random.int(node.backups.length)];
        if (older !== undefined) node.disk.restoreOlder(older);
        what = older === undefined ? 'no older copy' : `the data directory replaced by an older copy (log up to ${older.lastIndex})`;
        break;
      }
    }
    node.damaged = true;
    this.stats.storageFaults++;
    this.checker?.onDamage(node.index);
    if (this.trace !== null) this.log(`${node.id} STORAGE FAULT: ${what}`);
    return true;
  }

  restart(id: NodeId | number): void {
    const node = this.node(id);
    if (node.life !== null) return;
    this.start(node.index);
  }

  /**
   * Disaster recovery on a crashed node: its next start rewrites its state into a one-voter cluster of itself (the
   * driver's forceNewCluster), as an operator would. The other nodes must never come back.
   */
  forceNewCluster(id: NodeId | number): void {
    const node = this.node(id);
    if (node.life !== null) throw new Error(`${node.id} must be down to be forced into a new cluster`);
    node.forceNewCluster = true;
    if (this.trace !== null) this.log(`${node.id} will start FORCED into a new cluster`);
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

  // ---- the nodes: the real driver over simulated parts ----

  /** A new incarnation: a process that starts within a tick (so nodes' ticks are out of phase), then opens its driver. */
  private start(i: number): void {
    const node = this.nodes[i]!;
    node.incarnation++;
    const life: Life = { alive: true };
    node.life = life;
    node.fsyncDoneAt = this.now;
    this.schedule({ kind: 'node', node: i, inc: node.incarnation, fn: () => this.open(node, life) }, 1 + this.phaseRandom.int(this.tickUnits - 1));
  }

  private open(node: SimNode, life: Life): void {
    const i = node.index;
    const inc = node.incarnation;
    node.applied = 0;
    node.sm = this.createStateMachine();
    this.checker?.onRestart(i);
    const snap = node.disk.cache.snapshot;
    const initial = node.disk.load();
    // The driver restores the snapshot it loads before it makes its core: the state must be the one of its index.
    const restored = (): void => {
      if (node.driver !== null || snap === null) return;
      node.applied = snap.meta.index;
      this.checker?.onSnapshot(i, snap.meta, node.sm.digest(), 'restored');
    };
    const machine = new SimCommandMachine(node.sm, () => this.onCapture(node), restored);
    const transport = new SimTransport(life, (m) => this.send(i, m), (peer) => this.linkBothWays(i, peer));
    node.transport = transport;
    let core: RaftNode | null = null;
    const forced = node.forceNewCluster;
    node.forceNewCluster = false;
    const opening = RaftNodeDriver.open<Submitted>({
      id: node.id,
      // A joiner is told every address (as `minkube manager --join` learns the members from the cluster).
      members: node.joiner ? this.allAddresses : this.members,
      // As in production: a storage that checks what it loads against the marker, and salvages a damaged log.
      storage: new CheckedStorage(
        new SimStorage(node.disk, life, (w) => this.fsync(node, inc, w)),
        new LiveMarker(node.marker, life, () => this.markerLatency(node, inc)),
      ),
      transport,
      stateMachine: machine,
      logger: simLogger((err) => this.fail(life, err)),
      clock: new SimClock(this, life, (delayMs, fn) => this.schedule({ kind: 'node', node: i, inc, fn }, delayMs)),
      random: node.random.fork(),
      clientId: String(clientTag(node)),
      tickMs: this.tickUnits,
      electionTicks: this.params.electionTicks,
      heartbeatTicks: this.params.heartbeatTicks,
      proposalQueueMax: 10_000,
      snapshotThresholdEntries: this.snapshotPolicy?.everyEntries ?? Number.POSITIVE_INFINITY,
      snapshotThresholdBytes: Number.POSITIVE_INFINITY,
      join: node.joiner,
      forceNewCluster: forced,
      snapshotPoster: this.poster(node),
      // The simulation's Raft parameters (schedules shrink appends and windows; tests turn pre-vote off).
      createCore: (config, init) => (core = this.createCore({ ...config, ...this.params }, init)),
      onRestored: (meta) => this.onInstalled(node, life, meta),
      onApplied: (e) => this.onApplied(node, life, machine, e),
    });
    opening.then(
      (driver) => {
        if (!life.alive) return;
        // Every node knows every address, as when every manager's config file lists them all. Without it, a node
        // that restarts having missed the config entry that added the current leader cannot answer that leader (its
        // transport has no address for it), and the leader never learns what to send it: a liveness bug for
        // managers that joined with --join and lead later, left for the driver to fix (the soak found it).
        for (const m of this.allAddresses) driver.directory.set(m.id, m);
        node.driver = driver;
        node.core = core;
        const storage = driver.storage();
        if (this.trace !== null) {
          const hs = initial.hardState;
          const from = snap === null ? '' : ` snapshot=${snap.meta.index}/t${snap.meta.term}`;
          const recovering = storage.state === 'ok' ? '' : ` RECOVERING (${storage.reason ?? ''})`;
          this.log(`${node.id} START #${inc} term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit}${from} entries=${initial.entries.length}${forced ? ' FORCED' : ''}${recovering}`);
        }
        // A clean crash never looks like damage (docs/storage-faults.md): only a node a fault hit, and not yet
        // repaired (the disk holds the repair), may start recovering. Otherwise the fault budget (a minority of the
        // voters damaged at once) no longer holds, and the cluster may be left with no quorum of intact voters.
        if (!node.damaged && storage.state === 'recovering') {
          this.fail(life, new SafetyViolation('restart durability', `${node.id} restarted recovering though no storage fault hit it since it was last repaired: ${storage.reason ?? ''}`));
        }
        driver.start();
      },
      (err: unknown) => this.fail(life, err),
    );
  }

  /** A failure found outside an event (a client's check in a promise callback): thrown after the current event. */
  report(err: unknown): void {
    if (this.failure === null) this.failure = err;
  }

  /** The driver of a live incarnation stopped on an error (or a checker threw inside its loop). */
  private fail(life: Life, err: unknown): void {
    if (life.alive && this.failure === null) this.failure = err;
  }

  /** A synced write completes after the disk's latency, in the order the writes were issued. */
  private fsync(node: SimNode, inc: number, w: DiskWrite): Promise<void> {
    const [min, max] = node.diskLatencyUnits ?? [this.diskLatencyUnitsMin, this.diskLatencyUnitsMax];
    const latency = min + (max > min ? this.diskRandom.int(max - min + 1) : 0);
    const at = Math.max(this.now + latency, node.fsyncDoneAt);
    node.fsyncDoneAt = at;
    return new Promise<void>((resolve) => {
      const fn = (): void => {
        node.disk.sync(w, (x) => this.onDurable(node, x));
        resolve();
      };
      this.schedule({ kind: 'node', node: node.index, inc, fn }, at - this.now);
    });
  }

  /**
   * The marker's O_DSYNC write: its own latency, drawn from its own stream (so the log's writes keep theirs), and
   * not queued behind the log's fsyncs (another file; the driver overlaps the two).
   */
  private markerLatency(node: SimNode, inc: number): Promise<void> {
    const [min, max] = node.diskLatencyUnits ?? [this.diskLatencyUnitsMin, this.diskLatencyUnitsMax];
    const latency = min + (max > min ? this.markerRandom.int(max - min + 1) : 0);
    return new Promise<void>((resolve) => this.schedule({ kind: 'node', node: node.index, inc, fn: resolve }, latency));
  }

  /** A write reached the platter (by its own fsync, a later one, or by luck before a crash). */
  private onDurable(node: SimNode, w: DiskWrite): void {
    this.stats.diskWrites++;
    if (w.kind !== 'save') return;
    this.checker?.onPersisted(node.index, w.entries);
    if (this.trace !== null && w.entries.length > 0) this.log(`${node.id} synced ${describeEntries(w.entries)}`);
  }

  private onApplied(node: SimNode, life: Life, machine: SimCommandMachine, e: Entry): void {
    if (!life.alive) return;
    const cmd = e.type === 'command' && machine.lastIndex === e.index ? machine.lastCommand : null;
    this.checker?.onApply(node.index, e);
    node.applied = e.index;
    this.checker?.afterApply(node.index, e.index, node.sm.digest());
    if (this.trace !== null) this.log(`${node.id} apply ${describeEntries([e])}`);
    for (const l of this.applyListeners) l(node, e, cmd);
  }

  /** The driver replaced its state machine with a snapshot from the leader. */
  private onInstalled(node: SimNode, life: Life, meta: SnapshotMeta): void {
    if (!life.alive) return;
    node.applied = meta.index;
    this.stats.snapshotsInstalled++;
    if (this.trace !== null) this.log(`${node.id} installed snapshot ${meta.index}/t${meta.term}`);
    this.checker?.onSnapshot(node.index, meta, node.sm.digest(), 'installed');
  }

  /** The driver captures its state machine for a snapshot of its applied index. */
  private onCapture(node: SimNode): void {
    const meta = node.core?.snapshotMeta(node.applied as Entry['index']) ?? null;
    if (meta === null) return;
    this.stats.snapshotsTaken++;
    if (this.trace !== null) this.log(`${node.id} snapshot at ${meta.index}/t${meta.term}`);
    this.checker?.onSnapshot(node.index, meta, node.sm.digest(), 'taken');
  }

  /**
   * How a node's snapshot sender reaches a follower: each chunk is a round trip that takes a while, and is lost on a
   * cut link or at the transfer's drop rate (the sender then hears a failure, as from a timeout). A sender that
   * crashes meanwhile never hears back.
   */
  private poster(node: SimNode): ChunkPoster {
    return (apiAddress, header, chunk) =>
      new Promise((resolve, reject) => {
        const from = node.index;
        const to = this.indexOf.get(apiAddress as NodeId);
        const t = this.snapshotTransfer;
        const span = t.delayUnitsMax - t.delayUnitsMin;
        const delay = t.delayUnitsMin + (span > 0 ? this.streamRandom.int(span + 1) : 0);
        const dropped = t.dropRate > 0 && this.streamRandom.next() < t.dropRate;
        if (header.offset === 0) this.stats.snapshotsSent++;
        if (this.trace !== null) this.log(`${node.id} streams snapshot ${header.meta.index}/t${header.meta.term} to ${apiAddress} (offset ${header.offset})${dropped ? ' (will be lost)' : ''}`);
        const fn = (): void => {
          const target = to === undefined ? undefined : this.nodes[to];
          const driver = target?.driver ?? null;
          if (to === undefined || dropped || driver === null || !this.network.linkUp(from, to) || !this.network.linkUp(to, from)) {
            this.stats.snapshotsFailed++;
            if (this.trace !== null) this.log(`snapshot stream ${node.id}->${apiAddress} failed`);
            reject(new Error('the snapshot chunk was lost'));
            return;
          }
          this.touched.add(to);
          try {
            const reply = driver.receiveSnapshotChunk(header, chunk);
            if (reply.done) {
              this.stats.snapshotsDelivered++;
              if (this.trace !== null) this.log(`${target!.id} received snapshot ${header.meta.index}/t${header.meta.term} from ${node.id}`);
            }
            resolve(reply);
          } catch (err) {
            this.stats.snapshotsFailed++;
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        };
        this.schedule({ kind: 'node', node: from, inc: node.incarnation, fn }, delay);
      });
  }

  private linkBothWays(i: number, peer: NodeId): boolean {
    const j = this.indexOf.get(peer);
    return j !== undefined && this.network.linkUp(i, j) && this.network.linkUp(j, i);
  }

  private onDeliver(i: number, inc: number, m: Message): void {
    const node = this.nodes[i]!;
    const from = this.indexOf.get(m.from)!;
    const transport = node.transport;
    const down = node.incarnation !== inc || transport === null || node.driver === null;
    if (down || !this.network.linkUp(from, i)) {
      this.stats.dropped++;
      if (this.trace !== null) this.log(`drop ${describeMessage(m)} (${down ? 'receiver down' : 'cut'})`);
      return;
    }
    this.stats.delivered++;
    if (this.trace !== null) this.log(`deliver ${describeMessage(m)}`);
    this.touched.add(i);
    transport.deliver(m);
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
    const node = this.nodes[i]!;
    if (node.damaged && node.driver !== null && node.core?.status().recovering === null) {
      node.damaged = false;
      this.stats.storageRepairs++;
      if (this.trace !== null) this.log(`${node.id} storage repaired: a voter again`);
    }
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

/**
 * A client hears an answer only from a live process: the driver of a crashed incarnation may still run a step or two
 * of its loop (a commit-only write does not wait), but nothing it says reaches anyone.
 */
function whileAlive<T>(life: Life, p: Promise<T>): Promise<T> {
  return p.then(
    (v) => (life.alive ? v : new Promise<T>(() => undefined)),
    (err: unknown) => (life.alive ? Promise.reject(err instanceof Error ? err : new Error(String(err))) : new Promise<T>(() => undefined)),
  );
}

/** The driver's client id of a node's current incarnation (its proposals carry it, so a restart's never match). */
function clientTag(node: SimNode): number {
  return node.index * 65536 + (node.incarnation % 65536);
}
