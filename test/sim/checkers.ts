// Safety checkers that run after every simulated event: Election Safety, Log Matching, Leader Append-Only, Leader
// Completeness, State Machine Safety, one vote per term, acknowledge only what is on disk, and restart durability.
// A violation throws at once, so the failing event is the last one in the trace.
import type { NodeId } from '../../src/lib/ids.js';
import type { Entry, Message, RaftNode, RaftStatus } from '../../src/raft/types.js';
import type { SimDisk } from './disk.js';

export type Invariant =
  | 'election safety'
  | 'log matching'
  | 'leader append-only'
  | 'leader completeness'
  | 'state machine safety'
  | 'committed entries are final'
  | 'one vote per term'
  | 'acknowledge only what is on disk'
  | 'restart durability'
  | 'monotonic term and commit'
  | 'applied exactly once'
  | 'liveness';

export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation';
  constructor(
    readonly invariant: Invariant,
    detail: string,
  ) {
    super(`${invariant} violated: ${detail}`);
  }
}

/** The view of a simulated node that the checkers need. */
export interface CheckedNode {
  readonly id: NodeId;
  readonly incarnation: number;
  /** null while the node is crashed. */
  readonly core: RaftNode | null;
  readonly disk: SimDisk;
  /** The index this node's state machine has applied up to. */
  readonly applied: number;
}

interface NodeRecord {
  incarnation: number;
  term: number;
  /** Commit entries 1..commitChecked of this incarnation were compared with the committed log. */
  commitChecked: number;
  /** While this incarnation is leader: its term, and its last entry when last seen. */
  leaderTerm: number;
  leaderLastIndex: number;
  leaderLastEntry: Entry | undefined;
  appliedBeforeCrash: number;
  /** The last status seen after an event on this node (null while crashed). */
  status: RaftStatus | null;
}

interface LogKey {
  readonly entry: Entry;
  readonly prevTerm: number;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function sameEntry(a: Entry, b: Entry): boolean {
  return a === b || (a.index === b.index && a.term === b.term && a.type === b.type && bytesEqual(a.data, b.data));
}

const show = (e: Entry | undefined): string => (e === undefined ? 'nothing' : `${e.index}/t${e.term}/${e.type}[${e.data.byteLength}B]`);

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly records: NodeRecord[];
  /** committed[i]: the entry known committed at index i (index 0 unused). */
  readonly committed: Entry[] = [];
  /** appliedAt[i]: the entry the first node to apply index i applied. */
  private readonly appliedAt: Entry[] = [];
  /** Every (index, term) pair ever persisted, with its data and the term before it (Log Matching by induction). */
  private readonly persisted: (LogKey[] | undefined)[] = [];
  private readonly votes = new Map<string, NodeId>();

  constructor(private readonly nodes: readonly CheckedNode[]) {
    this.records = nodes.map(() => ({
      incarnation: 0,
      term: 0,
      commitChecked: 0,
      leaderTerm: 0,
      leaderLastIndex: 0,
      leaderLastEntry: undefined,
      appliedBeforeCrash: 0,
      status: null,
    }));
  }

  /** The status seen after the last event on node i (null while crashed). */
  statusOf(i: number): RaftStatus | null {
    return this.records[i]!.status;
  }

  leaderOf(t: number): NodeId | undefined {
    return this.leaderOfTerm.get(t);
  }

  /** After every event that touched node i. */
  afterEvent(i: number): void {
    const node = this.nodes[i]!;
    const core = node.core;
    const rec = this.records[i]!;
    if (core === null) {
      rec.status = null;
      return;
    }
    const st = core.status();
    rec.status = st;
    if (st.term < rec.term) throw new SafetyViolation('monotonic term and commit', `${node.id} went from term ${rec.term} back to ${st.term}`);
    rec.term = st.term;
    this.checkCommit(i, node, rec, st);
    if (st.role === 'leader') this.checkLeader(i, node, rec, st);
    else rec.leaderTerm = 0;
  }

  private checkCommit(i: number, node: CheckedNode, rec: NodeRecord, st: RaftStatus): void {
    if (st.commitIndex < rec.commitChecked) {
      throw new SafetyViolation('monotonic term and commit', `${node.id} moved its commit index back from ${rec.commitChecked} to ${st.commitIndex}`);
    }
    const core = node.core!;
    for (let idx = rec.commitChecked + 1; idx <= st.commitIndex; idx++) {
      const e = core.entryAt(idx as Entry['index']);
      if (e === undefined) throw new SafetyViolation('committed entries are final', `${node.id} commits index ${idx} but holds no entry there`);
      const known = this.committed[idx];
      if (known === undefined) {
        this.committed[idx] = e;
        this.checkCurrentLeadersHold(i, e, st.term);
      } else if (!sameEntry(known, e)) {
        throw new SafetyViolation('committed entries are final', `${node.id} commits ${show(e)} at index ${idx}, but ${show(known)} was committed there`);
      }
    }
    rec.commitChecked = st.commitIndex;
  }

  /** A newly known committed entry, learned in term t or earlier, must be in the log of every leader of a later term. */
  private checkCurrentLeadersHold(from: number, e: Entry, t: number): void {
    for (let j = 0; j < this.nodes.length; j++) {
      const st = this.records[j]!.status;
      if (j === from || st === null || st.role !== 'leader' || st.term <= t) continue;
      const mine = this.nodes[j]!.core?.entryAt(e.index);
      if (mine === undefined || !sameEntry(mine, e)) {
        throw new SafetyViolation('leader completeness', `leader ${this.nodes[j]!.id} of term ${st.term} lacks committed ${show(e)} (holds ${show(mine)})`);
      }
    }
  }

