// Drives one Raft core: the tick timer and the ready loop (persist, then send, then apply, then advance), this
// manager's own proposals and linearizable reads. It knows nothing of HTTP; the service layer sits on top.
import type { Logger } from 'pino';
import { assert } from '../lib/assert.js';
import { setIntervalOn, sleepOn, type Clock, type Timer } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, type LogIndex, type NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { SeededRandom, type Random } from '../lib/random.js';
import { createRaftNode, defaultRaftLimits, forceNewCluster } from '../raft/index.js';
import type { ConfChange, ConfChangeResult, ConfState, Entry, Message, RaftConfig, RaftInitialState, RaftNode, RaftStatus, Ready, Role, SnapshotMeta } from '../raft/types.js';
import type { LoadedState, RaftStorage, StorageRecovery } from '../storage/types.js';
import { StorageRecoveryWatch, type StorageView } from './storage-recovery.js';
import type { Transport } from '../transport/types.js';
import { decodeSnapshot, encodeSnapshotParts, MemberDirectory, RemovedMembers, type Member } from './members.js';
import { ProposalTracker, UncommittedCommands } from './proposals.js';
import { ReadBatcher } from './reads.js';
import type { SnapshotChunkHeader } from '../contracts/snapshot-chunks.js';
import { SnapshotReceiver, SnapshotSender, type ChunkPoster, type SnapshotSource } from './snapshot-transfer.js';
import type { DriverObserver } from './metrics.js';

export type { Member };

/**
 * What the node needs of the replicated state machine: apply a committed command and say who proposed it; and, for
 * snapshots, its whole state as bytes and back (deterministic: every node restores the same state from them).
 */
export interface CommandStateMachine<R> {
  apply(index: number, data: Uint8Array): { clientId: string; seq: number; reqId?: string | undefined; result: R } | null;
  /**
   * An entry that is no command (a leader's no-op, a configuration change) was applied at `index`: the state is now
   * as of it, so a snapshot or backup taken next says the index it was taken at.
   */
  passed?(index: number): void;
  /** The state as of now; the returned function encodes it later, yielding to the event loop as it goes. */
  captureSnapshot(): () => Promise<Uint8Array>;
  /** captureSnapshot() with the bytes as the parts the state machine has them in (written out as they are). */
  captureSnapshotParts?(): () => Promise<readonly Uint8Array[]>;
  restore(bytes: Uint8Array): void;
  /**
   * restore() without blocking the event loop: decodes in slices off to the side; the answer swaps the state in.
   * Used for a snapshot from the leader when present (installing it then never holds up heartbeats).
   */
  prepareRestore?(bytes: Uint8Array): Promise<() => void>;
}

/** A received snapshot waiting for the core to accept it (the Ready that installs it carries the same meta). */
interface PendingInstall {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
  readonly members: readonly Member[];
  readonly removed: readonly [NodeId, number][];
  readonly state: Uint8Array;
  /** The state prepared off to the side (prepareRestore): installing it is swapping it in. */
  readonly swap?: () => void;
}

const PENDING_INSTALLS_MAX = 2;
/** Ticks between the leader's looks at its learners (promotion). */
const PROMOTE_CHECK_TICKS = 4;
/** A learner this close to the commit index is promoted. */
const PROMOTE_LAG_ENTRIES_MAX = 256;

export interface RaftNodeDriverOptions<R> {
  id: NodeId;
  members: readonly Member[];
  storage: RaftStorage;
  transport: Transport;
  stateMachine: CommandStateMachine<R>;
  logger: Logger;
  clock: Clock;
  random: Random;
  /** Unique per process start: proposals and read rounds of an earlier run must never be mistaken for ours. */
  clientId: string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  proposalQueueMax: number;
  /** A snapshot is taken once the stored log holds this many entries, or this many bytes were applied since the last. */
  snapshotThresholdEntries: number;
  snapshotThresholdBytes: number;
  /** This node joined a running cluster (or is joining): it knows no configuration until the leader sends one. */
  join?: boolean;
  /** Disaster recovery: start as the only voter of a new cluster, with everything this node holds. */
  forceNewCluster?: boolean;
  /**
   * With forceNewCluster: go on though the storage check found this node's storage damaged (its log lacks writes it
   * acknowledged). Without it, that is refused (STORAGE_CORRUPT).
   */
  acceptDataLoss?: boolean;
  /** How snapshot chunks reach followers (tests inject one; default HTTP). */
  snapshotPoster?: ChunkPoster;
  /** Builds the core (default createRaftNode); the simulator wraps it to watch it, or to break it on purpose. */
  createCore?: (config: RaftConfig, initial: RaftInitialState) => RaftNode;
  /** Called after the state machine was replaced by a snapshot from the leader (the snapshot's metadata). */
  onRestored?: (meta: SnapshotMeta) => void;
  /** Called for every applied entry, after the state machine (leader-only loops watch the state through it). */
  onApplied?: (entry: Entry) => void;
  onRoleChange?: (role: Role, leaderId: NodeId | null, term: number) => void;
  /** Called once a snapshot this node took is durable (the state machine let go of what it packed into it then). */
  onSnapshotSaved?: (sizeBytes: number) => void;
  /**
   * Checks a command's bytes before they reach the core (null: fine; else what is wrong): this node's own proposals,
   * and those a follower forwards. An entry that reaches the log is applied by every manager, so what the state
   * machine cannot understand must stop here (the core knows nothing of commands). `conf`: the configuration in force
   * on this node as it checks (what the leader holds when it appends a forwarded one: validateCommand refuses a worker
   * registering with a manager's id there, in the same turn as the append, see node-ids.ts).
   */
  validate?: (data: Uint8Array, conf: ConfState) => string | null;
  /**
   * Before validate, on this node's own proposals and those a follower forwards: the bytes to propose in their place
   * (a command newer than a member understands, made one it does), or the error that refuses them (see
   * manager/cluster-version.ts). Absent: as they are.
   */
  fit?: (data: Uint8Array) => { readonly data: Uint8Array } | { readonly error: MinkubeError };
  /** Metrics (src/manager/metrics.ts): synced writes, snapshots, failed proposals, heartbeat round trips. */
  observer?: DriverObserver;
}

export interface EncodeProposal {
  (seq: number, ackSeq: number): Uint8Array;
}

