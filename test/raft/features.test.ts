// Behaviour beyond the paper's core rules: pre-vote, check-quorum and the leader lease, fast backtracking, ReadIndex,
// leadership transfer, proposal forwarding, flow control and limits, and the Ready/advance contract.
import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { SeededRandom } from '../../src/lib/random.js';
import { createRaftNode, defaultRaftLimits, validateRaftConfig } from '../../src/raft/index.js';
import type { RaftConfig } from '../../src/raft/index.js';
import {
  Network,
  acceptAndReply,
  append,
  appendResponse,
  becomeLeader,
  commitNoop,
  emptyHardState,
  enc,
  entry,
  heartbeat,
  heartbeatResponse,
  makeConfig,
  newNode,
  ofType,
  readMessages,
  vote,
  voteResponse,
} from './harness.js';

const preVote = { preVote: true, checkQuorum: true };

describe('pre-vote', () => {
  it('pre-vote: a pre-candidate asks with term + 1 without changing its own term or vote', () => {
    const r = newNode('n1', { hardState: { term: 4, vote: 'n2' }, overrides: preVote });
    r.campaign();
    expect(r.status()).toMatchObject({ role: 'precandidate', term: 4, vote: 'n2', leaderId: null });
    const rd = r.ready();
    expect(rd.hardState).toBeNull();
    expect(ofType(rd.messages, 'vote').map((m) => [m.to, m.term, m.preVote])).toEqual([
      ['n2', 5, true],
      ['n3', 5, true],
    ]);
  });

  it('pre-vote: a granted pre-vote changes neither the voter\'s term nor its vote', () => {
    const r = newNode('n1', { hardState: { term: 4, vote: 'n3' }, overrides: preVote });
    r.step(vote('n2', 'n1', 5, 0, 0, { preVote: true }));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n2', 5, true, true)]);
    expect(r.status()).toMatchObject({ term: 4, vote: 'n3', role: 'follower' });
  });

  it('pre-vote: a voter that heard from a leader within the election timeout refuses a pre-vote', () => {
    const r = newNode('n1', { overrides: { preVote: true, checkQuorum: false } });
    r.step(heartbeat('n3', 'n1', 1));
    readMessages(r);
    r.step(vote('n2', 'n1', 2, 5, 1, { preVote: true }));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n2', 1, false, true)]);
    for (let i = 0; i < 10; i++) r.tick();
    r.step(vote('n2', 'n1', 2, 5, 1, { preVote: true }));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n2', 2, true, true)]);
  });

  it('pre-vote: a pre-vote from a lower term is rejected with our term', () => {
    const r = newNode('n1', { hardState: { term: 5 }, overrides: preVote });
    r.step(vote('n2', 'n1', 3, 9, 3, { preVote: true }));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n2', 5, false, true)]);
  });

  it('pre-vote: winning a quorum of pre-votes starts a real election in term + 1', () => {
    const r = newNode('n1', { hardState: { term: 2 }, overrides: preVote });
    r.campaign();
    readMessages(r);
    r.step(voteResponse('n2', 'n1', 3, true, true));
    expect(r.status()).toMatchObject({ role: 'candidate', term: 3, vote: 'n1' });
    expect(ofType(readMessages(r), 'vote').every((m) => !m.preVote && m.term === 3)).toBe(true);
  });

  it('pre-vote: a pre-candidate rejected by a quorum returns to follower', () => {
    const r = newNode('n1', { hardState: { term: 2 }, overrides: preVote });
    r.campaign();
    r.step(voteResponse('n2', 'n1', 2, false, true));
    r.step(voteResponse('n3', 'n1', 2, false, true));
    expect(r.status()).toMatchObject({ role: 'follower', term: 2 });
  });

  it('pre-vote: a partitioned node does not raise its term, so rejoining does not disrupt the leader', () => {
    const net = new Network(3, preVote);
    net.elect('n1');
    const term = net.raft('n1').status().term;
    net.isolate('n3');
    net.tickAll(100);
    expect(net.raft('n3').status().term).toBe(term);
    net.heal();
    net.tickAll(30);
    expect(net.raft('n1').status()).toMatchObject({ role: 'leader', term });
    expect(net.raft('n3').status()).toMatchObject({ role: 'follower', leaderId: 'n1', term });
  });

  it('pre-vote: without pre-vote the same partitioned node raises its term and forces a new election', () => {
    const net = new Network(3, { preVote: false, checkQuorum: true });
    net.elect('n1');
    const term = net.raft('n1').status().term;
    net.isolate('n3');
    net.tickAll(100);
    expect(net.raft('n3').status().term).toBeGreaterThan(term + 2);
    net.heal();
    net.tickAll(60);
    expect(net.leader()!.raft.status().term).toBeGreaterThan(term);
  });
});

