// Each test ties to a rule of the Raft paper (Figure 2 and sections 5.1-5.4), in the manner of etcd's raft_paper_test.go.
import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/raft/index.js';
import {
  Network,
  acceptAndReply,
  append,
  appendResponse,
  becomeLeader,
  commitNoop,
  entry,
  enc,
  heartbeat,
  ids,
  newNode,
  ofType,
  readMessages,
  vote,
  voteResponse,
} from './harness.js';

const byTo = (a: Message, b: Message): number => a.to.localeCompare(b.to);

describe('5.1 terms', () => {
  it.each(['follower', 'candidate', 'leader'] as const)(
    '5.1: a %s that sees a larger term updates its term and becomes a follower',
    (role) => {
      const r = newNode();
      if (role === 'follower') r.step(heartbeat('n2', 'n1', 1));
      if (role === 'candidate') r.campaign();
      if (role === 'leader') becomeLeader(r);
      r.step(append('n2', 'n1', 5, 0, 0));
      expect(r.status()).toMatchObject({ term: 5, role: 'follower', leaderId: 'n2' });
    },
  );

  it('5.1: a server that receives a request with a stale term rejects it', () => {
    const r = newNode('n1', { hardState: { term: 2 } });
    r.step(append('n2', 'n1', 1, 0, 0, [entry(1, 1)], 1));
    r.step(vote('n3', 'n1', 1, 5, 1));
    const msgs = readMessages(r);
    // The stale append is answered at our term (so that leader steps down); the stale vote gets nothing.
    expect(msgs).toEqual([appendResponse('n1', 'n2', 2, false, 0)]);
    expect(r.status()).toMatchObject({ term: 2, lastIndex: 0, commitIndex: 0, vote: null, leaderId: null });
  });

  it('Figure 2 RequestVote: reply false if term < currentTerm', () => {
    const r = newNode('n1', { hardState: { term: 3 } });
    r.step(vote('n2', 'n1', 2, 10, 2));
    expect(ofType(readMessages(r), 'voteResponse').filter((m) => m.granted)).toEqual([]);
    expect(r.status().vote).toBeNull();
  });

  it('Figure 2 All servers: a request or response with term T > currentTerm sets currentTerm = T and converts to follower', () => {
    const r = newNode();
    becomeLeader(r);
    r.step(voteResponse('n2', 'n1', 7, false));
    expect(r.status()).toMatchObject({ term: 7, role: 'follower', leaderId: null, vote: null });
  });
});

