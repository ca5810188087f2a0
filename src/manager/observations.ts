// Turns what a worker says about its tasks (a heartbeat, an assignment's answer) into task reports, keeping only
// those that would change a record: a heartbeat that changes nothing costs no Raft write.
import type { WorkerTaskStatus } from '../contracts/worker.js';
import type { TaskReport } from '../kv/task-commands.js';
import type { TaskStore } from '../kv/task-store.js';
import { reportMatches, reportOutcome } from '../kv/task-rules.js';
import { finalTaskStates, type TaskRecord } from '../contracts/task-model.js';

/** The time a task whose attempt `attempt` just ended may be placed again (the proposer draws the jitter). */
export type RetryClock = (attempt: number) => number;

export function reportOf(workerId: string, s: WorkerTaskStatus, retryAtMs: number): TaskReport | null {
  if (s.state === 'starting') return null;
  return {
    taskId: s.taskId, workerId, attempt: s.attempt, term: s.term, state: s.state, containerId: s.containerId,
    exitCode: s.exitCode, error: s.error, retryAtMs,
    ...(s.health === undefined ? {} : { health: s.health }), ...(s.ports === undefined ? {} : { ports: s.ports }),
  };
}

/**
 * The reports a worker's status makes of `task` that change it (same rule as the state machine's apply): none, its
 * own, or, when the record still says scheduled and the status shows an attempt that started and has ended already (a
 * short task ends between two heartbeats), a `running` report before it, so the history reads scheduled, running,
 * succeeded as the lifecycle does. Both go in one command, so every manager of every version applies the same two.
 */
export function reportsOf(task: TaskRecord, workerId: string, s: WorkerTaskStatus, retryAtMs: number): TaskReport[] {
  const report = reportOf(workerId, s, retryAtMs);
  if (report === null || reportOutcome(task, report).kind === 'ignore') return [];
  if (task.state !== 'scheduled' || s.startedAt === null || !finalTaskStates.has(report.state)) return [report];
  const { health: _health, ...rest } = report;
  const running: TaskReport = { ...rest, state: 'running', exitCode: null, error: null };
  return reportOutcome(task, running).kind === 'ignore' ? [report] : [running, report];
}

/** The reports among `statuses` that change their task (reportsOf). */
export function changedReports(store: TaskStore, workerId: string, statuses: readonly WorkerTaskStatus[], retryAt: RetryClock): TaskReport[] {
  const out: TaskReport[] = [];
  for (const s of statuses) {
    const task = store.task(s.taskId);
    if (task === undefined) continue;
    const reports = reportsOf(task, workerId, s, 0);
    if (reports.length === 0) continue;
    const retryAtMs = retryAt(s.attempt);
    for (const r of reports) out.push({ ...r, retryAtMs });
  }
  return out;
}

/**
 * Whether a status names a placement this manager has not applied yet: a task it does not know (and did not remove),
 * or whose record is of an earlier term or attempt, or still waits to be placed. A follower that is behind judges
 * such a report "changes nothing"; the worker, told its heartbeat was accepted, would not send it again for
 * statusResendBeats heartbeats (10 s by default), so the heartbeat waits for the leader's commit index first.
 */
export function namesUnappliedPlacement(store: TaskStore, workerId: string, statuses: readonly WorkerTaskStatus[]): boolean {
  return statuses.some((s) => {
    if (s.state === 'starting') return false;
    const task = store.task(s.taskId);
    if (task === undefined) return !store.wasRemoved(s.taskId);
    if (finalTaskStates.has(task.state) || reportMatches(task, { workerId, attempt: s.attempt, term: s.term })) return false;
    return task.term < s.term || (task.term === s.term && task.attempt <= s.attempt);
  });
}