describe('check-quorum and the leader lease', () => {
  it('check-quorum: a leader that has not heard from a quorum within electionTicks steps down', () => {
    const net = new Network(3, { checkQuorum: true });
    net.elect('n1');
    net.isolate('n1');
    for (let i = 0; i < 9; i++) net.tick('n1');
    expect(net.raft('n1').status().role).toBe('leader');
    // The first round after election still counts the answers to the no-op; the second finds nobody.
    net.tick('n1', 11);
    expect(net.raft('n1').status()).toMatchObject({ role: 'follower', leaderId: null });
  });

  it('check-quorum: a leader that keeps hearing from a quorum stays leader', () => {
    const net = new Network(5, { checkQuorum: true });
    net.elect('n1');
    net.isolate('n4');
    net.isolate('n5');
    for (let i = 0; i < 50; i++) {
      for (const id of ['n1', 'n2', 'n3']) net.tick(id);
      net.stabilize();
    }
    expect(net.raft('n1').status().role).toBe('leader');
  });

  it('leader lease: a follower that heard from its leader within electionTicks ignores a vote request of a higher term', () => {
    const r = newNode('n1', { overrides: { checkQuorum: true } });
    r.step(heartbeat('n2', 'n1', 1));
    readMessages(r);
    r.step(vote('n3', 'n1', 9, 100, 8));
    expect(readMessages(r)).toEqual([]);
    expect(r.status()).toMatchObject({ term: 1, leaderId: 'n2', vote: null });
  });

  it('leader lease: a vote request with transfer set overrides the lease', () => {
    const r = newNode('n1', { overrides: { checkQuorum: true } });
    r.step(heartbeat('n2', 'n1', 1));
    readMessages(r);
    r.step(vote('n3', 'n1', 2, 0, 0, { transfer: true }));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n3', 2, true)]);
    expect(r.status()).toMatchObject({ term: 2, vote: 'n3' });
  });

  it('leader lease: once the election timeout passes without the leader, the follower votes again', () => {
    const r = newNode('n1', { overrides: { checkQuorum: true, electionTicks: 10 } });
    r.step(heartbeat('n2', 'n1', 1));
    readMessages(r);
    for (let i = 0; i < 10; i++) r.tick();
    r.step(vote('n3', 'n1', 9, 100, 8));
    expect(ofType(readMessages(r), 'voteResponse')).toEqual([voteResponse('n1', 'n3', 9, true)]);
  });
});

describe('fast backtracking', () => {
  it('fast backtracking: a follower rejects with its term at prevLogIndex and the first index it holds of that term', () => {
    const r = newNode('n1', { terms: [1, 2, 2, 2, 2], hardState: { term: 2 } });
    r.step(append('n2', 'n1', 3, 4, 3, [], 0));
    expect(readMessages(r)).toEqual([appendResponse('n1', 'n2', 3, false, 4, 2, 2)]);
  });

  it('fast backtracking: a follower whose log is too short answers conflictTerm 0 and its last index + 1', () => {
    const r = newNode('n1', { terms: [1, 1], hardState: { term: 2 } });
    r.step(append('n2', 'n1', 3, 9, 3, [], 0));
    expect(readMessages(r)).toEqual([appendResponse('n1', 'n2', 3, false, 9, 0, 3)]);
  });

  it('fast backtracking: a leader that holds the conflicting term probes just past its last entry of that term', () => {
    const r = newNode('n1', { terms: [1, 2, 2, 3, 3, 3], hardState: { term: 3 } });
    becomeLeader(r);
    readMessages(r);
    // n2 holds term 2 at index 6: the leader's last term-2 entry is 3, so it probes from 4.
    r.step(appendResponse('n2', 'n1', 4, false, 6, 2, 2));
    const [m] = ofType(readMessages(r), 'append');
    expect([m!.to, m!.prevLogIndex, m!.prevLogTerm]).toEqual(['n2', 3, 2]);
  });

  it('fast backtracking: a leader that lacks the conflicting term probes from conflictIndex', () => {
    const r = newNode('n1', { terms: [1, 3, 3, 3, 3, 3], hardState: { term: 3 } });
    becomeLeader(r);
    readMessages(r);
    r.step(appendResponse('n2', 'n1', 4, false, 6, 2, 2));
    const [m] = ofType(readMessages(r), 'append');
    expect([m!.prevLogIndex, m!.prevLogTerm]).toEqual([1, 1]);
  });

  it('fast backtracking: the next index never falls below match + 1', () => {
    const r = newNode('n1', { terms: [1, 1, 1, 1], hardState: { term: 1 } });
    becomeLeader(r);
    readMessages(r);
    r.step(appendResponse('n2', 'n1', 2, true, 5));
    readMessages(r);
    r.propose([enc('a')]);
    readMessages(r);
    // A (stale-looking) rejection pointing to index 1 must not undo what n2 acknowledged.
    r.step(appendResponse('n2', 'n1', 2, false, 6, 0, 1));
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ match: 5, next: 6 });
  });

  it('fast backtracking: a follower with a long divergent term catches up in a few round trips, not one per entry', () => {
    const net = new Network(3);
    const setup = (id: string, terms: number[], t: number): void => {
      const n = net.node(id);
      n.disk.entries.push(...terms.map((x, i) => entry(i + 1, x)));
      n.disk.hardState = { term: t as never, vote: null, commit: 1 as never };
      net.restart(id);
    };
    const leaderLog = [1, ...Array<number>(60).fill(3)];
    setup('n1', leaderLog, 3);
    setup('n3', leaderLog, 3);
    setup('n2', [1, ...Array<number>(80).fill(2)], 3);
    net.elect('n1');
    const rejections = net.trace.filter((m) => m.type === 'appendResponse' && m.from === 'n2' && !m.success);
    expect(rejections.length).toBeLessThanOrEqual(2);
    expect(net.node('n2').disk.entries.map((e) => e.term)).toEqual([...leaderLog, 4]);
  });
});

