// The contract of the Raft core: its config, its messages, and the Ready it hands to the caller.
// The core is pure; for each Ready the caller: sends Ready.messagesBeforeSync (at once, or while it writes), writes
// Ready.snapshot + Ready.hardState + Ready.entries as one write (fsynced when Ready.mustSync, else it may be left to
// the OS), then, once that write is durable, sends Ready.messagesAfterSync, installs Ready.snapshot, applies
// Ready.committedEntries, and calls advance(ready). The core decides what must be durable before which message
// leaves (etcd's MustSync): see "Sync, and what may leave before it" at the end of this file.
//
// Snapshots, after etcd-io/raft: the snapshot BYTES never pass through the core. The caller snapshots its state
// machine, tells the core (compact), streams the bytes to a lagging follower when the core asks (a 'snapshot'
// message), and hands the received snapshot's metadata to the follower's core once the bytes are durable.
// Membership, after the Raft dissertation (4.1): one server at a time, through 'config' entries that take effect
// when APPENDED (every node uses the latest configuration in its log, committed or not).
// See "Snapshots: the caller's side" and "Membership: the caller's side" at the end of this file.
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import type { Random } from '../lib/random.js';

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/**
 * 'noop' is appended by a new leader; 'config' carries a membership change (its data is the whole new configuration,
 * read it with decodeConfEntry); 'command' is opaque data. Only 'command' entries are for the state machine.
 */
export type EntryType = 'command' | 'noop' | 'config';

export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

export interface HardState {
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

/** A cluster configuration: who votes, and who only receives the log (learners). No id is in both. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/**
 * What the core knows of a snapshot of the state machine: the last entry it covers (index and term) and the
 * configuration as of that entry. The caller stores it next to the snapshot's bytes.
 */
export interface SnapshotMeta extends ConfState {
  readonly index: LogIndex;
  readonly term: Term;
}

/** One membership change: add a non-voting learner, promote a learner to voter, or remove a voter or learner. */
export interface ConfChange {
  readonly type: 'addLearner' | 'promote' | 'remove';
  readonly nodeId: NodeId;
  /** Opaque to the core and carried in the config entry (the new member's addresses, say), at most 4096 chars. */
  readonly context?: string;
}

/** The data of a 'config' entry: the configuration it installs and the change that led to it (null when forced). */
export interface ConfEntryData extends ConfState {
  readonly change: ConfChange | null;
}

export interface SoftState {
  readonly leaderId: NodeId | null;
  readonly role: Role;
}

/** A confirmed read: once the state machine has applied `index`, a read tagged `context` is linearizable. */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: string;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /** 0 for messages that are not bound to a term (propose, readIndex forwarding). */
  readonly term: Term;
}

export interface AppendMessage extends Envelope {
  readonly type: 'append';
  readonly prevLogIndex: LogIndex;
  readonly prevLogTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
}

export interface AppendResponseMessage extends Envelope {
  readonly type: 'appendResponse';
  readonly success: boolean;
  /** On success, the follower's match index; on failure, the prevLogIndex that was rejected. */
  readonly index: LogIndex;
  /** On failure: the term of the follower's entry at the rejected index (0 if it has none). */
  readonly conflictTerm: Term;
  /** On failure: the first index the follower holds of conflictTerm, or its last index + 1 if its log is too short. */
  readonly conflictIndex: LogIndex;
  /**
   * The follower's incarnation, drawn at each start: a rejection from another incarnation than the one that
   * acknowledged the leader's match says the follower restarted with less than it had (a lying disk), not that the
   * answer is old. Absent from older peers.
   */
  readonly incarnation?: number;
  /** The sender is recovering its storage (docs/storage-faults.md): do not count it. Absent means false. */
  readonly recovering?: boolean;
}

export interface HeartbeatMessage extends Envelope {
  readonly type: 'heartbeat';
  readonly commit: LogIndex;
  /** The ReadIndex round this heartbeat confirms, or '' for none. */
  readonly context: string;
}

export interface HeartbeatResponseMessage extends Envelope {
  readonly type: 'heartbeatResponse';
  readonly context: string;
  /** As in AppendResponseMessage: a leader probes a follower that answers from another incarnation than its match's. */
  readonly incarnation?: number;
  /** As in AppendResponseMessage. */
  readonly recovering?: boolean;
}

