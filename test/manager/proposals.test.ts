// The proposal tracker's answers when the manager stops: a 503 says "not applied", so a proposal some leader may hold
// in its log answers TIMEOUT (outcome unknown) instead. The chaos test caught a manager answering 503 NOT_READY for
// two writes it had forwarded, which the leader then committed: the history was not linearizable.
import { expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { ProposalTracker, type ProposalWaiter } from '../../src/manager/proposals.js';

function waiter(seq: number, answers: Map<number, MinkubeError>): ProposalWaiter<string> {
  return { seq, data: new Uint8Array([seq]), deadlineMs: 1e9, accepted: false, lastProposedMs: 0, lastRejection: null, resolve: () => undefined, reject: (e) => answers.set(seq, e) };
}

it('rejectAll: a proposal handed to a leader answers TIMEOUT (unknown outcome); one never accepted answers the error given', () => {
  const tracker = new ProposalTracker<string>({ queueMax: 10, resendAfterMs: 1000 });
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
