// Drives one Raft core: the tick timer and the ready loop (persist, then send, then apply, then advance), this
// manager's own proposals and linearizable reads. It knows nothing of HTTP; the service layer sits on top.
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import type { LogIndex, NodeId } from '../lib/ids.js';
import type { Random } from '../lib/random.js';
import { createRaftNode, defaultRaftLimits } from '../raft/index.js';
import type { Entry, Message, RaftNode, RaftStatus, Ready, Role } from '../raft/types.js';
import type { RaftStorage } from '../storage/types.js';
import type { Transport } from '../transport/types.js';
import { ProposalTracker } from './proposals.js';
import { ReadBatcher } from './reads.js';

/** What the node needs of the replicated state machine: apply a committed command and say who proposed it. */
export interface CommandStateMachine<R> {
  apply(index: number, data: Uint8Array): { clientId: string; seq: number; reqId?: string | undefined; result: R } | null;
}

export interface Member {
  readonly id: NodeId;
  readonly raftAddress: string;
  readonly apiAddress: string;
}

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
  /** Called for every applied entry, after the state machine (leader-only loops watch the state through it). */
  onApplied?: (entry: Entry) => void;
  onRoleChange?: (role: Role, leaderId: NodeId | null, term: number) => void;
}

export interface EncodeProposal {
  (seq: number, ackSeq: number): Uint8Array;
}

export class RaftNodeDriver<R> {
  readonly id: NodeId;
  private readonly core: RaftNode;
  private readonly proposals: ProposalTracker<R>;
  private readonly reads: ReadBatcher;
  private tickTimer: NodeJS.Timeout | null = null;
  private readyScheduled = false;
  private draining = false;
  private stopped = false;
  private appliedIndex = 0;
  private lastRole: Role = 'follower';
  private lastLeader: NodeId | null = null;
  private fatalError: Error | null = null;
  private syncedHardState: { term: number; vote: NodeId | null } = { term: 0, vote: null };
  /** Resolves when the node stops, with the error that stopped it, if any. */
  readonly stoppedPromise: Promise<Error | null>;
  private resolveStopped!: (e: Error | null) => void;

