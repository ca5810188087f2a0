// Membership changes one server at a time (dissertation 4.1): the rules of a change, learners (replicated to, never
// counted), promote and remove, configurations in effect when appended and undone when truncated, a leader removing
// itself, nodes outside the configuration, joiners, and forceNewCluster for disaster recovery.
import { describe, expect, it } from 'vitest';
import { logIndex, nodeId, term, type NodeId } from '../../src/lib/ids.js';
import { applyConfChange, encodeConfEntry } from '../../src/raft/membership.js';
import { createRaftNode, decodeConfEntry, forceNewCluster } from '../../src/raft/index.js';
import type { ConfChange, Entry, RaftInitialState, RaftNode } from '../../src/raft/index.js';
import {
  Network,
  append,
  appendResponse,
  becomeLeader,
  commitNoop,
  emptyHardState,
  enc,
  entriesWithTerms,
  entry,
  heartbeat,
  makeConfig,
  newNode,
  ofType,
  readMessages,
  vote,
  voteResponse,
} from './harness.js';

const ids = (...xs: string[]): NodeId[] => xs.map(nodeId);
const add = (id: string, context?: string): ConfChange => (context === undefined ? { type: 'addLearner', nodeId: nodeId(id) } : { type: 'addLearner', nodeId: nodeId(id), context });
const promote = (id: string): ConfChange => ({ type: 'promote', nodeId: nodeId(id) });
const remove = (id: string): ConfChange => ({ type: 'remove', nodeId: nodeId(id) });

function confEntry(index: number, t: number, voters: string[], learners: string[] = []): Entry {
  return { term: term(t), index: logIndex(index), type: 'config', data: encodeConfEntry({ voters: ids(...voters), learners: ids(...learners), change: null }) };
}

/** A 3-voter network led by n1 (its no-op committed), with n4 added as a learner and caught up. */
function withLearner(o: ConstructorParameters<typeof Network>[1] = {}): Network {
  const net = new Network(3, o);
  net.elect('n1');
  net.addNode('n4');
  expect(net.raft('n1').proposeConfChange(add('n4'))).toMatchObject({ ok: true });
  net.stabilize();
  net.tickAll(1);
  return net;
}

describe('the rules of a change', () => {
  const conf = { voters: ids('n1', 'n2', 'n3'), learners: ids('n4') };

  it('addLearner, promote and remove give the next configuration, or say why they cannot', () => {
    expect(applyConfChange(conf, add('n5'))).toEqual({ voters: ids('n1', 'n2', 'n3'), learners: ids('n4', 'n5') });
    expect(applyConfChange(conf, promote('n4'))).toEqual({ voters: ids('n1', 'n2', 'n3', 'n4'), learners: [] });
    expect(applyConfChange(conf, remove('n2'))).toEqual({ voters: ids('n1', 'n3'), learners: ids('n4') });
    expect(applyConfChange(conf, remove('n4'))).toEqual({ voters: ids('n1', 'n2', 'n3'), learners: [] });
    expect(applyConfChange(conf, add('n2'))).toBe('ALREADY_MEMBER');
    expect(applyConfChange(conf, add('n4'))).toBe('ALREADY_MEMBER');
    expect(applyConfChange(conf, promote('n2'))).toBe('NOT_A_LEARNER');
    expect(applyConfChange(conf, promote('n9'))).toBe('UNKNOWN_MEMBER');
    expect(applyConfChange(conf, remove('n9'))).toBe('UNKNOWN_MEMBER');
    expect(applyConfChange({ voters: ids('n1'), learners: [] }, remove('n1'))).toBe('LAST_VOTER');
    expect(applyConfChange(conf, { type: 'addLearner', nodeId: nodeId('') })).toBe('INVALID_CHANGE');
    expect(applyConfChange(conf, add('n5', 'x'.repeat(5000)))).toBe('INVALID_CHANGE');
  });

  it('a config entry holds the whole configuration and the change, context included', () => {
    const data = { voters: ids('n1', 'n2'), learners: ids('n3'), change: add('n3', '{"raft":"127.0.0.1:7003"}') };
    expect(decodeConfEntry(encodeConfEntry(data))).toEqual(data);
    expect(decodeConfEntry(encodeConfEntry({ voters: ids('n1'), learners: [], change: null }))).toEqual({ voters: ids('n1'), learners: [], change: null });
  });
});

