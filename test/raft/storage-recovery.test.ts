// The core's rules for a node recovering lost or damaged storage (issue 19, docs/storage-faults.md), and the leader's
// side: flagged answers count for nothing, and a follower that restarted with less than it acknowledged is re-probed.
import { describe, expect, it } from 'vitest';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { createRaftNode } from '../../src/raft/index.js';
import type { RaftNode } from '../../src/raft/types.js';
import {
  append,
  appendResponse,
  becomeLeader,
  commitNoop,
  entriesWithTerms,
  enc,
  heartbeat,
  heartbeatResponse,
  makeConfig,
  ofType,
  readMessages,
  vote,
  voteResponse,
} from './harness.js';

/** n2 of n1..n3, with a log of these terms, recovering towards (index, term). */
function recoveringNode(terms: number[], target: { index: number; term: number }, hsTerm = terms.at(-1) ?? 0): RaftNode {
  return createRaftNode(makeConfig('n2', ['n1', 'n2', 'n3'], 7, { preVote: true, checkQuorum: true }), {
    hardState: { term: term(hsTerm), vote: null, commit: logIndex(0) },
    entries: entriesWithTerms(terms),
    applied: logIndex(0),
    recovering: target,
  });
}

describe('a recovering node', () => {
  it('refuses every vote and pre-vote, says why, and never campaigns', () => {
    const r = recoveringNode([1, 1], { index: 5, term: 1 });
    r.step(vote('n1', 'n2', 2, 9, 1, { preVote: true }));
    r.step(vote('n3', 'n2', 2, 9, 1));
    const answers = ofType(readMessages(r), 'voteResponse');
    expect(answers.map((m) => [m.granted, m.recovering])).toEqual([
      [false, true],
      [false, true],
    ]);
    for (let i = 0; i < 100; i++) r.tick();
    expect(ofType(readMessages(r), 'vote')).toEqual([]);
    expect(r.status().recovering).toEqual({ index: 5, term: 1 });
  });

  it('flags its answers, and commits from a heartbeat only what an append of this term matched', () => {
    const r = recoveringNode([1, 1, 1], { index: 5, term: 1 });
    // The leader believes it holds 3 and says commit 3: nothing was verified in term 2 yet.
    r.step(heartbeat('n1', 'n2', 2, 3));
    expect(r.status().commitIndex).toBe(0);
    expect(ofType(readMessages(r), 'heartbeatResponse')[0]!.recovering).toBe(true);
    r.step(append('n1', 'n2', 2, 1, 1, [], 0));
    expect(ofType(readMessages(r), 'appendResponse')[0]).toMatchObject({ success: true, index: 1, recovering: true });
    r.step(heartbeat('n1', 'n2', 2, 3));
    expect(r.status().commitIndex).toBe(1);
  });

  it('is a voter again once its commit reaches what it had acknowledged, and those entries are synced', () => {
    const r = recoveringNode([1, 1], { index: 4, term: 1 });
    r.step(append('n1', 'n2', 1, 2, 1, entriesWithTerms([1, 1, 1, 1]).slice(2), 3));
    expect(r.status().recovering).not.toBeNull();
    r.step(heartbeat('n1', 'n2', 1, 4));
    // Committed in memory only: a crash now would bring back the log it had before.
    expect(r.status().recovering).not.toBeNull();
    readMessages(r);
    expect(r.status().recovering).toBeNull();
    for (let i = 0; i < 40; i++) r.tick();
    r.step(vote('n3', 'n2', 5, 4, 1));
    expect(ofType(readMessages(r), 'voteResponse').at(-1)).toMatchObject({ granted: true });
  });

  it('is done when it commits an entry of a later term than the last it had acknowledged, wherever that ended', () => {
    // It had acknowledged index 9 of term 1, which a later leader never had: commit 3 of term 2 settles it.
    const r = recoveringNode([1, 1], { index: 9, term: 1 }, 2);
    r.step(append('n1', 'n2', 2, 2, 1, [{ term: term(2), index: logIndex(3), type: 'noop', data: new Uint8Array() }], 3));
    expect(r.status().commitIndex).toBe(3);
    expect(r.status().recovering).not.toBeNull();
    readMessages(r);
    expect(r.status().recovering).toBeNull();
  });

  it('is a voter again once its synced log holds the very entry it had acknowledged, whatever the commit index', () => {
    // A majority restarted with older copies, their targets just past the leader's commit: the leader could not
    // commit without them, nor could they wait for its commit (a black-box tester's cluster stood still for good).
    const r = recoveringNode([1, 1], { index: 5, term: 1 });
    r.step(append('n1', 'n2', 1, 2, 1, entriesWithTerms([1, 1, 1, 1, 1, 1]).slice(2), 2));
    expect(r.status().commitIndex).toBe(2);
    expect(r.status().recovering).not.toBeNull(); // not synced yet
    readMessages(r);
    expect(r.status().recovering).toBeNull();
    expect(r.status().commitIndex).toBe(2);
  });

  it('is done at its start when its log still holds the entry it had acknowledged, and a lone voter then leads', () => {
    // RepairDB repaired a one-manager cluster's store and lost nothing: no message or Ready would ever come to end
    // the recovery, and it refused every write for good (outside tester).
    const r = createRaftNode(makeConfig('n1', ['n1'], 7, { preVote: true, checkQuorum: true }), {
      hardState: { term: term(1), vote: null, commit: logIndex(0) },
      entries: entriesWithTerms([1, 1, 1]),
      applied: logIndex(0),
      recovering: { index: 3, term: 1 },
    });
    expect(r.status().recovering).toBeNull();
    for (let i = 0; i < 40 && r.status().role !== 'leader'; i++) {
      r.tick();
      readMessages(r);
    }
    expect(r.status().role).toBe('leader');
    // One that lacks it still waits.
    expect(recoveringNode([1, 1], { index: 3, term: 1 }).status().recovering).toEqual({ index: 3, term: 1 });
  });

  it('stays recovering while the entry at its target is of another term (the one it acknowledged is gone)', () => {
    const r = recoveringNode([1, 1], { index: 4, term: 1 }, 2);
    r.step(append('n1', 'n2', 2, 2, 1, [3, 4].map((i) => ({ term: term(2), index: logIndex(i), type: 'noop' as const, data: new Uint8Array() })), 2));
    readMessages(r);
    // 4/t2 in place of the 4/t1 it acknowledged: only a commit that covers an entry of a later term says that 4/t1
    // can never be committed; commit 2 does not.
    expect(r.status().recovering).not.toBeNull();
  });

  it('stays recovering while its synced log is less up to date than what it had acknowledged', () => {
    // It had acknowledged 3 of term 2; the leader's log holds 3 of term 1 (that entry was never committed) and
    // commits it: settled, but a crash now would restart with a log ending at 3/t1, below the marker's 3/t2.
    const r = recoveringNode([1, 1], { index: 3, term: 2 }, 3);
    r.step(append('n1', 'n2', 3, 2, 1, [{ term: term(1), index: logIndex(3), type: 'command', data: new Uint8Array() }], 3));
    readMessages(r);
    expect(r.status().commitIndex).toBe(3);
    expect(r.status().recovering).not.toBeNull();
    // The leader's entry of its own term, synced, covers it.
    r.step(append('n1', 'n2', 3, 3, 1, [{ term: term(3), index: logIndex(4), type: 'noop', data: new Uint8Array() }], 4));
    readMessages(r);
    expect(r.status().recovering).toBeNull();
  });
});