  private constructor(
    private readonly o: RaftNodeDriverOptions<R>,
    core: RaftNode,
  ) {
    this.id = o.id;
    this.core = core;
    const hs = core.status();
    this.syncedHardState = { term: hs.term, vote: hs.vote };
    const resendAfterMs = o.tickMs * o.electionTicks;
    this.proposals = new ProposalTracker<R>({ queueMax: o.proposalQueueMax, resendAfterMs });
    this.reads = new ReadBatcher({
      contextPrefix: `${o.clientId}:`,
      queueMax: o.proposalQueueMax,
      retryAfterMs: resendAfterMs,
      readIndex: (ctx) => this.core.readIndex(ctx),
    });
    this.stoppedPromise = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  static async open<R>(o: RaftNodeDriverOptions<R>): Promise<RaftNodeDriver<R>> {
    const initial = await o.storage.load();
    const core = createRaftNode(
      {
        id: o.id,
        voters: o.members.map((m) => m.id),
        electionTicks: o.electionTicks,
        heartbeatTicks: o.heartbeatTicks,
        random: o.random,
        preVote: true,
        checkQuorum: true,
        ...defaultRaftLimits,
      },
      initial,
    );
    o.logger.info({ lastIndex: initial.entries.at(-1)?.index ?? 0, commit: initial.hardState.commit }, 'raft state loaded');
    return new RaftNodeDriver(o, core);
  }

  start(): void {
    this.o.transport.onMessage((m) => {
      if (this.stopped) return;
      this.core.step(m);
      this.scheduleReady();
    });
    this.tickTimer = setInterval(() => this.onTick(), this.o.tickMs);
    this.scheduleReady();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    const err = new MinkubeError('NOT_READY', 'the manager is shutting down');
    this.proposals.rejectAll(err);
    this.reads.rejectAll(err);
    while (this.draining) await new Promise((r) => setTimeout(r, 5));
    this.resolveStopped(this.fatalError);
  }

  status(): RaftStatus {
    return this.core.status();
  }

  get applied(): number {
    return this.appliedIndex;
  }

  /** Proposes a command and resolves with its result once this node applies it. */
  propose(encode: EncodeProposal, deadlineMs: number): Promise<R> {
    if (this.stopped) return Promise.reject(new MinkubeError('NOT_READY', 'the manager is shutting down'));
    const seq = this.proposals.allocateSeq();
    // ackSeq tells the state machine which of our results it may forget: everything below our oldest waiter.
    const data = encode(seq, Math.min(seq, this.proposals.lowestPendingSeq()));
    return new Promise<R>((resolve, reject) => {
      this.proposals.add({ seq, data, deadlineMs, accepted: false, lastProposedMs: 0, lastRejection: null, resolve, reject });
      this.scheduleReady();
    });
  }

  /** Resolves once this node has applied everything committed before the call, as confirmed by a quorum. */
  linearizableBarrier(deadlineMs: number): Promise<void> {
    if (this.stopped) return Promise.reject(new MinkubeError('NOT_READY', 'the manager is shutting down'));
    return new Promise<void>((resolve, reject) => {
      this.reads.add({ deadlineMs, resolve, reject }, this.o.clock.nowMs());
      this.scheduleReady();
    });
  }

  transferLeadership(target: NodeId | null): ReturnType<RaftNode['transferLeadership']> {
    const r = this.core.transferLeadership(target);
    this.scheduleReady();
    return r;
  }

  private onTick(): void {
    if (this.stopped) return;
    this.core.tick();
    const now = this.o.clock.nowMs();
    const leaderKnown = this.core.status().leaderId !== null;
    this.proposals.expire(now, leaderKnown);
    this.proposals.requeueStale(now);
    this.reads.tick(now, leaderKnown);
    this.scheduleReady();
  }

  private scheduleReady(): void {
    if (this.readyScheduled || this.stopped) return;
    this.readyScheduled = true;
    // A microtask, not setImmediate: at low load a proposal reaches the disk one event-loop turn sooner, and at high
    // load batching still happens, because whatever arrives while a write is on disk goes into the next Ready.
    queueMicrotask(() => {
      this.readyScheduled = false;
      void this.drain();
    });
  }

  /** The ready loop. One Ready at a time; what arrives while a write is on disk goes into the next one. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.stopped) {
        this.flushProposals();
        if (!this.core.hasReady()) break;
        const rd = this.core.ready();
        const [early, late] = splitMessages(rd.messages);
        // A leader's appends and heartbeats go out while its own write is on disk (Raft thesis 10.2.1): what they
        // lead to (a commit) can only surface in a later Ready, which this loop takes after the write is durable.
        if (early.length > 0) this.o.transport.send(early);
        await this.persist(rd);
        if (this.stopped) break;
        this.handleReady(rd, late);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.draining = false;
    }
  }

  /**
   * Writes a Ready. Entries and a new term or vote are synced before anything that depends on them leaves. A Ready
   * whose only change is the commit index is written without fsync and without waiting (the storage keeps writes
   * in order): a commit index lost in a crash is learnt again from the leader, and the entries it covers are synced.
   */
  private async persist(rd: Ready): Promise<void> {
    if (rd.hardState === null && rd.entries.length === 0) return;
    const sync = this.mustSync(rd);
    const write = this.o.storage.save(rd.hardState, rd.entries, { sync });
    if (sync) await write;
    else write.catch((err: unknown) => this.fail(err));
  }

  /** A write needs fsync only when it holds entries or a new term or vote; a commit index alone can be relearnt. */
  private mustSync(rd: Ready): boolean {
    const hs = rd.hardState;
    const synced = rd.entries.length > 0 || (hs !== null && (hs.term !== this.syncedHardState.term || hs.vote !== this.syncedHardState.vote));
    if (hs !== null) this.syncedHardState = { term: hs.term, vote: hs.vote };
    return synced;
  }

  private handleReady(rd: Ready, messages: readonly Message[]): void {
    if (messages.length > 0) this.o.transport.send(messages);
    this.applyEntries(rd.committedEntries);
    const now = this.o.clock.nowMs();
    for (const rs of rd.readStates) this.reads.onReadState(rs.context, rs.index, this.appliedIndex, now);
    if (rd.softState !== null) this.onSoftState(rd.softState.role, rd.softState.leaderId);
    this.core.advance(rd);
  }

  private applyEntries(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const debug = this.o.logger.isLevelEnabled('debug');
    for (const e of entries) {
      if (e.type === 'command') {
        const applied = this.o.stateMachine.apply(e.index, e.data);
        if (applied !== null && applied.clientId === this.o.clientId) this.proposals.settle(applied.seq, applied.result);
        if (debug && applied?.reqId !== undefined) this.o.logger.debug({ reqId: applied.reqId, index: e.index }, 'applied');
      }
      this.appliedIndex = e.index;
      this.o.onApplied?.(e);
    }
    this.reads.onApplied(this.appliedIndex);
  }

  private flushProposals(): void {
    const due = this.proposals.takeDue();
    if (due.length === 0) return;
    const now = this.o.clock.nowMs();
    const result = this.core.propose(due.map((w) => w.data));
    if (result.ok) this.proposals.markProposed(due, now);
    else this.proposals.markRejected(due, result.reason, now);
  }

  private onSoftState(role: Role, leaderId: NodeId | null): void {
    const term = this.core.status().term;
    if (role !== this.lastRole || leaderId !== this.lastLeader) {
      this.o.logger.info({ leaderId, previousRole: this.lastRole }, role === 'leader' ? 'became leader' : `role ${role}, leader ${leaderId ?? 'unknown'}`);
    }
    if (leaderId !== this.lastLeader) this.proposals.resendAll();
    this.lastRole = role;
    this.lastLeader = leaderId;
    this.o.onRoleChange?.(role, leaderId, term);
  }

  private fail(err: unknown): void {
    this.fatalError = err instanceof Error ? err : new Error(String(err));
    this.o.logger.fatal({ err }, 'the raft loop failed; stopping this manager');
    void this.stop();
  }
}

/** Splits a Ready's messages into those that may leave before its write is durable and those that must wait. */
function splitMessages(messages: readonly Message[]): [Message[], readonly Message[]] {
  if (!messages.some(isEarly)) return [[], messages];
  const early: Message[] = [];
  const late: Message[] = [];
  for (const m of messages) (isEarly(m) ? early : late).push(m);
  return [early, late];
}

/** Only a leader sends these, and they promise nothing about the sender's disk. */
function isEarly(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat';
}

export type { LogIndex };