describe('learners', () => {
  it('a learner receives and applies the log; status shows it among the learners with its progress', () => {
    const net = withLearner();
    net.propose('n1', 'a');
    net.tickAll(1);
    expect(net.node('n4').appliedCommands()).toEqual(['a']);
    expect(net.raft('n4').status()).toMatchObject({ voters: ['n1', 'n2', 'n3'], learners: ['n4'], configIndex: 2 });
    const st = net.raft('n1').status();
    expect(st).toMatchObject({ voters: ['n1', 'n2', 'n3'], learners: ['n4'], configIndex: 2 });
    expect(st.progress.get(nodeId('n4'))).toMatchObject({ learner: true, match: st.lastIndex, state: 'replicate' });
    expect(st.progress.get(nodeId('n2'))).toMatchObject({ learner: false });
  });

  it('a learner never campaigns, and candidates do not ask learners for votes', () => {
    const net = withLearner();
    net.isolate('n4');
    net.tick('n4', 100);
    expect(net.raft('n4').status()).toMatchObject({ role: 'follower', term: 1 });
    net.raft('n4').campaign();
    expect(net.raft('n4').status().role).toBe('follower');
    net.heal();
    net.raft('n2').campaign();
    expect(ofType(net.pending(), 'vote').map((m) => m.to)).toEqual(['n1', 'n3']);
  });

  it('learner acknowledgements make no quorum: no commit, no ReadIndex, and check-quorum still deposes the leader', () => {
    const net = withLearner({ checkQuorum: true });
    net.isolate('n2');
    net.isolate('n3');
    const commit = net.raft('n1').status().commitIndex;
    net.propose('n1', 'x');
    expect(net.raft('n4').status().lastIndex).toBe(commit + 1);
    expect(net.raft('n1').status().commitIndex).toBe(commit);
    net.raft('n1').readIndex('r');
    net.stabilize();
    expect(net.node('n1').readStates).toEqual([]);
    for (let i = 0; i < 25; i++) {
      net.tick('n1');
      net.tick('n4');
      net.stabilize();
    }
    expect(net.raft('n1').status().role).toBe('follower');
  });

  it('a learner that stops hearing from its leader answers vote requests again once the lease is over', () => {
    // It may have been promoted without knowing it, and be needed to elect anyone.
    const config = makeConfig('n4', ['n1', 'n2', 'n3'], 1, { learners: ids('n4'), preVote: true, checkQuorum: true });
    const r = createRaftNode(config, { hardState: emptyHardState, entries: [], applied: logIndex(0) });
    r.step(heartbeat('n1', 'n4', 1));
    readMessages(r);
    r.step(vote('n2', 'n4', 2, 5, 1, { preVote: true }));
    expect(readMessages(r)).toEqual([]);
    for (let i = 0; i < 100; i++) r.tick();
    r.step(vote('n2', 'n4', 2, 5, 1, { preVote: true }));
    expect(readMessages(r)).toEqual([voteResponse('n4', 'n2', 2, true, true)]);
    expect(r.status().role).toBe('follower');
  });

  it("a learner's vote does not count in an election", () => {
    const r = newNode('n1', { overrides: { learners: ids('n4') } });
    r.campaign();
    expect(ofType(readMessages(r), 'vote').map((m) => m.to)).toEqual(['n2', 'n3']);
    r.step(voteResponse('n4', 'n1', 1, true));
    expect(r.status().role).toBe('candidate');
    r.step(voteResponse('n2', 'n1', 1, true));
    expect(r.status().role).toBe('leader');
  });

  it('leadership cannot be transferred to a learner', () => {
    const net = withLearner();
    expect(net.raft('n1').transferLeadership(nodeId('n4'))).toEqual({ ok: false, reason: 'n4 is not a voter' });
  });
});

