// Linearizable reads by ReadIndex, batched: at most one round is in flight, and every read that arrives meanwhile
// joins the next round, so a thousand concurrent reads cost one heartbeat round, not a thousand.
import { MinkubeError } from '../lib/errors.js';
import type { ProposeResult } from '../raft/types.js';
import { leaderWaitOver } from './leader-wait.js';

const unconfirmedMessage = 'the read could not be confirmed by a quorum in time (the leader may have stopped or lost its quorum); a read changes nothing: retry';

export interface ReadWaiter {
  /** On the monotonic reading (Clock.monoMs), as every request deadline is. */
  readonly deadlineMs: number;
  resolve(): void;
  reject(error: MinkubeError): void;
}

/** A read as queued: when it began to wait (Clock.monoMs), which leaderWaitOver measures its time from. */
type Pending = ReadWaiter & { readonly startedMs: number };

interface Round {
  readonly context: string;
  readonly waiters: Pending[];
  /** Monotonic (Clock.monoMs): it times the retry, which a wall-clock step must not hold off. */
  readonly startedMonoMs: number;
}

export interface ReadBatcherOptions {
  contextPrefix: string;
  queueMax: number;
  /** A round with no answer after this long is started again (its messages may be lost). */
  retryAfterMs: number;
  /** The election timeout: a read waiting while no leader is known gives up after four (leader-wait). */
  electionTimeoutMs: number;
  readIndex(context: string): ProposeResult;
}

export class ReadBatcher {
  private queued: Pending[] = [];
  private inflight: Round | null = null;
  /** Confirmed rounds waiting for the state machine to reach their index, in index order. */
  private confirmed: { index: number; waiters: Pending[] }[] = [];
  private roundSeq = 0;
  /** Reads in all three lists: queued, in flight and confirmed. Kept as a count because add() is on every read. */
  private outstanding = 0;

  constructor(private readonly options: ReadBatcherOptions) {}

  get size(): number {
    return this.outstanding;
  }

  /** Queues a read; throws QUEUE_FULL when queueMax reads are outstanding, whether queued, in flight or confirmed. */
  add(waiter: ReadWaiter, nowMonoMs: number): void {
    if (this.outstanding >= this.options.queueMax) {
      throw new MinkubeError('QUEUE_FULL', `${this.outstanding} reads are already waiting on this manager`);
    }
    this.queued.push({ ...waiter, startedMs: nowMonoMs });
    this.outstanding++;
    this.startRound(nowMonoMs);
  }

  /** Starts a round for the queued reads when none is in flight. Returns false when the core refused (no leader). */
  startRound(nowMonoMs: number): boolean {
    if (this.inflight !== null || this.queued.length === 0) return true;
    const context = `${this.options.contextPrefix}${++this.roundSeq}`;
    const result = this.options.readIndex(context);
    if (!result.ok) return false;
    this.inflight = { context, waiters: this.queued, startedMonoMs: nowMonoMs };
    this.queued = [];
    return true;
  }

  /** A ReadState came out of the core. */
  onReadState(context: string, index: number, appliedIndex: number, nowMonoMs: number): void {
    const round = this.inflight;
    if (round === null || round.context !== context) return; // an answer to a round we already gave up on
    this.inflight = null;
    this.confirmed.push({ index, waiters: round.waiters });
    this.onApplied(appliedIndex);
    this.startRound(nowMonoMs);
  }

  onApplied(appliedIndex: number): void {
    while (this.confirmed.length > 0 && this.confirmed[0]!.index <= appliedIndex) {
      const { waiters } = this.confirmed.shift()!;
      this.outstanding -= waiters.length;
      for (const w of waiters) w.resolve();
    }
  }

  /**
   * Retries lost rounds and fails reads whose time is up (leaderWaitOver: by half of it, earlier with no leader known,
   * so that the client hears the 503 in time and tries another manager; a read changes nothing, so it is never
   * left to its deadline, where its client may have given up), both on the monotonic reading (Clock.monoMs), so that
   * no step of the wall clock holds off a retry, cuts a read short or lets one wait longer. noLeader: the NO_LEADER
   * error, which may say why.
   */
  tick(nowMonoMs: number, leaderKnown: boolean, noLeader: () => MinkubeError = () => new MinkubeError('NO_LEADER')): void {
    if (this.inflight !== null && nowMonoMs - this.inflight.startedMonoMs >= this.options.retryAfterMs) {
      this.queued = this.inflight.waiters.concat(this.queued);
      this.inflight = null;
    }
    // A read changes nothing, so one past its deadline is a 503 (not applied: retry), never 504 TIMEOUT, which says a
    // write's outcome is unknown (README, Errors). A leader known but silent has most often stopped or lost its quorum.
    const error = (): MinkubeError => (leaderKnown ? new MinkubeError('NO_LEADER', unconfirmedMessage) : noLeader());
    this.queued = this.expire(this.queued, nowMonoMs, leaderKnown, error);
    if (this.inflight !== null) this.inflight = { ...this.inflight, waiters: this.expire(this.inflight.waiters, nowMonoMs, leaderKnown, error) };
    for (const c of this.confirmed) {
      const unapplied = (): MinkubeError => new MinkubeError('NOT_READY', `the read was confirmed at index ${c.index}, but this manager had not applied that index in time; a read changes nothing: retry`);
      // Confirmed: a leader answered, so only the share of its time bounds it, whoever leads now.
      c.waiters = this.expire(c.waiters, nowMonoMs, true, unapplied);
    }
    this.startRound(nowMonoMs);
  }

  rejectAll(error: MinkubeError): void {
    for (const w of this.queued) w.reject(error);
    for (const w of this.inflight?.waiters ?? []) w.reject(error);
    for (const c of this.confirmed) for (const w of c.waiters) w.reject(error);
    this.queued = [];
    this.inflight = null;
    this.confirmed = [];
    this.outstanding = 0;
  }

  /** The reads of `list` whose time is not up; the others are rejected and no longer count. */
  private expire(list: Pending[], nowMs: number, leaderKnown: boolean, error: () => MinkubeError): Pending[] {
    const over = (w: Pending): boolean => leaderWaitOver(w.startedMs, w.deadlineMs, nowMs, leaderKnown, this.options.electionTimeoutMs);
    if (!list.some(over)) return list;
    const live: Pending[] = [];
    for (const w of list) {
      if (!over(w)) {
        live.push(w);
      } else {
        this.outstanding--;
        w.reject(error());
      }
    }
    return live;
  }
}