export interface VoteMessage extends Envelope {
  readonly type: 'vote';
  /** A pre-vote does not change anyone's term or vote; `term` is the term the candidate would campaign in. */
  readonly preVote: boolean;
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  /** Set when a leadership transfer asks for the vote: voters then ignore their leader lease. */
  readonly transfer: boolean;
  /**
   * The index of the candidate's configuration (its latest config entry, else its log's first index - 1): a voter
   * that does not know the candidate answers only a configuration newer than its own. Absent from older peers.
   */
  readonly configIndex?: LogIndex;
  /**
   * The term of that entry (of the snapshot when the configuration came with it). Newer means a later term, or the
   * same term and a later index: two configurations at one index from different terms (one will be overwritten) are
   * told apart as two logs are. Absent from older peers (then the index alone decides).
   */
  readonly configTerm?: Term;
}

export interface VoteResponseMessage extends Envelope {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
  /** Refused because the sender is recovering its storage and votes for no one. */
  readonly recovering?: boolean;
}

export interface TimeoutNowMessage extends Envelope {
  readonly type: 'timeoutNow';
}

/** A follower forwards client proposals to the leader. */
export interface ProposeMessage extends Envelope {
  readonly type: 'propose';
  readonly entries: readonly Uint8Array[];
}

/** A follower forwards a linearizable read to the leader... */
export interface ReadIndexMessage extends Envelope {
  readonly type: 'readIndex';
  readonly context: string;
}

/** ...and the leader answers with the index the follower must apply before it serves the read. */
export interface ReadIndexResponseMessage extends Envelope {
  readonly type: 'readIndexResponse';
  readonly context: string;
  readonly index: LogIndex;
}

/**
 * The leader needs `to` to install a snapshot: its log no longer holds the entries `to` lacks. It carries only the
 * metadata; the caller streams the bytes of that snapshot (or of a later one of its own, rewriting the metadata)
 * out of band and then calls reportSnapshot(to, ...). On the receiving node the caller steps this message (with
 * the metadata of what it received) into the core once the bytes are durable.
 */
export interface SnapshotMessage extends Envelope {
  readonly type: 'snapshot';
  readonly snapshot: SnapshotMeta;
}

export type Message =
  | AppendMessage
  | SnapshotMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | TimeoutNowMessage
  | ProposeMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

export type MessageType = Message['type'];

/** What RaftNode.takeWhileWriting hands out: handle it at once, like a Ready's messagesBeforeSync and readStates. */
export interface WhileWriting {
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /**
   * A leader's committed entries, to apply now (before the read states), in order: they may include entries the
   * write in progress is making durable here, since a quorum of followers holds them already (thesis 10.2.1). Handed
   * out once: they count as applied from here on, and no Ready hands them out again.
   */
  readonly committedEntries: readonly Entry[];
}

export interface Ready {
  /**
   * Set when this node installed a snapshot received from the leader. Persist it with hardState and entries in the
   * same write: it becomes the node's snapshot, and EVERY stored entry is deleted (entries of this Ready all come
   * after it). Install it into the state machine before applying committedEntries.
   */
  readonly snapshot: SnapshotMeta | null;
  /** Set when term, vote or commit changed: persist it with `entries` in one write. */
  readonly hardState: HardState | null;
  /** Entries to persist. Any stored entry at an index >= entries[0].index must be replaced. */
  readonly entries: readonly Entry[];
  /**
   * The write (snapshot, hardState, entries) must be fsynced before messagesAfterSync leave and before
   * committedEntries are applied: it holds entries, a new term or vote, or a snapshot. False when only the commit
   * index changed: such a write may be left unsynced (a commit index lost in a crash is learnt again from the leader;
   * the entries it covers were synced when they were written). The storage must keep writes in order.
   */
  readonly mustSync: boolean;
  /** Every message of this Ready, in the order the core made them: messagesBeforeSync and messagesAfterSync together. */
  readonly messages: readonly Message[];
  /**
   * Messages that promise nothing about this node's disk: a leader's appends, heartbeats and snapshots (Raft thesis
   * 10.2.1: a leader may replicate before its own write is done; it counts its own entries towards a commit only
   * once advance() says they are written), pre-votes, forwards, read answers. Send them at once.
   */
  readonly messagesBeforeSync: readonly Message[];
  /**
   * Messages that may leave only once this Ready's write is durable (synced when mustSync): a follower's append
   * answers, vote answers, and a candidate's vote requests (see waitsForSync in raft.ts).
   */
  readonly messagesAfterSync: readonly Message[];
  /** Committed entries to apply, in order, contiguous from the last applied index + 1. */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Set when the leader or the role changed. */
  readonly softState: SoftState | null;
  /**
   * Set when this node's configuration changed (a config entry appended or truncated, a snapshot installed): update
   * the set of peers the transport knows before sending this Ready's messages.
   */
  readonly confState: ConfState | null;
}

