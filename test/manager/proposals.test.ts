// The proposal tracker's answers when the manager stops: a 503 says "not applied", so a proposal some leader may hold
// in its log answers TIMEOUT (outcome unknown) instead. The chaos test caught a manager answering 503 NOT_READY for
// two writes it had forwarded, which the leader then committed: the history was not linearizable.
// And how long an accepted proposal waits before it is resent.
import { expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { ProposalTracker, type ProposalWaiter } from '../../src/manager/proposals.js';

function waiter(seq: number, answers: Map<number, MinkubeError>): ProposalWaiter<string> {
  return { seq, data: new Uint8Array([seq]), deadlineMs: 1e9, accepted: false, lastProposedMs: 0, lastRejection: null, resolve: () => undefined, reject: (e) => answers.set(seq, e) };
}

it('rejectAll: a proposal handed to a leader answers TIMEOUT (unknown outcome); one never accepted answers the error given', () => {
  const tracker = new ProposalTracker<string>({ queueMax: 10, resendAfterMs: 1000, random: new SeededRandom(1) });
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
  const tracker = new ProposalTracker<string>({ queueMax: count, resendAfterMs: 1000, random: new SeededRandom(7) });
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
