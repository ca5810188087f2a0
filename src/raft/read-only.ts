// Pending ReadIndex rounds on a leader: each round records the commit index when it started and the heartbeat
// context that confirms it; once a quorum acknowledged a round, it and every earlier round are released in order.
import { assert } from '../lib/assert.js';
import type { LogIndex, NodeId } from '../lib/ids.js';

/** One read waiting on a round: asked locally (from === null) or forwarded by a follower. */
export interface ReadRequest {
  readonly context: string;
  readonly from: NodeId | null;
}

export interface ReadRound {
  readonly roundContext: string;
  readonly index: LogIndex;
  readonly requests: ReadRequest[];
  readonly acks: Set<NodeId>;
}

export class ReadOnly {
  /** Rounds in start order (hence in index order); rounds[head..] are live. */
  private rounds: ReadRound[] = [];
  private head = 0;
  private readonly byContext = new Map<string, ReadRound>();
  /** Reads that wait for the leader's first commit in its term. */
  private delayed: ReadRequest[] = [];
  private pendingCount = 0;

  constructor(private readonly pendingMax: number) {}

  /** Reads queued or in a round. */
  size(): number {
    return this.pendingCount;
  }

  isFull(): boolean {
    return this.pendingCount >= this.pendingMax;
  }

  delay(request: ReadRequest): void {
    assert(!this.isFull(), 'the read queue is full');
    this.delayed.push(request);
    this.pendingCount++;
  }

  /** The reads delayed until the first commit of the term, now to be started; the queue forgets them. */
  takeDelayed(): ReadRequest[] {
    const taken = this.delayed;
    this.delayed = [];
    this.pendingCount -= taken.length;
    return taken;
  }

  hasDelayed(): boolean {
    return this.delayed.length > 0;
  }

  /** Starts a round at `index`; the caller broadcasts a heartbeat carrying roundContext. */
  addRound(roundContext: string, index: LogIndex, requests: ReadRequest[]): void {
    assert(!this.byContext.has(roundContext), `read round ${roundContext} already exists`);
    const last = this.rounds[this.rounds.length - 1];
    assert(last === undefined || last.index <= index, 'read rounds start in index order');
    const round: ReadRound = { roundContext, index, requests, acks: new Set() };
    this.rounds.push(round);
    this.byContext.set(roundContext, round);
    this.pendingCount += requests.length;
  }

  /**
   * Records that `from` acknowledged the round. When `hasQuorum` says the acknowledgements (with the leader's own)
   * make a quorum of the configuration in effect now, returns that round and all earlier ones, removed from the
   * queue; otherwise returns an empty list.
   */
  ack(roundContext: string, from: NodeId, hasQuorum: (acks: ReadonlySet<NodeId>) => boolean): ReadRound[] {
    const round = this.byContext.get(roundContext);
    if (round === undefined) return [];
    round.acks.add(from);
    if (!hasQuorum(round.acks)) return [];
    const released: ReadRound[] = [];
    while (this.head < this.rounds.length) {
      const r = this.rounds[this.head]!;
      this.head++;
      this.byContext.delete(r.roundContext);
      this.pendingCount -= r.requests.length;
      released.push(r);
      if (r === round) break;
    }
    if (this.head === this.rounds.length) {
      this.rounds = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.rounds.length) {
      this.rounds = this.rounds.slice(this.head);
      this.head = 0;
    }
    return released;
  }

  reset(): void {
    this.rounds = [];
    this.head = 0;
    this.byContext.clear();
    this.delayed = [];
    this.pendingCount = 0;
  }
}
