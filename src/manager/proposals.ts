// Tracks this manager's own proposals from submission until their entry is applied here (leader or follower).
// Each proposal carries (clientId, seq); a proposal that is not applied in time is proposed again with the same
// seq, and the state machine's session table applies it at most once.
import { backoffCeilingMs, fullJitterMs, type BackoffOptions } from '../lib/backoff.js';
import { MinkubeError, type ErrorCode } from '../lib/errors.js';
import type { Random } from '../lib/random.js';
import { leaderWaitOver } from './leader-wait.js';
import type { Entry, ProposeRejection } from '../raft/types.js';

export interface ProposalWaiter<R> {
  readonly seq: number;
  readonly data: Uint8Array;
  /** On the monotonic reading (Clock.monoMs), as every request deadline is: expire() is given that reading. */
  readonly deadlineMs: number;
  /** When it began to wait, on the same reading: one no leader took answers by half of the time it had (leader-wait). */
  readonly startedMs: number;
  /** Whether some leader may have taken it into its log: after that, a timeout means "unknown", not "failed". */
  accepted: boolean;
  /**
   * When it was last handed to the core (accepted or rejected), on the monotonic reading (Clock.monoMs: a wall step
   * back must not hold off its resend); 0 while it waits in the due queue.
   */
  lastProposedMs: number;
  lastRejection: ProposeRejection | null;
  /** Times it was proposed again because it was not applied in time (each doubles the next wait, up to 8x). */
  resends?: number;
  /** How long after lastProposedMs it is resent if not applied: drawn each time it is handed to the core. */
  resendWaitMs?: number;
  resolve(result: R): void;
  reject(error: MinkubeError): void;
}

export interface ProposalTrackerOptions {
  queueMax: number;
  /**
   * A proposal accepted but not applied after about this long (on average; half to one and a half times) is proposed
   * again (the forward or append may be lost).
   */
  resendAfterMs: number;
  /** The jitter of the resend waits (the driver's seeded random, forked, so that the simulator replays them). */
  random: Random;
  /** The election timeout: one no leader took, waiting while none is known, gives up after four (leader-wait). */
  electionTimeoutMs: number;
}

export class ProposalTracker<R> {
  private readonly waiters = new Map<number, ProposalWaiter<R>>();
  private nextSeq = 1;
  /** Waiters to propose at the next flush (lastProposedMs === 0 for each). */
  private due: ProposalWaiter<R>[] = [];

  /** The mean wait before a resend: resendAfterMs, doubling with each resend up to 8 times. */
  private readonly resendBackoff: BackoffOptions;

  constructor(private readonly options: ProposalTrackerOptions) {
    this.resendBackoff = { baseMs: options.resendAfterMs, capMs: 8 * options.resendAfterMs };
  }

  get size(): number {
    return this.waiters.size;
  }

  /** The lowest seq still waiting: every seq below it is answered or abandoned, so the state machine may forget it. */
  lowestPendingSeq(): number {
    for (const seq of this.waiters.keys()) return seq; // Map keeps insertion order, and seqs are inserted ascending
    return this.nextSeq;
  }

  allocateSeq(): number {
    if (this.waiters.size >= this.options.queueMax) {
      throw new MinkubeError('QUEUE_FULL', `${this.waiters.size} proposals are already waiting on this manager`);
    }
    return this.nextSeq++;
  }

  add(waiter: ProposalWaiter<R>): void {
    this.waiters.set(waiter.seq, waiter);
    this.due.push(waiter);
  }

  /** The bytes of every proposal still waiting (in the log or not yet): what they will do once applied can be read from them. */
  waitingData(): Uint8Array[] {
    return [...this.waiters.values()].map((w) => w.data);
  }

  /** Called when this node applies an entry of ours. */
  settle(seq: number, result: R): void {
    const w = this.waiters.get(seq);
    if (w === undefined) return;
    this.waiters.delete(seq);
    w.resolve(result);
  }

  /** Waiters to hand to the core now: new ones, and those that tick() or a leader change queued again. */
  takeDue(): ProposalWaiter<R>[] {
    if (this.due.length === 0) return this.due;
    const out = this.due.filter((w) => this.waiters.get(w.seq) === w);
    this.due = [];
    return out;
  }

  markProposed(batch: readonly ProposalWaiter<R>[], nowMonoMs: number): void {
    for (const w of batch) {
      w.accepted = true;
      w.lastProposedMs = nowMonoMs;
      w.lastRejection = null;
      w.resendWaitMs = this.resendWaitMs((w.resends ?? 0) + 1);
    }
  }

  /**
   * The one backoff's ceiling for this resend, spread by full jitter around it: uniform in [ceiling/2, 3 ceiling/2),
   * so the mean stays the ceiling, and no proposal is resent sooner than half of it. Managers whose forwards were
   * lost together do not all resend to the leader on one tick.
   */
  private resendWaitMs(retry: number): number {
    const ceilingMs = backoffCeilingMs(retry, this.resendBackoff);
    return ceilingMs / 2 + fullJitterMs(retry, this.resendBackoff, () => this.options.random.next());
  }

  markRejected(batch: readonly ProposalWaiter<R>[], reason: ProposeRejection, nowMonoMs: number): void {
    for (const w of batch) {
      w.lastRejection = reason;
      w.lastProposedMs = nowMonoMs;
    }
  }