describe('ReadIndex', () => {
  it('ReadIndex: a leader releases a read at its commit index once a quorum acknowledged the heartbeat carrying it', () => {
    const r = newNode('n1');
    becomeLeader(r);
    commitNoop(r);
    expect(r.readIndex('ctx')).toEqual({ ok: true, forwardedTo: null });
    const beats = ofType(readMessages(r), 'heartbeat');
    expect(beats.map((m) => m.to)).toEqual(['n2', 'n3']);
    const context = beats[0]!.context;
    expect(context).not.toBe('');
    expect(r.ready().readStates).toEqual([]);
    r.step(heartbeatResponse('n2', 'n1', 1, context));
    expect(r.ready().readStates).toEqual([{ index: 1, context: 'ctx' }]);
  });

  it('ReadIndex: one quorum acknowledgement releases that read and every earlier pending read', () => {
    const r = newNode('n1', { size: 5 });
    becomeLeader(r);
    commitNoop(r);
    r.readIndex('a');
    const first = ofType(readMessages(r), 'heartbeat')[0]!.context;
    r.propose([enc('x')]);
    for (const m of readMessages(r)) if (m.type === 'append') r.step(acceptAndReply(m));
    readMessages(r);
    r.readIndex('b');
    const second = ofType(readMessages(r), 'heartbeat')[0]!.context;
    r.step(heartbeatResponse('n2', 'n1', 1, first));
    r.step(heartbeatResponse('n2', 'n1', 1, second));
    r.step(heartbeatResponse('n3', 'n1', 1, second));
    expect(r.ready().readStates).toEqual([
      { index: 1, context: 'a' },
      { index: 2, context: 'b' },
    ]);
  });

  it('ReadIndex: a new leader delays reads until it has committed an entry of its own term', () => {
    const r = newNode('n1', { terms: [1, 1], hardState: { term: 1, commit: 1 } });
    becomeLeader(r);
    const appends = ofType(readMessages(r), 'append');
    expect(r.readIndex('early')).toEqual({ ok: true, forwardedTo: null });
    expect(ofType(readMessages(r), 'heartbeat')).toEqual([]);
    r.step(acceptAndReply(appends[0]!));
    const beats = ofType(readMessages(r), 'heartbeat');
    expect(beats.length).toBe(2);
    r.step(heartbeatResponse('n3', 'n1', 2, beats[0]!.context));
    expect(r.ready().readStates).toEqual([{ index: 3, context: 'early' }]);
  });

  it('ReadIndex: reads beyond pendingReadsMax are refused with QUEUE_FULL', () => {
    const r = newNode('n1', { overrides: { pendingReadsMax: 2 } });
    becomeLeader(r);
    expect(r.readIndex('a').ok).toBe(true);
    expect(r.readIndex('b').ok).toBe(true);
    expect(r.readIndex('c')).toEqual({ ok: false, reason: 'QUEUE_FULL', leaderId: 'n1' });
  });

  it('ReadIndex: a single-voter cluster answers without a round trip, once its own entries are on its disk', () => {
    const r = newNode('n1', { size: 1 });
    r.campaign();
    r.propose([enc('x')]);
    // Its vote alone is the quorum, but it counts its own copy only once written: nothing is committed before.
    r.readIndex('early');
    let rd = r.ready();
    expect(rd.committedEntries).toEqual([]);
    expect(rd.readStates).toEqual([]);
    r.advance(rd);
    rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd.readStates).toEqual([{ index: 2, context: 'early' }]);
    r.advance(rd);
    r.readIndex('now');
    expect(r.ready().readStates).toEqual([{ index: 2, context: 'now' }]);
  });

  it('ReadIndex: a follower forwards the read to the leader and turns the answer into a ReadState', () => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'x');
    expect(net.raft('n2').readIndex('f')).toEqual({ ok: true, forwardedTo: 'n1' });
    net.stabilize();
    expect(net.node('n2').readStates).toEqual([{ index: 2, context: 'f' }]);
    expect(net.node('n1').readStates).toEqual([]);
  });

  it('ReadIndex: a node that knows no leader answers NO_LEADER', () => {
    const follower = newNode('n1');
    expect(follower.readIndex('x')).toEqual({ ok: false, reason: 'NO_LEADER', leaderId: null });
    const candidate = newNode('n1');
    candidate.campaign();
    expect(candidate.readIndex('x')).toEqual({ ok: false, reason: 'NO_LEADER', leaderId: null });
  });

  it('ReadIndex: pending reads are dropped when the leader steps down', () => {
    const r = newNode('n1');
    becomeLeader(r);
    commitNoop(r);
    r.readIndex('lost');
    const context = ofType(readMessages(r), 'heartbeat')[0]!.context;
    r.step(append('n2', 'n1', 5, 0, 0));
    r.step(heartbeatResponse('n3', 'n1', 5, context));
    expect(r.ready().readStates).toEqual([]);
  });
});