describe('the leader and a recovering follower', () => {
  function leader(): RaftNode {
    const r = createRaftNode(makeConfig('n1', ['n1', 'n2', 'n3'], 3), { hardState: { term: term(0), vote: null, commit: logIndex(0) }, entries: [], applied: logIndex(0) });
    becomeLeader(r);
    commitNoop(r);
    return r;
  }

  it('counts its acknowledgements in no quorum, forgets its match, and counts it again once it says it is repaired', () => {
    const r = leader();
    const before = r.status().commitIndex;
    r.propose([enc('a')]);
    const last = r.status().lastIndex;
    readMessages(r);
    r.step({ ...appendResponse('n2', 'n1', r.status().term, true, last), recovering: true });
    expect(r.status().commitIndex).toBe(before);
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ recovering: true, match: last });
    r.step({ ...heartbeatResponse('n2', 'n1', r.status().term), recovering: true });
    expect(r.status().commitIndex).toBe(before);
    expect(r.status().peersRecovering).toEqual(['n2']);
    r.step(appendResponse('n2', 'n1', r.status().term, true, last));
    expect(r.status().commitIndex).toBe(last);
    expect(r.status().progress.get(nodeId('n2'))!.recovering).toBe(false);
  });

  it('refuses a change whose voters with intact storage would be no quorum of it: removing an intact voter, itself included', () => {
    const r = leader();
    const t = r.status().term;
    r.step({ ...heartbeatResponse('n3', 'n1', t), recovering: true });
    // { n1, n3 } or { n2, n3 }: n3 votes for no one and counts towards no commit, so the change itself never commits,
    // and once the leader steps down nobody can be elected again (issue: only --force-new-cluster got out of it).
    for (const id of ['n2', 'n1']) {
      expect(r.proposeConfChange({ type: 'remove', nodeId: nodeId(id) })).toEqual({ ok: false, reason: 'VOTERS_RECOVERING', leaderId: 'n1' });
    }
    expect(r.status()).toMatchObject({ voters: ['n1', 'n2', 'n3'], lastIndex: 1 });
    // Adding a learner changes no quorum; removing the recovering voter leaves { n1, n2 }, both intact.
    expect(r.proposeConfChange({ type: 'addLearner', nodeId: nodeId('n4') })).toMatchObject({ ok: true });
    for (const m of ofType(readMessages(r), 'append')) if (m.to !== 'n3') r.step(appendResponse(m.to, 'n1', t, true, m.prevLogIndex + m.entries.length));
    readMessages(r);
    // A learner whose own storage recovers is no intact voter either: { n1, n2, n3, n4 } needs three.
    r.step({ ...appendResponse('n4', 'n1', t, true, r.status().lastIndex), recovering: true });
    expect(r.proposeConfChange({ type: 'promote', nodeId: nodeId('n4') })).toMatchObject({ ok: false, reason: 'VOTERS_RECOVERING' });
    expect(r.proposeConfChange({ type: 'remove', nodeId: nodeId('n3') })).toMatchObject({ ok: true });
  });

  it('counts a recovering voter again once it says it is repaired', () => {
    const r = leader();
    const t = r.status().term;
    r.step({ ...heartbeatResponse('n3', 'n1', t), recovering: true });
    expect(r.proposeConfChange({ type: 'remove', nodeId: nodeId('n2') })).toMatchObject({ ok: false, reason: 'VOTERS_RECOVERING' });
    r.step(heartbeatResponse('n3', 'n1', t));
    expect(r.proposeConfChange({ type: 'remove', nodeId: nodeId('n2') })).toMatchObject({ ok: true });
  });

  it('refuses at once to hand leadership to a voter recovering its storage (it cannot campaign), and keeps accepting proposals', () => {
    const r = leader();
    const t = r.status().term;
    r.step({ ...heartbeatResponse('n2', 'n1', t), recovering: true });
    expect(r.transferLeadership(nodeId('n2'))).toEqual({ ok: false, reason: 'n2 is recovering its storage and cannot lead until it is repaired' });
    expect(r.propose([enc('a')])).toMatchObject({ ok: true });
    expect(ofType(readMessages(r), 'timeoutNow')).toEqual([]);
    // Without a target: the most caught-up voter with intact storage; none left says so.
    r.step({ ...heartbeatResponse('n3', 'n1', t), recovering: true });
    expect(r.transferLeadership(null)).toEqual({ ok: false, reason: 'every other voter is recovering its storage' });
  });

  it('resets the progress of a follower that first says it is recovering, and probes it from the end of the log', () => {
    const r = leader();
    const t = r.status().term;
    const last = r.status().lastIndex;
    r.step(appendResponse('n3', 'n1', t, true, last));
    r.step({ ...heartbeatResponse('n3', 'n1', t), recovering: true });
    expect(r.status().progress.get(nodeId('n3'))).toMatchObject({ match: 0, next: last + 1, state: 'probe', recovering: true });
  });

  it('re-probes a follower whose new incarnation rejects below its match; a reordered answer of the same one keeps the old rule', () => {
    const r = leader();
    const t = r.status().term;
    r.propose([enc('a'), enc('b'), enc('c')]);
    readMessages(r);
    const last = r.status().lastIndex;
    r.step({ ...appendResponse('n2', 'n1', t, true, last), incarnation: 11 });
    r.propose([enc('d')]);
    readMessages(r);
    // Same incarnation, pointing below its match: an old answer, ignored as before.
    r.step({ ...appendResponse('n2', 'n1', t, false, last + 1, 0, 1), incarnation: 11 });
    expect(r.status().progress.get(nodeId('n2'))!.match).toBe(last);
    // Another incarnation: it restarted with an empty log.
    r.step({ ...appendResponse('n2', 'n1', t, false, last + 1, 0, 1), incarnation: 12 });
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ match: 0, next: 1 });
    const probe = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').at(-1);
    expect(probe?.prevLogIndex).toBe(0);
  });

  it('probes at its match a follower that answers a heartbeat from a new incarnation (a wiped directory in a quiet cluster)', () => {
    const r = leader();
    const t = r.status().term;
    r.propose([enc('a'), enc('b')]);
    readMessages(r);
    const last = r.status().lastIndex;
    r.step({ ...appendResponse('n2', 'n1', t, true, last), incarnation: 21 });
    readMessages(r);
    // The same incarnation: nothing to send in a quiet cluster.
    r.step({ ...heartbeatResponse('n2', 'n1', t), incarnation: 21 });
    expect(ofType(readMessages(r), 'append').filter((m) => m.to === 'n2')).toEqual([]);
    // Restarted (wiped, marker and all: it knows of nothing it lost): a probe at its match shows what it holds.
    r.step({ ...heartbeatResponse('n2', 'n1', t), incarnation: 22 });
    const probe = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').at(-1);
    expect(probe?.prevLogIndex).toBe(last);
    r.step({ ...appendResponse('n2', 'n1', t, false, last, 0, 1), incarnation: 22 });
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ match: 0, next: 1 });
    expect(ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').at(-1)?.prevLogIndex).toBe(0);
  });
});