describe('promote and remove', () => {
  it('a promoted learner votes: the quorum grows, and it can be elected', () => {
    const net = withLearner();
    expect(net.raft('n1').proposeConfChange(promote('n4'))).toMatchObject({ ok: true });
    net.stabilize();
    net.tickAll(1);
    expect(net.raft('n3').status()).toMatchObject({ voters: ['n1', 'n2', 'n3', 'n4'], learners: [] });
    net.isolate('n2');
    net.isolate('n3');
    const commit = net.raft('n1').status().commitIndex;
    net.propose('n1', 'x');
    expect(net.raft('n1').status().commitIndex).toBe(commit); // 2 of 4
    net.heal();
    net.tickAll(1);
    net.elect('n4');
    expect(net.raft('n4').status().role).toBe('leader');
  });

  it('removing a voter shrinks the quorum on the leader as soon as the entry is appended', () => {
    const net = new Network(4);
    net.elect('n1');
    net.isolate('n3');
    net.isolate('n4');
    net.propose('n1', 'x');
    const x = net.raft('n1').status().lastIndex;
    expect(net.raft('n1').status().commitIndex).toBeLessThan(x);
    const r = net.raft('n1').proposeConfChange(remove('n4'));
    expect(r).toEqual({ ok: true, index: x + 1 });
    expect(net.raft('n1').status().voters).toEqual(['n1', 'n2', 'n3']);
    // conf() is the same configuration, without the rest of status().
    expect(net.raft('n1').conf()).toEqual({ voters: ['n1', 'n2', 'n3'], learners: [] });
    net.stabilize();
    expect(net.raft('n1').status().commitIndex).toBe(x + 1);
    expect(net.raft('n2').status().voters).toEqual(['n1', 'n2', 'n3']);
  });

  it('removing a learner stops its replication', () => {
    const net = withLearner();
    expect(net.raft('n1').proposeConfChange(remove('n4'))).toMatchObject({ ok: true });
    net.stabilize();
    const last = net.raft('n4').status().lastIndex;
    net.propose('n1', 'after');
    net.tickAll(2);
    expect(net.raft('n4').status().lastIndex).toBe(last);
    expect(net.raft('n1').status().progress.has(nodeId('n4'))).toBe(false);
  });

  it('a learner is promoted only once it holds the configuration in effect', () => {
    const net = new Network(3);
    net.elect('n1');
    net.addNode('n4');
    net.isolate('n4');
    expect(net.raft('n1').proposeConfChange(add('n4'))).toMatchObject({ ok: true });
    net.stabilize();
    expect(net.raft('n1').proposeConfChange(promote('n4'))).toEqual({ ok: false, reason: 'LEARNER_NOT_CAUGHT_UP', leaderId: 'n1' });
    net.heal();
    net.tickAll(1);
    expect(net.raft('n1').proposeConfChange(promote('n4'))).toMatchObject({ ok: true });
  });

  it('one change at a time: a second one is refused until the first commits', () => {
    const net = new Network(3);
    net.elect('n1');
    net.isolate('n2');
    net.isolate('n3');
    expect(net.raft('n1').proposeConfChange(add('n4'))).toMatchObject({ ok: true });
    expect(net.raft('n1').proposeConfChange(add('n5'))).toEqual({ ok: false, reason: 'CONF_CHANGE_IN_PROGRESS', leaderId: 'n1' });
    net.heal();
    net.tickAll(1);
    expect(net.raft('n1').proposeConfChange(add('n5'))).toMatchObject({ ok: true });
  });

  it('a new leader makes no change before it has committed an entry of its own term', () => {
    const r = newNode('n1');
    becomeLeader(r);
    expect(r.proposeConfChange(add('n4'))).toEqual({ ok: false, reason: 'CONF_CHANGE_IN_PROGRESS', leaderId: 'n1' });
    commitNoop(r);
    expect(r.proposeConfChange(add('n4'))).toMatchObject({ ok: true, index: 2 });
  });

  it('refusals: not the leader, a transfer under way, and changes that make no sense', () => {
    const net = new Network(3);
    net.elect('n1');
    expect(net.raft('n2').proposeConfChange(add('n4'))).toEqual({ ok: false, reason: 'NOT_LEADER', leaderId: 'n1' });
    const leader = net.raft('n1');
    for (const [c, reason] of [
      [add('n2'), 'ALREADY_MEMBER'],
      [promote('n2'), 'NOT_A_LEARNER'],
      [promote('n9'), 'UNKNOWN_MEMBER'],
      [remove('n9'), 'UNKNOWN_MEMBER'],
    ] as const) {
      expect(leader.proposeConfChange(c)).toEqual({ ok: false, reason, leaderId: 'n1' });
    }
    net.isolate('n2');
    leader.propose([enc('x')]);
    leader.transferLeadership(nodeId('n2'));
    expect(leader.proposeConfChange(add('n4'))).toEqual({ ok: false, reason: 'PROPOSAL_DROPPED', leaderId: 'n1' });
    const solo = new Network(1);
    solo.elect('n1');
    expect(solo.raft('n1').proposeConfChange(remove('n1'))).toEqual({ ok: false, reason: 'LAST_VOTER', leaderId: 'n1' });
  });

  it('a follower adopts a configuration when the entry is appended and drops it when the entry is truncated', () => {
    const r = newNode('n2', { terms: [1], hardState: { term: 1, commit: 1 } });
    readMessages(r);
    r.step(append('n1', 'n2', 1, 1, 1, [confEntry(2, 1, ['n1', 'n2', 'n3'], ['n4'])], 1));
    const rd = r.ready();
    expect(rd.confState).toEqual({ voters: ids('n1', 'n2', 'n3'), learners: ids('n4') });
    r.advance(rd);
    expect(r.status()).toMatchObject({ learners: ['n4'], configIndex: 2, commitIndex: 1 });
    // A leader of term 2 never had it: its entry at 2 replaces the config entry, and the old configuration is back.
    r.step(append('n3', 'n2', 2, 1, 1, [entry(2, 2)], 1));
    const rd2 = r.ready();
    expect(rd2.confState).toEqual({ voters: ids('n1', 'n2', 'n3'), learners: [] });
    r.advance(rd2);
    expect(r.status()).toMatchObject({ learners: [], configIndex: 0 });
    expect(r.hasReady()).toBe(false);
  });
});

