// Who is in the configuration and what the quorums are, after etcd-io/raft's tracker: the voters (quorums count
// only them, this node included when it votes), the learners (replicated to, never counted), and the leader's
// Progress of every other member.
import type { NodeId } from '../lib/ids.js';
import { emptyConfState } from './membership.js';
import { Progress } from './progress.js';
import type { ConfState } from './types.js';

export type VoteOutcome = 'won' | 'lost' | 'pending';

export class Tracker {
  conf: ConfState = emptyConfState;
  private voterSet: ReadonlySet<NodeId> = new Set();
  private memberSet: ReadonlySet<NodeId> = new Set();
  /** This node votes in the current configuration. */
  selfVoter = false;
  quorum = 1;
  /** The other voters: who a candidate asks for votes. */
  voterPeers: readonly NodeId[] = [];
  /** The other members (voters and learners) and their progress, in the same order: who a leader replicates to. */
  peers: NodeId[] = [];
  progressList: Progress[] = [];
  readonly prs = new Map<NodeId, Progress>();
  private matchScratch: number[] = [];

  constructor(
    private readonly self: NodeId,
    private readonly inflightAppendsMax: number,
  ) {}

  isMember(id: NodeId): boolean {
    return this.memberSet.has(id);
  }

  isVoter(id: NodeId): boolean {
    return this.voterSet.has(id);
  }

  /** A quorum of the current configuration is this node alone: it commits and confirms reads by itself. */
  quorumIsSelf(): boolean {
    return this.selfVoter && this.conf.voters.length === 1;
  }

  /**
   * Installs a configuration. Progress is kept for members that stay (a promoted learner keeps its own), dropped
   * for those that leave, and created at `next` for those that arrive.
   */
  setConf(conf: ConfState, next: number): void {
    this.conf = conf;
    this.voterSet = new Set(conf.voters);
    this.memberSet = new Set([...conf.voters, ...conf.learners]);
    this.selfVoter = this.voterSet.has(this.self);
    this.quorum = Math.floor(conf.voters.length / 2) + 1;
    this.voterPeers = conf.voters.filter((v) => v !== this.self);
    this.peers = [...conf.voters, ...conf.learners].filter((v) => v !== this.self);
    for (const id of [...this.prs.keys()]) if (!this.memberSet.has(id)) this.prs.delete(id);
    this.progressList = this.peers.map((id) => {
      let pr = this.prs.get(id);
      if (pr === undefined) {
        pr = new Progress(next, this.inflightAppendsMax);
        this.prs.set(id, pr);
      }
      pr.learner = !this.voterSet.has(id);
      return pr;
    });
    this.matchScratch = new Array<number>(conf.voters.length).fill(0);
  }

  /** A new leader starts every peer over at `next`, in probe state. */
  resetProgress(next: number): void {
    this.prs.clear();
    this.progressList = this.peers.map((id) => {
      const pr = new Progress(next, this.inflightAppendsMax, !this.voterSet.has(id));
      this.prs.set(id, pr);
      return pr;
    });
  }

  /** The highest index a quorum of voters holds, given this node's own last index (0 without voters). */
  committedIndex(selfLast: number): number {
    const matches = this.matchScratch;
    let n = 0;
    if (this.selfVoter) matches[n++] = selfLast;
    for (let i = 0; i < this.progressList.length; i++) {
      const pr = this.progressList[i]!;
      if (!pr.learner && !pr.recovering) matches[n++] = pr.match;
    }
    // Fewer counted than a quorum (voters recovering their storage count for nothing): nothing is committed.
    if (n < this.quorum) return 0;
    // Insertion sort, descending: clusters are small and this runs on every acknowledgement.
    for (let i = 1; i < n; i++) {
      const v = matches[i]!;
      let j = i - 1;
      while (j >= 0 && matches[j]! < v) {
        matches[j + 1] = matches[j]!;
        j--;
      }
      matches[j + 1] = v;
    }
    return matches[this.quorum - 1]!;
  }

  /** The election's outcome from the answers so far (answers of non-voters do not count). */
  tally(votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
    let granted = 0;
    let rejected = 0;
    for (const [id, g] of votes) {
      if (!this.voterSet.has(id)) continue;
      if (g) granted++;
      else rejected++;
    }
    if (granted >= this.quorum) return 'won';
    if (this.conf.voters.length - rejected < this.quorum) return 'lost';
    return 'pending';
  }

  /** Whether a quorum (this node included when it votes) was heard from since the last check; starts a new round. */
  quorumActive(): boolean {
    let active = this.selfVoter ? 1 : 0;
    for (const pr of this.progressList) {
      if (pr.recentActive && !pr.learner && !pr.recovering) active++;
      pr.recentActive = false;
    }
    return active >= this.quorum;
  }

  /** Whether these acknowledgements (plus this node's own, when it votes) make a quorum of voters. */
  hasQuorum(acks: ReadonlySet<NodeId>): boolean {
    let n = this.selfVoter ? 1 : 0;
    for (const id of acks) if (this.voterSet.has(id) && id !== this.self && this.prs.get(id)?.recovering !== true) n++;
    return n >= this.quorum;
  }

  /** The voter (not this node) with the highest match, or null. */
  mostCaughtUpVoter(): NodeId | null {
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (let i = 0; i < this.peers.length; i++) {
      const pr = this.progressList[i]!;
      if (!pr.learner && !pr.recovering && pr.match > bestMatch) {
        best = this.peers[i]!;
        bestMatch = pr.match;
      }
    }
    return best;
  }
}
