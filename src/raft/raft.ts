// The Raft node, after etcd-io/raft's raft.go: config validation, send helpers, ticks, role changes, then step()
// (normalise the term first) and one step function per role, then snapshots and membership changes. Pure and
// synchronous: I/O is the caller's, via Ready.
import { assert, assertNever } from '../lib/assert.js';
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { validateInitialState, validateRaftConfig } from './config.js';
import { RaftLog } from './log.js';
import { applyConfChange, decodeConfEntry, emptyConfState, encodeConfEntry, sameConf } from './membership.js';
import type { Progress } from './progress.js';
import { ReadOnly, type ReadRequest } from './read-only.js';
import { Tracker } from './tracker.js';
import type {
  AppendMessage,
  AppendResponseMessage,
  ConfChange,
  ConfChangeResult,
  ConfState,
  Entry,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  ProposeResult,
  ProposeRejection,
  RaftConfig,
  RaftInitialState,
  RaftNode,
  RaftStatus,
  ReadState,
  Ready,
  PeerProgress,
  Role,
  SnapshotMessage,
  SnapshotMeta,
  SoftState,
  VoteMessage,
  VoteResponseMessage,
  WhileWriting,
} from './types.js';

const EMPTY_DATA = new Uint8Array(0);
const NO_ENTRIES: readonly Entry[] = Object.freeze([]);
const NO_MESSAGES: readonly Message[] = Object.freeze([]);
const NO_READ_STATES: readonly ReadState[] = Object.freeze([]);
const NOTHING_WHILE_WRITING: WhileWriting = Object.freeze({ messages: NO_MESSAGES, readStates: NO_READ_STATES, committedEntries: NO_ENTRIES });
const OK_LOCAL: ProposeResult = Object.freeze({ ok: true, forwardedTo: null });

type TermlessMessage = Extract<Message, { type: 'propose' | 'readIndex' | 'readIndexResponse' }>;
type TermMessage = Exclude<Message, TermlessMessage>;

/**
 * Messages only a leader sends: accepted from a node outside our configuration, because a node that lags may not
 * know its new leader yet (a stale one learns our term from the answer).
 */
const fromLeaderRole = (m: Message): boolean =>
  m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' || m.type === 'readIndexResponse';

export class Raft implements RaftNode {
  private readonly id: NodeId;
  private readonly cfg: RaftConfig;
  /** The configuration in effect, its quorums, and the leader's progress of every other member. */
  private readonly trk: Tracker;
  private readonly log: RaftLog;
  private readonly readOnly: ReadOnly;
  /** The configuration as of the log's first index - 1 (a snapshot's, or the bootstrap one); null on a joiner. */
  private baseConf: ConfState | null;
  /** What the configuration in effect was computed from: a config entry, or (null) baseConf. */
  private confEntry: Entry | null = null;
  private confBase: ConfState | null = null;
  /** The index of the config entry (or of the log's start, for baseConf) that set the configuration in effect. */
  private confIndex = 0;
  /** This node votes in the configuration before the one in effect (false when that one is baseConf). */
  private selfVoterBefore = false;
  private prevConf: ConfState;
  /** The latest snapshot the caller holds (sent to followers that need compacted entries). */
  private snapshot: SnapshotMeta | null;
  /** A snapshot received from the leader, handed out in Ready until advanced. */
  private pendingSnapshot: SnapshotMeta | null = null;
  /** Set while recovering lost or damaged storage: the last entry this node had acknowledged. */
  private recovering: { readonly index: number; readonly term: number } | null;
  /** Recovering: the log matches the current term's leader up to here (0 on a new term). */
  private verifiedIndex = 0;
  /** RaftConfig.incarnation as a message field: a leader tells a restarted follower's answers from an earlier run's. */
  private get incarnationField(): { incarnation?: number } {
    return this.cfg.incarnation === undefined ? {} : { incarnation: this.cfg.incarnation };
  }
  /** Peers whose latest answer said they recover their storage. */
  private readonly peersRecovering = new Set<NodeId>();

  private term: Term;
  private vote: NodeId | null;
  private role: Role = 'follower';
  private leaderId: NodeId | null = null;
  private readonly votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId | null = null;
  private transferElapsed = 0;
  /** Leader: bytes of entries proposed in this term and not yet committed. */
  private uncommittedBytes = 0;
  /** Leader: the index of this term's no-op; entries before it were not counted in uncommittedBytes. */
  private termStartIndex = 0;
  private readSeq = 0;
  /** Whether a read round's acknowledgements make a quorum of the configuration in effect now. */
  private readonly readQuorum = (acks: ReadonlySet<NodeId>): boolean => this.trk.hasQuorum(acks);
  /** The log's configVersion when the configuration in effect was last computed. */
  private confVersion = -1;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevHard: HardState;
  private prevSoft: SoftState = { leaderId: null, role: 'follower' };

  constructor(config: RaftConfig, initial: RaftInitialState) {
    validateRaftConfig(config);
    const init = validateInitialState(initial);
    this.cfg = config;
    this.id = config.id;
    const snap = initial.snapshot ?? null;
    this.snapshot = snap;
    this.log = new RaftLog(init.entries, init.commit, init.applied, snap ?? { index: 0, term: 0 });
    this.readOnly = new ReadOnly(config.pendingReadsMax);
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.recovering = initial.recovering ?? null;
    this.prevHard = init.commit === initial.hardState.commit ? initial.hardState : { ...initial.hardState, commit: init.commit };
    if (snap !== null) this.baseConf = { voters: snap.voters, learners: snap.learners };
    else this.baseConf = config.join === true ? null : { voters: config.voters, learners: config.learners ?? [] };
    this.trk = new Tracker(config.id, config.inflightAppendsMax);
    this.syncConf();
    this.prevConf = this.trk.conf;
    this.resetRandomizedElectionTimeout();
    // A repair that lost nothing (the synced log still holds the entry it had acknowledged last) ends here: nothing
    // else would end it on a one-voter cluster, where no message and no Ready ever comes (outside tester: a lone
    // manager repaired by RepairDB stayed recovering, and refused every write, for good).
    if (this.recovering !== null) this.maybeEndRecovery();
  }

  // ---- send helpers ----

  private sendAppendResponse(to: NodeId, success: boolean, index: number, conflictTerm: number, conflictIndex: number): void {
    const m: AppendResponseMessage = {
      type: 'appendResponse',
      from: this.id,
      to,
      term: this.term,
      success,
      index: index as LogIndex,
      conflictTerm: conflictTerm as Term,
      conflictIndex: conflictIndex as LogIndex,
      ...this.incarnationField,
      ...this.recoveringFlag(),
    };
    this.msgs.push(m);
  }