describe('removing the leader', () => {
  it('a leader that removes itself leads without counting itself until the change commits, then hands over and steps down', () => {
    const net = new Network(3);
    net.elect('n1');
    net.isolate('n3');
    const r = net.raft('n1').proposeConfChange(remove('n1'));
    expect(r).toMatchObject({ ok: true });
    const index = r.ok ? r.index : 0;
    net.stabilize();
    // n1 and n2 hold it, but the quorum of { n2, n3 } is both of them.
    expect(net.raft('n1').status()).toMatchObject({ role: 'leader', voters: ['n2', 'n3'], commitIndex: index - 1 });
    net.heal();
    net.tickAll(1);
    expect(net.raft('n1').status()).toMatchObject({ role: 'follower', leaderId: null, voters: ['n2', 'n3'] });
    expect(ofType(net.trace, 'timeoutNow').map((m) => m.from)).toEqual(['n1']);
    const next = net.leader()!;
    expect(['n2', 'n3']).toContain(next.id);
    net.propose(next.id, 'after');
    net.tickAll(100);
    expect(net.raft('n1').status().role).toBe('follower');
    expect(net.leader()!.id).toBe(next.id);
    expect(net.node('n2').appliedCommands()).toEqual(['after']);
  });
});

describe('removing the leader: the handover', () => {
  /** n1, leader of n1..n`size` with its no-op committed, having proposed its own removal (the change at `index`). */
  function removingItself(size = 3): { r: RaftNode; index: number; t: number } {
    const r = newNode('n1', { size });
    becomeLeader(r);
    commitNoop(r);
    const c = r.proposeConfChange(remove('n1'));
    expect(c).toMatchObject({ ok: true });
    readMessages(r);
    return { r, index: c.ok ? c.index : 0, t: r.status().term };
  }

  it('appends nothing after its removal, so the voter whose answer commits it holds the whole log and is told to campaign at once', () => {
    const { r, index, t } = removingItself();
    // Its own proposals and those forwarded to it are dropped (the forwarder proposes again to the next leader): in a
    // busy cluster they went on behind the change, the change committed before anyone held them, and no voter held the
    // whole log, so none was told to take over and the cluster waited an election timeout.
    expect(r.propose([enc('own')])).toMatchObject({ ok: false, reason: 'PROPOSAL_DROPPED' });
    r.step({ type: 'propose', from: nodeId('n2'), to: nodeId('n1'), term: term(0), entries: [enc('forwarded')] });
    expect(r.status().lastIndex).toBe(index);
    expect(ofType(readMessages(r), 'append')).toEqual([]);
    r.step(appendResponse('n3', 'n1', t, true, index));
    expect(r.status()).toMatchObject({ role: 'leader', commitIndex: index - 1 });
    r.step(appendResponse('n2', 'n1', t, true, index));
    expect(r.status()).toMatchObject({ role: 'follower', commitIndex: index, leaderId: null });
    expect(ofType(readMessages(r), 'timeoutNow').map((m) => m.to)).toEqual(['n2']);
  });

  it('tells no voter recovering its storage to campaign: the most caught-up one with intact storage', () => {
    const { r, index, t } = removingItself(5);
    // n2 answers first and holds everything, but it votes for no one until repaired: a timeoutNow would be lost on it.
    r.step({ ...appendResponse('n2', 'n1', t, true, index), recovering: true });
    r.step({ ...appendResponse('n2', 'n1', t, true, index), recovering: true });
    for (const id of ['n3', 'n4']) r.step(appendResponse(id, 'n1', t, true, index));
    expect(r.status()).toMatchObject({ role: 'leader', commitIndex: index - 1 });
    r.step(appendResponse('n5', 'n1', t, true, index));
    expect(r.status()).toMatchObject({ role: 'follower', commitIndex: index });
    expect(ofType(readMessages(r), 'timeoutNow').map((m) => m.to)).toEqual(['n3']);
  });

  it('in a network: the voter told to campaign wins at once, with no election timeout, and proposals go on through it', () => {
    const net = new Network(3);
    net.elect('n1');
    net.isolate('n3');
    expect(net.raft('n1').proposeConfChange(remove('n1'))).toMatchObject({ ok: true });
    net.stabilize();
    net.propose('n2', 'during');
    net.heal();
    net.tick('n1');
    net.stabilize();
    const next = net.leader()!;
    expect(['n2', 'n3']).toContain(next.id);
    expect(ofType(net.trace, 'timeoutNow')).toMatchObject([{ from: 'n1', to: next.id }]);
    expect(net.raft('n1').status().role).toBe('follower');
    net.propose(next.id, 'after');
    expect(net.node('n2').appliedCommands()).toEqual(['after']);
  });
});