  private checkLeader(i: number, node: CheckedNode, rec: NodeRecord, st: RaftStatus): void {
    const core = node.core!;
    if (rec.leaderTerm !== st.term) {
      const other = this.leaderOfTerm.get(st.term);
      if (other !== undefined && other !== node.id) {
        throw new SafetyViolation('election safety', `${node.id} and ${other} were both leader in term ${st.term}`);
      }
      this.leaderOfTerm.set(st.term, node.id);
      for (let idx = 1; idx < this.committed.length; idx++) {
        const want = this.committed[idx]!;
        const mine = core.entryAt(want.index);
        if (mine === undefined || !sameEntry(mine, want)) {
          throw new SafetyViolation('leader completeness', `${node.id} became leader of term ${st.term} without committed ${show(want)} (holds ${show(mine)})`);
        }
      }
    } else {
      if (st.lastIndex < rec.leaderLastIndex) {
        throw new SafetyViolation('leader append-only', `leader ${node.id} of term ${st.term} shrank its log from ${rec.leaderLastIndex} to ${st.lastIndex}`);
      }
      const now = core.entryAt(rec.leaderLastIndex as Entry['index']);
      const was = rec.leaderLastEntry;
      if (was !== undefined && (now === undefined || !sameEntry(now, was))) {
        throw new SafetyViolation('leader append-only', `leader ${node.id} of term ${st.term} replaced ${show(was)} with ${show(now)}`);
      }
    }
    rec.leaderTerm = st.term;
    rec.leaderLastIndex = st.lastIndex;
    rec.leaderLastEntry = core.entryAt(st.lastIndex);
  }

  /** After a write of `entries` reached node i's disk. */
  onPersisted(i: number, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const disk = this.nodes[i]!.disk;
    let prevTerm = entries[0]!.index > 1 ? disk.entries[entries[0]!.index - 2]!.term : 0;
    for (const e of entries) {
      this.registerLogKey(this.nodes[i]!.id, e, prevTerm);
      prevTerm = e.term;
    }
  }

  private registerLogKey(who: NodeId, e: Entry, prevTerm: number): void {
    let keys = this.persisted[e.index];
    if (keys === undefined) {
      keys = [];
      this.persisted[e.index] = keys;
    }
    for (const k of keys) {
      if (k.entry === e && k.prevTerm === prevTerm) return;
      if (k.entry.term !== e.term) continue;
      if (!sameEntry(k.entry, e) || k.prevTerm !== prevTerm) {
        throw new SafetyViolation(
          'log matching',
          `${who} persisted ${show(e)} after term ${prevTerm}, but ${show(k.entry)} after term ${k.prevTerm} exists at the same index and term`,
        );
      }
      return;
    }
    keys.push({ entry: e, prevTerm });
  }

  /** Before node i's message goes on the wire (after the Ready that made it was synced). */
  onSend(i: number, m: Message): void {
    const node = this.nodes[i]!;
    if (m.type === 'voteResponse' && m.granted && !m.preVote) {
      const key = `${m.from}@${m.term}`;
      const earlier = this.votes.get(key);
      if (earlier !== undefined && earlier !== m.to) {
        throw new SafetyViolation('one vote per term', `${m.from} granted its vote in term ${m.term} to ${earlier} and to ${m.to}`);
      }
      this.votes.set(key, m.to);
    } else if (m.type === 'appendResponse' && m.success && m.index > node.disk.lastIndex) {
      throw new SafetyViolation('acknowledge only what is on disk', `${m.from} acknowledged index ${m.index} with ${node.disk.lastIndex} entries on disk`);
    }
  }

  /** Node i applies `e` to its state machine (its applied index is still the one before e). */
  onApply(i: number, e: Entry): void {
    const node = this.nodes[i]!;
    if (e.index !== node.applied + 1) {
      throw new SafetyViolation('state machine safety', `${node.id} applied index ${e.index} right after ${node.applied}`);
    }
    const first = this.appliedAt[e.index];
    if (first === undefined) this.appliedAt[e.index] = e;
    else if (!sameEntry(first, e)) {
      throw new SafetyViolation('state machine safety', `${node.id} applied ${show(e)} at index ${e.index}, another node applied ${show(first)}`);
    }
    // The commit may have moved within this very event (a zero-latency disk applies before the event ends).
    if (this.records[i]!.commitChecked < e.index && node.core !== null) {
      const rec = this.records[i]!;
      this.checkCommit(i, node, rec, node.core.status());
    }
    const known = this.committed[e.index];
    if (known === undefined || !sameEntry(known, e)) {
      throw new SafetyViolation('state machine safety', `${node.id} applied ${show(e)}, but the committed entry there is ${show(known)}`);
    }
  }

  onCrash(i: number): void {
    const rec = this.records[i]!;
    rec.appliedBeforeCrash = Math.max(rec.appliedBeforeCrash, this.nodes[i]!.applied);
    rec.status = null;
    rec.leaderTerm = 0;
  }

  /** Node i restarted from its disk (called before its first event). */
  onRestart(i: number): void {
    const node = this.nodes[i]!;
    const rec = this.records[i]!;
    const commit = node.disk.hardState.commit;
    if (commit < rec.appliedBeforeCrash) {
      throw new SafetyViolation('restart durability', `${node.id} restarted with commit ${commit} after applying up to ${rec.appliedBeforeCrash}`);
    }
    rec.incarnation = node.incarnation;
    rec.commitChecked = 0;
    rec.leaderTerm = 0;
    rec.term = 0;
  }
}