describe('leadership transfer', () => {
  it('transfer: an up-to-date target gets timeoutNow and wins the next election at once', () => {
    const net = new Network(3, preVote);
    net.elect('n1');
    net.propose('n1', 'x');
    expect(net.raft('n1').transferLeadership(nodeId('n2'))).toEqual({ ok: true, target: 'n2' });
    net.stabilize();
    expect(net.trace.some((m) => m.type === 'timeoutNow' && m.to === 'n2')).toBe(true);
    expect(net.raft('n2').status().role).toBe('leader');
    expect(net.raft('n1').status()).toMatchObject({ role: 'follower', leaderId: 'n2' });
    // The target skipped pre-vote and asked with transfer set, overriding the followers' lease.
    const votes = net.trace.filter((m) => m.type === 'vote' && m.from === 'n2');
    expect(votes.every((m) => m.type === 'vote' && !m.preVote && m.transfer)).toBe(true);
  });

  it('transfer: a lagging target is caught up first, then sent timeoutNow', () => {
    const net = new Network(3, preVote);
    net.elect('n1');
    net.isolate('n3');
    net.propose('n1', 'a', 'b');
    net.heal();
    net.raft('n1').transferLeadership(nodeId('n3'));
    const first = net.pending();
    expect(first.some((m) => m.type === 'timeoutNow')).toBe(false);
    expect(first.some((m) => m.type === 'append' && m.to === 'n3')).toBe(true);
    net.stabilize();
    expect(net.raft('n3').status().role).toBe('leader');
    expect(net.node('n3').appliedCommands()).toEqual(['a', 'b']);
  });

  it('transfer: a leader in the middle of a transfer refuses proposals with PROPOSAL_DROPPED', () => {
    const net = new Network(3);
    net.elect('n1');
    net.isolate('n3');
    net.raft('n1').transferLeadership(nodeId('n3'));
    expect(net.raft('n1').propose([enc('x')])).toEqual({ ok: false, reason: 'PROPOSAL_DROPPED', leaderId: 'n1' });
  });

  it('transfer: it is abandoned after electionTicks when the target does not take over', () => {
    const net = new Network(3);
    net.elect('n1');
    net.isolate('n3');
    net.raft('n1').transferLeadership(nodeId('n3'));
    net.tickAll(10);
    expect(net.raft('n1').status().role).toBe('leader');
    expect(net.raft('n1').propose([enc('x')]).ok).toBe(true);
  });

  it('transfer: only a leader transfers, only to another voter; null picks the most caught-up follower', () => {
    const net = new Network(3);
    expect(net.raft('n1').transferLeadership(null).ok).toBe(false);
    net.elect('n1');
    expect(net.raft('n1').transferLeadership(nodeId('n1')).ok).toBe(false);
    expect(net.raft('n1').transferLeadership(nodeId('n9')).ok).toBe(false);
    net.isolate('n2');
    net.propose('n1', 'x');
    expect(net.raft('n1').transferLeadership(null)).toEqual({ ok: true, target: 'n3' });
    expect(newNode('n1', { size: 1 }).transferLeadership(null).ok).toBe(false);
  });
});