describe('learning who recovers its storage, whatever the term of its answer', () => {
  const voters = ['n1', 'n2', 'n3'];
  function node(id: string, seed: number, terms: number[], hsTerm: number, target?: { index: number; term: number }): RaftNode {
    return createRaftNode(makeConfig(id, voters, seed, { preVote: true, checkQuorum: true }), {
      hardState: { term: term(hsTerm), vote: null, commit: logIndex(target === undefined ? terms.length : 0) },
      entries: entriesWithTerms(terms),
      applied: logIndex(0),
      ...(target === undefined ? {} : { recovering: target }),
    });
  }

  /** Ticks every node and delivers every message until quiet, `rounds` times. */
  function run(nodes: Map<string, RaftNode>, rounds: number): void {
    for (let i = 0; i < rounds; i++) {
      for (const r of nodes.values()) r.tick();
      for (let steps = 0; steps < 1000; steps++) {
        const msgs = [...nodes.values()].flatMap(readMessages);
        if (msgs.length === 0) break;
        for (const m of msgs) nodes.get(m.to)?.step(m);
      }
    }
  }

  it('an intact node learns that a voter recovering in an older term than its own is recovering (its refusals are not stale)', () => {
    // An outside re-test: n3 led term 1 and crashed, n2 led term 2 and crashed, both came back wiped (markers kept).
    // n3's refusals of n1's pre-votes came in term 1 and were dropped: n1 named no recovering voter but n2, and
    // said nothing of why no leader came.
    const n1 = node('n1', 1, [1, 2], 2);
    const nodes = new Map<string, RaftNode>([
      ['n1', n1],
      ['n2', node('n2', 2, [], 2, { index: 2, term: 2 })],
      ['n3', node('n3', 3, [], 1, { index: 1, term: 1 })],
    ]);
    const before = n1.status();
    run(nodes, 100);
    const after = n1.status();
    expect([...after.peersRecovering].sort()).toEqual(['n2', 'n3']);
    // Bookkeeping only: nobody was elected and nothing of n1's Raft state moved.
    expect([...nodes.values()].map((r) => r.status().leaderId)).toEqual([null, null, null]);
    expect({ term: after.term, vote: after.vote, commit: after.commitIndex, last: after.lastIndex }).toEqual({
      term: before.term,
      vote: before.vote,
      commit: before.commitIndex,
      last: before.lastIndex,
    });
    expect(nodes.get('n3')!.status().term).toBe(1);
  });

  it('a refusal from a recovering voter in a later term moves the term as any answer does, and is not lost with it', () => {
    const n1 = node('n1', 1, [1, 2], 2);
    n1.step({ ...voteResponse('n3', 'n1', 5, false, true), recovering: true });
    expect(n1.status()).toMatchObject({ term: 5, role: 'follower', peersRecovering: ['n3'] });
  });

  it('a stale answer of an older term changes no term, vote, commit or progress: only who is said to be recovering', () => {
    const r = createRaftNode(makeConfig('n1', voters, 3), { hardState: { term: term(2), vote: null, commit: logIndex(0) }, entries: [], applied: logIndex(0) });
    becomeLeader(r);
    commitNoop(r);
    const before = r.status();
    r.step({ ...appendResponse('n2', 'n1', 2, false, 0, 0, 1), recovering: true });
    r.step({ ...heartbeatResponse('n3', 'n1', 1), recovering: true });
    readMessages(r);
    const after = r.status();
    expect([...after.peersRecovering].sort()).toEqual(['n2', 'n3']);
    expect({ term: after.term, vote: after.vote, commit: after.commitIndex, role: after.role }).toEqual({
      term: before.term,
      vote: before.vote,
      commit: before.commitIndex,
      role: 'leader',
    });
    expect(after.progress).toEqual(before.progress);
    // Their answers of this term say they are intact: believed at once.
    r.step(heartbeatResponse('n2', 'n1', after.term));
    r.step(heartbeatResponse('n3', 'n1', after.term));
    expect(r.status().peersRecovering).toEqual([]);
  });
});