export interface RaftConfig {
  readonly id: NodeId;
  /**
   * The bootstrap configuration: all voting members, this node included. Used only while neither the snapshot nor
   * the log holds a configuration (a cluster that never changed its membership). Empty when `join` is set.
   */
  readonly voters: readonly NodeId[];
  /** Bootstrap learners, like `voters` (default none). */
  readonly learners?: readonly NodeId[];
  /**
   * This node joins an existing cluster: it knows no configuration until a snapshot or a config entry from the
   * leader tells it, so it never campaigns and never takes a snapshot of a part of the log it cannot describe.
   * Keep passing it on every restart of a node that joined (bootstrap voters would be wrong for its log).
   */
  readonly join?: boolean;
  /** Ticks a follower waits for a leader before campaigning; each node draws its timeout in [electionTicks, 2 * electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly random: Random;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /**
   * When the commit index moves, tell only the followers that wait on it (they forwarded a proposal, or have entries
   * to receive anyway); the others learn it from their next append or heartbeat. Saves each follower a message and
   * a write per commit. Default false: every follower gets an append at once, as etcd's raft does.
   */
  readonly lazyCommit?: boolean;
  /**
   * A number drawn anew at each start of this node (1 or more), sent in its append answers: a leader that sees a
   * rejection from another incarnation than the one that acknowledged its match knows the follower restarted with
   * less than it had, and re-probes it (docs/storage-faults.md). Unset: not sent (tests of exact messages).
   */
  readonly incarnation?: number;
  readonly inflightAppendsMax: number;
  readonly entriesPerAppendMax: number;
  readonly appendBytesMax: number;
  readonly uncommittedBytesMax: number;
  readonly pendingReadsMax: number;
}

/** What the node had on stable storage when it started. */
export interface RaftInitialState {
  readonly hardState: HardState;
  /**
   * The persisted log, contiguous: from index 1 without a snapshot, else from at most snapshot.index + 1 (entries at
   * or below the snapshot's index are dropped; one at its index must have its term).
   */
  readonly entries: readonly Entry[];
  /**
   * The index up to which the state machine was already applied (0 when it is rebuilt from the log; at least
   * snapshot.index when the state machine was restored from the snapshot: the core raises it to that).
   */
  readonly applied: LogIndex;
  /** The latest snapshot (the state machine is restored from its bytes before the core starts). */
  readonly snapshot?: SnapshotMeta;
  /**
   * The storage lost or damaged part of what this node had acknowledged (docs/storage-faults.md): it starts
   * recovering. Until its commit index, learnt from a leader, reaches `index` or covers an entry of a term after
   * `term` (the last entry it had acknowledged), it votes for no one, never campaigns, tells the leader in every
   * answer (which then counts it neither for commit, nor for check-quorum, nor for ReadIndex), and commits from a
   * heartbeat only what an append of this term verified.
   */
  readonly recovering?: { readonly index: number; readonly term: number };
}

export type ProposeRejection = 'NO_LEADER' | 'UNCOMMITTED_LIMIT' | 'PROPOSAL_DROPPED' | 'QUEUE_FULL';

export type ProposeResult =
  | { readonly ok: true; readonly forwardedTo: NodeId | null }
  | { readonly ok: false; readonly reason: ProposeRejection; readonly leaderId: NodeId | null };

/**
 * Why proposeConfChange refused: this node does not lead (leaderId says who might); a leadership transfer is under
 * way; a change is not committed yet, or this leader has not committed an entry of its term yet (the last leader's
 * change may still be pending: retry shortly); the learner to promote does not hold the configuration in effect
 * yet (a voter that knows nobody could not vote: wait for its progress); VOTERS_RECOVERING: the voters of the new
 * configuration that are not recovering their storage would be no quorum of it, so it could never commit (this
 * change included) nor elect a leader (retry once they are repaired); the change makes no sense for the current
 * configuration.
 */
export type ConfChangeRejection =
  | 'NOT_LEADER'
  | 'PROPOSAL_DROPPED'
  | 'CONF_CHANGE_IN_PROGRESS'
  | 'UNKNOWN_MEMBER'
  | 'ALREADY_MEMBER'
  | 'NOT_A_LEARNER'
  | 'LEARNER_NOT_CAUGHT_UP'
  | 'VOTERS_RECOVERING'
  | 'LAST_VOTER'
  | 'INVALID_CHANGE';