export class RaftNodeDriver<R> {
  readonly id: NodeId;
  private readonly core: RaftNode;
  private readonly proposals: ProposalTracker<R>;
  private readonly uncommitted = new UncommittedCommands();
  private readonly reads: ReadBatcher;
  private tickTimer: Timer | null = null;
  private readyScheduled = false;
  /** When each peer's last message arrived (clock.monoMs()): a frozen process keeps its connection open, not its voice. */
  private readonly lastHeardMonoMs = new Map<NodeId, number>();
  /** Why this node holds it was removed from the cluster (markRemoved), or null. */
  private removedReason: string | null = null;
  private draining = false;
  private stopped = false;
  private appliedIndex = 0;
  private lastRole: Role = 'follower';
  private lastLeader: NodeId | null = null;
  private fatalError: Error | null = null;
  readonly directory: MemberDirectory;
  /** The managers removed from the cluster, and when: their old certificates are refused (daemon/manager.ts). */
  readonly removed: RemovedMembers;
  private readonly sender: SnapshotSender;
  private readonly receiver: SnapshotReceiver;
  private pendingInstalls: PendingInstall[] = [];
  /** A snapshot being written, and one written whose compaction the core has not been told of yet. */
  private snapshotting = false;
  private pendingCompact: { meta: SnapshotMeta; retain: number } | null = null;
  /** The stored log's entries end at or below this index (it holds entries after it). */
  private compactedThrough = 0;
  private appliedBytesSinceSnapshot = 0;
  /**
   * The last index of the log the node's storage held at start (or its snapshot's): applying the entries up to it
   * replays what an earlier process of this node most likely showed already (traces, say). Not the stored commit
   * index, which lags (a Ready that only moves it is not written).
   */
  readonly heldAtStartIndex: number;
  /** The index of the last entry a Ready handed to storage (the log's end, as far as this driver saw it). */
  private lastLogIndex = 0;
  /** Entries applied while the last snapshot was written: the next one begins that much earlier, twice over. */
  private lastSnapshotGrowthEntries = 0;
  /** Weak: a snapshot's bytes stay in memory while a transfer holds them, not for the life of the process. */
  private sourceCache: WeakRef<SnapshotSource> | null = null;
  /**
   * A received snapshot being decoded off to the side (at most one: another arriving meanwhile is dropped), and a
   * promise settled once it was handed to the core (or failed): see snapshotOffered.
   */
  private preparing: { readonly meta: SnapshotMeta; readonly offered: Promise<void> } | null = null;
  /** The index of the received snapshot a Ready is persisting, to install once it is on disk (0: none). */
  private installingIndex = 0;
  private ticks = 0;
  /** Set by open(): whether this manager recovers its storage, and what it says about it. */
  private storageWatch!: StorageRecoveryWatch;
  private refusedProposalsCount = 0;
  private readonly changeWaiters = new Set<() => void>();
  /** The error of a proposal or read that timed out with no leader known (noLeaderError). */
  private readonly noLeader = (): MinkubeError => this.noLeaderError();
  /** The transport's peers, and the nodes outside the configuration that spoke to this one (see answerCaller). */
  private peerIds: ReadonlySet<NodeId> = new Set();
  private readonly callers = new Set<NodeId>();
  /** Resolves when the node stops, with the error that stopped it, if any. */
  readonly stoppedPromise: Promise<Error | null>;
  private resolveStopped!: (e: Error | null) => void;

