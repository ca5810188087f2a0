// The contract of the Raft core: its config, its messages, and the Ready it hands to the caller.
// The core is pure: the caller persists Ready.hardState + Ready.entries (synced), then sends Ready.messages,
// then applies Ready.committedEntries, then calls advance(ready).
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import type { Random } from '../lib/random.js';

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/** 'noop' is appended by a new leader; 'config' carries a membership change (snapshots issue); 'command' is opaque data. */
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
}

export interface VoteMessage extends Envelope {
  readonly type: 'vote';
  /** A pre-vote does not change anyone's term or vote; `term` is the term the candidate would campaign in. */
  readonly preVote: boolean;
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  /** Set when a leadership transfer asks for the vote: voters then ignore their leader lease. */
  readonly transfer: boolean;
}

export interface VoteResponseMessage extends Envelope {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
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

export type Message =
  | AppendMessage
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

export interface Ready {
  /** Set when term, vote or commit changed: persist it with `entries` in one synced write. */
  readonly hardState: HardState | null;
  /** Entries to persist. Any stored entry at an index >= entries[0].index must be replaced. */
  readonly entries: readonly Entry[];
  /** Send only after hardState and entries are on disk. */
  readonly messages: readonly Message[];
  /** Committed entries to apply, in order, contiguous from the last applied index + 1. */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Set when the leader or the role changed. */
  readonly softState: SoftState | null;
}

export interface RaftConfig {
  readonly id: NodeId;
  /** All voting members, this node included. */
  readonly voters: readonly NodeId[];
  /** Ticks a follower waits for a leader before campaigning; each node draws its timeout in [electionTicks, 2 * electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly random: Random;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly inflightAppendsMax: number;
  readonly entriesPerAppendMax: number;
  readonly appendBytesMax: number;
  readonly uncommittedBytesMax: number;
  readonly pendingReadsMax: number;
}

/** What the node had on stable storage when it started. */
export interface RaftInitialState {
  readonly hardState: HardState;
  /** The persisted log, contiguous from index 1 (or from after a snapshot, in a later issue). */
  readonly entries: readonly Entry[];
  /** The index up to which the state machine was already applied (0 when it is rebuilt from the log). */
  readonly applied: LogIndex;
}

export type ProposeRejection = 'NO_LEADER' | 'UNCOMMITTED_LIMIT' | 'PROPOSAL_DROPPED' | 'QUEUE_FULL';

export type ProposeResult =
  | { readonly ok: true; readonly forwardedTo: NodeId | null }
  | { readonly ok: false; readonly reason: ProposeRejection; readonly leaderId: NodeId | null };

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
  /** Leader only: replication progress per peer. */
  readonly progress: ReadonlyMap<NodeId, { readonly match: LogIndex; readonly next: LogIndex; readonly recentActive: boolean }>;
}

/** The synchronous API of the core (see src/raft/raft.ts for the implementation). */
export interface RaftNode {
  tick(): void;
  step(message: Message): void;
  propose(commands: readonly Uint8Array[]): ProposeResult;
  /** Starts a ReadIndex round; the answer comes out as a ReadState with this context. */
  readIndex(context: string): ProposeResult;
  /** Leader only: hand leadership to `target` (or the most caught-up follower). */
  transferLeadership(target: NodeId | null): { ok: true; target: NodeId } | { ok: false; reason: string };
  /** Start an election now (tests and tooling). */
  campaign(): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
  status(): RaftStatus;
  /** The entry at an index, if this node holds it (checkers and tests). */
  entryAt(index: LogIndex): Entry | undefined;
}