describe('a voter removed by a change not yet committed', () => {
  it('still campaigns, with the quorum of the new configuration, and steps down once it commits the change', () => {
    const r = newNode('n1', { terms: [1], hardState: { term: 1, commit: 1 } });
    readMessages(r);
    r.step(append('n2', 'n1', 1, 1, 1, [confEntry(2, 1, ['n2', 'n3'])], 1));
    readMessages(r);
    expect(r.status()).toMatchObject({ voters: ['n2', 'n3'], commitIndex: 1, configIndex: 2 });
    // The cluster may still need it: n2 and n3 could be unable to elect each other without its log.
    for (let i = 0; i < 30 && r.status().role === 'follower'; i++) r.tick();
    expect(r.status().role).toBe('candidate');
    expect(ofType(readMessages(r), 'vote').map((m) => m.to)).toEqual(['n2', 'n3']);
    r.step(voteResponse('n2', 'n1', 2, true));
    expect(r.status().role).toBe('candidate'); // its own vote does not count
    r.step(voteResponse('n3', 'n1', 2, true));
    expect(r.status().role).toBe('leader');
    readMessages(r);
    r.step(appendResponse('n2', 'n1', 2, true, 3));
    r.step(appendResponse('n3', 'n1', 2, true, 3));
    expect(r.status()).toMatchObject({ role: 'follower', commitIndex: 3 });
    expect(ofType(readMessages(r), 'timeoutNow').map((m) => m.to)).toEqual(['n2']);
    for (let i = 0; i < 100; i++) r.tick();
    expect(r.status().role).toBe('follower');
  });

  it('does not campaign once it knows the change committed', () => {
    const r = newNode('n1', { terms: [1], hardState: { term: 1, commit: 1 } });
    r.step(append('n2', 'n1', 1, 1, 1, [confEntry(2, 1, ['n2', 'n3'])], 2));
    readMessages(r);
    for (let i = 0; i < 100; i++) r.tick();
    expect(r.status()).toMatchObject({ role: 'follower', commitIndex: 2 });
  });
});

