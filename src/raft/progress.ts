// What a leader knows about one follower's log: match (known replicated), next (to send), and the flow control that
// decides when it may send: probe (one append, then wait), replicate (pipelined, at most N unacknowledged appends) or
// snapshot (the caller streams a snapshot; nothing but heartbeats until it reports how that ended).
import { assert } from '../lib/assert.js';
import type { ProgressState } from './types.js';

export type { ProgressState };

/** A ring buffer of the last index of each unacknowledged append, in send order. */
export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  count = 0;

  constructor(readonly capacity: number) {
    assert(capacity >= 1, 'the inflight window holds at least one append');
    this.buffer = new Array<number>(capacity).fill(0);
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'an append was sent through a full inflight window');
    let slot = this.start + this.count;
    if (slot >= this.capacity) slot -= this.capacity;
    this.buffer[slot] = lastIndex;
    this.count++;
  }

  /** Frees every append whose last index is <= index (they are acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.buffer[this.start]! <= index) {
      this.start++;
      if (this.start === this.capacity) this.start = 0;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.buffer[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append is out and we wait for its answer (or a heartbeat answer) before sending another. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** State 'snapshot': the index of the snapshot on its way (0 otherwise). */
  pendingSnapshot = 0;
  /** Replicated to, never counted in a quorum. */
  learner: boolean;
  /** It said it is recovering its storage: replicated to, counted in no quorum. */
  recovering = false;
  /** The incarnation (one per start of the follower) that acknowledged `match`; 0 when none did yet. */
  incarnation = 0;
  /** The highest commit index sent to it (in an append or a heartbeat); a hint, as a message may be lost. */
  commitSent = 0;
  /** The follower forwarded proposals up to this index: it waits to learn their commit (0 when none). */
  commitWanted = 0;
  /** Rejections that sent it from replicate back to probe since the leader's last heartbeat round (see mayOpenWindow). */
  knockBacksCount = 0;
  readonly inflights: Inflights;

  constructor(next: number, inflightAppendsMax: number, learner = false) {
    assert(next >= 1, 'next starts at 1 or later');
    this.next = next;
    this.learner = learner;
    this.inflights = new Inflights(inflightAppendsMax);
  }

  becomeProbe(): void {
    if (this.state === 'replicate') this.next = this.match + 1;
    // After a snapshot, probe right after it: the follower either installed it or answers where it really is.
    else if (this.state === 'snapshot') this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /** The caller streams the snapshot at `index` to this follower: no appends until it reports the outcome. */
  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.probeSent = false;
    this.pendingSnapshot = index;
    this.inflights.reset();
  }

  /** The stream failed: the snapshot may never arrive, so probe from what is known to match. */
  snapshotFailed(): void {
    this.pendingSnapshot = 0;
    this.becomeProbe();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /**
   * It said it is recovering (it restarted with lost or damaged storage): what it acknowledged before is gone, so
   * forget its match and probe from the end of our log (its answer says where its log really ends).
   */
  startedRecovering(next: number): void {
    this.recovering = true;
    this.becomeProbe();
    this.match = 0;
    this.next = next;
  }

  /** A successful answer up to `index`. Returns true when match moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = index + 1;
    this.inflights.freeLE(index);
    return updated;
  }

  /**
   * A rejection of the append whose prevLogIndex was `rejected`; `hint` is where the leader would probe next.
   * Returns false for a stale rejection (already superseded); otherwise moves to probe state at the hint.
   */
  maybeDecrTo(rejected: number, hint: number, restarted = false): boolean {
    if (restarted && hint <= this.match) {
      // A new incarnation of the follower says its log ends before what an older one acknowledged: its disk lost
      // entries. Forget the match and probe from where it says it is (a reordered old answer comes from the same
      // incarnation and keeps the old rule below).
      this.becomeProbe();
      this.match = 0;
      this.next = Math.max(1, hint);
      return true;
    }
    // While a snapshot is on its way, rejections of earlier appends say nothing new.
    if (this.state === 'snapshot') return false;
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.knockBacksCount++;
    } else if (rejected !== this.next - 1) {
      return false;
    }
    this.becomeProbe();
    this.next = Math.max(this.match + 1, Math.min(hint, rejected));
    return true;
  }

  /**
   * Whether an answer that moves its match in probe state may open a whole window again: once per heartbeat round
   * after a knock-back, not more. Over a network that reorders, most appends of a window of one-entry appends arrive
   * before the entry they follow and are rejected: each rejection knocked the window back to probe, and each answer
   * that then moved the match (the probe's, or an old append's still on its way) opened a new window of up to
   * inflightAppendsMax appends while the older windows were still in flight. That is a window per entry caught up:
   * simulator seed 807463228 (storage profile) caught up about 400 entries after a storage repair with one-entry
   * appends and a window of 256 and sent over 100,000 messages in one tick. Between rounds it advances probe by probe.
   */
  mayOpenWindow(): boolean {
    return this.knockBacksCount <= 1;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Records an append of `count` entries ending at `lastIndex` (an empty append when count is 0). */
  sentEntries(count: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else {
      this.probeSent = true;
    }
  }
}