describe('proposals', () => {
  it('forwarding: a follower forwards proposals to the leader, which appends and commits them', () => {
    const net = new Network(3);
    net.elect('n1');
    expect(net.raft('n2').propose([enc('a'), enc('b')])).toEqual({ ok: true, forwardedTo: 'n1' });
    net.stabilize();
    for (const id of net.ids) expect(net.node(id).appliedCommands()).toEqual(['a', 'b']);
  });

  it('forwarding: a follower with no leader and a candidate both answer NO_LEADER', () => {
    expect(newNode().propose([enc('x')])).toEqual({ ok: false, reason: 'NO_LEADER', leaderId: null });
    const c = newNode();
    c.campaign();
    expect(c.propose([enc('x')])).toEqual({ ok: false, reason: 'NO_LEADER', leaderId: null });
    const p = newNode('n1', { overrides: preVote });
    p.campaign();
    expect(p.propose([enc('x')]).ok).toBe(false);
  });

  it('propose appends every command of a batch as consecutive entries of the current term', () => {
    const r = newNode();
    becomeLeader(r);
    commitNoop(r);
    r.propose(['a', 'b', 'c'].map(enc));
    const rd = r.ready();
    expect(rd.entries.map((e) => [e.index, e.term, e.type])).toEqual([
      [2, 1, 'command'],
      [3, 1, 'command'],
      [4, 1, 'command'],
    ]);
    expect(ofType(rd.messages, 'append').map((m) => m.entries.length)).toEqual([3, 3]);
  });

  it('uncommitted limit: proposals beyond uncommittedBytesMax are refused until entries commit', () => {
    const r = newNode('n1', { overrides: { uncommittedBytesMax: 100 } });
    becomeLeader(r);
    commitNoop(r);
    const kb = new Uint8Array(60);
    expect(r.propose([kb]).ok).toBe(true);
    expect(r.propose([kb])).toEqual({ ok: false, reason: 'UNCOMMITTED_LIMIT', leaderId: 'n1' });
    for (const m of readMessages(r)) if (m.type === 'append') r.step(acceptAndReply(m));
    expect(r.propose([kb]).ok).toBe(true);
  });

  it('uncommitted limit: an empty pipeline accepts one batch larger than the limit', () => {
    const r = newNode('n1', { overrides: { uncommittedBytesMax: 100 } });
    becomeLeader(r);
    expect(r.propose([new Uint8Array(500)]).ok).toBe(true);
    expect(r.propose([new Uint8Array(1)]).ok).toBe(false);
  });

  it('a new leader appends a no-op of its term and commits the earlier terms through it', () => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.elect('n2');
    const log = net.node('n3').disk.entries.map((e) => [e.index, e.term, e.type]);
    expect(log).toEqual([
      [1, 1, 'noop'],
      [2, 1, 'command'],
      [3, 2, 'noop'],
    ]);
    expect(net.raft('n3').status().commitIndex).toBe(3);
  });
});

