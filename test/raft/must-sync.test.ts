// What a Ready says must be durable before which message leaves (etcd's MustSync; Raft thesis 10.2.1): a leader's
// appends leave before its own write, votes and append answers only after it, and a commit index alone needs no sync.
import { describe, expect, it } from 'vitest';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { createRaftNode, waitsForSync } from '../../src/raft/index.js';
import type { Message, RaftNode, Ready } from '../../src/raft/index.js';
import { emptyHardState, enc, makeConfig } from './harness.js';

const voters = ['a', 'b', 'c'];

function fresh(id: string): RaftNode {
  return createRaftNode(makeConfig(id, voters, 7), { hardState: emptyHardState, entries: [], applied: logIndex(0) });
}

/** Takes and advances every Ready, returning them. */
function drain(n: RaftNode): Ready[] {
  const out: Ready[] = [];
  while (n.hasReady()) {
    const rd = n.ready();
    out.push(rd);
    n.advance(rd);
  }
  return out;
}

/** a, b and c with a elected and the cluster settled (every Ready advanced, every message delivered). */
function electedA(): { nodes: Map<string, RaftNode>; a: RaftNode } {
  const nodes = new Map(voters.map((id) => [id, fresh(id)]));
  const deliver = (ms: readonly Message[]): void => {
    for (const m of ms) nodes.get(m.to)!.step(m);
  };
  const a = nodes.get('a')!;
  a.campaign();
  for (let round = 0; round < 20; round++) for (const n of nodes.values()) for (const rd of drain(n)) deliver(rd.messages);
  expect(a.status().role).toBe('leader');
  return { nodes, a };
}

function checkSplit(rd: Ready): void {
  expect([...rd.messagesBeforeSync, ...rd.messagesAfterSync].length).toBe(rd.messages.length);
  for (const m of rd.messagesBeforeSync) expect(waitsForSync(m)).toBe(false);
  for (const m of rd.messagesAfterSync) expect(waitsForSync(m)).toBe(true);
}

