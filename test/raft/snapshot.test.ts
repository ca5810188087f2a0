// Snapshots and log compaction: compact() and snapshotMeta(), the leader's 'snapshot' message and progress state,
// reportSnapshot(), a follower installing (or ignoring) a snapshot, restarts from a snapshot, and whole clusters
// where a lagging follower catches up through one.
import { describe, expect, it } from 'vitest';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { createRaftNode } from '../../src/raft/index.js';
import type { Message, RaftNode, SnapshotMeta } from '../../src/raft/index.js';
import {
  Network,
  append,
  appendResponse,
  becomeLeader,
  dec,
  enc,
  entriesWithTerms,
  entry,
  heartbeatResponse,
  makeConfig,
  newNode,
  ofType,
  readMessages,
} from './harness.js';

type Msg<T extends Message['type']> = Extract<Message, { type: T }>;

const voters3 = ['n1', 'n2', 'n3'];

function meta(index: number, t: number, voters: readonly string[] = voters3, learners: readonly string[] = []): SnapshotMeta {
  return { index: logIndex(index), term: term(t), voters: voters.map(nodeId), learners: learners.map(nodeId) };
}

function snapshotMsg(from: string, to: string, t: number, snap: SnapshotMeta): Msg<'snapshot'> {
  return { type: 'snapshot', from: nodeId(from), to: nodeId(to), term: term(t), snapshot: snap };
}

/** Applies everything committed (readMessages advances every Ready). */
function applyAll(r: RaftNode): Message[] {
  return readMessages(r);
}

/**
 * n1 leads term 2 over a log of five term-1 entries plus its no-op (6), committed with n2 alone, applied, and
 * compacted at 6. n3 never answered; its first probe is still unanswered.
 */
function compactedLeader(): { r: RaftNode; snap: SnapshotMeta } {
  const r = newNode('n1', { terms: [1, 1, 1, 1, 1], hardState: { term: 1, commit: 5 } });
  applyAll(r);
  becomeLeader(r);
  readMessages(r);
  r.step(appendResponse('n2', 'n1', 2, true, 6));
  applyAll(r);
  const snap = r.snapshotMeta(logIndex(6))!;
  expect(r.compact(snap)).toBe(true);
  return { r, snap };
}

/** compactedLeader(), then n3 rejects the probe with an empty log: the leader asks for a snapshot to n3. */
function leaderSendingSnapshot(): { r: RaftNode; snap: SnapshotMeta; msgs: Message[] } {
  const { r, snap } = compactedLeader();
  r.step(appendResponse('n3', 'n1', 2, false, 5, 0, 1));
  return { r, snap, msgs: readMessages(r) };
}

