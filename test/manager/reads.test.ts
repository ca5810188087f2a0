// The ReadIndex batcher: one round in flight, later reads join the next round, deadlines always answer.
import { describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { ReadBatcher } from '../../src/manager/reads.js';
import type { ProposeResult } from '../../src/raft/types.js';

function setup(answer: ProposeResult = { ok: true, forwardedTo: null }) {
  const rounds: string[] = [];
  const batcher = new ReadBatcher({
    contextPrefix: 'c:',
    queueMax: 3,
    retryAfterMs: 100,
    electionTimeoutMs: 1e9,
    readIndex: (ctx) => {
      rounds.push(ctx);
      return answer;
    },
  });
  const outcomes: string[] = [];
  const read = (name: string, deadlineMs: number) =>
    batcher.add({ deadlineMs, resolve: () => outcomes.push(`${name} ok`), reject: (e: MinkubeError) => outcomes.push(`${name} ${e.code}`) }, 0);
  return { batcher, rounds, outcomes, read };
}

describe('ReadBatcher', () => {
  it('reads that arrive while a round is in flight join the next round, and resolve once applied', () => {
    const { batcher, rounds, outcomes, read } = setup();
    read('a', 1000);
    read('b', 1000);
    expect(rounds).toEqual(['c:1']);
    batcher.onReadState('c:1', 5, 4, 10);
    expect(rounds).toEqual(['c:1', 'c:2']);
    expect(outcomes).toEqual([]);
    batcher.onApplied(5);
    expect(outcomes).toEqual(['a ok']);
    batcher.onReadState('c:2', 5, 5, 20);
    expect(outcomes).toEqual(['a ok', 'b ok']);
  });

  it('a tick before the deadline keeps a read in flight (regression: it used to drop it)', () => {
    const { batcher, outcomes, read } = setup();
    read('a', 1000);
    batcher.tick(10, true);
    batcher.onReadState('c:1', 1, 1, 20);
    expect(outcomes).toEqual(['a ok']);
  });

  it('a lost round is started again after retryAfterMs', () => {
    const { batcher, rounds, outcomes, read } = setup();
    read('a', 1000);
    batcher.tick(150, true);
    expect(rounds).toEqual(['c:1', 'c:2']);
    batcher.onReadState('c:1', 1, 1, 160); // the answer to the abandoned round is ignored
    expect(outcomes).toEqual([]);
    batcher.onReadState('c:2', 1, 1, 170);
    expect(outcomes).toEqual(['a ok']);
  });

  it('past its deadline a read fails with a 503 (a read changes nothing: retry), never 504 TIMEOUT, with or without a leader (outside tester)', () => {
    const noLeader = setup({ ok: false, reason: 'NO_LEADER', leaderId: null });
    noLeader.read('a', 50);
    noLeader.batcher.tick(60, false);
    expect(noLeader.outcomes).toEqual(['a NO_LEADER']);
    // The leader it knows was killed: the round is never confirmed.
    const withLeader = setup();
    const errors: MinkubeError[] = [];
    withLeader.batcher.add({ deadlineMs: 50, resolve: () => undefined, reject: (e) => errors.push(e) }, 0);
    withLeader.batcher.tick(60, true);
    expect(errors.map((e) => [e.code, e.status, e.message])).toEqual([
      ['NO_LEADER', 503, 'the read could not be confirmed by a quorum in time (the leader may have stopped or lost its quorum); a read changes nothing: retry'],
    ]);
    // Confirmed, but this manager did not apply the index in time.
    const slow = setup();
    slow.read('c', 50);
    slow.batcher.onReadState('c:1', 9, 4, 10);
    slow.batcher.tick(60, true);
    expect(slow.outcomes).toEqual(['c NOT_READY']);
  });

  it('a full queue refuses with QUEUE_FULL', () => {
    const { read } = setup({ ok: false, reason: 'NO_LEADER', leaderId: null });
    read('a', 1000);
    read('b', 1000);
    read('c', 1000);
    expect(() => read('d', 1000)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
  });

  it('reads outstanding in any state count toward the limit: in flight, confirmed and requeued after a retry', () => {
    const { batcher, rounds, outcomes, read } = setup();
    read('a', 1000); // in flight as c:1
    batcher.onReadState('c:1', 5, 4, 10); // confirmed, waiting for index 5
    read('b', 1000); // in flight as c:2
    read('c', 1000); // queued behind c:2
    expect(batcher.size).toBe(3);
    expect(() => read('d', 1000)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    batcher.tick(150, true); // c:2 is lost: b goes back in front of c, and both start again as c:3
    expect(rounds).toEqual(['c:1', 'c:2', 'c:3']);
    expect(batcher.size).toBe(3);
    expect(() => read('e', 1000)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    batcher.onApplied(5); // a answers, which frees one place
    expect(outcomes).toEqual(['a ok']);
    expect(batcher.size).toBe(2);
    read('f', 1000);
    expect(() => read('g', 1000)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
  });

  it('reads that expire or are rejected free their places', () => {
    const { batcher, outcomes, read } = setup();
    read('a', 50);
    read('b', 1000);
    read('c', 1000);
    batcher.tick(60, true);
    expect(outcomes).toEqual(['a NO_LEADER']);
    expect(batcher.size).toBe(2);
    read('d', 1000);
    expect(() => read('e', 1000)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    batcher.rejectAll(new MinkubeError('NO_LEADER'));
    expect(batcher.size).toBe(0);
    read('f', 1000);
    expect(batcher.size).toBe(1);
  });

  it('a read answers its 503 at half of its time, or after four election timeouts with no leader known, not at its deadline (loaded-host tester: the answer came after the CLI had given up)', () => {
    let confirmed = false;
    const batcher = new ReadBatcher({ contextPrefix: 'c:', queueMax: 5, retryAfterMs: 1e9, electionTimeoutMs: 300, readIndex: () => (confirmed ? { ok: true, forwardedTo: null } : { ok: false, reason: 'NO_LEADER', leaderId: null }) });
    const at: Record<string, [string, number]> = {};
    let now = 0;
    const read = (name: string, deadlineMs: number): void =>
      batcher.add({ deadlineMs, resolve: () => (at[name] = ['ok', now]), reject: (e) => (at[name] = [e.code, now]) }, now);
    read('leaderless', 4000); // no leader the whole time: 4 x 300 = 1200 ms, before half (2000 ms)
    read('short', 1000); // half of 1000 ms comes first: 500 ms
    now = 100;
    read('late', 8100); // begins at 100 ms; a leader known from 1300 ms but never confirming: half of 8000, 4100 ms
    for (; now <= 8100; now += 50) {
      if (now === 1300) confirmed = true; // a round starts and is never answered (a silent leader)
      batcher.tick(now, now >= 1300);
    }
    expect(at).toEqual({ leaderless: ['NO_LEADER', 1200], short: ['NO_LEADER', 500], late: ['NO_LEADER', 4100] });
  });
});