describe('nodes outside the configuration', () => {
  it("a removed node that does not know it campaigns in vain: nobody answers, and nobody's term moves", () => {
    const net = new Network(3, { preVote: false });
    net.elect('n1');
    net.isolate('n3');
    expect(net.raft('n1').proposeConfChange(remove('n3'))).toMatchObject({ ok: true });
    net.stabilize();
    net.heal();
    const t = net.raft('n1').status().term;
    for (let i = 0; i < 60; i++) {
      net.tick('n3');
      net.stabilize();
    }
    expect(net.raft('n3').status().term).toBeGreaterThan(t + 2);
    expect(net.raft('n3').status().role).not.toBe('leader');
    expect(net.raft('n1').status()).toMatchObject({ role: 'leader', term: t });
    expect(net.raft('n2').status()).toMatchObject({ term: t, leaderId: 'n1' });
  });

  it('configurations compare by the (term, index) of their entries: the same index from a later term is newer (seed 2968476)', () => {
    const same = newNode('n1', { terms: [1, 1], hardState: { term: 1 } });
    same.step(vote('n9', 'n1', 5, 3, 1, { configIndex: 0, configTerm: 0 }));
    expect(readMessages(same)).toEqual([]);
    const later = newNode('n1', { terms: [1, 1], hardState: { term: 1 } });
    later.step(vote('n9', 'n1', 5, 3, 1, { configIndex: 0, configTerm: 1 }));
    expect(readMessages(later)).toEqual([voteResponse('n1', 'n9', 5, true)]);
  });

  it('messages from an unknown node are ignored, except those only a leader sends and votes for a log and configuration ahead of ours', () => {
    const r = newNode('n1', { terms: [1, 1], hardState: { term: 1 } });
    r.step(vote('n9', 'n1', 5, 1, 1, { configIndex: 1 }));
    r.step(vote('n9', 'n1', 5, 1, 1, { preVote: true, configIndex: 1 }));
    // A log ahead of ours but no newer configuration: a removed node that holds its removal (seed 1392659304).
    r.step(vote('n9', 'n1', 5, 3, 1));
    r.step(vote('n9', 'n1', 5, 3, 1, { preVote: true, configIndex: 0 }));
    expect(readMessages(r)).toEqual([]);
    expect(r.status().term).toBe(1);
    // A node that lags may not know a new voter: it must still be able to vote for it.
    r.step(vote('n9', 'n1', 5, 3, 1, { configIndex: 3 }));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n9', 5, true)]);
    expect(r.status()).toMatchObject({ term: 5, vote: 'n9' });
    r.step(heartbeat('n8', 'n1', 6));
    expect(ofType(readMessages(r), 'heartbeatResponse').map((m) => m.to)).toEqual(['n8']);
    expect(r.status()).toMatchObject({ term: 6, leaderId: 'n8' });
    const leader = newNode('n1');
    becomeLeader(leader);
    readMessages(leader);
    leader.step(appendResponse('n9', 'n1', 9, true, 1));
    expect(leader.status()).toMatchObject({ role: 'leader', term: 1 });
  });

  it('a removed node that holds its removal wins no vote from a voter that holds it too, even past its lease', () => {
    // Seed 1392659304: the leader removed itself, committed it, crashed with the commit index unsynced, and campaigned
    // again (it could not know the removal had committed); voters that answered any caller elected it.
    const r = newNode('n2', { terms: [1], hardState: { term: 1, commit: 1 } });
    r.step(append('n1', 'n2', 1, 1, 1, [confEntry(2, 1, ['n2', 'n3']), entry(3, 1)], 2));
    readMessages(r);
    for (let i = 0; i < 40; i++) r.tick();
    readMessages(r);
    const before = r.status().term;
    r.step(vote('n1', 'n2', before + 1, 3, 1, { preVote: true, configIndex: 2 }));
    r.step(vote('n1', 'n2', before + 1, 3, 1, { configIndex: 2 }));
    expect(readMessages(r)).toEqual([]);
    expect(r.status().term).toBe(before);
    // A voter added after n2's configuration (n2 missed it) is answered.
    r.step(vote('n4', 'n2', before + 1, 4, 1, { preVote: true, configIndex: 4 }));
    expect(ofType(readMessages(r), 'voteResponse')).toMatchObject([{ to: 'n4', granted: true, preVote: true }]);
  });

  it('a joiner knows no configuration: it never campaigns, takes the leader log, and learns the configuration from it', () => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    const n4 = net.addNode('n4');
    expect(n4.raft.status()).toMatchObject({ voters: [], learners: [], role: 'follower' });
    net.tickAll(30);
    expect(n4.raft.status()).toMatchObject({ role: 'follower', term: 0 });
    expect(net.raft('n1').proposeConfChange(add('n4'))).toMatchObject({ ok: true });
    net.stabilize();
    net.tickAll(1);
    expect(n4.raft.status()).toMatchObject({ voters: ['n1', 'n2', 'n3'], learners: ['n4'], configIndex: 3 });
    expect(n4.appliedCommands()).toEqual(['a']);
    expect(n4.confStates).toEqual([{ voters: ids('n1', 'n2', 'n3'), learners: ids('n4') }]);
  });

  it('a joiner cannot describe a snapshot of the entries before it learned the configuration', () => {
    const r = createRaftNode(makeConfig('n4', [], 1, { join: true }), { hardState: emptyHardState, entries: [], applied: logIndex(0) });
    r.step(append('n1', 'n4', 1, 0, 0, [entry(1, 1), entry(2, 1), confEntry(3, 1, ['n1', 'n2', 'n3'], ['n4'])], 3));
    readMessages(r);
    expect(r.status().appliedIndex).toBe(3);
    expect(r.snapshotMeta(logIndex(2))).toBeNull();
    expect(r.snapshotMeta(logIndex(3))).toEqual({ index: 3, term: 1, voters: ids('n1', 'n2', 'n3'), learners: ids('n4') });
  });

  it('a joining node takes no bootstrap configuration', () => {
    expect(() => makeConfig('n4', ['n1'], 1, { join: true })).not.toThrow();
    expect(() => createRaftNode(makeConfig('n4', ['n1'], 1, { join: true }), { hardState: emptyHardState, entries: [], applied: logIndex(0) })).toThrow(
      /joining node/,
    );
  });
});

