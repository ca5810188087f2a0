// Safety checkers that run after every simulated event: Election Safety, Log Matching, Leader Append-Only, Leader
// Completeness, State Machine Safety, one vote per term, acknowledge only what is on disk, restart durability, the
// state a snapshot holds, and membership (only voters campaign, a removed node never leads again).
// A violation throws at once, so the failing event is the last one in the trace.
import type { NodeId } from '../../src/lib/ids.js';
import { decodeConfEntry } from '../../src/raft/index.js';
import type { ConfState, Entry, Message, RaftNode, RaftStatus, SnapshotMeta } from '../../src/raft/types.js';
import { covers, type AckMarker } from '../../src/storage/marker.js';
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
  | 'acknowledge only what the marker covers'
  | 'vote only what the marker holds'
  | 'restart durability'
  | 'monotonic term and commit'
  | 'applied exactly once'
  | 'linearizable reads'
  | 'snapshot state'
  | 'membership'
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
  /** The acknowledged-state marker beside its disk (what it says now; null before the first write). */
  readonly marker: { readonly value: AckMarker | null };
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
  /** digestAt[i]: the state machine's digest after the first node to reach index i applied it (or installed it). */
  private readonly digestAt: (string | undefined)[] = [];
  /** The configuration of the latest committed config entry checked, and the index up to which they were checked. */
  private committedConf: ConfState;
  private confCheckedIndex = 0;
  /** Nodes a committed config entry removed: none of them may become leader again (the simulator never re-adds one). */
  private readonly removed = new Set<NodeId>();

  constructor(
    private readonly nodes: readonly CheckedNode[],
    bootstrap: ConfState = { voters: nodes.map((n) => n.id), learners: [] },
  ) {
    this.committedConf = bootstrap;
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
    // A voter that an uncommitted change removes may still campaign (the cluster may need it until the change commits).
    if ((st.role === 'candidate' || st.role === 'precandidate') && !st.voters.includes(node.id) && st.commitIndex >= st.configIndex) {
      throw new SafetyViolation('membership', `${node.id} campaigns in term ${st.term} but is no voter of its configuration (voters ${st.voters.join(',')})`);
    }
  }

  private checkCommit(i: number, node: CheckedNode, rec: NodeRecord, st: RaftStatus): void {
    if (st.commitIndex < rec.commitChecked) {
      throw new SafetyViolation('monotonic term and commit', `${node.id} moved its commit index back from ${rec.commitChecked} to ${st.commitIndex}`);
    }
    const core = node.core!;
    // Entries a snapshot covers are gone; the snapshot's own term at its index must be the committed entry's.
    const snap = st.snapshot;
    if (snap !== null && snap.index > rec.commitChecked && snap.index <= st.commitIndex) this.checkSnapshotTerm(node.id, snap);
    for (let idx = Math.max(rec.commitChecked + 1, st.firstIndex); idx <= st.commitIndex; idx++) {
      const e = core.entryAt(idx as Entry['index']);
      if (e === undefined) throw new SafetyViolation('committed entries are final', `${node.id} commits index ${idx} but holds no entry there`);
      const known = this.committed[idx];
      if (known === undefined) {
        this.committed[idx] = e;
        this.checkCurrentLeadersHold(i, e, st.term);
        if (e.type === 'config') this.onCommittedConfigs();
      } else if (!sameEntry(known, e)) {
        throw new SafetyViolation('committed entries are final', `${node.id} commits ${show(e)} at index ${idx}, but ${show(known)} was committed there`);
      }
    }
    rec.commitChecked = st.commitIndex;
  }

  private checkSnapshotTerm(who: NodeId, snap: SnapshotMeta): void {
    const known = this.committed[snap.index];
    if (known !== undefined && known.term !== snap.term) {
      throw new SafetyViolation('committed entries are final', `${who} holds a snapshot at ${snap.index}/t${snap.term}, but ${show(known)} was committed there`);
    }
  }

  /**
   * Committed config entries, in index order: a node a committed change removed must never become leader again (a
   * leader elected before may still believe it leads its term until it hears of a newer one).
   */
  private onCommittedConfigs(): void {
    for (let idx = this.confCheckedIndex + 1; idx < this.committed.length; idx++) {
      const e = this.committed[idx];
      if (e === undefined) return;
      this.confCheckedIndex = idx;
      if (e.type !== 'config') continue;
      const next = decodeConfEntry(e.data);
      for (const id of [...this.committedConf.voters, ...this.committedConf.learners]) {
        if (!next.voters.includes(id) && !next.learners.includes(id)) this.removed.add(id);
      }
      for (const id of [...next.voters, ...next.learners]) this.removed.delete(id);
      this.committedConf = next;
    }
  }

  /** A newly known committed entry, learned in term t or earlier, must be in the log of every leader of a later term. */
  private checkCurrentLeadersHold(from: number, e: Entry, t: number): void {
    for (let j = 0; j < this.nodes.length; j++) {
      const st = this.records[j]!.status;
      if (j === from || st === null || st.role !== 'leader' || st.term <= t || e.index < st.firstIndex) continue;
      const mine = this.nodes[j]!.core?.entryAt(e.index);
      if (mine === undefined || !sameEntry(mine, e)) {
        throw new SafetyViolation('leader completeness', `leader ${this.nodes[j]!.id} of term ${st.term} lacks committed ${show(e)} (holds ${show(mine)})`);
      }
    }
  }

  private checkLeader(i: number, node: CheckedNode, rec: NodeRecord, st: RaftStatus): void {
    const core = node.core!;
    if (!st.voters.includes(node.id) && st.commitIndex >= st.configIndex) {
      throw new SafetyViolation('membership', `${node.id} still leads term ${st.term} after committing its own removal at ${st.configIndex}`);
    }
    if (rec.leaderTerm !== st.term) {
      if (this.removed.has(node.id)) throw new SafetyViolation('membership', `${node.id} became leader of term ${st.term} after a committed change removed it`);
      const other = this.leaderOfTerm.get(st.term);
      if (other !== undefined && other !== node.id) {
        throw new SafetyViolation('election safety', `${node.id} and ${other} were both leader in term ${st.term}`);
      }
      this.leaderOfTerm.set(st.term, node.id);
      if (st.snapshot !== null) this.checkSnapshotTerm(node.id, st.snapshot);
      for (let idx = st.firstIndex; idx < this.committed.length; idx++) {
        const want = this.committed[idx];
        if (want === undefined) continue;
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
      // A leader may compact its own log: an entry it no longer holds was applied, hence checked when committed.
      if (was !== undefined && rec.leaderLastIndex >= st.firstIndex && (now === undefined || !sameEntry(now, was))) {
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
    let prevTerm = disk.termAt(entries[0]!.index - 1);
    if (prevTerm === undefined) throw new SafetyViolation('log matching', `${this.nodes[i]!.id} persisted entries from ${entries[0]!.index} after a gap`);
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

  /** Before node i's message goes on the wire (an append answer only once what it acknowledges is durable). */
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
    if (m.type === 'appendResponse' && m.success && m.index > 0) {
      // And only what the acknowledged-state marker covers (docs/storage-faults.md): the driver sends an answer once
      // the marker's write after the log's is done, never in between.
      const held = node.marker.value;
      const term = node.disk.termAt(m.index) ?? 0;
      if (held === null || !covers(held.ackedTerm, held.ackedIndex, term, m.index)) {
        const says = held === null ? 'no marker' : `a marker at ${held.ackedIndex} (term ${held.ackedTerm})`;
        throw new SafetyViolation('acknowledge only what the marker covers', `${m.from} acknowledged index ${m.index} (term ${term}) with ${says}`);
      }
    }
    if (m.type === 'voteResponse' && m.granted && !m.preVote) {
      const held = node.marker.value;
      if (held === null || held.term < m.term || (held.term === m.term && held.vote !== m.to)) {
        throw new SafetyViolation('vote only what the marker holds', `${m.from} granted its vote in term ${m.term} to ${m.to} with the marker at term ${held?.term ?? '-'} vote ${held?.vote ?? '-'}`);
      }
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

  /** Node i applied up to `index` (by an entry or a snapshot); its state machine's digest must be everyone's there. */
  afterApply(i: number, index: number, digest: string): void {
    const first = this.digestAt[index];
    if (first === undefined) this.digestAt[index] = digest;
    else if (first !== digest) {
      throw new SafetyViolation('state machine safety', `${this.nodes[i]!.id} has state ${digest} after applying up to ${index}, another node had ${first}`);
    }
  }

  /**
   * Node i's state machine now holds snapshot `meta` (taken there, installed from the leader, or restored from its
   * disk): its state must be what every node had after applying up to the snapshot's index, and its term the one
   * committed there.
   */
  onSnapshot(i: number, meta: SnapshotMeta, digest: string, how: 'taken' | 'installed' | 'restored'): void {
    const id = this.nodes[i]!.id;
    this.checkSnapshotTerm(id, meta);
    const first = this.digestAt[meta.index];
    if (first === undefined) this.digestAt[meta.index] = digest;
    else if (first !== digest) {
      throw new SafetyViolation('snapshot state', `${id} ${how} a snapshot at ${meta.index} holding state ${digest}, but the state there is ${first}`);
    }
  }

  /**
   * A storage fault took synced data from node i (on purpose): what it applied before need not be on its disk any
   * more; the other checks stay as they are (its marker must keep it from voting or acknowledging with what is left).
   */
  onDamage(i: number): void {
    this.records[i]!.appliedBeforeCrash = 0;
  }

  /**
   * Node i crashes (called before its unsynced writes are lost). What it applied must be on its own disk, except what
   * a leader applied while its own copy was on its way there: that must be on the disks of a quorum of the others
   * (Raft thesis 10.2.1), and its restart is then not asked to hold it.
   */
  onCrash(i: number): void {
    const node = this.nodes[i]!;
    const rec = this.records[i]!;
    const own = Math.max(node.disk.lastIndex, node.disk.snapshot?.meta.index ?? 0);
    const voters = rec.status?.voters ?? this.committedConf.voters;
    let othersHold = true;
    for (let idx = own + 1; idx <= node.applied && othersHold; idx++) othersHold = this.heldByQuorumOfOthers(i, idx, voters);
    // Not held by a quorum of the others: its restart must hold it, as for anything else it applied.
    rec.appliedBeforeCrash = Math.max(rec.appliedBeforeCrash, othersHold ? Math.min(node.applied, own) : node.applied);
    rec.status = null;
    rec.leaderTerm = 0;
  }

  /** Whether a quorum of `voters` other than node i holds the applied entry at idx durably (in its log or snapshot). */
  private heldByQuorumOfOthers(i: number, idx: number, voters: readonly NodeId[]): boolean {
    const want = this.appliedAt[idx];
    if (want === undefined) return false;
    let holders = 0;
    for (const [j, n] of this.nodes.entries()) {
      if (j === i || !voters.includes(n.id)) continue;
      if ((n.disk.snapshot?.meta.index ?? 0) >= idx || n.disk.termAt(idx) === want.term) holders++;
    }
    return holders >= Math.floor(voters.length / 2) + 1;
  }

  /**
   * Node i restarted from its disk (called before its first event). Its log must still hold everything it applied
   * (those entries were synced before they were applied); its commit index may be older (a commit-only write needs
   * no sync: the node learns it again).
   */
  onRestart(i: number): void {
    const node = this.nodes[i]!;
    const rec = this.records[i]!;
    const held = Math.max(node.disk.lastIndex, node.disk.snapshot?.meta.index ?? 0);
    if (held < rec.appliedBeforeCrash) {
      throw new SafetyViolation('restart durability', `${node.id} restarted with its log up to ${held} after applying up to ${rec.appliedBeforeCrash}`);
    }
    rec.incarnation = node.incarnation;
    rec.commitChecked = 0;
    rec.leaderTerm = 0;
    rec.term = 0;
  }
}
