// A heartbeat's statuses judged against this manager's applied state: one that names a placement it has not applied
// (a follower behind the leader) makes the heartbeat wait for the leader's commit index instead of being taken as
// "changes nothing", which left a fast task's end unrecorded for 10 s (statusResendBeats) on a loaded machine.
import { describe, expect, it } from 'vitest';
import type { WorkerTaskStatus } from '../../src/contracts/worker.js';
import { changedReports, namesUnappliedPlacement } from '../../src/manager/observations.js';
import { TaskDriver } from '../kv/task-driver.js';

function status(taskId: string, o: Partial<WorkerTaskStatus> = {}): WorkerTaskStatus {
  return { taskId, attempt: 1, term: 2, state: 'succeeded', containerId: 'c1', exitCode: 0, error: null, startedAt: null, finishedAt: null, ...o };
}

describe('namesUnappliedPlacement', () => {
  it('true for a placement the manager has not applied: unknown task, pending record, earlier term or attempt', () => {
    const d = new TaskDriver();
    d.register('w1');
    d.submit('t1');
    // Not placed here yet: the report would be ignored (the record is pending).
    expect(changedReports(d.store, 'w1', [status('t1')], () => 0)).toEqual([]);
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t1')])).toBe(true);
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t-unknown')])).toBe(true);
    d.place('t1', 'w1', 1, 2);
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t1')])).toBe(false);
    expect(changedReports(d.store, 'w1', [status('t1')], () => 0)).toHaveLength(1);
    // A later term's placement than the record's.
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t1', { term: 3 })])).toBe(true);
  });

  it('false for what waiting cannot change: a starting task, a stale attempt, a finished or removed task', () => {
    const d = new TaskDriver();
    d.register('w1');
    d.submit('t1');
    d.place('t1', 'w1', 1, 2);
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t1', { state: 'starting', term: 5 })])).toBe(false);
    d.report({ taskId: 't1', state: 'succeeded', exitCode: 0 });
    expect(d.task('t1').state).toBe('succeeded');
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t1', { term: 5 })])).toBe(false);
    // An older attempt than the record's (the task moved on), or another worker's placement of the same term.
    d.submit('t2');
    d.place('t2', 'w1', 1, 4);
    expect(namesUnappliedPlacement(d.store, 'w1', [status('t2', { term: 3 })])).toBe(false);
  });
});

describe('a short task that ended between two reports', () => {
  it('is reported running, then ended, in one batch: its history reads scheduled, running, succeeded', () => {
    const d = new TaskDriver();
    d.register('w1');
    d.submit('t1');
    d.place('t1', 'w1', 1, 2);
    const ended = status('t1', { startedAt: '2026-12-06T14:24:53.950Z', finishedAt: '2026-12-06T14:24:54.400Z' });
    const reports = changedReports(d.store, 'w1', [ended], () => 0);
    expect(reports.map((r) => [r.state, r.exitCode])).toEqual([['running', null], ['succeeded', 0]]);
    for (const r of reports) d.report({ taskId: r.taskId, state: r.state, exitCode: r.exitCode });
    expect(d.task('t1').history.map((h) => h.state)).toEqual(['pending', 'scheduled', 'running', 'succeeded']);
    // Once running is recorded, only the end is reported; one that never started (no startedAt) gets no running.
    d.submit('t2');
    d.place('t2', 'w1', 1, 2);
    expect(changedReports(d.store, 'w1', [status('t2', { state: 'failed', exitCode: null, error: { class: 'permanent', message: 'no such image' } })], () => 0).map((r) => r.state)).toEqual(['failed']);
    d.report({ taskId: 't2', state: 'running', exitCode: null });
    expect(changedReports(d.store, 'w1', [status('t2', { startedAt: '2026-12-06T14:24:53.950Z' })], () => 0).map((r) => r.state)).toEqual(['succeeded']);
  });
});