  private constructor(
    private readonly o: RaftNodeDriverOptions<R>,
    core: RaftNode,
    directory: MemberDirectory,
    removed: RemovedMembers,
    initial: RaftInitialState,
  ) {
    this.id = o.id;
    this.core = core;
    this.directory = directory;
    this.removed = removed;
    this.appliedIndex = initial.snapshot?.index ?? 0;
    this.heldAtStartIndex = Math.max(initial.hardState.commit, initial.entries.at(-1)?.index ?? 0, initial.snapshot?.index ?? 0);
    this.compactedThrough = Math.max(initial.snapshot?.index ?? 0, (initial.entries[0]?.index ?? 1) - 1);
    this.sender = new SnapshotSender({
      selfId: o.id,
      logger: o.logger.child({ component: 'snapshots' }),
      source: () => this.snapshotSource(),
      apiAddressOf: (id) => this.directory.get(id)?.apiAddress,
      report: (peer, status) => {
        if (this.stopped) return;
        this.core.reportSnapshot(peer, status);
        this.scheduleReady();
      },
      ...(o.snapshotPoster === undefined ? {} : { post: o.snapshotPoster }),
      clock: o.clock,
      random: lazyFork(o.random),
    });
    this.receiver = new SnapshotReceiver({
      logger: o.logger.child({ component: 'snapshots' }),
      // An idle transfer is forgotten after a while: timed on the monotonic reading.
      nowMs: () => o.clock.monoMs(),
      onComplete: (h, data) => this.onSnapshotReceived(h, data),
      underWay: (meta) => this.snapshotUnderWay(meta.index),
    });
    const resendAfterMs = o.tickMs * o.electionTicks;
    // A fork: the resend waits' draws do not shift the core's election timeouts drawn from o.random.
    this.proposals = new ProposalTracker<R>({ queueMax: o.proposalQueueMax, resendAfterMs, random: new SeededRandom(o.random.int(0x7fffffff)), electionTimeoutMs: resendAfterMs });
    this.reads = new ReadBatcher({
      contextPrefix: `${o.clientId}:`,
      queueMax: o.proposalQueueMax,
      retryAfterMs: resendAfterMs,
      electionTimeoutMs: resendAfterMs,
      readIndex: (ctx) => this.core.readIndex(ctx),
    });
    this.stoppedPromise = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  static async open<R>(o: RaftNodeDriverOptions<R>): Promise<RaftNodeDriver<R>> {
    // Forcing without --accept-data-loss: damage is judged before anything is written, so a refusal changes nothing.
    const checkOnly = o.forceNewCluster === true && o.acceptDataLoss !== true;
    const checked = o.storage.loadChecked !== undefined ? await o.storage.loadChecked({ checkOnly }) : { state: await o.storage.load(), recovery: null, notes: [] };
    for (const note of checked.notes) o.logger.warn(note);
    const loaded = checked.state;
    const directory = new MemberDirectory(o.id, o.members);
    const removed = new RemovedMembers();
    if (loaded.snapshotData !== null) {
      const snap = decodeSnapshot(loaded.snapshotData);
      for (const m of snap.members) directory.set(m.id, m);
      for (const [id, atMs] of snap.removed) removed.note(id, atMs);
      // In slices when it can: the decoded rows become garbage a slice at a time, so the heap grows less at start.
      if (o.stateMachine.prepareRestore !== undefined) (await o.stateMachine.prepareRestore(snap.state))();
      else o.stateMachine.restore(snap.state);
    }
    directory.learnFromEntries(loaded.entries);
    const recovery = o.forceNewCluster === true ? null : checked.recovery;
    if (o.forceNewCluster === true && checked.recovery !== null) {
      // Before the check for an empty log: what the salvage would keep of a damaged one may be nothing.
      // Its log lacks writes it acknowledged: every other member emptied to join it would lose them too, for good.
      if (o.acceptDataLoss !== true) throw forceRefused(o.id, checked.recovery.reason);
      o.logger.warn({ reason: checked.recovery.reason }, 'forcing a new cluster from damaged storage, as asked (--accept-data-loss): writes it acknowledged past its log are lost');
    }
    if (o.forceNewCluster === true && loaded.entries.length === 0 && (loaded.snapshot ?? null) === null && checked.recovery !== null) {
      // --accept-data-loss, and nothing of the damaged log was kept: no wrong --id, but nothing to start from either.
      throw new MinkubeError(
        'STORAGE_CORRUPT',
        `--force-new-cluster: nothing of the log of ${o.id} could be kept (${checked.recovery.reason}): there is no state to start a new cluster from. Start it on another manager, or from a backup (minkube snapshot restore)`,
      );
    }
    if (o.forceNewCluster === true && loaded.entries.length === 0 && (loaded.snapshot ?? null) === null) {
      // Nothing to carry over: forcing would start a new, empty cluster in the place of the lost one, and the others,
      // emptied to join it as the recovery says, would lose everything. A wrong --id or data directory, most likely.
      throw new MinkubeError(
        'CONFIG_INVALID',
        `--force-new-cluster found no log and no snapshot in the data directory of ${o.id}: it starts a one-member cluster from a surviving manager's data, and this one holds none (a wrong --id or --data-dir?). To start from a backup, use minkube snapshot restore`,
      );
    }
    const initial = await prepareInitial(o, loaded, recovery?.target ?? null);
    const core = (o.createCore ?? createRaftNode)(
      {
        id: o.id,
        voters: o.join === true ? [] : o.members.map((m) => m.id),
        join: o.join === true,
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        random: o.random,
        preVote: true,
        checkQuorum: true,
        lazyCommit: true,
        incarnation: 1 + o.random.int(0x7fff_fffe),
        ...defaultRaftLimits,
      },
      initial,
    );
    const st = core.status();
    o.logger.info(
      { term: st.term, role: st.role, snapshotIndex: initial.snapshot?.index ?? 0, lastIndex: st.lastIndex, commit: initial.hardState.commit, voters: st.voters, learners: st.learners },
      'raft state loaded',
    );
    const driver = new RaftNodeDriver(o, core, directory, removed, initial);
    driver.storageWatch = new StorageRecoveryWatch(recovery, o.logger, async () => {
      await o.storage.repaired?.();
      o.observer?.storageRepaired?.();
    });
    // Its synced log still holds the last entry it had acknowledged (a repair that lost nothing): the core is done
    // recovering already, and so is this manager, before any leader is heard of.
    if (recovery !== null && core.status().recovering === null) await driver.storageWatch.afterReady(core.status(), 'its own log');
    return driver;
  }

  /** This manager's storage: ok, or recovering (and why). */
  storage(): StorageView {
    return this.storageWatch.view();
  }

  /** Why no leader can be elected now (too many voters recovering their storage), or null. */
  noQuorumReason(): string | null {
    return this.storageWatch.noQuorumReason(this.core.status());
  }

  /** NO_LEADER for a request that waited for a leader in vain: why none can be elected, when this node knows. */
  noLeaderError(): MinkubeError {
    const reason = this.noQuorumReason();
    if (reason !== null) return new MinkubeError('NO_LEADER', `no leader is known: ${reason}`);
    // Recovering, it hears from no peer whether they are too (they tell only a leader): it says what it knows.
    if (this.storageWatch.recovering) {
      // details: the CLI, trying each manager in turn, leads with an intact manager's answer (it may know why).
      return new MinkubeError('NO_LEADER', 'no leader is known; this manager is recovering lost or damaged storage and votes for no one until a leader repairs it (if other voters are recovering too, no leader can be elected: GET /v1/cluster on each says)', { details: { storageRecovering: true } });
    }
    return new MinkubeError('NO_LEADER');
  }

  /**
   * NOT_READY when this node is not in the configuration it knows (removed, or a joiner's first configuration
   * without it): it never learns of a leader again, so what would wait for one is refused at once. null otherwise,
   * and while it knows no configuration yet (a joiner before its first entries).
   */
  notMemberError(): MinkubeError | null {
    if (this.removedReason !== null) {
      return new MinkubeError('NOT_READY', `this manager was removed from the cluster (${this.removedReason}): send the request to another manager`);
    }
    // On every proposal and read: the configuration alone, not the whole status (a Map of the peers' progress).
    const c = this.core.conf();
    if (c.voters.length === 0 || c.voters.includes(this.o.id) || c.learners.includes(this.o.id)) return null;
    return new MinkubeError('NOT_READY', 'this manager is not a member of the cluster (removed, or not added yet): send the request to another manager');
  }

  /**
   * Whether this node reaches the peer: a connection is open and, between a leader and its followers (which speak to
   * each other every heartbeat), the peer spoke within two election timeouts. A process that is frozen or stuck keeps
   * its connection open (its kernel answers), so the connection alone would call it reachable. Two followers say
   * nothing to each other: between them the connection is all there is to go on.
   */
  reachable(peer: NodeId): boolean {
    if (!this.o.transport.reachable(peer)) return false;
    const st = this.core.status();
    if (st.role !== 'leader' && st.leaderId !== peer) return true;
    const heard = this.lastHeardMonoMs.get(peer);
    return heard !== undefined && this.o.clock.monoMs() - heard <= 2 * this.o.tickMs * this.o.electionTicks;
  }

  /** The configuration in effect (voters and learners), without the rest of the status (a Map of the peers' progress). */
  conf(): ConfState {
    return this.core.conf();
  }

  /** The core's term and role now (every log line carries them), without building the status. */
  termAndRole(): { term: number; role: Role } {
    return { term: this.core.currentTerm(), role: this.core.currentRole() };
  }

  /** Whether this node's own configuration lists it (as a voter or a learner). */
  listsSelf(): boolean {
    const c = this.core.conf();
    return c.voters.includes(this.o.id) || c.learners.includes(this.o.id);
  }

  /**
   * The cluster's leader was seen to leave this node out (RemovalWatch: it was removed while it could not learn
   * so), or null: a leader speaks to it again. While set, proposals and reads are refused at once (notMemberError).
   */
  markRemoved(reason: string | null): void {
    if (reason === this.removedReason) return;
    this.removedReason = reason;
    if (reason !== null) this.o.logger.warn({ reason }, 'this manager was removed from the cluster: it serves nothing; stop it (to add it back, empty its data directory and start it with --join)');
    else this.o.logger.info('a leader speaks to this manager again: it is a member');
  }

  start(): void {
    this.updatePeers();
    this.o.transport.onMessage((m) => {
      if (this.stopped) return;
      this.lastHeardMonoMs.set(m.from, this.o.clock.monoMs());
      if (!this.peerIds.has(m.from)) this.answerCaller(m.from);
      if (m.type === 'heartbeatResponse') this.o.observer?.heartbeatAnswered(m.from);
      const checked = m.type === 'propose' ? this.checkForwarded(m) : m;
      if (checked === null) return;
      this.core.step(checked);
      this.scheduleReady();
    });
    this.tickTimer = setIntervalOn(this.o.clock, () => this.onTick(), this.o.tickMs);
    this.scheduleReady();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.tickTimer?.cancel();
    this.sender.close();
    const err = new MinkubeError('NOT_READY', 'the manager is shutting down');
    this.proposals.rejectAll(err);
    this.reads.rejectAll(err);
    while (this.draining) await sleepOn(this.o.clock, 5);
    this.resolveStopped(this.fatalError);
  }

  status(): RaftStatus {
    return this.core.status();
  }

  get applied(): number {
    return this.appliedIndex;
  }

  /** Proposals forwarded by peers that were refused because their commands did not validate. */
  get refusedProposals(): number {
    return this.refusedProposalsCount;
  }

  /**
   * The commands this node holds but has not applied: its log's entries past the applied index, and its own proposals
   * still waiting (in its log or not yet). With the applied state they are all it will apply that it knows of: a
   * leader reads them to decide, in the same turn as it proposes, what the state will hold (a member add's id).
   */
  unappliedCommands(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const last = this.core.status().lastIndex;
    for (let i = this.appliedIndex + 1; i <= last; i++) {
      const e = this.core.entryAt(logIndex(i));
      if (e?.type === 'command') out.push(e.data);
    }
    out.push(...this.proposals.waitingData());
    return out;
  }

  /** This node's own proposals waiting to be applied. */
  get pendingProposals(): number {
    return this.proposals.size;
  }

  /** Proposes a command and resolves with its result once this node applies it. */
  propose(encode: EncodeProposal, deadlineMs: number): Promise<R> {
    const observer = this.o.observer;
    if (observer === undefined) return this.proposeNow(encode, deadlineMs);
    const failed = (err: unknown): never => {
      observer.proposalFailed(err instanceof MinkubeError ? err.code : 'INTERNAL');
      throw err;
    };
    let proposed: Promise<R>;
    try {
      proposed = this.proposeNow(encode, deadlineMs);
    } catch (err) {
      return failed(err); // QUEUE_FULL is thrown, not rejected
    }
    return proposed.catch(failed);
  }

  private proposeNow(encode: EncodeProposal, deadlineMs: number): Promise<R> {
    if (this.stopped) return Promise.reject(new MinkubeError('NOT_READY', 'the manager is shutting down'));
    const notMember = this.notMemberError();
    if (notMember !== null) return Promise.reject(notMember);
    const seq = this.proposals.allocateSeq();
    // ackSeq tells the state machine which of our results it may forget: everything below our oldest waiter.
    const encoded = encode(seq, Math.min(seq, this.proposals.lowestPendingSeq()));
    const fitted = this.o.fit?.(encoded) ?? { data: encoded };
    if ('error' in fitted) return Promise.reject(fitted.error);
    const data = fitted.data;
    // Checked here, before it is handed to the core, so a bad command fails its caller at once (a skipped seq is
    // harmless: sessions allow gaps).
    const problem = this.o.validate?.(data, this.core.conf()) ?? null;
    if (problem !== null) return Promise.reject(new MinkubeError('INVALID_COMMAND', `the command was refused before it entered the log: ${problem}`));
    return new Promise<R>((resolve, reject) => {
      this.proposals.add({ seq, data, deadlineMs, startedMs: this.o.clock.monoMs(), accepted: false, lastProposedMs: 0, lastRejection: null, resolve, reject });
      this.scheduleReady();
    });
  }

  /** Resolves once this node has applied everything committed before the call, as confirmed by a quorum. */
  linearizableBarrier(deadlineMs: number): Promise<void> {
    if (this.stopped) return Promise.reject(new MinkubeError('NOT_READY', 'the manager is shutting down'));
    const notMember = this.notMemberError();
    if (notMember !== null) return Promise.reject(notMember);
    return new Promise<void>((resolve, reject) => {
      this.reads.add({ deadlineMs, resolve, reject }, this.o.clock.monoMs());
      this.scheduleReady();
    });
  }

  /**
   * The applied state as of now, for a backup: the snapshot metadata of the applied index and a function that encodes
   * the same bytes a snapshot of this index would hold (captured now, encoded later without blocking the loop).
   */
  captureState(): { meta: SnapshotMeta; encode: () => Promise<readonly Uint8Array[]> } {
    const meta = this.core.snapshotMeta(this.appliedIndex as LogIndex);
    if (meta === null) throw new MinkubeError('NOT_READY', 'nothing is applied yet, or a snapshot from the leader is being installed; retry');
    // As parts, never joined here: a backup of tens of MiB joined in one go held the loop past an election timeout.
    const sm = this.o.stateMachine;
    const encodeState = sm.captureSnapshotParts?.() ?? ((whole) => async () => [await whole()])(sm.captureSnapshot());
    const members = this.directory.entries();
    const removed = this.removed.entries();
    return { meta, encode: async () => encodeSnapshotParts(members, await encodeState(), removed) };
  }

  /**
   * Resolves after the next Ready this node handles (a role, leader, commit or configuration may have changed), or
   * after timeoutMs: what a caller that waits for a change of status() awaits instead of polling.
   */
  whenChanged(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.o.clock.setTimeout(() => {
        this.changeWaiters.delete(done);
        resolve();
      }, timeoutMs);
      const done = (): void => {
        timer.cancel();
        resolve();
      };
      this.changeWaiters.add(done);
    });
  }

  /**
   * Runs fn on the core, then takes the Ready it leads to. For the simulator's scenario tests, which drive the core
   * as a Raft lab's tests do (start an election now, propose past the tracker); the service never calls it.
   */
  withCore<T>(fn: (core: RaftNode) => T): T {
    const result = fn(this.core);
    this.scheduleReady();
    return result;
  }

  transferLeadership(target: NodeId | null): ReturnType<RaftNode['transferLeadership']> {
    const r = this.core.transferLeadership(target);
    this.scheduleReady();
    return r;
  }

  /** Leader only: one membership change (see RaftNode.proposeConfChange). */
  proposeConfChange(change: ConfChange): ConfChangeResult {
    if (this.stopped) return { ok: false, reason: 'PROPOSAL_DROPPED', leaderId: null };
    const r = this.core.proposeConfChange(change);
    if (r.ok) this.o.logger.info({ change: change.type, member: change.nodeId, index: r.index }, 'membership change proposed');
    this.scheduleReady();
    return r;
  }

  /** A snapshot chunk from the leader (the HTTP route calls this). */
  receiveSnapshotChunk(header: SnapshotChunkHeader, chunk: Uint8Array): { offset: number; done: boolean } {
    if (this.stopped) throw new MinkubeError('NOT_READY', 'the manager is shutting down');
    return this.receiver.receive(header, chunk);
  }

  /**
   * Settles once a received snapshot with this metadata that is being decoded off to the side (prepareRestore) was
   * handed to the core, or could not be: the route answers the last chunk only then. Answered at once, the leader
   * would report the stream finished, find the follower still without the snapshot and stream all of it again, every
   * round trip, while the first copy is decoded (a 40 MiB snapshot was sent 12 times in one install). Resolved at once
   * when nothing is being prepared (and always without prepareRestore: the snapshot was stepped within the chunk).
   */
  snapshotOffered(meta: SnapshotMeta): Promise<void> {
    const p = this.preparing;
    return p !== null && p.meta.index === meta.index && p.meta.term === meta.term ? p.offered : Promise.resolve();
  }

  /**
   * A follower's forwarded proposals, without the entries that do not validate (null when none is left). The core
   * has no way to answer a forward, so the follower's waiter times out; a follower that validates its own proposals
   * (every manager of this version) never forwards one. Also without the resends whose first copy still waits in
   * this leader's log (UncommittedCommands).
   */
  private checkForwarded(m: Extract<Message, { type: 'propose' }>): Message | null {
    const validate = this.o.validate;
    const term = this.leaderTerm();
    const conf = this.core.conf();
    const fit = this.o.fit;
    let fittedAny = false;
    const fitted = m.entries.flatMap((data) => {
      if (fit === undefined) return [data];
      const r = fit(data);
      if ('data' in r) {
        if (r.data !== data) fittedAny = true;
        return [r.data];
      }
      this.refusedProposalsCount++;
      this.o.logger.warn({ peer: m.from, problem: r.error.message, sizeBytes: data.length, refused: this.refusedProposalsCount }, 'refused a forwarded proposal newer than a member understands');
      return [];
    });
    const entries = fitted.filter((data) => {
      if (this.uncommitted.has(data, term)) return false;
      if (validate === undefined) return true;
      const problem = validate(data, conf);
      if (problem === null) return true;
      this.refusedProposalsCount++;
      this.o.logger.warn({ peer: m.from, problem, sizeBytes: data.length, refused: this.refusedProposalsCount }, 'refused a forwarded proposal that does not validate');
      return false;
    });
    if (entries.length === m.entries.length && !fittedAny) return m;
    return entries.length === 0 ? null : { ...m, entries };
  }

  private onTick(): void {
    if (this.stopped) return;
    this.core.tick();
    if (++this.ticks % PROMOTE_CHECK_TICKS === 0) this.promoteCaughtUpLearners();
    // Deadlines, resend and retry waits are all monotonic: a step of the wall clock forward times out no request
    // in flight, and one back neither lets a request wait past its timeout nor holds a lost proposal or read round.
    const nowMonoMs = this.o.clock.monoMs();
    const leaderKnown = this.core.status().leaderId !== null;
    this.proposals.expire(nowMonoMs, leaderKnown, this.noLeader);
    this.proposals.requeueStale(nowMonoMs);
    this.reads.tick(nowMonoMs, leaderKnown, this.noLeader);
    this.storageWatch.tick(this.core.status());
    this.scheduleReady();
  }

  private scheduleReady(): void {
    if (this.readyScheduled || this.stopped) return;
    this.readyScheduled = true;
    // A microtask, not setImmediate: at low load a proposal reaches the disk one event-loop turn sooner, and at high
    // load batching still happens, because whatever arrives while a write is on disk goes into the next Ready.
    queueMicrotask(() => {
      this.readyScheduled = false;
      if (!this.draining) return void this.drain();
      // It applies entries: a failure there stops the manager as one in the ready loop does, never as an exception.
      try {
        this.handleWhileWriting();
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /**
   * While the ready loop waits for a write, what needs no write leaves now: heartbeats and their answers, read-index
   * forwards, and read states. Without this a follower whose write waits on a slow disk fell silent towards its
   * leader, and the leader stepped down by check-quorum while both followers saved a snapshot.
   */
  private handleWhileWriting(): void {
    if (this.stopped) return;
    const now = this.core.takeWhileWriting(logIndex(this.appliedIndex));
    // A leader's entries a quorum of followers holds apply now, even while its own copy is still on its way to disk.
    this.applyEntries(now.committedEntries);
    if (now.messages.length > 0) {
      if (this.o.observer !== undefined) this.noteHeartbeats(now.messages, this.o.observer);
      this.send(now.messages);
    }
    if (now.readStates.length > 0) {
      const nowMonoMs = this.o.clock.monoMs();
      for (const rs of now.readStates) this.reads.onReadState(rs.context, rs.index, this.appliedIndex, nowMonoMs);
    }
  }

  /** The ready loop. One Ready at a time; what arrives while a write is on disk goes into the next one. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.stopped) {
        this.applyPendingCompact();
        this.flushProposals();
        if (!this.core.hasReady()) break;
        const rd = this.core.ready();
        const install = this.takeInstall(rd);
        // New members' addresses arrive in the config entries (or the snapshot) of this very Ready.
        if (rd.entries.length > 0) {
          this.onEntries(rd.entries);
          this.lastLogIndex = rd.entries[rd.entries.length - 1]!.index;
        }
        if (rd.confState !== null) this.onConfState(rd.confState);
        // The core says what may leave before the write (a leader's appends and heartbeats, Raft thesis 10.2.1:
        // what they lead to, a commit, can only surface in a later Ready, taken after this write is durable) and
        // what waits for it (append and vote answers, vote requests).
        const early = rd.messagesBeforeSync;
        if (early.length > 0) {
          if (this.o.observer !== undefined) this.noteHeartbeats(early, this.o.observer);
          this.send(early);
        }
        // Committed entries this node already holds on disk apply before this Ready's write, not after it (etcd
        // hands them to its apply loop before it saves): under load a leader's Ready carries the previous batch's
        // commit with the next batch's entries, and the previous batch's callers need not wait for the next write.
        const appliedEarly = install === null ? this.applyStable(rd) : 0;
        await this.persist(rd, install);
        if (this.stopped) break;
        this.handleReady(rd, rd.messagesAfterSync, install, appliedEarly);
        if (this.storageWatch.recovering) await this.storageWatch.afterReady(this.core.status());
        this.maybeSnapshot();
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.draining = false;
    }
  }

  /**
   * Writes a Ready, synced and awaited, when the core says it must be (entries, a new term or vote, a snapshot). A
   * Ready whose only change is the commit index is not written at all: the commit index is volatile state in Raft (a
   * restarted node learns it again from the leader, and the entries it covers were synced when they were written),
   * and the next write of entries, a term or a vote carries it. Writing it cost every node a LevelDB batch and a
   * thread-pool round trip per commit, which at one client is one per write.
   */
  private async persist(rd: Ready, install: PendingInstall | null): Promise<void> {
    if (install !== null) {
      await this.o.storage.save(rd.hardState, rd.entries, { sync: true, snapshot: { meta: install.meta, data: install.data } });
      this.compactedThrough = install.meta.index;
      this.lastLogIndex = rd.entries.length > 0 ? rd.entries[rd.entries.length - 1]!.index : install.meta.index;
      return;
    }
    if (rd.entries.length === 0 && (rd.hardState === null || !rd.mustSync)) return;
    const sync = rd.mustSync;
    const timed = sync ? this.o.observer?.fsyncTimer() : undefined;
    const write = this.o.storage.save(rd.hardState, rd.entries, { sync });
    if (sync) {
      await write;
      timed?.();
    } else write.catch((err: unknown) => this.fail(err));
  }

  /**
   * Applies the committed entries of `rd` that were on this node's disk before `rd` (those before its first new
   * entry); returns how many. Committed means held by a quorum, and held here too, so a crash right after loses
   * nothing the state machine showed. The rest (a follower's entries committed in the same Ready that brings them)
   * wait for the write.
   */
  private applyStable(rd: Ready): number {
    const committed = rd.committedEntries;
    if (committed.length === 0) return 0;
    const firstNew = rd.entries.length > 0 ? rd.entries[0]!.index : Number.POSITIVE_INFINITY;
    let n = 0;
    while (n < committed.length && committed[n]!.index < firstNew) n++;
    if (n === 0) return 0;
    this.applyEntries(n === committed.length ? committed : committed.slice(0, n));
    return n;
  }

  private handleReady(rd: Ready, messages: readonly Message[], install: PendingInstall | null, appliedEarly = 0): void {
    if (messages.length > 0) this.send(messages);
    if (install !== null) this.installSnapshot(install);
    this.applyEntries(appliedEarly === 0 ? rd.committedEntries : rd.committedEntries.slice(appliedEarly));
    const nowMonoMs = this.o.clock.monoMs();
    for (const rs of rd.readStates) this.reads.onReadState(rs.context, rs.index, this.appliedIndex, nowMonoMs);
    if (rd.softState !== null) this.onSoftState(rd.softState.role, rd.softState.leaderId);
    this.core.advance(rd);
    if (this.changeWaiters.size > 0) {
      const waiters = [...this.changeWaiters];
      this.changeWaiters.clear();
      for (const w of waiters) w();
    }
  }

  private applyEntries(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const debug = this.o.logger.isLevelEnabled('debug');
    for (const e of entries) {
      // Applied while the write was on disk (handleWhileWriting) by a node that then became leader mid-write.
      if (e.index <= this.appliedIndex) continue;
      if (e.type === 'command') {
        const applied = this.o.stateMachine.apply(e.index, e.data);
        if (applied !== null && applied.clientId === this.o.clientId) this.proposals.settle(applied.seq, applied.result);
        if (debug && applied?.reqId !== undefined) this.o.logger.debug({ reqId: applied.reqId, index: e.index }, 'applied');
      } else {
        if (e.type === 'config') this.removed.learnFromApplied(e);
        this.o.stateMachine.passed?.(e.index);
      }
      this.appliedIndex = e.index;
      this.appliedBytesSinceSnapshot += e.data.length;
      this.o.onApplied?.(e);
    }
    this.reads.onApplied(this.appliedIndex);
    this.uncommitted.appliedThrough(this.appliedIndex);
  }

  /** Entries this Ready persists: new members' addresses, and (as leader) the proposals waiting in its log. */
  private onEntries(entries: readonly Entry[]): void {
    this.directory.learnFromEntries(entries);
    const term = this.leaderTerm();
    if (term >= 0) this.uncommitted.appended(entries, term);
  }

  /** The term this node leads, or -1. */
  private leaderTerm(): number {
    const st = this.core.status();
    return st.role === 'leader' ? st.term : -1;
  }

  private flushProposals(): void {
    let due = this.proposals.takeDue();
    if (due.length === 0) return;
    const now = this.o.clock.monoMs();
    // A resend whose first copy still waits in this leader's log is not appended again (UncommittedCommands).
    const term = this.leaderTerm();
    if (term >= 0) {
      const waiting = due.filter((w) => this.uncommitted.has(w.data, term));
      if (waiting.length > 0) {
        this.proposals.markProposed(waiting, now);
        due = due.filter((w) => !waiting.includes(w));
        if (due.length === 0) return;
      }
    }
    const result = this.core.propose(due.map((w) => w.data));
    if (result.ok) this.proposals.markProposed(due, now);
    else this.proposals.markRejected(due, result.reason, now);
  }

  private onSoftState(role: Role, leaderId: NodeId | null): void {
    const term = this.core.status().term;
    if (role !== this.lastRole || leaderId !== this.lastLeader) {
      this.o.logger.info({ leaderId, previousRole: this.lastRole }, role === 'leader' ? 'became leader' : `role ${role}, leader ${leaderId ?? 'unknown'}`);
    }
    const leaderChanged = leaderId !== this.lastLeader;
    this.lastRole = role;
    this.lastLeader = leaderId;
    if (leaderChanged) {
      this.proposals.resendAll();
      this.updatePeers();
    }
    this.o.onRoleChange?.(role, leaderId, term);
  }

  private noteHeartbeats(messages: readonly Message[], observer: DriverObserver): void {
    for (const m of messages) if (m.type === 'heartbeat') observer.heartbeatSent(m.to);
  }

  /** Raft messages to the transport; a 'snapshot' message starts a stream of the snapshot's bytes instead. */
  private send(messages: readonly Message[]): void {
    if (!messages.some((m) => m.type === 'snapshot')) return this.o.transport.send(messages);
    const raft: Message[] = [];
    for (const m of messages) {
      if (m.type === 'snapshot') this.sender.send(m.to, m.term);
      else raft.push(m);
    }
    this.o.transport.send(raft);
  }

  private onConfState(conf: ConfState): void {
    this.callers.clear();
    this.updatePeers();
    this.o.logger.info({ voters: conf.voters, learners: conf.learners }, 'configuration changed');
  }

  /**
   * The transport talks to the members of the configuration, and to the leader even when the configuration no
   * longer has it: a leader that removes itself leads until that change commits, and it learns of the commit only
   * from its followers' answers.
   */
  private updatePeers(): void {
    // The core's configuration is the latest in its log: the one this Ready's confState announces.
    const peers = this.directory.peers(this.core.status());
    const leader = this.lastLeader;
    const address = leader === null || leader === this.o.id ? undefined : this.directory.get(leader)?.raftAddress;
    if (address !== undefined) peers.set(leader!, address);
    for (const id of this.callers) {
      const a = this.directory.get(id)?.raftAddress;
      if (a !== undefined && id !== this.o.id) peers.set(id, a);
    }
    this.peerIds = new Set(peers.keys());
    this.o.transport.setPeers(peers);
  }

  /**
   * A node outside this node's configuration spoke to it (a candidate or leader of a configuration this node has not
   * learnt yet: it was down, or its log is behind): answer it too, if its address is known, until the configuration
   * changes. Otherwise a voter that missed the config entries adding the others could never answer them, and a
   * cluster whose quorum needs that voter would never elect a leader. The core decides what it answers: a removed
   * node's vote requests get nothing (acceptFromNonMember), so answering cannot elect it (seed 1392659304).
   */
  private answerCaller(id: NodeId): void {
    if (id === this.o.id || this.callers.has(id) || this.directory.get(id) === undefined) return;
    this.callers.add(id);
    this.updatePeers();
  }

  // ---- snapshots ----

  private onSnapshotReceived(h: SnapshotChunkHeader, data: Uint8Array): void {
    if (this.stopped) return;
    let decoded: ReturnType<typeof decodeSnapshot>;
    try {
      decoded = decodeSnapshot(data);
    } catch (err) {
      throw new MinkubeError('INVALID_BODY', `the snapshot cannot be decoded: ${(err as Error).message}`, { cause: err });
    }
    const install = { meta: h.meta, data, members: decoded.members, removed: decoded.removed, state: decoded.state };
    const sm = this.o.stateMachine;
    if (sm.prepareRestore === undefined) return this.offerInstall(h, install);
    if (this.preparing !== null) {
      this.o.logger.warn({ index: h.meta.index }, 'snapshot dropped: another is being prepared (the leader sends it again)');
      return;
    }
    const offered = sm.prepareRestore(decoded.state).then(
      (swap) => {
        this.preparing = null;
        if (!this.stopped) this.offerInstall(h, { ...install, swap });
      },
      (err: unknown) => {
        this.preparing = null;
        this.o.logger.warn({ index: h.meta.index, err: (err as Error).message }, 'a received snapshot cannot be installed');
      },
    );
    this.preparing = { meta: h.meta, offered };
  }

  /** Whether a received snapshot at `index` or later is being prepared, offered to the core or installed. */
  private snapshotUnderWay(index: number): boolean {
    return (this.preparing?.meta.index ?? 0) >= index || this.installingIndex >= index || this.pendingInstalls.some((p) => p.meta.index >= index);
  }

  /** Hands a received snapshot to the core; the Ready that accepts it installs it. */
  private offerInstall(h: SnapshotChunkHeader, install: PendingInstall): void {
    this.pendingInstalls.push(install);
    if (this.pendingInstalls.length > PENDING_INSTALLS_MAX) this.pendingInstalls.shift();
    this.core.step({ type: 'snapshot', from: h.from, to: this.o.id, term: h.term, snapshot: h.meta });
    this.scheduleReady();
  }

  /** The received bytes for the snapshot this Ready installs; received snapshots the core ignored are dropped. */
  private takeInstall(rd: Ready): PendingInstall | null {
    if (this.pendingInstalls.length === 0) {
      assert(rd.snapshot === null, 'a Ready installs a snapshot that was never received');
      return null;
    }
    const pending = this.pendingInstalls;
    this.pendingInstalls = [];
    const snap = rd.snapshot;
    if (snap === null) return null;
    const install = pending.find((p) => p.meta.index === snap.index && p.meta.term === snap.term);
    assert(install !== undefined, `a Ready installs snapshot ${snap.index} whose bytes are not here`);
    for (const m of install.members) this.directory.set(m.id, m);
    for (const [id, atMs] of install.removed) this.removed.note(id, atMs);
    this.installingIndex = install.meta.index;
    return install;
  }

  private installSnapshot(install: PendingInstall): void {
    this.installingIndex = 0;
    if (install.swap !== undefined) install.swap();
    else this.o.stateMachine.restore(install.state);
    this.appliedIndex = install.meta.index;
    this.appliedBytesSinceSnapshot = 0;
    // snapshotTerm, not term: the node's lines carry its own term under that name.
    this.o.logger.info({ index: install.meta.index, snapshotTerm: install.meta.term, sizeBytes: install.data.length }, 'snapshot installed');
    this.o.onRestored?.(install.meta);
    this.reads.onApplied(this.appliedIndex);
  }

  /**
   * Takes a snapshot when the stored log or the bytes applied since the last one pass their thresholds. The state is
   * captured now (cheap: a view of immutable records) and encoded and written while the loop goes on, so a large
   * state never holds up heartbeats.
   */
  /**
   * The log's length at which a snapshot begins: early enough that what arrives while it is written leaves the log
   * below snapshotThresholdEntries. That is twice what arrived while the last ones were written, at least a quarter
   * of the threshold and at most three quarters of it, the tail a compaction keeps (the log reached 1,040 entries of
   * a 1,000 threshold under load when a snapshot began at the threshold itself, and 1,157 when it began at half of
   * it). A threshold too small for the write rate is then snapshotted as often as it can be.
   */
  private snapshotDueEntries(): number {
    const threshold = this.o.snapshotThresholdEntries;
    if (!Number.isFinite(threshold)) return threshold;
    const headroom = Math.min(threshold - Math.floor(threshold / 4), Math.max(Math.floor(threshold / 4), 2 * this.lastSnapshotGrowthEntries));
    return threshold - headroom;
  }

  private maybeSnapshot(): void {
    if (this.snapshotting || this.stopped) return;
    // The log's length: what is applied since the last compaction, and what is not applied yet (a leader's entries on
    // their way to a quorum, a follower's not yet committed), which the snapshot cannot take but the log holds.
    const entries = Math.max(this.appliedIndex, this.lastLogIndex) - this.compactedThrough;
    if (entries < this.snapshotDueEntries() && this.appliedBytesSinceSnapshot < this.o.snapshotThresholdBytes) return;
    const meta = this.core.snapshotMeta(this.appliedIndex as LogIndex);
    if (meta === null || meta.index <= (this.o.storage.snapshotInfo()?.meta.index ?? 0)) return;
    const clock = this.o.clock;
    const started = clock.monoMs();
    const sm = this.o.stateMachine;
    const encode = sm.captureSnapshotParts?.() ?? ((whole) => async () => [await whole()])(sm.captureSnapshot());
    const members = this.directory.entries();
    const removed = this.removed.entries();
    const captureMs = clock.monoMs() - started;
    const retain = Math.min(limits.snapshotRetainEntriesMax, Math.floor(this.o.snapshotThresholdEntries / 4));
    const compactThrough = Math.max(this.compactedThrough, meta.index - retain) as LogIndex;
    this.snapshotting = true;
    this.appliedBytesSinceSnapshot = 0;
    const appliedAtStart = this.appliedIndex;
    void (async () => {
      // Written as its parts (the envelope, then the state machine's bytes), never joined into one more copy in memory
      // (a follower that needs it gets it read back).
      const parts = encodeSnapshotParts(members, await encode(), removed);
      const encodedMs = clock.monoMs() - started;
      // The storage closes when the node stops; a snapshot encoded by then is simply not written.
      if (this.stopped) return null;
      await this.o.storage.saveSnapshot(meta, parts, compactThrough);
      return { sizeBytes: parts.reduce((n, p) => n + p.length, 0), encodedMs };
    })().then(
      (done) => {
        this.snapshotting = false;
        // What arrived while it was written, remembered slowly decaying: one quiet snapshot after a busy one does not
        // bring the next one back to the threshold.
        this.lastSnapshotGrowthEntries = Math.max(this.appliedIndex - appliedAtStart, Math.floor(this.lastSnapshotGrowthEntries * 0.9));
        if (done === null || this.stopped) return;
        const { sizeBytes, encodedMs } = done;
        this.compactedThrough = Math.max(this.compactedThrough, compactThrough);
        this.pendingCompact = { meta, retain: meta.index - compactThrough };
        const ms = Math.round(clock.monoMs() - started);
        this.o.logger.info({ index: meta.index, sizeBytes, compactThrough, captureMs: Math.round(captureMs), encodeMs: Math.round(encodedMs), ms }, 'snapshot taken');
        this.o.observer?.snapshotSaved(sizeBytes, (clock.monoMs() - started) / 1000);
        this.o.onSnapshotSaved?.(sizeBytes);
        this.scheduleReady();
      },
      (err: unknown) => this.fail(err),
    );
  }

  /** Tells the core about a durable snapshot; between Readies, so a Ready never spans a compaction. */
  private applyPendingCompact(): void {
    const p = this.pendingCompact;
    if (p === null) return;
    this.pendingCompact = null;
    this.core.compact(p.meta, p.retain);
  }

  private async snapshotSource(): Promise<SnapshotSource | null> {
    const info = this.o.storage.snapshotInfo();
    if (info === null) return null;
    const cached = this.sourceCache?.deref();
    if (cached?.meta.index === info.meta.index) return cached;
    const read = await this.o.storage.readSnapshot();
    if (read === null) return null;
    const source = { meta: read.info.meta, data: read.data, crc32: read.info.crc32 };
    this.sourceCache = new WeakRef(source);
    return source;
  }

  // ---- membership ----

  /** The leader promotes a learner once it holds nearly everything committed. */
  private promoteCaughtUpLearners(): void {
    const st = this.core.status();
    if (st.role !== 'leader' || st.learners.length === 0 || st.configIndex > st.commitIndex) return;
    for (const id of st.learners) {
      const pr = st.progress.get(id);
      // A learner recovering its storage is not caught up: it would count towards no quorum as a voter (the core also
      // refuses a promotion that leaves too few voters with intact storage: VOTERS_RECOVERING).
      if (pr === undefined || pr.match + PROMOTE_LAG_ENTRIES_MAX < st.commitIndex || pr.match === 0 || pr.recovering) continue;
      const r = this.proposeConfChange({ type: 'promote', nodeId: id });
      if (r.ok) return;
      this.o.logger.debug({ member: id, reason: r.reason }, 'learner not promoted yet');
    }
  }

  private fail(err: unknown): void {
    this.fatalError = err instanceof Error ? err : new Error(String(err));
    this.o.logger.fatal({ err }, 'the raft loop failed; stopping this manager');
    void this.stop();
  }
}

/**
 * --force-new-cluster on a manager whose storage is damaged (`reason`), without --accept-data-loss: refused, and its
 * storage left as it was (it was only checked: the driver's loadChecked, or the daemon's open when LevelDB itself
 * reported the damage).
 */
export function forceRefused(id: string, reason: string): MinkubeError {
  return new MinkubeError(
    'STORAGE_CORRUPT',
    `--force-new-cluster refused: the storage of ${id} is damaged (${reason}), and a new cluster from it would lose for good any write it acknowledged past what its log holds. Start --force-new-cluster on a manager whose storage is intact, or add --accept-data-loss to go on from this one`,
  );
}

/**
 * The initial state for the core: the loaded one, or (disaster recovery) the loaded one rewritten into a one-voter
 * cluster, whose new config entry and hard state are persisted before the core sees them.
 */
async function prepareInitial(o: RaftNodeDriverOptions<unknown>, loaded: LoadedState, recovering: StorageRecovery['target'] | null): Promise<RaftInitialState> {
  const base: RaftInitialState = {
    hardState: loaded.hardState,
    entries: loaded.entries,
    applied: loaded.snapshot?.index ?? (0 as LogIndex),
    ...(loaded.snapshot === undefined ? {} : { snapshot: loaded.snapshot }),
    ...(recovering === null ? {} : { recovering }),
  };
  if (o.forceNewCluster !== true) return base;
  const forced = forceNewCluster(base, o.id);
  const conf = forced.entries.at(-1)!;
  await o.storage.save(forced.hardState, [conf]);
  o.logger.warn({ index: conf.index, term: conf.term }, 'forced a new one-member cluster from this data directory');
  return forced;
}

export type { LogIndex };

/**
 * A fork of `random` made at its first draw: the snapshot backoff draws only after failed streams, so a run without
 * them draws from `random` (which the core's election timeouts also use) exactly as before, and its seed replays alike.
 */
function lazyFork(random: Random): Random {
  let fork: Random | null = null;
  const get = (): Random => (fork ??= new SeededRandom(random.int(0x7fffffff)));
  return { next: () => get().next(), int: (maxExclusive) => get().int(maxExclusive) };
}