describe('lazy commit', () => {
  const lazy = { lazyCommit: true };
  const commitOnlyAppendsSince = (net: Network, from: number): string[] =>
    net.trace.slice(from).flatMap((m) => (m.type === 'append' && m.entries.length === 0 ? [m.to] : []));

  it('lazy commit: followers that are up to date learn a new commit from the next heartbeat, not from an append of its own', () => {
    const net = new Network(3, lazy);
    net.elect('n1');
    const before = net.trace.length;
    net.propose('n1', 'x');
    expect(net.raft('n1').status().commitIndex).toBe(2);
    expect(commitOnlyAppendsSince(net, before)).toEqual([]);
    expect(net.raft('n2').status().commitIndex).toBe(1);
    net.tickAll(1);
    for (const id of ['n2', 'n3']) expect(net.node(id).appliedCommands()).toEqual(['x']);
  });

  it('lazy commit: the next append carries the commit of the entries before it', () => {
    const net = new Network(3, lazy);
    net.elect('n1');
    net.propose('n1', 'x');
    net.propose('n1', 'y');
    for (const id of ['n2', 'n3']) expect(net.node(id).appliedCommands()).toEqual(['x']);
  });

  it('lazy commit: a follower that forwarded a proposal hears of its commit at once, and only it', () => {
    const net = new Network(3, lazy);
    net.elect('n1');
    const before = net.trace.length;
    expect(net.raft('n2').propose([enc('a')]).ok).toBe(true);
    net.stabilize();
    expect(commitOnlyAppendsSince(net, before)).toEqual(['n2']);
    expect(net.node('n2').appliedCommands()).toEqual(['a']);
    expect(net.node('n3').appliedCommands()).toEqual([]);
  });

  it('lazy commit: a forwarded read is answered after an append that tells the follower the read index is committed', () => {
    const net = new Network(3, lazy);
    net.elect('n1');
    // n2 stores entry 2, but its answer is lost: n1 commits with n3 and cannot tell n2's heartbeat that commit.
    const release = net.drop((m) => m.type === 'appendResponse' && m.from === 'n2');
    net.propose('n1', 'x');
    release();
    expect(net.raft('n2').status()).toMatchObject({ lastIndex: 2, commitIndex: 1 });
    // n3's acknowledgement completes the read round; n2's own would have made n1 send it the missing commit.
    net.drop((m) => m.type === 'heartbeatResponse' && m.from === 'n2');
    net.raft('n2').readIndex('r');
    net.stabilize();
    expect(net.node('n2').readStates).toEqual([{ index: 2, context: 'r' }]);
    expect(net.raft('n2').status().commitIndex).toBe(2);
  });

  it('eager commit (the default): every follower gets an append carrying a new commit at once', () => {
    const net = new Network(3);
    net.elect('n1');
    const before = net.trace.length;
    net.propose('n1', 'x');
    expect(commitOnlyAppendsSince(net, before).sort()).toEqual(['n2', 'n3']);
    for (const id of ['n2', 'n3']) expect(net.node(id).appliedCommands()).toEqual(['x']);
  });
});