/** Accepted: the config entry is at `index` (and in effect already); it is done once commitIndex >= index. */
export type ConfChangeResult =
  | { readonly ok: true; readonly index: LogIndex }
  | { readonly ok: false; readonly reason: ConfChangeRejection; readonly leaderId: NodeId | null };

/** probe: one append at a time; replicate: pipelined appends; snapshot: a snapshot is on its way, only heartbeats. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one peer's replication. */
export interface PeerProgress {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly recentActive: boolean;
  readonly state: ProgressState;
  /** In state 'snapshot': the index of the snapshot being sent (else 0). */
  readonly pendingSnapshot: LogIndex;
  /** A learner: replicated to, never counted in a quorum. Promote it once match is close to commitIndex. */
  readonly learner: boolean;
  /** Its last answer said it is recovering its storage: not counted in any quorum until it says otherwise. */
  readonly recovering: boolean;
}

/** A read of the node's state for status pages and checkers; never used to decide anything outside the core. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  /** The first index the log holds (snapshot.index + 1 after a compaction; entries before it are gone). */
  readonly firstIndex: LogIndex;
  /** The latest snapshot this node knows of (taken here, installed from the leader, or loaded at start), if any. */
  readonly snapshot: SnapshotMeta | null;
  /** The configuration in effect: the latest in the log, committed or not (empty voters on a joiner that knows none). */
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** The index of the config entry (or snapshot) that set it; the change is committed once commitIndex >= configIndex. */
  readonly configIndex: LogIndex;
  /** Leader only: replication progress per peer (voters and learners). */
  readonly progress: ReadonlyMap<NodeId, PeerProgress>;
  /** Set while this node recovers its storage: the last entry it had acknowledged (see RaftInitialState). */
  readonly recovering: { readonly index: number; readonly term: number } | null;
  /** Peers whose latest answer to this node (of any term) said they are recovering their storage. */
  readonly peersRecovering: readonly NodeId[];
}

/** The synchronous API of the core (see src/raft/raft.ts for the implementation). */
export interface RaftNode {
  tick(): void;
  step(message: Message): void;
  propose(commands: readonly Uint8Array[]): ProposeResult;
  /** Starts a ReadIndex round; the answer comes out as a ReadState with this context. */
  readIndex(context: string): ProposeResult;
  /**
   * Leader only: hand leadership to `target` (or the most caught-up voter; never to a learner, nor to a voter
   * recovering its storage: it cannot campaign).
   */
  transferLeadership(target: NodeId | null): { ok: true; target: NodeId } | { ok: false; reason: string };
  /** Start an election now (tests and tooling). */
  campaign(): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
  /**
   * Takes out of the next Ready what may be handled while the current Ready's write is on disk: heartbeats and their
   * answers, read-index requests and answers, and read states. A node whose write waits on a slow disk (a snapshot
   * being flushed, LevelDB stalling behind a compaction) still answers its leader, and a leader still sends its
   * heartbeats and confirms reads (etcd sends all but append and vote answers early with asynchronous storage writes).
   * A leader also takes the entries committed meanwhile, to apply at once (WhileWriting.committedEntries).
   * appliedIndex: what the caller has applied so far (it may have applied a Ready's committed entries before its
   * write); entries up to it are not handed out.
   */
  takeWhileWriting(appliedIndex: LogIndex): WhileWriting;

  /** The configuration in force (the latest in the log): status()'s voters and learners, without the rest. */
  conf(): ConfState;
  /** status()'s term and role, without the rest. */
  currentTerm(): Term;
  currentRole(): Role;
  status(): RaftStatus;
  /** The entry at an index, if this node holds it (checkers and tests). */
  entryAt(index: LogIndex): Entry | undefined;

  // ---- snapshots ----

  /**
   * The metadata of a snapshot of the state machine as applied up to `index` (term and configuration as of that
   * entry). null when the core cannot describe it: index beyond applied, before the log's first index - 1, while a
   * received snapshot is not advanced yet, or on a joiner that does not know the configuration at `index`.
   */
  snapshotMeta(index: LogIndex): SnapshotMeta | null;
  /**
   * The caller holds a durable snapshot described by `meta` (from snapshotMeta): it becomes the snapshot sent to
   * followers that lack compacted entries, and the in-memory log drops its entries up to meta.index - retainEntries
   * (keep a tail so a follower slightly behind gets entries, not a whole snapshot). Returns false, changing
   * nothing, for a meta older than the current snapshot or that snapshotMeta would not give now.
   */
  compact(meta: SnapshotMeta, retainEntries?: number): boolean;
  /**
   * Leader: the out-of-band stream of a snapshot to `peer` ended. 'finish': the bytes were delivered (the
   * follower's appendResponse resumes replication); 'failure': they were not, and the leader retries later.
   */
  reportSnapshot(peer: NodeId, status: 'finish' | 'failure'): void;