describe('forceNewCluster', () => {
  const initial: RaftInitialState = {
    hardState: { term: term(2), vote: nodeId('n2'), commit: logIndex(1) },
    entries: entriesWithTerms([1, 1, 2]),
    applied: logIndex(1),
  };

  it('appends a one-voter config entry in a term nobody used, and commits the whole log', () => {
    const copy = JSON.stringify(initial);
    const forced = forceNewCluster(initial, nodeId('n1'));
    expect(JSON.stringify(initial)).toBe(copy);
    expect(forced.hardState).toEqual({ term: 3, vote: null, commit: 4 });
    expect(forced.entries.slice(0, 3)).toEqual(initial.entries);
    const last = forced.entries[3]!;
    expect([last.index, last.term, last.type]).toEqual([4, 3, 'config']);
    expect(decodeConfEntry(last.data)).toEqual({ voters: ['n1'], learners: [], change: null });
    expect(forced.applied).toBe(1);
  });

  it('a node started from it is a cluster of one: it elects itself and commits alone', () => {
    const r = createRaftNode(makeConfig('n1', ['n1', 'n2', 'n3'], 1), forceNewCluster(initial, nodeId('n1')));
    expect(r.status()).toMatchObject({ voters: ['n1'], learners: [], commitIndex: 4 });
    const rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2, 3, 4]);
    r.advance(rd);
    for (let i = 0; i < 30 && r.status().role !== 'leader'; i++) r.tick();
    expect(r.status()).toMatchObject({ role: 'leader', term: 4 });
    r.propose([enc('x')]);
    readMessages(r);
    expect(r.status().commitIndex).toBe(6);
  });

  it('from a snapshot: the entries it covers are dropped and the config entry goes after the log', () => {
    const forced = forceNewCluster(
      {
        hardState: { term: term(2), vote: null, commit: logIndex(5) },
        entries: [entry(5, 2), entry(6, 2)],
        applied: logIndex(5),
        snapshot: { index: logIndex(5), term: term(2), voters: ids('n1', 'n2', 'n3'), learners: ids('n4') },
      },
      nodeId('n2'),
    );
    expect(forced.entries.map((e) => [e.index, e.term, e.type])).toEqual([
      [6, 2, 'command'],
      [7, 3, 'config'],
    ]);
    expect(forced.hardState.commit).toBe(7);
    const r = createRaftNode(makeConfig('n2', ['n1', 'n2', 'n3'], 1), forced);
    expect(r.status()).toMatchObject({ voters: ['n2'], learners: [], firstIndex: 6, appliedIndex: 5, commitIndex: 7 });
  });
});
