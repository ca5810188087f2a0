// What a worker's report, or the loss of a worker, does to a task: pure decisions from the record and the report,
// applied by the task store. Restart policies, failure classes and maxAttempts all meet here and nowhere else.
import type { TaskReport } from './task-commands.js';
import type { AssignedPort, TaskError, TaskHealth, TaskRecord, TaskState } from '../contracts/task-model.js';
import { maxAttemptsOf, restartPolicyOf } from './task-spec.js';

export type ReportOutcome =
  | { readonly kind: 'ignore' }
  /** The container runs (state scheduled -> running, or a container id learnt while running). */
  | { readonly kind: 'running'; readonly containerId: string | null; readonly health?: TaskHealth; readonly ports?: readonly AssignedPort[]; readonly reason?: string }
  | { readonly kind: 'final'; readonly state: 'succeeded' | 'failed' | 'stopped'; readonly error: TaskError | null; readonly reason: string }
  /**
   * Back to pending with the attempt raised, not placed before the report's retryAtMs. `drained`: the attempt ended
   * because its worker was drained: it is placed again at once, and does not count against maxAttempts.
   */
  | { readonly kind: 'retry'; readonly error: TaskError | null; readonly reason: string; readonly drained?: true };

export function isActiveState(state: TaskState): boolean {
  return state === 'scheduled' || state === 'running';
}

/**
 * Whether the current attempt is to be stopped on its worker: asked to stop, or its worker drained (then it is placed
 * again once stopped). What the assignment a worker reads says (desiredState stop), and what the leader sends.
 */
/** The history's reason for a task stopped on request while it waited to be placed (it ends at once). */
export const stoppedBeforePlacedReason = 'stopped on request before it was placed';

export function stopWanted(task: Pick<TaskRecord, 'desiredState' | 'draining'>): boolean {
  return task.desiredState === 'stop' || task.draining === true;
}

/** Whether the report is about the task's current attempt on its current worker. */
export function reportMatches(task: TaskRecord, r: Pick<TaskReport, 'workerId' | 'attempt' | 'term'>): boolean {
  return isActiveState(task.state) && task.workerId === r.workerId && task.attempt === r.attempt && task.term === r.term;
}

export function reportOutcome(task: TaskRecord, r: TaskReport): ReportOutcome {
  if (!reportMatches(task, r)) return { kind: 'ignore' };
  if (r.state === 'running') {
    const news = task.state === 'scheduled' || (r.containerId !== null && r.containerId !== task.containerId);
    const health = r.health !== undefined && r.health !== task.health;
    const ports = r.ports !== undefined && !samePorts(r.ports, task.ports);
    if (!news && !health && !ports) return { kind: 'ignore' };
    return {
      kind: 'running', containerId: r.containerId ?? task.containerId, ...(r.health === undefined ? {} : { health: r.health }), ...(r.ports === undefined ? {} : { ports: r.ports }),
      ...(r.health === 'unhealthy' && r.error !== null ? { reason: r.error.message } : {}),
    };
  }
  if (task.desiredState === 'stop') {
    return r.state === 'succeeded'
      ? { kind: 'final', state: 'succeeded', error: null, reason: 'exited with code 0' }
      : { kind: 'final', state: 'stopped', error: null, reason: 'stopped on request' };
  }
  // Stopped by the drain of its worker: placed again elsewhere. One that ended by itself first follows its own rules.
  if (task.draining === true && r.state === 'stopped') return drainedOutcome(task, r.workerId, 'stopped there');
  switch (r.state) {
    case 'succeeded':
      if (restartPolicyOf(task.spec) === 'always') return retryOrFail(task, null, 'exited with code 0; restart policy always', 'succeeded');
      return { kind: 'final', state: 'succeeded', error: null, reason: 'exited with code 0' };
    case 'stopped':
      return retryOrFail(task, { class: 'transient', message: `the container was stopped by worker ${r.workerId} without a request` }, 'stopped by its worker');
    case 'failed':
      return failedOutcome(task, r);
  }
}