describe('flow control', () => {
  it('inflight window: a follower in replicate state has at most inflightAppendsMax unacknowledged appends', () => {
    const r = newNode('n1', { overrides: { inflightAppendsMax: 3, entriesPerAppendMax: 1 } });
    becomeLeader(r);
    commitNoop(r);
    r.propose(['a', 'b', 'c', 'd', 'e'].map(enc));
    const toN2 = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2');
    expect(toN2.map((m) => m.entries[0]!.index)).toEqual([2, 3, 4]);
    r.step(acceptAndReply(toN2[0]!));
    const more = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2' && m.entries.length > 0);
    expect(more.map((m) => m.entries[0]!.index)).toEqual([5]);
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ match: 2, next: 6 });
  });

  it('probe: a follower in probe state gets one append and then nothing until it answers', () => {
    const r = newNode('n1', { terms: [1, 1, 1], hardState: { term: 1 } });
    becomeLeader(r);
    expect(ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').length).toBe(1);
    r.propose([enc('a')]);
    r.propose([enc('b')]);
    expect(ofType(readMessages(r), 'append').filter((m) => m.to === 'n2')).toEqual([]);
  });

  it('probe: a heartbeat response from a lagging follower in probe state triggers a resend', () => {
    const r = newNode('n1', { terms: [1, 1, 1], hardState: { term: 1 } });
    becomeLeader(r);
    readMessages(r);
    r.step(heartbeatResponse('n2', 'n1', 2));
    const resent = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2');
    expect(resent.map((m) => m.prevLogIndex)).toEqual([3]);
  });

  it('probe: old or duplicated answers that confirm the match send one probe each, never a whole window', () => {
    const r = newNode('n1', { overrides: { inflightAppendsMax: 8, entriesPerAppendMax: 1 } });
    becomeLeader(r);
    commitNoop(r);
    r.propose(['a', 'b', 'c', 'd', 'e'].map(enc));
    const window = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2');
    expect(window).toHaveLength(5);
    const match = r.status().progress.get(nodeId('n2'))!.match;
    // n2 rejects the second append (the first was lost): probe from where it is.
    r.step(appendResponse('n2', 'n1', r.status().term, false, window[1]!.prevLogIndex, 0, match + 1));
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ state: 'probe' });
    readMessages(r);
    // Ten old answers for the match arrive (duplicated, reordered): each brings at most one probe, with entries.
    for (let i = 0; i < 10; i++) {
      r.step(appendResponse('n2', 'n1', r.status().term, true, match));
      const sent = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2');
      expect(sent.length).toBeLessThanOrEqual(1);
      for (const m of sent) expect(m.entries.length).toBe(1);
      expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ state: 'probe', match });
    }
    // The probe's own answer moves the match, and replication goes on from there.
    r.step(appendResponse('n2', 'n1', r.status().term, true, match + 1));
    expect(r.status().progress.get(nodeId('n2'))).toMatchObject({ state: 'replicate', match: match + 1 });
    expect(ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').map((m) => m.entries[0]!.index)).toEqual([match + 2, match + 3, match + 4, match + 5]);
  });

  it('probe: a window knocked back twice in one heartbeat round opens again only in the next round', () => {
    // Over a network that reorders, most one-entry appends of a window arrive early and are rejected; a new window per
    // knock-back sent a window per entry caught up (simulator seed 807463228, storage profile).
    const r = newNode('n1', { overrides: { inflightAppendsMax: 8, entriesPerAppendMax: 1 } });
    becomeLeader(r);
    commitNoop(r);
    r.propose(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map(enc));
    const toN2 = (): number[] => ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').map((m) => m.entries[0]!.index);
    const n2 = () => r.status().progress.get(nodeId('n2'))!;
    const t = r.status().term;
    expect(toN2()).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    // The append of 4 arrived before those of 2 and 3: knocked back once, the probe's answer opens a window again.
    r.step(appendResponse('n2', 'n1', t, false, 3, 0, 2));
    expect(toN2()).toEqual([2]);
    r.step(appendResponse('n2', 'n1', t, true, 2));
    expect(n2()).toMatchObject({ state: 'replicate', match: 2 });
    expect(toN2()).toEqual([3, 4, 5, 6, 7, 8, 9]);
    // Knocked back a second time in this round: answers that move the match (here an old append's) send one probe.
    r.step(appendResponse('n2', 'n1', t, false, 5, 0, 3));
    expect(toN2()).toEqual([3]);
    r.step(appendResponse('n2', 'n1', t, true, 4));
    expect(n2()).toMatchObject({ state: 'probe', match: 4 });
    expect(toN2()).toEqual([5]);
    r.step(appendResponse('n2', 'n1', t, true, 5));
    expect(n2()).toMatchObject({ state: 'probe', match: 5 });
    expect(toN2()).toEqual([6]);
    // A new round: the next answer opens the window again.
    r.tick();
    readMessages(r);
    r.step(appendResponse('n2', 'n1', t, true, 6));
    expect(n2()).toMatchObject({ state: 'replicate', match: 6 });
    expect(toN2()).toEqual([7, 8, 9]);
  });

  it('batching: an append carries at most entriesPerAppendMax entries and about appendBytesMax bytes', () => {
    const r = newNode('n1', { overrides: { entriesPerAppendMax: 4, appendBytesMax: 250 } });
    becomeLeader(r);
    commitNoop(r);
    r.propose(Array.from({ length: 10 }, () => new Uint8Array(10)));
    const sizes = ofType(readMessages(r), 'append').filter((m) => m.to === 'n2').map((m) => m.entries.length);
    expect(sizes).toEqual([4, 4, 2]);
    r.propose(Array.from({ length: 3 }, () => new Uint8Array(100)));
    const big = ofType(readMessages(r), 'append').filter((m) => m.to === 'n3').map((m) => m.entries.length);
    expect(big).toEqual([2, 1]);
  });

  it('an idle leader sends only heartbeats, every heartbeatTicks, carrying min(match, commit)', () => {
    const net = new Network(3, { heartbeatTicks: 3 });
    net.elect('n1');
    net.propose('n1', 'x');
    const from = net.trace.length;
    net.tickAll(9);
    const sent = net.trace.slice(from).filter((m) => m.from === 'n1');
    expect(sent.map((m) => m.type)).toEqual(Array<string>(6).fill('heartbeat'));
    expect(sent.every((m) => m.type === 'heartbeat' && m.commit === 2)).toBe(true);
  });
});