describe('Ready.mustSync and the messages before and after the sync', () => {
  it('a candidate syncs its term and vote before its vote requests leave; the voter syncs its vote before answering', () => {
    const a = fresh('a');
    a.campaign();
    const rd = a.ready();
    checkSplit(rd);
    expect(rd.mustSync).toBe(true);
    expect(rd.messagesBeforeSync).toEqual([]);
    expect(rd.messagesAfterSync.map((m) => m.type)).toEqual(['vote', 'vote']);
    a.advance(rd);
    const b = fresh('b');
    b.step(rd.messagesAfterSync.find((m) => m.to === 'b')!);
    const answer = b.ready();
    checkSplit(answer);
    expect(answer.mustSync).toBe(true);
    expect(answer.hardState?.vote).toBe('a');
    expect(answer.messagesAfterSync).toMatchObject([{ type: 'voteResponse', granted: true }]);
  });

  it("a leader's appends leave before its own write; a follower's answer waits for its write; a commit alone needs no sync", () => {
    const { nodes, a } = electedA();
    expect(a.propose([enc('x')]).ok).toBe(true);
    const leaderRd = a.ready();
    checkSplit(leaderRd);
    expect(leaderRd.mustSync).toBe(true);
    expect(leaderRd.entries).toHaveLength(1);
    expect(leaderRd.messagesBeforeSync.map((m) => m.type)).toEqual(['append', 'append']);
    a.advance(leaderRd);
    const b = nodes.get('b')!;
    b.step(leaderRd.messagesBeforeSync.find((m) => m.to === 'b')!);
    const followerRd = b.ready();
    checkSplit(followerRd);
    expect(followerRd.mustSync).toBe(true);
    expect(followerRd.messagesAfterSync).toMatchObject([{ type: 'appendResponse', success: true }]);
    b.advance(followerRd);
    a.step(followerRd.messagesAfterSync[0]!);
    const commitRd = a.ready();
    expect(commitRd.hardState?.commit).toBeGreaterThan(leaderRd.hardState?.commit ?? 0);
    expect(commitRd.entries).toHaveLength(0);
    expect(commitRd.mustSync).toBe(false);
  });

  it('while a write is on disk, heartbeats and their answers are taken at once; append answers stay for the next Ready', () => {
    const { nodes, a } = electedA();
    expect(a.takeWhileWriting(a.status().appliedIndex)).toEqual({ messages: [], readStates: [], committedEntries: [] });
    // a's write of x is on disk when its heartbeat round comes; b's write of x is on disk when the heartbeat reaches it.
    a.propose([enc('x')]);
    const writing = a.ready();
    const b = nodes.get('b')!;
    b.step(writing.messagesBeforeSync.find((m) => m.to === 'b' && m.type === 'append')!);
    const bWriting = b.ready();
    expect(bWriting.messagesAfterSync).toMatchObject([{ type: 'appendResponse', success: true }]);
    for (let t = 0; t < 2; t++) a.tick();
    a.readIndex('r1');
    const heartbeats = a.takeWhileWriting(a.status().appliedIndex);
    expect(heartbeats.messages.length).toBeGreaterThan(0);
    expect(new Set(heartbeats.messages.map((m) => m.type))).toEqual(new Set(['heartbeat']));
    const confirm = heartbeats.messages.find((m) => m.to === 'b' && m.type === 'heartbeat' && m.context !== '')!;
    b.step(confirm);
    b.propose([enc('y')]); // forwarded: stays for b's next Ready
    const answers = b.takeWhileWriting(b.status().appliedIndex);

    expect(answers.messages).toMatchObject([{ type: 'heartbeatResponse', to: 'a', context: confirm.type === 'heartbeat' ? confirm.context : '' }]);
    // The read is confirmed by a quorum (a and b) while both writes are still on disk.
    a.step(answers.messages[0]!);
    const reads = a.takeWhileWriting(a.status().appliedIndex);
    expect(reads.readStates).toEqual([{ context: 'r1', index: a.status().commitIndex }]);
    // What waits for a write, or leaves with the next Ready, is still there.
    b.advance(bWriting);
    expect(b.ready().messages.map((m) => m.type)).toEqual(['propose']);
    a.advance(writing);
    expect(a.hasReady()).toBe(true);
  });

  it("a leader takes, while its own write is on disk, the entries its followers' answers committed, once", () => {
    const { nodes, a } = electedA();
    a.propose([enc('x'), enc('y')]);
    const writing = a.ready();
    // applied: what the leader applied of this Ready before its write (its committed entries, all on its disk).
    const appliedBefore = writing.committedEntries.at(-1)?.index ?? a.status().appliedIndex;
    const [x, y] = writing.entries;
    expect(a.takeWhileWriting(appliedBefore).committedEntries).toEqual([]);
    // Both followers write x and y and answer while a's own write is still on disk.
    for (const id of ['b', 'c']) {
      const f = nodes.get(id)!;
      f.step(writing.messagesBeforeSync.find((m) => m.to === id && m.type === 'append')!);
      const rd = f.ready();
      f.advance(rd);
      // A follower's committed entries wait for its Ready: it takes none while writing.
      expect(f.takeWhileWriting(f.status().appliedIndex).committedEntries).toEqual([]);
      a.step(rd.messagesAfterSync.find((m) => m.type === 'appendResponse')!);
    }
    expect(a.status().commitIndex).toBe(y!.index);
    expect(a.takeWhileWriting(appliedBefore).committedEntries).toEqual([x, y]);
    // Handed out once: neither the next take nor the next Ready hands them out again.
    expect(a.takeWhileWriting(logIndex(y!.index)).committedEntries).toEqual([]);
    a.advance(writing);
    const after = a.ready();
    expect(after.committedEntries).toEqual([]);
    a.advance(after);
    expect(a.status().appliedIndex).toBe(y!.index);
  });

  it('a leader that has one follower answering takes nothing early: its own copy completes the quorum', () => {
    const { nodes, a } = electedA();
    a.propose([enc('x')]);
    const writing = a.ready();
    const b = nodes.get('b')!;
    b.step(writing.messagesBeforeSync.find((m) => m.to === 'b' && m.type === 'append')!);
    const rd = b.ready();
    b.advance(rd);
    a.step(rd.messagesAfterSync[0]!);
    expect(a.takeWhileWriting(a.status().appliedIndex).committedEntries).toEqual([]);
    a.advance(writing);
    expect(a.ready().committedEntries).toEqual(writing.entries);
  });

  it('waitsForSync: answers and real vote requests wait, pre-votes and leader traffic do not', () => {
    const env = { from: nodeId('a'), to: nodeId('b'), term: term(2) };
    expect(waitsForSync({ ...env, type: 'vote', preVote: false, lastLogIndex: logIndex(0), lastLogTerm: term(0), transfer: false })).toBe(true);
    expect(waitsForSync({ ...env, type: 'vote', preVote: true, lastLogIndex: logIndex(0), lastLogTerm: term(0), transfer: false })).toBe(false);
    expect(waitsForSync({ ...env, type: 'heartbeat', commit: logIndex(0), context: '' })).toBe(false);
    expect(waitsForSync({ ...env, type: 'appendResponse', success: false, index: logIndex(3), conflictTerm: term(0), conflictIndex: logIndex(1) })).toBe(true);
  });
});