describe('compaction', () => {
  it('compact: the log drops the entries a snapshot covers and keeps the term at its index as the term before the log', () => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a', 'b', 'c');
    net.tickAll(1);
    const n1 = net.node('n1');
    const snap = n1.takeSnapshot();
    expect(snap).toEqual(meta(4, 1));
    expect(n1.raft.status()).toMatchObject({ firstIndex: 5, lastIndex: 4, lastTerm: 1, commitIndex: 4, appliedIndex: 4, snapshot: snap });
    expect(n1.raft.entryAt(logIndex(4))).toBeUndefined();
    net.propose('n1', 'd');
    net.tickAll(1);
    for (const id of voters3) expect(net.node(id).appliedCommands()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('compact: retainEntries keeps a tail of entries before the snapshot for followers just behind', () => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a', 'b', 'c');
    const n1 = net.node('n1');
    expect(n1.takeSnapshot(2)).toEqual(meta(4, 1));
    expect(n1.raft.status()).toMatchObject({ firstIndex: 3, snapshot: meta(4, 1) });
    expect(dec(n1.raft.entryAt(logIndex(3))!.data)).toBe('b');
  });

  it('compact: refuses a snapshot beyond the applied index, older than the current one, or with a wrong term or configuration', () => {
    const r = newNode('n1', { terms: [1, 1, 2, 2], hardState: { term: 2, commit: 3 } });
    expect(r.snapshotMeta(logIndex(1))).toBeNull(); // nothing applied yet
    applyAll(r);
    expect(r.snapshotMeta(logIndex(4))).toBeNull(); // committed? no: beyond applied
    expect(r.snapshotMeta(logIndex(3))).toEqual(meta(3, 2));
    expect(r.compact(meta(4, 2))).toBe(false);
    expect(r.compact(meta(3, 1))).toBe(false);
    expect(r.compact(meta(3, 2, ['n1', 'n2']))).toBe(false);
    expect(r.status().firstIndex).toBe(1);
    expect(r.compact(meta(2, 1))).toBe(true);
    expect(r.compact(meta(1, 1))).toBe(false);
    expect(r.compact(meta(2, 1))).toBe(false);
    expect(r.snapshotMeta(logIndex(1))).toBeNull(); // compacted away
    expect(r.snapshotMeta(logIndex(2))).toEqual(meta(2, 1));
    expect(r.status()).toMatchObject({ firstIndex: 3, lastIndex: 4, snapshot: meta(2, 1) });
  });
});

describe('sending snapshots', () => {
  it('a follower that needs compacted entries gets a snapshot message, and its progress waits in state snapshot', () => {
    const { r, snap, msgs } = leaderSendingSnapshot();
    expect(msgs).toEqual([snapshotMsg('n1', 'n3', 2, snap)]);
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'snapshot', pendingSnapshot: 6, match: 0 });
  });

  it('while a snapshot is on its way the follower gets heartbeats but no appends', () => {
    const { r } = leaderSendingSnapshot();
    r.propose([enc('x')]);
    r.tick();
    const out = readMessages(r);
    expect(ofType(out, 'append').map((m) => m.to)).toEqual(['n2']);
    expect(ofType(out, 'heartbeat').map((m) => m.to)).toEqual(['n2', 'n3']);
    r.step(heartbeatResponse('n3', 'n1', 2));
    expect(ofType(readMessages(r), 'append')).toEqual([]);
  });

  it('reportSnapshot failure: back to probe, and the snapshot goes again once the follower answers a heartbeat', () => {
    const { r, snap } = leaderSendingSnapshot();
    r.reportSnapshot(nodeId('n3'), 'failure');
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'probe', pendingSnapshot: 0, next: 1 });
    expect(readMessages(r)).toEqual([]);
    r.step(heartbeatResponse('n3', 'n1', 2));
    expect(readMessages(r)).toEqual([snapshotMsg('n1', 'n3', 2, snap)]);
  });

  it('reportSnapshot finish: probe right after the snapshot, waiting for the follower to answer, then replicate', () => {
    const { r } = leaderSendingSnapshot();
    r.reportSnapshot(nodeId('n3'), 'finish');
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'probe', next: 7 });
    expect(readMessages(r)).toEqual([]);
    r.step(appendResponse('n3', 'n1', 2, true, 6));
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'replicate', match: 6, next: 7 });
    r.propose([enc('x')]);
    const toN3 = ofType(readMessages(r), 'append').filter((m) => m.to === 'n3' && m.entries.length > 0);
    expect(toN3.map((m) => [m.prevLogIndex, m.entries.map((e) => e.index)])).toEqual([[6, [7]]]);
  });

  it('the follower answering at the snapshot index ends the snapshot state even before the report, which is then ignored', () => {
    const { r } = leaderSendingSnapshot();
    r.step(appendResponse('n3', 'n1', 2, true, 6));
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'replicate', match: 6 });
    r.reportSnapshot(nodeId('n3'), 'failure');
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'replicate', match: 6 });
  });

  it('a rejection arriving while a snapshot is on its way changes nothing', () => {
    const { r } = leaderSendingSnapshot();
    r.step(appendResponse('n3', 'n1', 2, false, 0, 0, 1));
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ state: 'snapshot', pendingSnapshot: 6 });
    expect(readMessages(r)).toEqual([]);
  });

  it('ReadIndex keeps working while a follower waits for a snapshot: its heartbeat answers count', () => {
    const { r } = leaderSendingSnapshot();
    r.readIndex('ctx');
    const hb = ofType(readMessages(r), 'heartbeat').find((m) => m.to === 'n3' && m.context !== '')!;
    r.step(heartbeatResponse('n3', 'n1', 2, hb.context));
    const rd = r.ready();
    expect(rd.readStates).toEqual([{ index: 6, context: 'ctx' }]);
    r.advance(rd);
  });

  it('leadership transfer to a follower that needs a snapshot hands over once it caught up', () => {
    const { r } = leaderSendingSnapshot();
    expect(r.transferLeadership(nodeId('n3'))).toEqual({ ok: true, target: 'n3' });
    expect(ofType(readMessages(r), 'timeoutNow')).toEqual([]);
    r.step(appendResponse('n3', 'n1', 2, true, 6));
    expect(ofType(readMessages(r), 'timeoutNow').map((m) => m.to)).toEqual(['n3']);
  });
});