  // ---- membership ----

  /** Leader only: appends a config entry for one change; it takes effect at once (see ConfChangeResult). */
  proposeConfChange(change: ConfChange): ConfChangeResult;
}

// ---- Snapshots: the caller's side ----
//
// Taking one (any node): after advance(), snapshot the state machine at its applied index A with
// `meta = core.snapshotMeta(A)`; store bytes + meta durably; then `core.compact(meta, retain)`, and only then
// delete stored entries <= meta.index - retain (on restart the core ignores stored entries <= meta.index anyway).
//
// Sending one (leader): a Ready message of type 'snapshot' is not for the Raft transport (its codec does not know
// the type; a core that never compacts never emits one). Send it after the Ready's write like any message: stream
// the bytes of the snapshot it names (or your newer one, with its meta) to `to`; when the stream ends call
// core.reportSnapshot(to, 'finish' | 'failure'). Until then the leader sends `to` only heartbeats. A missing report
// leaves the follower stuck in state 'snapshot': always report, also when the stream is abandoned. A leader sends
// one only to a follower it heard from within the last election timeout.
//
// Receiving one (follower): write the bytes durably (not yet as the current snapshot), then
// core.step({ type: 'snapshot', from: leader, to: self, term: the message's term, snapshot: meta }). If the next
// Ready carries `snapshot` (same meta), persist it as the current snapshot with that Ready's write (deleting every
// stored entry), install it into the state machine before applying that Ready's committedEntries, then advance.
// If no Ready carries it, the core ignored it (older than its commit, or the log already holds that entry: it only
// moved its commit; or from an old term: refused): drop the bytes. The core answers the leader with an
// appendResponse (at the snapshot's index once installed), sent after that Ready's write like any message.
//
// Starting: load the latest snapshot into the state machine and pass its meta as RaftInitialState.snapshot, with
// applied >= snapshot.index.
//
// ---- Membership: the caller's side ----
//
// A change takes effect on every node when its config entry is APPENDED to that node's log (and is undone if the
// entry is truncated away): Ready.confState says when. One change at a time: a leader refuses a second while one is
// uncommitted, and until it has committed an entry of its own term (the fix for the dissertation's single-server
// bug). Grow: start the new node with `join: true` (empty log, no configuration), addLearner, wait until its
// progress.match is close to commitIndex, promote (refused with LEARNER_NOT_CAUGHT_UP until it holds at least the
// configuration in effect). Shrink: remove; to remove the leader, transferLeadership first
// (a leader that removes itself keeps leading until the entry commits, not counting itself and appending nothing
// more, then steps down and hands over with timeoutNow to a voter that holds its whole log). A change that leaves
// fewer voters with intact storage than a quorum is refused (VOTERS_RECOVERING). A learner or a node outside its configuration never campaigns (except a voter that
// an uncommitted change removes: the cluster may need it until the change commits). Messages from non-members are
// ignored, except leader messages and vote requests from a log at least as up to date (a node that lags may not
// know its new leader or voters yet); a removed node misses its removal, so its vote requests are ignored and it
// cannot disrupt. Do not re-add a removed id with its old data: wipe it, or use a new id.
// Config entries are not for the state machine (apply only 'command' entries); decodeConfEntry reads one, context
// included, for the caller's own member list. Disaster recovery: forceNewCluster(initial, id) rewrites one
// survivor's state into a one-voter cluster.
//
// ---- Sync, and what may leave before it ----
//
// A leader counts its own new entries toward a quorum only once advance() reports them written (thesis 10.2.1), so a
// commit index never covers an entry a crash could still take back, even in a one-voter configuration. That is why
// its appends and heartbeats may leave before its own write (messagesBeforeSync). What promises something about this
// node's disk waits for the write to be durable (messagesAfterSync): an append answer acknowledges entries the leader
// will count towards a commit; a vote answer records a vote that must survive a crash (one vote per term); a vote
// request stands for the candidate's own vote. Nothing may be applied before its Ready's write is durable.
// mustSync is false only for a write whose sole change is the commit index: it may be written without fsync and
// without waiting, provided the storage keeps writes in order, so a later synced write makes it durable too. A
// crash may lose it (and any other unsynced write since the last sync); the node then restarts with an older commit
// index, re-applies from its snapshot, and learns the commit index again from the leader. (The manager's driver
// goes further and does not write it at all: the next Ready with entries, a term or a vote carries it.)