  /**
   * Once a tick: rejected proposals are tried again, accepted ones not applied after about resendAfterMs are resent,
   * the wait doubling with each resend (up to 8x): on a slow pipeline (a lossy network, one entry per append) eager
   * resends of proposals already in the log pile up duplicates faster than they commit, and the log never drains
   * (the simulator found a leader 1,400 entries ahead of its commit index). Each wait is drawn when the proposal is
   * handed to the core (resendWaitMs).
   */
  requeueStale(nowMonoMs: number): void {
    for (const w of this.waiters.values()) {
      if (w.lastProposedMs === 0) continue;
      const resends = w.resends ?? 0;
      const late = nowMonoMs - w.lastProposedMs >= (w.resendWaitMs ?? backoffCeilingMs(resends + 1, this.resendBackoff));
      if (w.lastRejection === null && !late) continue;
      if (w.lastRejection === null) w.resends = resends + 1;
      w.lastProposedMs = 0;
      this.due.push(w);
    }
  }

  /** Leadership moved: whatever was accepted may have been lost with the old leader's tail, so propose it again. */
  resendAll(): void {
    for (const w of this.waiters.values()) {
      if (w.lastProposedMs === 0) continue;
      w.lastProposedMs = 0;
      this.due.push(w);
    }
  }

  /**
   * Fails every waiter whose time is up; returns how many. One that some leader may hold (accepted) waits to its
   * deadline, and its outcome is unknown (TIMEOUT); one no leader took answers NO_LEADER (or why it was refused) well
   * before, by leaderWaitOver, so that the client hears it in time and tries another manager: nothing was applied.
   * noLeader: the NO_LEADER error to answer (it may say why none can be elected).
   */
  expire(nowMonoMs: number, leaderKnown: boolean, noLeader: () => MinkubeError = () => new MinkubeError('NO_LEADER')): number {
    let n = 0;
    for (const w of this.waiters.values()) {
      const over = w.accepted ? nowMonoMs >= w.deadlineMs : leaderWaitOver(w.startedMs, w.deadlineMs, nowMonoMs, leaderKnown, this.options.electionTimeoutMs);
      if (!over) continue;
      this.waiters.delete(w.seq);
      w.reject(timeoutError(w, leaderKnown, noLeader));
      n++;
    }
    return n;
  }

  /**
   * Answers every waiter at once (the manager stops): one no leader can have taken answers `error`; one that some
   * leader may hold in its log answers TIMEOUT, since it may yet be committed and applied (a 503 says "not applied").
   */
  rejectAll(error: MinkubeError): void {
    const unknown = new MinkubeError('TIMEOUT', `${error.message} before the write was confirmed; it may or may not have been applied`);
    for (const w of this.waiters.values()) w.reject(w.accepted ? unknown : error);
    this.waiters.clear();
    this.due = [];
  }
}

function timeoutError(w: ProposalWaiter<unknown>, leaderKnown: boolean, noLeader: () => MinkubeError): MinkubeError {
  if (w.accepted) {
    return new MinkubeError('TIMEOUT', 'the write was sent to the leader but was not confirmed in time; it may or may not have been applied');
  }
  const code: ErrorCode = !leaderKnown || w.lastRejection === 'NO_LEADER' ? 'NO_LEADER' : (w.lastRejection ?? 'NO_LEADER');
  return code === 'NO_LEADER' ? noLeader() : new MinkubeError(code);
}

/** More uncommitted entries than this are not remembered (deduplication is only an economy). */
const UNCOMMITTED_TRACKED_MAX = 65_536;

/**
 * The leader's command entries of its current term that are not applied yet, by their bytes. A proposal resent with
 * the same bytes (by this node's tracker, or forwarded again by a follower's) while its first copy still waits in
 * this leader's log is not appended again: that copy commits unless leadership moves, and then every tracker resends
 * (resendAll). Without this, on a slow pipeline (a lossy network, one entry per append) the resends piled up faster
 * than they committed, and the log took 500 to 700 ticks to drain after healing (seeds 762140133, 2107352524).
 * Every proposal's bytes carry its (clientId, seq), so equal bytes are the same proposal.
 */
export class UncommittedCommands {
  private readonly byHash = new Map<number, { index: number; data: Uint8Array }[]>();
  private readonly order: { index: number; hash: number }[] = [];
  private head = 0;
  private term = -1;

  /** Entries this node appended as leader of `term` (a new term forgets the old one's). */
  appended(entries: readonly Entry[], term: number): void {
    if (term !== this.term) this.clear(term);
    for (const e of entries) {
      if (e.type !== 'command' || e.term !== term || this.order.length - this.head >= UNCOMMITTED_TRACKED_MAX) continue;
      const hash = hashBytes(e.data);
      const list = this.byHash.get(hash);
      if (list === undefined) this.byHash.set(hash, [{ index: e.index, data: e.data }]);
      else list.push({ index: e.index, data: e.data });
      this.order.push({ index: e.index, hash });
    }
  }

  /** Whether these bytes wait uncommitted in the log of this node, leader of `term`. */
  has(data: Uint8Array, term: number): boolean {
    if (term !== this.term) return false;
    return this.byHash.get(hashBytes(data))?.some((x) => sameBytes(x.data, data)) ?? false;
  }

  /** Forgets what is applied (through `index`). */
  appliedThrough(index: number): void {
    while (this.head < this.order.length && this.order[this.head]!.index <= index) {
      const { hash, index: at } = this.order[this.head++]!;
      const list = this.byHash.get(hash)?.filter((x) => x.index !== at) ?? [];
      if (list.length === 0) this.byHash.delete(hash);
      else this.byHash.set(hash, list);
    }
    if (this.head === this.order.length) {
      this.order.length = 0;
      this.head = 0;
    }
  }

  /** Leadership moved: nothing is known to wait in this node's log any more. */
  clear(term = -1): void {
    this.byHash.clear();
    this.order.length = 0;
    this.head = 0;
    this.term = term;
  }
}

/** FNV-1a over the bytes. */
function hashBytes(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return h >>> 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