describe('receiving snapshots', () => {
  it('a snapshot past the log: Ready.snapshot, commit at its index, the log restarted after it, an acknowledgement at its index', () => {
    const r = newNode('n2', { terms: [1, 1], hardState: { term: 1, commit: 1 } });
    applyAll(r);
    const snap = meta(10, 2);
    r.step(snapshotMsg('n1', 'n2', 2, snap));
    const rd = r.ready();
    expect(rd.snapshot).toEqual(snap);
    expect(rd.hardState).toEqual({ term: 2, vote: null, commit: 10 });
    expect(rd.entries).toEqual([]);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages).toEqual([appendResponse('n2', 'n1', 2, true, 10)]);
    r.advance(rd);
    expect(r.status()).toMatchObject({ firstIndex: 11, lastIndex: 10, lastTerm: 2, commitIndex: 10, appliedIndex: 10, snapshot: snap, leaderId: 'n1' });
    expect(r.hasReady()).toBe(false);
    r.step(append('n1', 'n2', 2, 10, 2, [entry(11, 2)], 11));
    const rd2 = r.ready();
    expect(rd2.snapshot).toBeNull();
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([11]);
    r.advance(rd2);
  });

  it('a snapshot older than the follower commit is ignored and answered with its commit', () => {
    const r = newNode('n2', { terms: [1, 1, 1], hardState: { term: 1, commit: 3 } });
    applyAll(r);
    r.step(snapshotMsg('n1', 'n2', 1, meta(2, 1)));
    const rd = r.ready();
    expect(rd.snapshot).toBeNull();
    expect(rd.messages).toEqual([appendResponse('n2', 'n1', 1, true, 3)]);
    r.advance(rd);
    expect(r.status()).toMatchObject({ firstIndex: 1, snapshot: null });
  });

  it('a snapshot whose last entry the follower holds only moves its commit; the entries are applied from the log', () => {
    const r = newNode('n2', { terms: [1, 1, 1, 1, 1], hardState: { term: 1, commit: 1 } });
    applyAll(r);
    r.step(snapshotMsg('n1', 'n2', 1, meta(4, 1)));
    const rd = r.ready();
    expect(rd.snapshot).toBeNull();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2, 3, 4]);
    expect(rd.messages).toEqual([appendResponse('n2', 'n1', 1, true, 4)]);
    r.advance(rd);
    expect(r.status()).toMatchObject({ firstIndex: 1, lastIndex: 5, commitIndex: 4 });
  });

  it('a snapshot whose index the follower holds with another term replaces the whole log', () => {
    const r = newNode('n2', { terms: [1, 1, 2, 2], hardState: { term: 2, commit: 1 } });
    applyAll(r);
    r.step(snapshotMsg('n1', 'n2', 3, meta(3, 3)));
    const rd = r.ready();
    expect(rd.snapshot).toEqual(meta(3, 3));
    r.advance(rd);
    expect(r.status()).toMatchObject({ firstIndex: 4, lastIndex: 3, lastTerm: 3, commitIndex: 3 });
    expect(r.entryAt(logIndex(4))).toBeUndefined();
  });

  it('a snapshot from an older term is refused like an old append, so its sender learns the newer term', () => {
    const r = newNode('n2', { hardState: { term: 5 } });
    r.step(snapshotMsg('n1', 'n2', 3, meta(10, 3)));
    expect(readMessages(r)).toEqual([appendResponse('n2', 'n1', 5, false, 0)]);
    expect(r.status().snapshot).toBeNull();
  });

  it('a snapshot brings its configuration: Ready.confState and status report it', () => {
    const r = newNode('n2');
    r.step(snapshotMsg('n1', 'n2', 1, meta(5, 1, voters3, ['n4'])));
    const rd = r.ready();
    expect(rd.confState).toEqual({ voters: voters3, learners: ['n4'] });
    r.advance(rd);
    expect(r.status()).toMatchObject({ voters: voters3, learners: ['n4'], configIndex: 5 });
  });

  it('a node does not campaign while a received snapshot waits to be installed', () => {
    const r = newNode('n2');
    r.step(snapshotMsg('n1', 'n2', 1, meta(5, 1)));
    for (let i = 0; i < 40; i++) r.tick();
    expect(r.status().role).toBe('follower');
    applyAll(r);
    for (let i = 0; i < 40; i++) r.tick();
    expect(r.status().role).toBe('candidate');
  });

  it('acknowledgements of entries a snapshot replaced before they reached the disk are not sent', () => {
    const r = newNode('n2', { terms: [1], hardState: { term: 1, commit: 1 } });
    applyAll(r);
    r.step(append('n1', 'n2', 1, 1, 1, [entry(2, 1), entry(3, 1), entry(4, 1), entry(5, 1)], 1));
    r.step(snapshotMsg('n3', 'n2', 2, meta(4, 2)));
    const acks = ofType(readMessages(r), 'appendResponse');
    expect(acks.map((m) => [m.to, m.index])).toEqual([['n3', 4]]);
  });
});