  /** What every answer of a node recovering its storage carries. */
  private recoveringFlag(): { recovering?: true } {
    return this.recovering === null ? {} : { recovering: true };
  }

  private sendVoteResponse(to: NodeId, term: Term, preVote: boolean, granted: boolean): void {
    const m: VoteResponseMessage = { type: 'voteResponse', from: this.id, to, term, preVote, granted, ...this.recoveringFlag() };
    this.msgs.push(m);
  }

  /**
   * Sends `to` the entries from its next index, if flow control allows. With sendIfEmpty an empty append still goes
   * out (to probe, or to carry the commit index). Returns whether a message was sent.
   */
  private maybeSendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) return this.sendSnapshot(to, pr);
    const last = this.log.lastIndex();
    const entries = pr.next <= last ? this.log.slice(pr.next, last + 1, this.cfg.entriesPerAppendMax, this.cfg.appendBytesMax) : NO_ENTRIES;
    if (entries.length === 0 && !sendIfEmpty) return false;
    const m: AppendMessage = {
      type: 'append',
      from: this.id,
      to,
      term: this.term,
      prevLogIndex: prevLogIndex as LogIndex,
      prevLogTerm,
      entries,
      commit: this.log.committed,
    };
    this.msgs.push(m);
    pr.sentEntries(entries.length, prevLogIndex + entries.length);
    // The follower commits what the leader committed, up to the last entry this append leaves it with.
    noteCommitSent(pr, Math.min(m.commit, prevLogIndex + entries.length));
    return true;
  }

  /**
   * `to` needs entries the log no longer holds: ask the caller to stream our snapshot, and send nothing else until
   * it reports how that went. Not to a follower we have not heard from lately: it may be down, and a snapshot is big.
   */
  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.snapshot;
    assert(snap !== null && snap.index >= this.log.firstIndex() - 1, 'the leader compacted its log without a snapshot');
    if (!pr.recentActive) return false;
    const m: SnapshotMessage = { type: 'snapshot', from: this.id, to, term: this.term, snapshot: snap };
    this.msgs.push(m);
    pr.becomeSnapshot(snap.index);
    return true;
  }

  /** Sends one append (even an empty one), then as many more as the replicate window allows. */
  private sendAppend(to: NodeId, pr: Progress): void {
    if (!this.maybeSendAppend(to, pr, true)) return;
    if (pr.state !== 'replicate') return;
    while (this.maybeSendAppend(to, pr, false));
  }

  private bcastAppend(): void {
    const { peers, progressList } = this.trk;
    for (let i = 0; i < peers.length; i++) this.sendAppend(peers[i]!, progressList[i]!);
  }

  /**
   * The commit index moved. Eagerly, every follower gets an append now. With lazyCommit, only those that have
   * entries to receive anyway, or wait on the commit of proposals they forwarded; the others learn it from their next
   * append or heartbeat, which spares each of them a message, a disk write and an answer per commit.
   */
  private bcastCommit(): void {
    if (this.cfg.lazyCommit !== true) return this.bcastAppend();
    const last = this.log.lastIndex();
    const committed = this.log.committed;
    const { peers, progressList } = this.trk;
    for (let i = 0; i < peers.length; i++) {
      const pr = progressList[i]!;
      // commitWanted is cleared once a sent commit covers it (noteCommitSent), so non-zero means still waiting.
      const waiting = pr.commitWanted !== 0 && committed > pr.commitSent;
      if (pr.next <= last || waiting) this.sendAppend(peers[i]!, pr);
    }
  }

  private bcastHeartbeat(context: string): void {
    const committed = this.log.committed;
    const { peers, progressList } = this.trk;
    for (let i = 0; i < peers.length; i++) {
      const pr = progressList[i]!;
      const m: HeartbeatMessage = {
        type: 'heartbeat',
        from: this.id,
        to: peers[i]!,
        term: this.term,
        // A follower may not hold the leader's commit index yet; it can safely commit only what it matches.
        commit: Math.min(pr.match, committed) as LogIndex,
        context,
      };
      this.msgs.push(m);
      noteCommitSent(pr, m.commit);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.msgs.push({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  // ---- ticks ----

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    // A node that may not campaign keeps counting: past the election timeout its leader lease is over, and it
    // answers vote requests again (a learner promoted without knowing it may be needed to elect anyone).
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0;
      this.hup(false);
    }
    // A recovering node never campaigns; once its leader is silent for a timeout it no longer names one.
    if (this.recovering !== null && this.leaderId !== null && this.electionElapsed >= this.randomizedElectionTimeout) this.leaderId = null;
  }

  /**
   * A voter of its configuration campaigns; so does a voter that an uncommitted change removes (dissertation 4.2.2:
   * until the change commits, the cluster may need it, with the new configuration's quorum, to elect anyone).
   * Not while a received snapshot waits to be installed.
   */
  private promotable(): boolean {
    if (this.pendingSnapshot !== null || this.recovering !== null) return false;
    return this.trk.selfVoter || (this.selfVoterBefore && this.confIndex > this.log.committed);
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.leadTransferee !== null && ++this.transferElapsed >= this.cfg.electionTicks) this.leadTransferee = null;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.trk.quorumActive()) {
        this.becomeFollower(this.term, null);
        return;
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      for (const pr of this.trk.progressList) pr.knockBacksCount = 0;
      this.bcastHeartbeat('');
    }
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.random.int(this.cfg.electionTicks);
  }

  // ---- role changes ----

  private reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
      this.verifiedIndex = 0;
    }
    this.leaderId = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.readOnly.reset();
    this.uncommittedBytes = 0;
  }

  private becomeFollower(term: Term, leaderId: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leaderId = leaderId;
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader does not campaign');
    // A pre-vote changes neither term nor vote: a partitioned node that cannot win does not disrupt anyone.
    this.reset(this.term);
    this.role = 'precandidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader does not campaign');
    this.reset((this.term + 1) as Term);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = 'leader';
    this.leaderId = this.id;
    const next = this.log.lastIndex() + 1;
    this.trk.resetProgress(next);
    // The no-op lets the leader commit (and so learn the commit index of) everything before its term.
    this.termStartIndex = next;
    this.log.push({ term: this.term, index: next as LogIndex, type: 'noop', data: EMPTY_DATA });
    this.afterLeaderAppend();
  }

  /** A leader appended to its log: replicate (it counts its own copy once the entries are on its disk: advance). */
  private afterLeaderAppend(): void {
    if (this.trk.peers.length > 0) this.bcastAppend();
  }

  // ---- elections ----

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.cfg.preVote && !transfer) this.campaignPreVote();
    else this.campaignVote(transfer);
  }

  private campaignPreVote(): void {
    this.becomePreCandidate();
    this.votes.set(this.id, true);
    if (this.tallyVotes() === 'won') {
      this.campaignVote(false);
      return;
    }
    this.sendVoteRequests((this.term + 1) as Term, true, false);
  }

  private campaignVote(transfer: boolean): void {
    this.becomeCandidate();
    this.votes.set(this.id, true);
    if (this.tallyVotes() === 'won') {
      this.becomeLeader();
      return;
    }
    this.sendVoteRequests(this.term, false, transfer);
  }

  private sendVoteRequests(term: Term, preVote: boolean, transfer: boolean): void {
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    const configIndex = this.confIndex as LogIndex;
    const configTerm = this.confTerm();
    for (const to of this.trk.voterPeers) {
      const m: VoteMessage = { type: 'vote', from: this.id, to, term, preVote, lastLogIndex, lastLogTerm, transfer, configIndex, configTerm };
      this.msgs.push(m);
    }
  }

  private tallyVotes(): 'won' | 'lost' | 'pending' {
    return this.trk.tally(this.votes);
  }

  /** Whether this node heard from a live leader within the election timeout (the leader lease). */
  private inLease(): boolean {
    return this.leaderId !== null && this.electionElapsed < this.cfg.electionTicks;
  }

  private handleVote(m: VoteMessage): void {
    // Its log may lack entries it acknowledged: its vote could elect a leader without them (docs/storage-faults.md).
    if (this.recovering !== null) {
      this.sendVoteResponse(m.from, this.term, m.preVote, false);
      return;
    }
    const canVote =
      this.vote === m.from || (this.vote === null && this.leaderId === null) || (m.preVote && m.term > this.term);
    // Thesis 9.6: no pre-vote while a leader is alive, unless that leader is handing over.
    const leaderAlive = m.preVote && !m.transfer && this.inLease();
    if (canVote && !leaderAlive && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      // A granted pre-vote answers in the future term the candidate asked about, so it does not look stale.
      this.sendVoteResponse(m.from, m.term, m.preVote, true);
      if (!m.preVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.sendVoteResponse(m.from, this.term, m.preVote, false);
    }
  }

  // ---- step ----

  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (!this.trk.isMember(m.from) && !this.acceptFromNonMember(m)) return;
    if (m.type === 'propose' || m.type === 'readIndex' || m.type === 'readIndexResponse') {
      this.stepTermless(m);
      return;
    }
    if (m.type === 'voteResponse' || m.type === 'appendResponse' || m.type === 'heartbeatResponse') this.notePeerSaid(m.from, m.recovering === true);
    if (m.term > this.term) {
      if (!this.onHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.onLowerTerm(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'precandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role);
    }
  }

  /**
   * What a node outside our configuration may send us: what only a leader sends; timeoutNow from our leader (one
   * that removed itself hands over with it); and a (pre-)vote request from a log at least as up to date as ours that
   * holds a newer configuration than ours. We may lag and not know a new voter yet, and refusing it could leave no
   * quorum able to elect anyone. A removed node is refused: if its log lacks its removal it is behind; if it holds
   * it (and campaigns because it does not know that the removal committed: dissertation 4.2.2, seed 1392659304),
   * its configuration is that removal, and a committed removal is held by a quorum of the new configuration, whose
   * configuration is at least as new (no id is added back): every quorum it could win holds one voter that refuses.
   * Configurations compare as logs do, by (term, index) of their entries: the entries after a removal in a log that
   * holds it are of its term or later. Seed 2968476: three nodes held three configurations, two of them at index 5
   * (one of term 1, uncommitted, that the other overwrites), and by index alone no node answered another.
   */
  private acceptFromNonMember(m: Message): boolean {
    if (fromLeaderRole(m)) return true;
    if (m.type === 'timeoutNow') return m.from === this.leaderId;
    return m.type === 'vote' && this.newerConfig(m.configTerm, m.configIndex ?? 0) && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  }

  /** Whether a candidate's configuration, set by the entry (term, index), is newer than ours. */
  private newerConfig(term: number | undefined, index: number): boolean {
    if (term === undefined) return index > this.confIndex;
    const ours = this.confTerm();
    return term > ours || (term === ours && index > this.confIndex);
  }

  /** The term of the entry that set our configuration (of the snapshot when it came with it; 0 for none). */
  private confTerm(): Term {
    return (this.log.term(this.confIndex) ?? 0) as Term;
  }

  /** A message from a later term. Returns false when it must be dropped. */
  private onHigherTerm(m: TermMessage): boolean {
    if (m.type === 'vote') {
      // Leader lease: while we hear from a leader, a (pre)candidate from a partition must not depose it.
      if (this.cfg.checkQuorum && !m.transfer && this.inLease()) return false;
      if (!m.preVote) this.becomeFollower(m.term, null);
      return true;
    }
    // Granted pre-votes carry the term the pre-candidate is about to campaign in: no term change.
    if (m.type === 'voteResponse' && m.preVote && m.granted) return true;
    this.becomeFollower(m.term, fromLeaderRole(m) ? m.from : null);
    return true;
  }

  private onLowerTerm(m: TermMessage): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // A deposed leader (perhaps back from a partition) learns our term from this and steps down.
        this.sendAppendResponse(m.from, false, 0, 0, 0);
        return;
      case 'vote':
        if (m.preVote) this.sendVoteResponse(m.from, this.term, true, false);
        return;
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'voteResponse':
      case 'timeoutNow':
        return;
      default:
        assertNever(m);
    }
  }

  private stepTermless(m: TermlessMessage): void {
    switch (m.type) {
      case 'propose': {
        if (this.role !== 'leader' || this.leaving() || !this.appendCommands(m.entries)) return;
        // Its clients wait for it to apply these entries: it must hear of their commit at once (see bcastCommit).
        const pr = this.trk.prs.get(m.from);
        if (pr !== undefined) pr.commitWanted = this.log.lastIndex();
        return;
      }
      case 'readIndex':
        if (this.role === 'leader') this.leaderRead({ context: m.context, from: m.from });
        return;
      case 'readIndexResponse':
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        assertNever(m);
    }
  }

  private stepLeader(m: TermMessage): void {
    switch (m.type) {
      case 'appendResponse':
        this.onAppendResponse(m);
        return;
      case 'heartbeatResponse':
        this.onHeartbeatResponse(m);
        return;
      case 'vote':
        this.handleVote(m);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
      case 'voteResponse':
      case 'timeoutNow':
        return;
      default:
        assertNever(m);
    }
  }

  private stepCandidate(m: TermMessage): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'vote':
        this.handleVote(m);
        return;
      case 'voteResponse':
        this.onVoteResponse(m);
        return;
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'timeoutNow':
        return;
      default:
        assertNever(m);
    }
  }

  private stepFollower(m: TermMessage): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleSnapshot(m);
        return;
      case 'vote':
        this.handleVote(m);
        return;
      case 'timeoutNow':
        // hup() ignores it on a learner or a node outside its configuration.
        this.hup(true);
        return;
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'voteResponse':
        return;
      default:
        assertNever(m);
    }
  }

  private onVoteResponse(m: VoteResponseMessage): void {
    if (m.preVote !== (this.role === 'precandidate') || !this.trk.isVoter(m.from)) return;
    if (!this.votes.has(m.from)) this.votes.set(m.from, m.granted);
    const outcome = this.tallyVotes();
    switch (outcome) {
      case 'won':
        if (this.role === 'precandidate') this.campaignVote(false);
        else this.becomeLeader();
        return;
      case 'lost':
        this.becomeFollower(this.term, null);
        return;
      case 'pending':
        return;
      default:
        assertNever(outcome);
    }
  }

  // ---- follower: replication ----

  private handleAppend(m: AppendMessage): void {
    const committed = this.log.committed;
    let prevIndex: number = m.prevLogIndex;
    let prevTerm: number = m.prevLogTerm;
    let entries = m.entries;
    if (prevIndex < committed) {
      // A duplicate or late append: what we committed matches the leader (leader completeness), so skip it.
      const skip = committed - prevIndex;
      if (skip >= entries.length) {
        this.sendAppendResponse(m.from, true, committed, 0, 0);
        return;
      }
      entries = entries.slice(skip);
      prevIndex = committed;
      prevTerm = this.log.term(committed)!;
    }
    if (entries.length > 0 && prevIndex < this.log.lastIndex() && this.log.matchTerm(prevIndex, prevTerm)) {
      const conflict = this.log.findConflict(entries);
      if (conflict !== 0 && conflict <= this.log.lastIndex()) this.dropAcksFrom(conflict);
    }
    const lastNew = this.log.maybeAppend(prevIndex, prevTerm, m.commit, entries);
    if (lastNew >= 0) {
      if (this.recovering !== null) this.verified(lastNew);
      // A config entry takes effect when appended, and is undone when truncated away.
      if (this.log.configVersion !== this.confVersion) this.syncConf();
      this.sendAppendResponse(m.from, true, lastNew, 0, 0);
      return;
    }
    // Fast backtracking: tell the leader our term at prevLogIndex and where that term starts in our log.
    const conflictTerm = this.log.term(prevIndex) ?? 0;
    const conflictIndex = conflictTerm === 0 ? this.log.lastIndex() + 1 : this.log.firstIndexOfTerm(conflictTerm, prevIndex);
    this.sendAppendResponse(m.from, false, prevIndex, conflictTerm, conflictIndex);
  }

  /**
   * Entries from `index` on are about to be replaced. Acknowledgements of them still waiting for a Ready would go out
   * after the next write, which no longer holds them: drop them (the simulator found a follower acking an index it
   * had truncated before it ever reached the disk). Acknowledgements already handed out in a Ready stay true: that
   * Ready's write lands before they are sent.
   */
  private dropAcksFrom(index: number): void {
    if (!this.msgs.some((msg) => msg.type === 'appendResponse' && msg.success && msg.index >= index)) return;
    this.msgs = this.msgs.filter((msg) => !(msg.type === 'appendResponse' && msg.success && msg.index >= index));
  }

  /**
   * The leader's snapshot, whose bytes the caller holds durably. One older than our commit changes nothing; one
   * whose last entry we hold only moves our commit; else it replaces the whole log. Either way the answer tells the
   * leader where our log now ends (on disk before it is sent: the snapshot is persisted with the same Ready).
   */
  private handleSnapshot(m: SnapshotMessage): void {
    const s = m.snapshot;
    if (s.index <= this.log.committed) {
      this.sendAppendResponse(m.from, true, this.log.committed, 0, 0);
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      this.log.commitTo(s.index);
      if (this.recovering !== null) this.verified(s.index);
      this.sendAppendResponse(m.from, true, this.log.committed, 0, 0);
      return;
    }
    this.dropAcksFrom(s.index + 1);
    this.log.restore(s);
    this.snapshot = s;
    this.pendingSnapshot = s;
    this.baseConf = { voters: s.voters, learners: s.learners };
    this.syncConf();
    if (this.recovering !== null) this.verified(s.index);
    this.sendAppendResponse(m.from, true, s.index, 0, 0);
  }

  // ---- recovering storage (docs/storage-faults.md) ----

  /** An append or snapshot of this term showed our log matches the leader's up to `index`. */
  private verified(index: number): void {
    if (index > this.verifiedIndex) this.verifiedIndex = index;
    this.maybeEndRecovery();
  }

  /**
   * Done once the synced log holds the last entry we had acknowledged, or the commit index (learnt from a leader)
   * reaches it, or covers an entry of a later term: every entry we acknowledged is then either in our log again, or
   * can never be committed. Judged
   * on the synced log only, once it is at least as up to date as that entry: a repair only in memory is undone by a
   * crash (the node restarts recovering, one voter more than anyone counted on: seed 736085683 had three of five
   * and no leader), while a synced one is what the marker check sees at the next start.
   */
  private maybeEndRecovery(): void {
    const r = this.recovering;
    if (r === null || this.pendingSnapshot !== null) return;
    const stable = this.log.stableIndex();
    const upTo = Math.min(this.log.committed, stable);
    const stableTerm = this.log.term(stable) ?? 0;
    const settled = upTo >= r.index || (this.log.term(upTo) ?? 0) > r.term;
    const durable = stableTerm > r.term || (stableTerm === r.term && stable >= r.index);
    // Or the synced log holds the very entry it had acknowledged last (one index and term name one entry): by the log
    // matching property every entry before it is the one it acknowledged too, whatever the commit index. Without this,
    // a majority recovering towards targets just past the leader's commit index waited for a commit that needed them.
    const holdsTarget = r.index <= stable && this.log.term(r.index) === r.term;
    if ((settled && durable) || holdsTarget) this.recovering = null;
  }

  /**
   * Any answer says whether its sender recovers its storage, whatever its term: a recovering node never campaigns
   * and a pre-vote leaves its term alone, so its refusals may stay in a term below ours for good (dropped as stale,
   * the intact managers never learnt who was recovering, and said nothing of why no leader came). Only this
   * bookkeeping (status, noQuorumReason, refusals of transfers and changes) reads it: no term, vote or commit.
   */
  private notePeerSaid(from: NodeId, recovering: boolean): void {
    if (recovering) this.peersRecovering.add(from);
    else this.peersRecovering.delete(from);
  }

  /** A leader's answer of this term: it stops counting a follower the moment it says it recovers its storage. */
  private notePeerStorage(recovering: boolean, pr: Progress | undefined): void {
    if (pr === undefined || recovering === pr.recovering) return;
    if (recovering) {
      pr.startedRecovering(this.log.lastIndex() + 1);
      return;
    }
    // Repaired: its match counts again, and may complete a quorum at once.
    pr.recovering = false;
    if (this.maybeCommit()) this.bcastCommit();
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    // A recovering node's log may hold entries the leader never wrote (an older copy's): a heartbeat's commit, sized
    // by what the leader believes we hold, covers only what an append of this term matched.
    const upTo = this.recovering === null ? this.log.lastIndex() : Math.min(this.verifiedIndex, this.log.lastIndex());
    this.log.commitTo(Math.min(m.commit, upTo));
    if (this.recovering !== null) this.maybeEndRecovery();
    const r: HeartbeatResponseMessage = { type: 'heartbeatResponse', from: this.id, to: m.from, term: this.term, context: m.context, ...this.incarnationField, ...this.recoveringFlag() };
    this.msgs.push(r);
  }

  // ---- leader: replication and commit ----

  private onAppendResponse(m: AppendResponseMessage): void {
    const pr = this.trk.prs.get(m.from);
    this.notePeerStorage(m.recovering === true, pr);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (!m.success) {
      const restarted = m.incarnation !== undefined && pr.incarnation !== 0 && m.incarnation !== pr.incarnation;
      if (pr.maybeDecrTo(m.index, this.rejectHint(m), restarted)) this.sendAppend(m.from, pr);
      return;
    }
    // Nobody can hold more of this term's log than its leader: such an answer is corrupt, not a reason to crash.
    if (m.index > this.log.lastIndex()) return;
    if (m.incarnation !== undefined) pr.incarnation = m.incarnation;
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (pr.state !== 'probe' || pr.match !== m.index) return;
      // An answer that confirms the match without moving it: the answer to an empty probe, or an old or duplicated
      // answer. With entries left to send, probe once more (with them) rather than open a whole window: a window per
      // such answer let old answers, duplicated and reordered, multiply the traffic without bound (simulator seed
      // 193550658, storage profile).
      if (m.index !== this.log.lastIndex()) {
        pr.probeSent = false;
        this.sendAppend(m.from, pr);
        return;
      }
    }
    if (pr.state === 'probe') {
      // Knocked back more than once this round: probe from the new match instead (Progress.mayOpenWindow).
      if (pr.mayOpenWindow() || pr.match === this.log.lastIndex()) pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
      // Whatever got it there (the snapshot, or an earlier append), the log can take it from here.
      pr.becomeProbe();
      pr.becomeReplicate();
    }
    if (this.maybeCommit()) this.bcastCommit();
    else if (wasPaused) this.sendAppend(m.from, pr);
    while (this.maybeSendAppend(m.from, pr, false));
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    this.maybeStepDownRemoved();
  }

  /** Where to probe after a rejection: past our last entry of the follower's conflicting term, else where it starts. */
  private rejectHint(m: AppendResponseMessage): number {
    if (m.conflictTerm > 0) {
      const i = this.log.lastIndexAtOrBelowTerm(m.conflictTerm, m.index);
      if (i > 0 && this.log.term(i) === m.conflictTerm) return i + 1;
    }
    return Math.max(1, m.conflictIndex);
  }

  private onHeartbeatResponse(m: HeartbeatResponseMessage): void {
    const pr = this.trk.prs.get(m.from);
    this.notePeerStorage(m.recovering === true, pr);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // Appends in a full window may have been lost: free a slot so the next append reveals the gap.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    const restarted = m.incarnation !== undefined && pr.incarnation !== 0 && m.incarnation !== pr.incarnation;
    if (restarted && pr.state !== 'snapshot' && pr.match > 0) {
      // It restarted since it acknowledged its match, and its log may be shorter now (a data directory wiped with its
      // marker: nothing tells it what it had). In a quiet cluster no append would show it: probe at the match, whose
      // answer either confirms it (and its new incarnation) or, rejected, resets it (maybeDecrTo's restarted rule).
      pr.becomeProbe();
      pr.next = pr.match + 1;
      this.sendAppend(m.from, pr);
    } else if (pr.match < this.log.lastIndex()) {
      this.sendAppend(m.from, pr);
    }
    if (m.context !== '') this.onReadAck(m.context, m.from);
    // A repaired peer's answer counts again (notePeerStorage) and may have committed this leader's own removal.
    this.maybeStepDownRemoved();
  }

  /**
   * Commits the highest index a quorum matches, if it is of this term (section 5.4.2). The leader's own copy counts
   * once it is on disk (thesis 10.2.1): a leader alone in its configuration must not commit, and tell a learner,
   * an entry a crash could still take back.
   */
  private maybeCommit(): boolean {
    const index = this.trk.committedIndex(this.log.stableIndex());
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    const before = this.log.committed;
    this.log.commitTo(index);
    this.onLeaderCommit(before);
    return true;
  }

  private onLeaderCommit(before: number): void {
    let freed = 0;
    for (let i = Math.max(before + 1, this.termStartIndex); i <= this.log.committed; i++) freed += this.log.entry(i)!.data.byteLength;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - freed);
    if (this.readOnly.hasDelayed()) this.startReadRound(this.readOnly.takeDelayed());
  }

  /** Appends client commands as consecutive entries; false when the uncommitted-bytes limit refuses them. */
  private appendCommands(commands: readonly Uint8Array[]): boolean {
    if (commands.length === 0) return true;
    let bytes = 0;
    for (let i = 0; i < commands.length; i++) bytes += commands[i]!.byteLength;
    // An empty pipeline accepts any one batch, so a single large batch is never refused forever.
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.uncommittedBytesMax) return false;
    this.uncommittedBytes += bytes;
    this.log.pushBatch(this.term, 'command', commands);
    this.afterLeaderAppend();
    return true;
  }

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /**
   * A leader on its way out appends no commands: a transfer is under way, or a change that removes it waits to
   * commit. The voter it hands over to then holds its whole log once it acknowledges the last entry, and so can take
   * over at once (timeoutNow) rather than after an election timeout.
   */
  private leaving(): boolean {
    return this.leadTransferee !== null || !this.trk.selfVoter;
  }

  /** Whether this node knows `id` to be recovering its storage (docs/storage-faults.md): its latest answer said so. */
  private peerRecovering(id: NodeId): boolean {
    return this.peersRecovering.has(id) || this.trk.prs.get(id)?.recovering === true;
  }

  /**
   * Whether the voters of `conf` that are not recovering their storage make a quorum of it. Those recovering vote for
   * no one and count towards no commit, so a configuration where the others are fewer commits nothing (not even the
   * entry that made it) and elects no one, for good if their repair needs a new leader.
   */
  private intactQuorum(conf: ConfState): boolean {
    let intact = 0;
    for (const v of conf.voters) if (v === this.id ? this.recovering === null : !this.peerRecovering(v)) intact++;
    return intact >= Math.floor(conf.voters.length / 2) + 1;
  }

  // ---- reads ----

  /** Returns false when the read queue is full. */
  private leaderRead(request: ReadRequest): boolean {
    if (this.readOnly.isFull()) return false;
    // Until it commits in its own term, a new leader does not know the latest commit index (alone in its
    // configuration too: it may have become the only voter by removals, with a commit index behind the cluster's).
    if (!this.committedInTerm()) this.readOnly.delay(request);
    else this.startReadRound([request]);
    return true;
  }

  private startReadRound(requests: ReadRequest[]): void {
    if (requests.length === 0) return;
    if (this.trk.quorumIsSelf()) {
      for (const r of requests) this.releaseRead(r, this.log.committed);
      return;
    }
    const roundContext = `${this.id}/${this.term}/${++this.readSeq}`;
    this.readOnly.addRound(roundContext, this.log.committed, requests);
    this.bcastHeartbeat(roundContext);
  }

  private onReadAck(roundContext: string, from: NodeId): void {
    const released = this.readOnly.ack(roundContext, from, this.readQuorum);
    for (const round of released) {
      for (const r of round.requests) this.releaseRead(r, round.index);
    }
  }

  private releaseRead(request: ReadRequest, index: LogIndex): void {
    if (request.from === null) {
      this.readStates.push({ index, context: request.context });
      return;
    }
    // The follower answers once it has applied `index`; make sure it knows that commit (ahead of this answer).
    const pr = this.trk.prs.get(request.from);
    if (pr !== undefined && pr.commitSent < index) this.sendAppend(request.from, pr);
    this.msgs.push({ type: 'readIndexResponse', from: this.id, to: request.from, term: 0 as Term, context: request.context, index });
  }

  // ---- the public API ----

  private reject(reason: ProposeRejection): ProposeResult {
    return { ok: false, reason, leaderId: this.leaderId };
  }

  propose(commands: readonly Uint8Array[]): ProposeResult {
    switch (this.role) {
      case 'leader':
        if (this.leaving()) return this.reject('PROPOSAL_DROPPED');
        return this.appendCommands(commands) ? OK_LOCAL : this.reject('UNCOMMITTED_LIMIT');
      case 'follower': {
        const leader = this.leaderId;
        if (leader === null) return this.reject('NO_LEADER');
        if (commands.length > 0) this.msgs.push({ type: 'propose', from: this.id, to: leader, term: 0 as Term, entries: commands.slice() });
        return { ok: true, forwardedTo: leader };
      }
      case 'candidate':
      case 'precandidate':
        return this.reject('NO_LEADER');
      default:
        return assertNever(this.role);
    }
  }

  readIndex(context: string): ProposeResult {
    switch (this.role) {
      case 'leader':
        return this.leaderRead({ context, from: null }) ? OK_LOCAL : this.reject('QUEUE_FULL');
      case 'follower': {
        const leader = this.leaderId;
        if (leader === null) return this.reject('NO_LEADER');
        this.msgs.push({ type: 'readIndex', from: this.id, to: leader, term: 0 as Term, context });
        return { ok: true, forwardedTo: leader };
      }
      case 'candidate':
      case 'precandidate':
        return this.reject('NO_LEADER');
      default:
        return assertNever(this.role);
    }
  }

  transferLeadership(target: NodeId | null): { ok: true; target: NodeId } | { ok: false; reason: string } {
    if (this.role !== 'leader') return { ok: false, reason: 'this node is not the leader' };
    const to = target ?? this.trk.mostCaughtUpVoter();
    if (to === null) {
      return { ok: false, reason: this.trk.voterPeers.length > 0 ? 'every other voter is recovering its storage' : 'there is no other voter to transfer to' };
    }
    if (to === this.id) return { ok: false, reason: 'this node is already the leader' };
    const pr = this.trk.prs.get(to);
    if (pr === undefined || !this.trk.isVoter(to)) return { ok: false, reason: `${to} is not a voter` };
    // It never campaigns until repaired: timeoutNow would be lost on it, and proposals dropped meanwhile.
    if (this.peerRecovering(to)) return { ok: false, reason: `${to} is recovering its storage and cannot lead until it is repaired` };
    if (this.leadTransferee === to) return { ok: true, target: to };
    this.leadTransferee = to;
    this.transferElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, pr);
    return { ok: true, target: to };
  }

  campaign(): void {
    this.hup(false);
  }

  // ---- Ready ----

  private hardStateChanged(): boolean {
    const p = this.prevHard;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.log.committed;
  }

  private softStateChanged(): boolean {
    return this.prevSoft.leaderId !== this.leaderId || this.prevSoft.role !== this.role;
  }

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.pendingSnapshot !== null ||
      this.trk.conf !== this.prevConf ||
      this.readStates.length > 0 ||
      this.log.hasUnstable() ||
      this.log.hasNextCommitted() ||
      this.hardStateChanged() ||
      this.softStateChanged()
    );
  }

  /** Messages and read states are handed out once; entries, committed entries and states until advance(). */
  ready(): Ready {
    const hardState = this.hardStateChanged() ? { term: this.term, vote: this.vote, commit: this.log.committed } : null;
    const entries = this.log.hasUnstable() ? this.log.unstableEntries() : NO_ENTRIES;
    const messages = this.msgs.length > 0 ? this.msgs : NO_MESSAGES;
    const [messagesBeforeSync, messagesAfterSync] = splitBySync(messages);
    const rd: Ready = {
      snapshot: this.pendingSnapshot,
      hardState,
      entries,
      mustSync: this.pendingSnapshot !== null || entries.length > 0 || (hardState !== null && (hardState.term !== this.prevHard.term || hardState.vote !== this.prevHard.vote)),
      messages,
      messagesBeforeSync,
      messagesAfterSync,
      committedEntries: this.log.hasNextCommitted()
        ? this.log.nextCommitted(limits.raftCommittedEntriesPerReadyMax, Number.POSITIVE_INFINITY)
        : NO_ENTRIES,
      readStates: this.readStates.length > 0 ? this.readStates : NO_READ_STATES,
      softState: this.softStateChanged() ? { leaderId: this.leaderId, role: this.role } : null,
      confState: this.trk.conf !== this.prevConf ? this.trk.conf : null,
    };
    if (this.msgs.length > 0) this.msgs = [];
    if (this.readStates.length > 0) this.readStates = [];
    return rd;
  }

  takeWhileWriting(appliedIndex: LogIndex): WhileWriting {
    let n = 0;
    for (const m of this.msgs) if (leavesWhileWriting(m)) n++;
    // A leader applies what a quorum holds without waiting for its own write (only a leader: a follower's state
    // machine shows nothing its own disk does not hold, so a stale read there never goes back across a crash).
    if (this.role === 'leader') this.log.appliedTo(Math.min(appliedIndex, this.log.committed));
    const applyNow = this.role === 'leader' && this.log.hasNextCommitted();
    if (n === 0 && this.readStates.length === 0 && !applyNow) return NOTHING_WHILE_WRITING;
    let messages: readonly Message[] = NO_MESSAGES;
    if (n === this.msgs.length) {
      messages = this.msgs;
      this.msgs = [];
    } else if (n > 0) {
      const now: Message[] = [];
      const later: Message[] = [];
      for (const m of this.msgs) (leavesWhileWriting(m) ? now : later).push(m);
      messages = now;
      this.msgs = later;
    }
    const readStates = this.readStates.length > 0 ? this.readStates : NO_READ_STATES;
    if (this.readStates.length > 0) this.readStates = [];
    let committedEntries: readonly Entry[] = NO_ENTRIES;
    if (applyNow) {
      committedEntries = this.log.nextCommitted(limits.raftCommittedEntriesPerReadyMax, Number.POSITIVE_INFINITY);
      this.log.appliedTo(committedEntries[committedEntries.length - 1]!.index);
    }
    return { messages, readStates, committedEntries };
  }

  advance(rd: Ready): void {
    if (rd.hardState !== null) this.prevHard = rd.hardState;
    if (rd.softState !== null) this.prevSoft = rd.softState;
    if (rd.confState !== null) this.prevConf = rd.confState;
    if (rd.snapshot !== null) {
      // The caller installed it: the state machine now holds everything up to its index.
      this.log.appliedTo(Math.max(this.log.applied, rd.snapshot.index));
      if (this.pendingSnapshot === rd.snapshot) this.pendingSnapshot = null;
    }
    // Entries replaced while the write was in progress stay unstable; the prefix before them is on disk.
    const stableBefore = this.log.stableIndex();
    for (let i = rd.entries.length - 1; i >= 0; i--) {
      const e = rd.entries[i]!;
      if (this.log.term(e.index) === e.term) {
        this.log.stableTo(e.index, e.term);
        break;
      }
    }
    // The leader's own copy now counts (alone in its configuration, it is the whole quorum).
    if (this.role === 'leader' && this.log.stableIndex() > stableBefore && this.maybeCommit()) {
      if (this.trk.peers.length > 0) this.bcastCommit();
      this.maybeStepDownRemoved();
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied !== undefined) this.log.appliedTo(lastApplied.index);
    // What a repair needs may have just reached the disk.
    if (this.recovering !== null) this.maybeEndRecovery();
    assert(this.log.applied <= this.log.committed && this.log.committed <= this.log.lastIndex(), 'applied <= commit <= last index');
  }

  /** The configuration in force (the latest in the log), as status() reports it, without building the rest. */
  conf(): ConfState {
    return this.trk.conf;
  }

  /** The current term, as status() reports it, without building the rest (every log line carries it). */
  currentTerm(): Term {
    return this.term;
  }

  /** The current role, as status() reports it, without building the rest. */
  currentRole(): Role {
    return this.role;
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, PeerProgress>();
    if (this.role === 'leader') {
      const { peers, progressList } = this.trk;
      for (let i = 0; i < peers.length; i++) {
        const pr = progressList[i]!;
        progress.set(peers[i]!, {
          match: pr.match as LogIndex,
          next: pr.next as LogIndex,
          recentActive: pr.recentActive,
          state: pr.state,
          pendingSnapshot: pr.pendingSnapshot as LogIndex,
          learner: pr.learner,
          recovering: pr.recovering,
        });
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leaderId: this.leaderId,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      firstIndex: this.log.firstIndex(),
      snapshot: this.snapshot,
      voters: this.trk.conf.voters,
      learners: this.trk.conf.learners,
      configIndex: this.confIndex as LogIndex,
      progress,
      recovering: this.recovering,
      peersRecovering: [...this.peersRecovering],
    };
  }

  entryAt(index: LogIndex): Entry | undefined {
    return this.log.entry(index);
  }

  // ---- snapshots ----

  snapshotMeta(index: LogIndex): SnapshotMeta | null {
    if (this.pendingSnapshot !== null || index < 1 || index > this.log.applied) return null;
    if (this.snapshot !== null && index === this.snapshot.index) return this.snapshot;
    const t = this.log.term(index);
    if (t === undefined) return null;
    const conf = this.confAt(index);
    return conf === null ? null : { index, term: t, voters: conf.voters, learners: conf.learners };
  }

  compact(meta: SnapshotMeta, retainEntries = 0): boolean {
    if (this.snapshot !== null && meta.index <= this.snapshot.index) return false;
    const want = this.snapshotMeta(meta.index);
    if (want === null || want.term !== meta.term || !sameConf(want, meta)) return false;
    const retain = Number.isSafeInteger(retainEntries) && retainEntries > 0 ? retainEntries : 0;
    const to = meta.index - retain;
    if (to >= this.log.firstIndex()) {
      this.baseConf = this.confAt(to);
      this.log.compact(to);
      this.syncConf();
    }
    this.snapshot = meta;
    return true;
  }

  reportSnapshot(peer: NodeId, status: 'finish' | 'failure'): void {
    if (this.role !== 'leader') return;
    const pr = this.trk.prs.get(peer);
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (status === 'failure') pr.snapshotFailed();
    else pr.becomeProbe();
    // After a finish, wait for the follower's answer; after a failure, for a heartbeat answer (then retry).
    pr.probeSent = true;
  }

  // ---- membership ----

  /** The configuration as of `index` (which must be at or after the log's first index - 1); null when unknown. */
  private confAt(index: number): ConfState | null {
    const i = this.log.configIndexAtOrBelow(index);
    if (i === 0) return this.baseConf;
    const e = this.log.entry(i)!;
    if (e === this.confEntry) return this.trk.conf;
    const d = decodeConfEntry(e.data);
    return { voters: d.voters, learners: d.learners };
  }

  /** Recomputes the configuration in effect (the latest in the log, else baseConf) after the log changed. */
  private syncConf(): void {
    this.confVersion = this.log.configVersion;
    const i = this.log.lastConfigIndex();
    const e = i === 0 ? null : this.log.entry(i)!;
    if (e === this.confEntry && (e !== null || this.confBase === this.baseConf)) return;
    this.confEntry = e;
    this.confBase = this.baseConf;
    this.confIndex = e !== null ? e.index : this.log.firstIndex() - 1;
    this.selfVoterBefore = e !== null && (this.confAt(e.index - 1)?.voters.includes(this.id) ?? false);
    let conf: ConfState = this.baseConf ?? emptyConfState;
    if (e !== null) {
      const d = decodeConfEntry(e.data);
      conf = { voters: d.voters, learners: d.learners };
    }
    if (sameConf(conf, this.trk.conf)) return;
    this.trk.setConf(conf, this.log.lastIndex() + 1);
    if (this.leadTransferee !== null && !this.trk.isVoter(this.leadTransferee)) this.leadTransferee = null;
    if ((this.role === 'candidate' || this.role === 'precandidate') && !this.promotable()) this.becomeFollower(this.term, null);
  }

  proposeConfChange(change: ConfChange): ConfChangeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'NOT_LEADER', leaderId: this.leaderId };
    const refuse = (reason: Exclude<ConfChangeResult, { ok: true }>['reason']): ConfChangeResult => ({ ok: false, reason, leaderId: this.id });
    if (this.leadTransferee !== null) return refuse('PROPOSAL_DROPPED');
    // One change at a time, and none before this leader commits an entry of its term: a change its predecessor left
    // uncommitted may still be in force somewhere, and two single-server changes apart could have disjoint quorums
    // (Ongaro, raft-dev, 2015).
    if (this.confIndex > this.log.committed || !this.committedInTerm()) return refuse('CONF_CHANGE_IN_PROGRESS');
    const next = applyConfChange(this.trk.conf, change);
    if (typeof next === 'string') return refuse(next);
    // A learner that has not seen the configuration in effect would ignore the voters' vote requests.
    if (change.type === 'promote' && (this.trk.prs.get(change.nodeId)?.match ?? 0) < this.confIndex) return refuse('LEARNER_NOT_CAUGHT_UP');
    // Removing a voter with intact storage, or promoting a learner, while others recover theirs (a learner's own
    // repair counts the same): the new configuration's quorum might be beyond reach.
    if (next.voters.length !== this.trk.conf.voters.length && !this.intactQuorum(next)) return refuse('VOTERS_RECOVERING');
    const recorded: ConfChange =
      change.context === undefined ? { type: change.type, nodeId: change.nodeId } : { type: change.type, nodeId: change.nodeId, context: change.context };
    const data = encodeConfEntry({ voters: next.voters, learners: next.learners, change: recorded });
    this.uncommittedBytes += data.byteLength;
    this.log.pushBatch(this.term, 'config', [data]);
    const index = this.log.lastIndex();
    // In effect at once (dissertation 4.1): a removed voter no longer counts, so earlier entries may commit now.
    this.syncConf();
    this.maybeCommit();
    if (this.trk.peers.length > 0) this.bcastAppend();
    this.maybeStepDownRemoved();
    return { ok: true, index };
  }

  /**
   * A leader that removed itself leads (without counting itself, appending nothing more: leaving()) until that change
   * commits, then hands over and steps down (dissertation 4.2.2). Its last entry is the change, so a voter whose
   * acknowledgement committed it holds the whole log: the most caught-up one that is not recovering is told to
   * campaign now (timeoutNow), as a leadership transfer does, rather than the cluster waiting an election timeout for
   * someone to notice the silence. It never campaigns again: it is no voter.
   */
  private maybeStepDownRemoved(): void {
    if (this.role !== 'leader' || this.trk.selfVoter || this.confIndex > this.log.committed) return;
    const last = this.log.lastIndex();
    const holdsAll = (id: NodeId | null): id is NodeId => {
      const pr = id === null ? undefined : this.trk.prs.get(id);
      return pr !== undefined && !pr.recovering && pr.match === last;
    };
    // A transfer under way told its target once it held the whole log (transferLeadership, onAppendResponse).
    if (!holdsAll(this.leadTransferee)) {
      const best = this.trk.mostCaughtUpVoter();
      if (holdsAll(best)) this.sendTimeoutNow(best);
    }
    this.becomeFollower(this.term, null);
  }
}