describe('5.2 leader election', () => {
  it('5.2: servers start up as followers', () => {
    expect(newNode().status()).toMatchObject({ role: 'follower', term: 0, leaderId: null });
  });

  it('5.2: a leader sends heartbeats to every follower each heartbeat interval', () => {
    const r = newNode('n1', { overrides: { heartbeatTicks: 2 } });
    becomeLeader(r);
    readMessages(r);
    r.tick();
    expect(readMessages(r)).toEqual([]);
    r.tick();
    const msgs = readMessages(r).sort(byTo);
    expect(msgs).toEqual([heartbeat('n1', 'n2', 1, 0), heartbeat('n1', 'n3', 1, 0)]);
  });

  it.each(['follower', 'candidate'] as const)(
    '5.2: a %s that hears nothing for an election timeout starts an election: new term, votes for itself, asks everyone',
    (role) => {
      const r = newNode();
      if (role === 'follower') r.step(heartbeat('n2', 'n1', 1));
      if (role === 'candidate') r.campaign();
      readMessages(r);
      const before = r.status().term;
      for (let i = 0; i < 20; i++) r.tick();
      expect(r.status()).toMatchObject({ role: 'candidate', term: before + 1, vote: 'n1' });
      const msgs = readMessages(r).sort(byTo);
      expect(msgs).toEqual([vote('n1', 'n2', before + 1, 0, 0, { configIndex: 0, configTerm: 0 }), vote('n1', 'n3', before + 1, 0, 0, { configIndex: 0, configTerm: 0 })]);
    },
  );

  it.each([
    { size: 1, votes: {}, role: 'leader' },
    { size: 3, votes: { n2: true, n3: true }, role: 'leader' },
    { size: 3, votes: { n2: true }, role: 'leader' },
    { size: 5, votes: { n2: true, n3: true }, role: 'leader' },
    { size: 3, votes: { n2: false, n3: false }, role: 'follower' },
    { size: 5, votes: { n2: true, n3: false, n4: false, n5: false }, role: 'follower' },
    { size: 3, votes: {}, role: 'candidate' },
    { size: 5, votes: { n2: true }, role: 'candidate' },
    { size: 5, votes: { n2: false, n3: false }, role: 'candidate' },
  ])(
    '5.2: a candidate wins with votes from a majority, returns to follower when a majority refuses, else waits ($size nodes, votes $votes -> $role)',
    ({ size, votes, role }) => {
      const r = newNode('n1', { size });
      r.campaign();
      for (const [from, granted] of Object.entries(votes)) r.step(voteResponse(from, 'n1', 1, granted));
      expect(r.status()).toMatchObject({ role, term: 1 });
    },
  );

  it.each([
    { voted: null, candidate: 'n2', granted: true },
    { voted: null, candidate: 'n3', granted: true },
    { voted: 'n2', candidate: 'n2', granted: true },
    { voted: 'n3', candidate: 'n3', granted: true },
    { voted: 'n2', candidate: 'n3', granted: false },
    { voted: 'n3', candidate: 'n2', granted: false },
  ])(
    '5.2: each server votes for at most one candidate per term, first come first served (voted $voted, asked by $candidate)',
    ({ voted, candidate, granted }) => {
      const r = newNode('n1', { hardState: { term: 1, vote: voted } });
      r.step(vote(candidate, 'n1', 1));
      expect(readMessages(r)).toEqual([voteResponse('n1', candidate, 1, granted)]);
    },
  );

  it.each([1, 2])(
    '5.2: a candidate that receives AppendEntries from a leader of at least its term (%i) returns to follower',
    (t) => {
      const r = newNode();
      r.campaign();
      expect(r.status().role).toBe('candidate');
      r.step(append('n2', 'n1', t, 0, 0));
      expect(r.status()).toMatchObject({ role: 'follower', term: t, leaderId: 'n2' });
    },
  );

  it.each(['follower', 'candidate'] as const)('5.2: election timeouts of a %s are drawn at random from [electionTicks, 2 * electionTicks)', (role) => {
    const r = newNode();
    const seen = new Set<number>();
    for (let round = 0; round < 400; round++) {
      if (role === 'follower') r.step(heartbeat('n2', 'n1', r.status().term + 1));
      else r.campaign();
      readMessages(r);
      let elapsed = 0;
      do {
        r.tick();
        elapsed++;
      } while (readMessages(r).length === 0);
      seen.add(elapsed);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('5.2: in most elections only one server times out first, which makes split votes rare', () => {
    const nodes = ids(5).map((id, i) => newNode(id, { size: 5, seed: 100 + i }));
    let conflicts = 0;
    for (let round = 0; round < 500; round++) {
      for (const r of nodes) {
        r.step(heartbeat(r.status().id === 'n1' ? 'n2' : 'n1', r.status().id, round + 1));
        readMessages(r);
      }
      let timedOut = 0;
      while (timedOut === 0) {
        for (const r of nodes) {
          r.tick();
          if (readMessages(r).length > 0) timedOut++;
        }
      }
      if (timedOut > 1) conflicts++;
    }
    expect(conflicts / 500).toBeLessThanOrEqual(0.3);
  });

  it('5.2: granting a vote resets the election timer', () => {
    const r = newNode();
    for (let i = 0; i < 9; i++) r.tick();
    r.step(vote('n2', 'n1', 1));
    expect(readMessages(r)).toEqual([voteResponse('n1', 'n2', 1, true)]);
    for (let i = 0; i < 9; i++) r.tick();
    expect(r.status().role).toBe('follower');
  });

  it('Figure 2 Candidates: on conversion, persist the new term and the vote for self before the vote requests go out', () => {
    const r = newNode();
    r.campaign();
    const rd = r.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 'n1', commit: 0 });
    expect(rd.messages.map((m) => m.type)).toEqual(['vote', 'vote']);
  });
});

describe('5.3 log replication', () => {
  it('Figure 2 All servers: if commitIndex > lastApplied, apply log[lastApplied + 1], in order, until lastApplied = commitIndex', () => {
    const r = newNode('n1', { terms: [1, 1, 1, 1], hardState: { term: 1, commit: 3 } });
    const rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2, 3]);
    r.advance(rd);
    expect(r.status().appliedIndex).toBe(3);
    expect(r.hasReady()).toBe(false);
  });

  it('Figure 2 Persistent state: currentTerm, votedFor and log entries are handed out for stable storage in the same Ready as the answers that depend on them', () => {
    const r = newNode();
    r.step(vote('n2', 'n1', 3));
    let rd = r.ready();
    expect(rd.hardState).toEqual({ term: 3, vote: 'n2', commit: 0 });
    expect(rd.messages).toEqual([voteResponse('n1', 'n2', 3, true)]);
    r.advance(rd);
    r.step(append('n2', 'n1', 3, 0, 0, [entry(1, 3)], 0));
    rd = r.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([1]);
    expect(rd.messages).toEqual([appendResponse('n1', 'n2', 3, true, 1)]);
  });

  it('Figure 2 Leaders: upon election, send AppendEntries (carrying the no-op) to each server', () => {
    const r = newNode();
    becomeLeader(r);
    const msgs = readMessages(r).sort(byTo);
    const noop = r.entryAt(1 as never)!;
    expect(noop).toMatchObject({ index: 1, term: 1, type: 'noop' });
    expect(msgs).toEqual([append('n1', 'n2', 1, 0, 0, [noop], 0), append('n1', 'n3', 1, 0, 0, [noop], 0)]);
  });

  it('5.3: a leader appends a proposal to its log and sends AppendEntries with the preceding index and term to every follower', () => {
    const r = newNode();
    becomeLeader(r);
    commitNoop(r);
    const li = r.status().lastIndex;
    expect(r.propose([enc('some data')])).toEqual({ ok: true, forwardedTo: null });
    const rd = r.ready();
    const e = { term: 1, index: li + 1, type: 'command', data: enc('some data') };
    expect(rd.entries).toEqual([e]);
    expect([...rd.messages].sort(byTo)).toEqual([
      append('n1', 'n2', 1, li, 1, [e as never], li),
      append('n1', 'n3', 1, li, 1, [e as never], li),
    ]);
    expect(r.status().commitIndex).toBe(li);
  });

  it('5.3: a leader commits an entry once it is safely replicated and includes the commit index in later AppendEntries', () => {
    const r = newNode();
    becomeLeader(r);
    commitNoop(r);
    const li = r.status().lastIndex;
    r.propose([enc('some data')]);
    for (const m of readMessages(r)) if (m.type === 'append') r.step(acceptAndReply(m));
    expect(r.status().commitIndex).toBe(li + 1);
    const rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([li + 1]);
    const apps = ofType(rd.messages, 'append');
    expect(apps.map((m) => [m.to, m.commit])).toEqual([
      ['n2', li + 1],
      ['n3', li + 1],
    ]);
  });

  it.each([
    { size: 1, acceptors: [], committed: true },
    { size: 3, acceptors: [], committed: false },
    { size: 3, acceptors: ['n2'], committed: true },
    { size: 3, acceptors: ['n2', 'n3'], committed: true },
    { size: 5, acceptors: [], committed: false },
    { size: 5, acceptors: ['n2'], committed: false },
    { size: 5, acceptors: ['n2', 'n3'], committed: true },
    { size: 5, acceptors: ['n2', 'n3', 'n4', 'n5'], committed: true },
  ])(
    '5.3: an entry is committed once the leader that created it has replicated it on a majority ($size nodes, acks from $acceptors)',
    ({ size, acceptors, committed }) => {
      const r = newNode('n1', { size });
      becomeLeader(r);
      commitNoop(r);
      const li = r.status().lastIndex;
      r.propose([enc('x')]);
      for (const m of readMessages(r)) if (m.type === 'append' && acceptors.includes(m.to)) r.step(acceptAndReply(m));
      expect(r.status().commitIndex > li).toBe(committed);
    },
  );

  it('5.3: committing an entry also commits all preceding entries, including those created by earlier leaders', () => {
    for (const terms of [[], [2], [1, 2], [1]]) {
      const r = newNode('n1', { terms, hardState: { term: 2 } });
      becomeLeader(r);
      for (const m of readMessages(r)) if (m.type === 'append') r.step(acceptAndReply(m));
      const rd = r.ready();
      expect(rd.committedEntries.map((e) => [e.index, e.term, e.type])).toEqual([
        ...terms.map((t, i) => [i + 1, t, 'command']),
        [terms.length + 1, 3, 'noop'],
      ]);
    }
  });

  it('5.3: once a follower learns that an entry is committed, it applies it, in log order', () => {
    const r = newNode();
    r.step(append('n2', 'n1', 1, 0, 0, [entry(1, 1), entry(2, 1), entry(3, 1)], 2));
    const rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    r.advance(rd);
    r.step(heartbeat('n2', 'n1', 1, 3));
    expect(r.ready().committedEntries.map((e) => e.index)).toEqual([3]);
  });

  it.each([
    // A prevLogIndex below the commit index is answered with the commit index: that prefix matches any leader.
    { prev: [0, 0], ok: true, index: 1 },
    { prev: [1, 1], ok: true, index: 1 },
    { prev: [2, 2], ok: true, index: 2 },
    { prev: [1, 2], ok: false, conflict: [1, 1] },
    { prev: [3, 3], ok: false, conflict: [0, 3] },
  ])(
    "Figure 2 AppendEntries: reply false if log doesn't contain an entry at prevLogIndex whose term matches prevLogTerm (prev $prev)",
    ({ prev, ok, index, conflict }) => {
      const r = newNode('n1', { terms: [1, 2], hardState: { commit: 1 } });
      r.step(append('n2', 'n1', 2, prev[0]!, prev[1]!, [], 1));
      const [resp] = ofType(readMessages(r), 'appendResponse');
      if (ok) expect(resp).toEqual(appendResponse('n1', 'n2', 2, true, index!));
      else expect(resp).toEqual(appendResponse('n1', 'n2', 2, false, prev[0]!, conflict![0], conflict![1]));
    },
  );

  it.each([
    { prev: [2, 2], ents: [[3, 3]], want: [1, 2, 3], handedOut: [3] },
    { prev: [1, 1], ents: [[2, 3], [3, 4]], want: [1, 3, 4], handedOut: [3, 4] },
    { prev: [0, 0], ents: [[1, 1]], want: [1, 2], handedOut: [] },
    { prev: [0, 0], ents: [[1, 3]], want: [3], handedOut: [3] },
  ])(
    'Figure 2 AppendEntries: if an existing entry conflicts with a new one, delete it and all that follow, then append new entries (prev $prev)',
    ({ prev, ents, want, handedOut }) => {
      const r = newNode('n1', { terms: [1, 2] });
      r.step(append('n2', 'n1', 4, prev[0]!, prev[1]!, ents.map(([i, t]) => entry(i!, t!))));
      const st = r.status();
      const terms = Array.from({ length: st.lastIndex }, (_, i) => r.entryAt((i + 1) as never)!.term);
      expect(terms).toEqual(want);
      // Only what is new or replaced is handed out to be persisted.
      const rd = r.ready();
      expect(rd.entries.map((e) => e.term)).toEqual(handedOut);
    },
  );

  it('Figure 2 AppendEntries: an append that repeats entries the follower already holds truncates nothing', () => {
    const r = newNode('n1', { terms: [1, 1, 1] });
    r.step(append('n2', 'n1', 1, 0, 0, [entry(1, 1)]));
    expect(r.status().lastIndex).toBe(3);
    expect(r.ready().entries).toEqual([]);
  });

  it('Figure 2 AppendEntries: if leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new entry)', () => {
    const r = newNode('n1', { terms: [1, 1, 1, 1] });
    r.step(append('n2', 'n1', 1, 1, 1, [entry(2, 1)], 4));
    // The follower holds 3 and 4, but only up to the last new entry (2) is known to match the leader.
    expect(r.status().commitIndex).toBe(2);
    r.step(append('n2', 'n1', 1, 2, 1, [entry(3, 1)], 2));
    expect(r.status().commitIndex).toBe(2);
  });

  it('Figure 2 Leaders: if AppendEntries fails because of log inconsistency, move nextIndex back and retry', () => {
    const r = newNode('n1', { terms: [1, 1, 2, 2], hardState: { term: 2 } });
    becomeLeader(r);
    const first = ofType(readMessages(r), 'append').find((m) => m.to === 'n2')!;
    expect(first.prevLogIndex).toBe(4);
    // n2 holds only [1]: its log is too short.
    r.step(appendResponse('n2', 'n1', 3, false, 4, 0, 2));
    const retry = ofType(readMessages(r), 'append').find((m) => m.to === 'n2')!;
    expect([retry.prevLogIndex, retry.prevLogTerm, retry.entries.map((e) => e.index)]).toEqual([1, 1, [2, 3, 4, 5]]);
  });

  it('5.3: a leader brings every follower log into consistency with its own', () => {
    // The scenarios of Figure 7: the leader of term 8 and followers (a)-(f).
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6],
      [1, 1, 1, 4],
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
      [1, 1, 1, 4, 4, 4, 4],
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (const follower of followers) {
      const net = new Network(3);
      const setup = (id: string, terms: number[]): void => {
        const n = net.node(id);
        n.disk.entries.push(...terms.map((t, i) => entry(i + 1, t)));
        n.disk.hardState = { term: 8 as never, vote: null, commit: 0 as never };
        net.restart(id);
      };
      setup('n1', leaderTerms);
      setup('n2', follower);
      setup('n3', follower.length > leaderTerms.length ? leaderTerms : follower);
      net.elect('n1');
      expect(net.raft('n1').status().role).toBe('leader');
      const leaderLog = net.node('n1').disk.entries.map((e) => [e.index, e.term]);
      expect(net.node('n2').disk.entries.map((e) => [e.index, e.term])).toEqual(leaderLog);
    }
  });
});