describe('restarting from a snapshot', () => {
  const config = makeConfig('n2', voters3, 1);

  it('the state machine holds the snapshot: applied starts at its index, the log right after it, older entries are dropped', () => {
    const r = createRaftNode(config, {
      hardState: { term: term(2), vote: null, commit: logIndex(6) },
      entries: entriesWithTerms([1, 1, 1, 1, 1, 2, 2, 2]).slice(3),
      applied: logIndex(0),
      snapshot: meta(5, 1),
    });
    expect(r.status()).toMatchObject({ firstIndex: 6, lastIndex: 8, commitIndex: 6, appliedIndex: 5, snapshot: meta(5, 1) });
    const rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([6]);
    expect(rd.snapshot).toBeNull();
    r.advance(rd);
  });

  it('a snapshot without entries after it, and a commit below it, start at the snapshot', () => {
    const r = createRaftNode(config, { hardState: { term: term(3), vote: null, commit: logIndex(0) }, entries: [], applied: logIndex(0), snapshot: meta(9, 3) });
    expect(r.status()).toMatchObject({ firstIndex: 10, lastIndex: 9, lastTerm: 3, commitIndex: 9, appliedIndex: 9 });
    expect(r.hasReady()).toBe(false);
  });

  it('a corrupt start is refused: a gap after the snapshot, another term at its index, a log not from 1 without one', () => {
    const hs = { term: term(2), vote: null, commit: logIndex(0) };
    const cases = [
      { hardState: hs, entries: [entry(8, 2)], applied: logIndex(0), snapshot: meta(5, 1) },
      { hardState: hs, entries: [entry(5, 2), entry(6, 2)], applied: logIndex(0), snapshot: meta(5, 1) },
      { hardState: hs, entries: [entry(3, 1)], applied: logIndex(0) },
      { hardState: { ...hs, term: term(1) }, entries: [], applied: logIndex(0), snapshot: meta(5, 2) },
    ];
    for (const initial of cases) {
      expect(() => createRaftNode(config, initial), JSON.stringify(initial.entries.map((e) => e.index))).toThrow(MinkubeError);
    }
  });
});

describe('snapshots in a cluster', () => {
  function farBehind(): Network {
    const net = new Network(3);
    net.elect('n1');
    net.isolate('n3');
    for (let i = 0; i < 20; i++) net.propose('n1', `c${i}`);
    net.tickAll(1);
    net.node('n1').takeSnapshot();
    net.node('n2').takeSnapshot(5);
    return net;
  }

  it('a follower far behind catches up by a snapshot, then by appends, and applies the same entries as the others', () => {
    const net = farBehind();
    net.heal();
    net.tickAll(3);
    net.propose('n1', 'after');
    net.tickAll(1);
    const n3 = net.node('n3');
    expect(n3.installed).toEqual([meta(21, 1)]);
    expect(n3.raft.status()).toMatchObject({ firstIndex: 22, commitIndex: 22, appliedIndex: 22 });
    expect(n3.appliedCommands()).toEqual(net.node('n1').appliedCommands());
    expect(n3.appliedCommands()).toHaveLength(21);
    // It restarts from what it stored: the snapshot and the entry after it.
    net.restart('n3');
    net.tickAll(2);
    expect(net.node('n3').appliedCommands()).toEqual(net.node('n1').appliedCommands());
  });

  it('a lost snapshot is reported as failed and sent again once the follower answers', () => {
    const net = farBehind();
    net.heal();
    const stopDropping = net.drop((m) => m.type === 'snapshot');
    net.tickAll(3);
    expect(net.node('n3').installed).toEqual([]);
    expect(net.raft('n1').status().progress.get(nodeId('n3'))?.state).not.toBe('snapshot');
    stopDropping();
    net.tickAll(3);
    expect(net.node('n3').installed).toHaveLength(1);
    expect(ofType(net.trace, 'snapshot').length).toBeGreaterThanOrEqual(2);
    expect(net.node('n3').appliedCommands()).toEqual(net.node('n1').appliedCommands());
  });

  it('a snapshot is not retried to a follower that does not answer', () => {
    const net = farBehind();
    net.heal();
    net.drop((m) => m.type === 'snapshot');
    net.tickAll(1);
    net.isolate('n3');
    const before = ofType(net.trace, 'snapshot').length;
    net.tickAll(50);
    expect(ofType(net.trace, 'snapshot').length).toBe(before);
  });

  it('a leader restarted from its snapshot sends that snapshot to a follower that is behind', () => {
    const net = farBehind();
    net.restart('n1');
    net.heal();
    net.tickAll(40);
    const leader = net.leader()!;
    net.propose(leader.id, 'after');
    net.tickAll(2);
    expect(net.node('n3').appliedCommands()).toEqual([...Array.from({ length: 20 }, (_, i) => `c${i}`), 'after']);
  });
});