export function createRaftNode(config: RaftConfig, initial: RaftInitialState): RaftNode {
  return new Raft(config, initial);
}

/** Records the commit index a message tells a follower; a wait on forwarded proposals ends once it covers them. */
function noteCommitSent(pr: Progress, commit: number): void {
  if (commit > pr.commitSent) pr.commitSent = commit;
  if (pr.commitWanted !== 0 && pr.commitSent >= pr.commitWanted) pr.commitWanted = 0;
}

/**
 * Whether a message may leave only once its Ready's write is durable: it promises something about this node's disk.
 * A follower's append answer (the entries it acknowledges), a granted or refused vote (the vote and term it records),
 * and a candidate's vote request (it counts its own vote at once, so that vote must be on disk before others can
 * make it leader). Everything else (a leader's appends, heartbeats and snapshots, Raft thesis 10.2.1; pre-votes,
 * which change nothing; forwards) may leave before or while the write is made.
 */
export function waitsForSync(m: Message): boolean {
  return m.type === 'appendResponse' || m.type === 'voteResponse' || (m.type === 'vote' && !m.preVote);
}

/**
 * Whether a message may be taken out of the next Ready while the current one's write is on disk: heartbeats, their
 * answers and read-index forwards. None waits for a write (waitsForSync), and they are what keeps a leader known and
 * reads confirmed; appends stay for the next Ready, so a batch leaves as one.
 */
function leavesWhileWriting(m: Message): boolean {
  return m.type === 'heartbeat' || m.type === 'heartbeatResponse' || m.type === 'readIndex' || m.type === 'readIndexResponse';
}

/** Splits a Ready's messages (in their order) into those that may leave before its write and those that wait for it. */
function splitBySync(messages: readonly Message[]): [readonly Message[], readonly Message[]] {
  let late = 0;
  for (const m of messages) if (waitsForSync(m)) late++;
  if (late === 0) return [messages, NO_MESSAGES];
  if (late === messages.length) return [NO_MESSAGES, messages];
  const before: Message[] = [];
  const after: Message[] = [];
  for (const m of messages) (waitsForSync(m) ? after : before).push(m);
  return [before, after];
}