describe('Ready and advance', () => {
  it('ready: hardState is handed out only when term, vote or commit changed', () => {
    const r = newNode();
    expect(r.hasReady()).toBe(false);
    r.step(heartbeat('n2', 'n1', 1));
    let rd = r.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: null, commit: 0 });
    r.advance(rd);
    r.step(heartbeat('n2', 'n1', 1));
    rd = r.ready();
    expect(rd.hardState).toBeNull();
    r.advance(rd);
    expect(r.hasReady()).toBe(false);
  });

  it('ready: softState is handed out when the role or the leader changes', () => {
    const r = newNode();
    r.step(heartbeat('n2', 'n1', 1));
    let rd = r.ready();
    expect(rd.softState).toEqual({ leaderId: 'n2', role: 'follower' });
    r.advance(rd);
    r.campaign();
    rd = r.ready();
    expect(rd.softState).toEqual({ leaderId: null, role: 'candidate' });
  });

  it('ready: no node ever sends a message to itself', () => {
    const net = new Network(5, preVote);
    net.tickAll(40);
    net.propose(net.leader()!.id, 'a');
    net.raft(net.leader()!.id).readIndex('r');
    net.stabilize();
    expect(net.trace.length).toBeGreaterThan(10);
    expect(net.trace.filter((m) => m.from === m.to)).toEqual([]);
  });

  it('advance: entries replaced while a write was in progress are handed out again', () => {
    const r = newNode('n1');
    r.step(append('n2', 'n1', 1, 0, 0, [entry(1, 1), entry(2, 1)]));
    const rd = r.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([1, 2]);
    // While rd is being written, a new leader replaces index 2.
    r.step(append('n3', 'n1', 2, 1, 1, [entry(2, 2)]));
    r.advance(rd);
    expect(r.ready().entries.map((e) => [e.index, e.term])).toEqual([[2, 2]]);
  });

  it('advance: committed entries are handed out in bounded batches and never twice', () => {
    const r = newNode('n1', { size: 1 });
    r.campaign();
    r.propose(Array.from({ length: 5000 }, () => enc('x')));
    let rd = r.ready();
    expect(rd.entries.length).toBe(5001);
    r.advance(rd);
    rd = r.ready();
    expect(rd.committedEntries.length).toBe(4096);
    r.advance(rd);
    rd = r.ready();
    expect(rd.committedEntries[0]!.index).toBe(4097);
    expect(rd.committedEntries.at(-1)!.index).toBe(5001);
    r.advance(rd);
    expect(r.status().appliedIndex).toBe(5001);
  });

  it("advance: a leader counts its own new entries toward a quorum only once they are written", () => {
    const r = newNode('n1');
    becomeLeader(r);
    commitNoop(r);
    r.propose([enc('x')]);
    const rd = r.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([2]);
    // A follower acknowledges before the leader's own write completes (the manager sends appends early).
    r.step(appendResponse('n2', 'n1', 1, true, 2));
    expect(r.status().commitIndex).toBe(1);
    r.advance(rd);
    expect(r.status().commitIndex).toBe(2);
    expect(ofType(readMessages(r), 'append').map((m) => [m.to, m.commit])).toEqual([
      ['n2', 2],
      ['n3', 2],
    ]);
  });

  it('restart: a node restarted from its disk keeps its term, vote and log and does not vote twice', () => {
    const net = new Network(3);
    net.elect('n1');
    net.propose('n1', 'a');
    net.restart('n2');
    const st = net.raft('n2').status();
    expect(st).toMatchObject({ term: 1, vote: 'n1', lastIndex: 2, role: 'follower' });
    expect(net.raft('n2').hasReady()).toBe(true); // committed entries to re-apply from 0
    net.raft('n2').step(vote('n3', 'n2', 1, 9, 1));
    expect(ofType(net.pending(), 'voteResponse').filter((m) => m.from === 'n2').map((m) => m.granted)).toEqual([false]);
  });

  it('initial state: applied entries are not handed out again', () => {
    const r = createRaftNode(makeConfig('n1', ['n1', 'n2', 'n3'], 1), {
      hardState: { term: 1 as never, vote: null, commit: 2 as never },
      entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
      applied: 1 as never,
    });
    const rd = r.ready();
    expect(rd.entries).toEqual([]);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2]);
  });

  it('validateRaftConfig rejects nonsense', () => {
    const base: RaftConfig = makeConfig('n1', ['n1', 'n2', 'n3'], 1);
    expect(() => validateRaftConfig(base)).not.toThrow();
    const bad: Partial<RaftConfig>[] = [
      { heartbeatTicks: 10, electionTicks: 10 },
      { heartbeatTicks: 0 },
      { electionTicks: 1.5 },
      { voters: [nodeId('n2'), nodeId('n3')] },
      { voters: [] },
      { voters: [nodeId('n1'), nodeId('n1')] },
      { inflightAppendsMax: 0 },
      { entriesPerAppendMax: -1 },
      { appendBytesMax: 0 },
      { uncommittedBytesMax: Number.NaN },
      { pendingReadsMax: 0 },
    ];
    for (const b of bad) expect(() => validateRaftConfig({ ...base, ...b }), JSON.stringify(b)).toThrow(/invalid raft config/);
    expect(() =>
      createRaftNode({ ...base, random: new SeededRandom(1), ...defaultRaftLimits }, { hardState: { ...emptyHardState, commit: 3 as never }, entries: [], applied: 0 as never }),
    ).toThrow(/commit 3/);
  });
});
