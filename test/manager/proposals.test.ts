// The proposal tracker's answers when the manager stops: a 503 says "not applied", so a proposal some leader may hold
// in its log answers TIMEOUT (outcome unknown) instead. The chaos test caught a manager answering 503 NOT_READY for
// two writes it had forwarded, which the leader then committed: the history was not linearizable.
// And how long an accepted proposal waits before it is resent.
import { expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { ProposalTracker, type ProposalWaiter } from '../../src/manager/proposals.js';

function waiter(seq: number, answers: Map<number, MinkubeError>): ProposalWaiter<string> {
  return { seq, data: new Uint8Array([seq]), deadlineMs: 1e9, startedMs: 0, accepted: false, lastProposedMs: 0, lastRejection: null, resolve: () => undefined, reject: (e) => answers.set(seq, e) };
}

it('rejectAll: a proposal handed to a leader answers TIMEOUT (unknown outcome); one never accepted answers the error given', () => {
  const tracker = new ProposalTracker<string>({ queueMax: 10, resendAfterMs: 1000, random: new SeededRandom(1), electionTimeoutMs: 1000 });
  const answers = new Map<number, MinkubeError>();
  for (let i = 0; i < 3; i++) tracker.add(waiter(tracker.allocateSeq(), answers));
  // 1 and 2 were handed to the core and accepted (a leader may hold them); 3 never was.
  tracker.markProposed(tracker.takeDue().filter((w) => w.seq !== 3), 10);
  tracker.rejectAll(new MinkubeError('NOT_READY', 'the manager is shutting down'));
  expect(answers.get(1)).toMatchObject({ code: 'TIMEOUT', message: 'the manager is shutting down before the write was confirmed; it may or may not have been applied' });
  expect(answers.get(2)?.code).toBe('TIMEOUT');
  expect(answers.get(3)).toMatchObject({ code: 'NOT_READY', message: 'the manager is shutting down' });
  expect(tracker.size).toBe(0);
});

it('resend waits: half to one and a half times resendAfterMs, that on average, doubling with each resend up to 8x', () => {
  const count = 400;
  const tracker = new ProposalTracker<string>({ queueMax: count, resendAfterMs: 1000, random: new SeededRandom(7), electionTimeoutMs: 1000 });
  for (let i = 0; i < count; i++) tracker.add(waiter(tracker.allocateSeq(), new Map()));
  let batch = tracker.takeDue();
  let atMs = 1;
  for (const meanMs of [1000, 2000, 4000, 8000, 8000]) {
    // Handed to the core at atMs; then time steps 1 ms at a time until every one is due again: its wait is then.
    tracker.markProposed(batch, atMs);
    const waits: number[] = [];
    let t = atMs;
    for (batch = []; batch.length < count; t++) {
      tracker.requeueStale(t);
      for (const w of tracker.takeDue()) {
        batch.push(w);
        waits.push(t - atMs);
      }
    }
    atMs = t;
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(meanMs / 2);
    expect(Math.max(...waits)).toBeLessThanOrEqual((meanMs * 3) / 2);
    expect(new Set(waits).size).toBeGreaterThan(count / 4);
    expect(Math.abs(waits.reduce((a, b) => a + b, 0) / count - meanMs)).toBeLessThan(meanMs * 0.1);
  }
});

// The tester's loaded host: a manager with no leader answered 503 at its request's very deadline (2000 ms), plus the
// event loop's lag, after the CLI had given up at 2500 ms and called the outcome unknown.
it('expire: a proposal no leader took answers NO_LEADER at half of its time, or after four election timeouts with no leader known; one a leader took waits to its deadline (TIMEOUT)', () => {
  const tracker = new ProposalTracker<string>({ queueMax: 10, resendAfterMs: 300, random: new SeededRandom(3), electionTimeoutMs: 300 });
  const answers = new Map<number, MinkubeError>();
  const at: Record<number, number> = {};
  const add = (startedMs: number, deadlineMs: number): number => {
    const seq = tracker.allocateSeq();
    tracker.add({ ...waiter(seq, answers), startedMs, deadlineMs, reject: (e) => { answers.set(seq, e); at[seq] = now; } });
    return seq;
  };
  let now = 0;
  const leaderless = add(0, 4000); // no leader the whole time: 4 x 300 = 1200 ms comes before half, 2000 ms
  const short = add(0, 1000); // half of 1000 ms comes first: 500 ms
  const forwarded = add(0, 2000); // handed to a leader, which then went silent: unknown, at the deadline
  tracker.markProposed(tracker.takeDue().filter((w) => w.seq === forwarded), 0);
  let withLeader = 0;
  for (now = 0; now <= 5300; now += 50) {
    if (now === 1300) {
      // A leader is known from now on, and refuses it (UNCOMMITTED_LIMIT): it never takes it. Half of 4000 ms.
      withLeader = add(1300, 5300);
      tracker.markRejected(tracker.takeDue().filter((w) => w.seq === withLeader), 'UNCOMMITTED_LIMIT', now);
    }
    tracker.expire(now, now >= 1300, () => new MinkubeError('NO_LEADER'));
  }
  expect(at).toEqual({ [leaderless]: 1200, [short]: 500, [forwarded]: 2000, [withLeader]: 3300 });
  expect(answers.get(leaderless)?.code).toBe('NO_LEADER');
  expect(answers.get(short)?.code).toBe('NO_LEADER');
  expect(answers.get(withLeader)?.code).toBe('UNCOMMITTED_LIMIT');
  expect(answers.get(forwarded)?.code).toBe('TIMEOUT');
});
