// Turns what a worker says about its tasks (a heartbeat, an assignment's answer) into task reports, keeping only
// those that would change a record: a heartbeat that changes nothing costs no Raft write.
import type { WorkerTaskStatus } from '../contracts/worker.js';
import type { TaskReport } from '../kv/task-commands.js';
import type { TaskStore } from '../kv/task-store.js';
import { reportOutcome } from '../kv/task-rules.js';

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

/** The reports among `statuses` that change their task (same rule as the state machine's apply). */
export function changedReports(store: TaskStore, workerId: string, statuses: readonly WorkerTaskStatus[], retryAt: RetryClock): TaskReport[] {
  const out: TaskReport[] = [];
  for (const s of statuses) {
    const task = store.task(s.taskId);
    if (task === undefined) continue;
    const report = reportOf(workerId, s, 0);
    if (report === null || reportOutcome(task, report).kind === 'ignore') continue;
    out.push({ ...report, retryAtMs: retryAt(s.attempt) });
  }
  return out;
}