describe('5.4 safety', () => {
  it('5.4.1: a RequestVote carries the candidate\'s last log index and term', () => {
    for (const terms of [[1], [1, 2], [1, 1, 2, 3]]) {
      const r = newNode('n1', { terms, hardState: { term: 3 } });
      r.campaign();
      const msgs = ofType(readMessages(r), 'vote');
      expect(msgs.map((m) => [m.to, m.term, m.lastLogIndex, m.lastLogTerm])).toEqual([
        ['n2', 4, terms.length, terms.at(-1)],
        ['n3', 4, terms.length, terms.at(-1)],
      ]);
    }
  });

  it.each([
    { ours: [1, 1], cand: [2, 1], granted: true },
    { ours: [1, 1], cand: [3, 1], granted: true },
    { ours: [1, 1], cand: [1, 1], granted: false },
    { ours: [1, 2], cand: [1, 1], granted: false },
    { ours: [1, 2], cand: [2, 2], granted: true },
    { ours: [1, 2], cand: [3, 2], granted: true },
    { ours: [1, 2], cand: [3, 1], granted: false },
    { ours: [2, 2], cand: [1, 1], granted: false },
  ])(
    '5.4.1: a voter denies its vote if its own log is more up-to-date (ours $ours, candidate [index, term] $cand)',
    ({ ours, cand, granted }) => {
      const r = newNode('n1', { terms: ours, hardState: { term: 2 } });
      r.step(vote('n2', 'n1', 3, cand[0], cand[1]));
      expect(readMessages(r)).toEqual([voteResponse('n1', 'n2', 3, granted)]);
      expect(r.status().vote).toBe(granted ? 'n2' : null);
    },
  );

  it('5.4.2: a leader never commits an entry from a previous term by counting replicas', () => {
    const r = newNode('n1', { terms: [1, 2], hardState: { term: 2 } });
    becomeLeader(r);
    readMessages(r);
    // n2 acknowledges the old entries but not the no-op of term 3: a majority holds index 2, of term 2.
    r.step(appendResponse('n2', 'n1', 3, true, 2));
    expect(r.status().commitIndex).toBe(0);
    r.step(appendResponse('n2', 'n1', 3, true, 3));
    expect(r.status().commitIndex).toBe(3);
  });
});