function failedOutcome(task: TaskRecord, r: TaskReport): ReportOutcome {
  if (r.exitCode !== null) {
    // The task's own failure: its restart policy decides, not a failure class.
    const error: TaskError = { class: 'permanent', message: r.error?.message ?? `the container exited with code ${r.exitCode}` };
    if (restartPolicyOf(task.spec) === 'never') return { kind: 'final', state: 'failed', error, reason: `exited with code ${r.exitCode}` };
    return retryOrFail(task, error, `exited with code ${r.exitCode}`);
  }
  const error: TaskError = r.error ?? { class: 'transient', message: 'the worker reported a failure without a reason' };
  // A service's replica is replaced whatever the failure: its service wants it running.
  if (error.class === 'permanent' && task.service === undefined) return { kind: 'final', state: 'failed', error, reason: error.message };
  return retryOrFail(task, error, error.message);
}

/** A retry while attempts are left; else the final state, with the attempts named in the error. */
export function retryOrFail(task: TaskRecord, error: TaskError | null, reason: string, exhausted: 'succeeded' | 'failed' = 'failed'): ReportOutcome {
  // A service's replicas are restarted without bound (with backoff): the service keeps its replicas running.
  if (task.service !== undefined) return { kind: 'retry', error, reason: `${reason}; restarting (attempt ${task.attempt + 1})` };
  const max = maxAttemptsOf(task.spec);
  const counted = countedAttempts(task);
  if (counted < max) return { kind: 'retry', error, reason: `${reason}; retrying (attempt ${counted + 1} of ${max})` };
  if (exhausted === 'succeeded') return { kind: 'final', state: 'succeeded', error: null, reason: `${reason}; no attempts left (${max})` };
  const message = `${error?.message ?? reason} (attempt ${counted} of ${max}; no attempts left)`;
  return { kind: 'final', state: 'failed', error: { class: error?.class ?? 'transient', message }, reason: `${reason}; no attempts left` };
}

/** The attempts that count against maxAttempts: all but those their worker's drain ended. */
export function countedAttempts(task: Pick<TaskRecord, 'attempt' | 'drainedAttempts'>): number {
  return task.attempt - (task.drainedAttempts ?? 0);
}

/** An attempt ended by its worker's drain: placed again at once, elsewhere, as an attempt that does not count. */
function drainedOutcome(task: TaskRecord, workerId: string, how: string): ReportOutcome {
  return {
    kind: 'retry', drained: true, error: drainedError(workerId),
    reason: `drained: worker ${workerId} is drained (${how}); placed again as attempt ${task.attempt + 1}, not counted against maxAttempts`,
  };
}

function drainedError(workerId: string): TaskError {
  return { class: 'transient', message: `its worker ${workerId} was drained` };
}

/**
 * Whether the task's current attempt follows one its worker's drain ended, and nothing has ended since: the record
 * keeps the previous attempt's error while the next one is placed and runs.
 */
export function movedByDrain(task: Pick<TaskRecord, 'attempt' | 'error' | 'drainedAttempts'>): boolean {
  const e = task.error;
  return task.attempt > 1 && (task.drainedAttempts ?? 0) > 0 && e !== null && e.class === 'transient' && e.message.startsWith('its worker ') && e.message.endsWith(' was drained');
}

/**
 * A task whose worker was declared down: stopped if asked to stop, else retried elsewhere or ended. `draining`: the
 * attempt was being stopped for a drain of that worker (the lost record no longer says so).
 */
export function lostOutcome(task: TaskRecord, workerId: string, draining = task.draining === true): ReportOutcome {
  if (task.desiredState === 'stop') return { kind: 'final', state: 'stopped', error: null, reason: `its worker ${workerId} was lost while stopping it` };
  if (draining) return drainedOutcome(task, workerId, 'lost before it stopped the task');
  return retryOrFail(task, { class: 'transient', message: `worker ${workerId} was lost` }, `worker ${workerId} lost`);
}

function samePorts(a: readonly AssignedPort[], b: readonly AssignedPort[] | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  return a.every((p, i) => p.name === b[i]!.name && p.hostPort === b[i]!.hostPort && p.address === b[i]!.address);
}
