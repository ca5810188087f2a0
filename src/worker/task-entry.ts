// One task in a worker's local map: its fencing token and spec, what the worker has seen of its container, and the
// pure helpers around it (token order, container names and labels, the status the worker reports).
import type { Assignment, WorkerTaskStatus } from '../contracts/worker.js';
import { stopSignals, type AssignedPort, type FencingToken, type StopSignal, type TaskError, type TaskHealth, type TaskSpec } from '../contracts/task-model.js';
import { limits } from '../lib/limits.js';
import type { ContainerInfo, RunSpec, RuntimeKind } from '../runtime/types.js';

export type LocalState = WorkerTaskStatus['state'];

export const labelTask = 'minkube.task';
export const labelWorker = 'minkube.worker';
export const labelAttempt = 'minkube.attempt';
export const labelTerm = 'minkube.term';
/** The container start's trace context (W3C traceparent), on traced tasks only. */
export const labelTraceparent = 'minkube.traceparent';
/**
 * The worker instance that made a container: an id the worker keeps in its data directory. Two clusters may each
 * have a worker of one name on the same Docker engine; a worker takes (at start) and removes (as an orphan) only the
 * containers of its own instance, or made before instances were labelled.
 */
export const labelInstance = 'minkube.instance';
/**
 * The spec's stopSignal and stopTimeoutS, when it gives them: a restarted worker adopts the container knowing only its
 * labels, and stops it the task's way even when no assignment hands the spec back (it is no longer assigned here).
 */
export const labelStopSignal = 'minkube.stop-signal';
export const labelStopTimeoutS = 'minkube.stop-timeout-s';

/** Whether a container of this worker's id is this instance's to adopt at start and to remove as an orphan. */
export function ownedByInstance(info: Pick<ContainerInfo, 'labels'>, instance: string | undefined): boolean {
  const made = info.labels[labelInstance];
  return instance === undefined || made === undefined || made === instance;
}

export interface TaskEntry {
  readonly taskId: string;
  readonly attempt: number;
  readonly term: number;
  /** Adopted entries only know the image and the stop the labels record until a reconciliation hands the full spec back. */
  spec: TaskSpec;
  state: LocalState;
  containerId: string | null;
  exitCode: number | null;
  error: TaskError | null;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  /** When the entry appeared: a reconciliation whose assignment list is older must not judge it. */
  readonly createdAtMs: number;
  /** Set by a stop: the exit that follows is 'stopped', not 'failed'. */
  stopRequested: boolean;
  /** When the first stop was asked for (clock.nowMs(), wall: compared with the runtime's record of when it ended). */
  stopRequestedAtMs?: number;
  /** Its stop was requested while it was starting: stopped without the grace period (SIGKILL) once it has started. */
  stopAtOnce?: boolean;
  /** The newest log lines, kept once the container is removed. */
  logTail: string | null;
  /** 'pending' while an exited container still exists; 'failed' when removing it failed (reconciliation retries). */
  cleanup: 'none' | 'pending' | 'done' | 'failed';
  /** When a reconciliation first saw the managers no longer list this finished task (clock.monoMs(): the retention after it is a duration). */
  acknowledgedAtMs: number | null;
  /** Settles when the start attempt has ended: the container runs, or the start failed. Never rejects. */
  started: Promise<void>;
  /** Settles when the entry reaches a final state. Never rejects. */
  readonly finished: Promise<void>;
  markFinished: () => void;
  /** Set while its container is watched: abandons the wait under way and waits again (a reconciliation saw it exited). */
  lookAgain?: (() => void) | undefined;
  /** The stop in progress, so that concurrent stops share it. */
  stopping: Promise<void> | null;
  /** The assignment's W3C traceparent when its submission was traced: the container start joins the trace. */
  traceparent?: string;
  /** The host ports of this attempt (tasks with named ports). */
  ports?: readonly AssignedPort[];
  /** The health check's verdict (tasks with a healthCheck, while it runs). */
  health?: TaskHealth;
  /** Set when the health check found the task unhealthy: its exit is then this failure. */
  unhealthy?: string;
  /** The health check in progress. */
  monitor?: { stop(): void };
  /** statusOf's last answer and the times it shows, given again while nothing it shows has changed. */
  statusCache: { status: WorkerTaskStatus; startedAtMs: number | null; finishedAtMs: number | null } | null;
}

export function newEntry(token: FencingToken, spec: TaskSpec, nowMs: number): TaskEntry {
  let markFinished: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    markFinished = resolve;
  });
  return {
    taskId: token.taskId, attempt: token.attempt, term: token.term, spec,
    state: 'starting', containerId: null, exitCode: null, error: null, startedAtMs: null, finishedAtMs: null,
    createdAtMs: nowMs, stopRequested: false, logTail: null, cleanup: 'none', acknowledgedAtMs: null,
    started: Promise.resolve(), finished, markFinished, stopping: null, statusCache: null,
  };
}

export function isFinal(state: LocalState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'stopped';
}

export function isActive(state: LocalState): boolean {
  return state === 'starting' || state === 'running';
}

/** Negative when a is older than b, 0 when equal, positive when newer: attempt first, then the placing leader's term. */
export function compareTokens(a: { attempt: number; term: number }, b: { attempt: number; term: number }): number {
  return a.attempt !== b.attempt ? a.attempt - b.attempt : a.term - b.term;
}

export function tokenText(t: { attempt: number; term: number }): string {
  return `attempt ${t.attempt} term ${t.term}`;
}

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*; the term is in the name so a re-placed attempt never collides. */
export function containerName(token: FencingToken): string {
  const safe = token.taskId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 180);
  return `minkube-${safe}-${token.attempt}-${token.term}`;
}

export function containerLabels(workerId: string, token: FencingToken, instance?: string): Record<string, string> {
  return {
    [labelTask]: token.taskId,
    [labelWorker]: workerId,
    [labelAttempt]: String(token.attempt),
    [labelTerm]: String(token.term),
    ...(instance === undefined ? {} : { [labelInstance]: instance }),
  };
}

/**
 * The stop a container's labels record (labelStopSignal, labelStopTimeoutS). A container made before they were written,
 * or whose label is malformed, gives nothing for it: the worker's default stop applies, as it always did.
 */
export function stopOfContainer(info: Pick<ContainerInfo, 'labels'>): Pick<TaskSpec, 'stopSignal' | 'stopTimeoutS'> {
  const out: { stopSignal?: StopSignal; stopTimeoutS?: number } = {};
  const signal = info.labels[labelStopSignal];
  if (signal !== undefined && (stopSignals as readonly string[]).includes(signal)) out.stopSignal = signal as StopSignal;
  const timeoutS = integerLabel(info.labels[labelStopTimeoutS]);
  if (timeoutS !== null && timeoutS <= limits.taskStopTimeoutSMax) out.stopTimeoutS = timeoutS;
  return out;
}

/** The fencing token a container carries in its labels, or null when they are missing or malformed. */
export function tokenOfContainer(info: Pick<ContainerInfo, 'labels'>): FencingToken | null {
  const taskId = info.labels[labelTask];
  const attempt = integerLabel(info.labels[labelAttempt]);
  const term = integerLabel(info.labels[labelTerm]);
  if (taskId === undefined || taskId === '' || attempt === null || term === null) return null;
  return { taskId, attempt, term };
}

function integerLabel(text: string | undefined): number | null {
  if (text === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * The spec's own labels first: ours win, since re-adoption and fencing depend on them. A traced start carries its
 * trace context as a label and as TRACEPARENT in the environment (OpenTelemetry's carrier for child processes).
 */
export function runSpecFor(workerId: string, a: FencingToken & { spec: TaskSpec }, traceparent?: string, instance?: string): RunSpec {
  const { spec } = a;
  const run: RunSpec = {
    name: containerName(a),
    image: spec.image,
    labels: { ...spec.labels, ...containerLabels(workerId, a, instance) },
  };
  if (spec.command !== undefined) run.command = [...spec.command];
  if (spec.stopSignal !== undefined) {
    run.stopSignal = spec.stopSignal;
    run.labels[labelStopSignal] = spec.stopSignal;
  }
  if (spec.stopTimeoutS !== undefined) {
    run.stopTimeoutS = spec.stopTimeoutS;
    run.labels[labelStopTimeoutS] = String(spec.stopTimeoutS);
  }
  if (spec.env !== undefined || spec.secretEnv !== undefined) run.env = { ...spec.env, ...spec.secretEnv };
  if (traceparent !== undefined) {
    run.labels[labelTraceparent] = traceparent;
    run.env = { ...run.env, TRACEPARENT: traceparent };
  }
  if (spec.resources !== undefined) {
    const resources: NonNullable<RunSpec['resources']> = {};
    if (spec.resources.cpus !== undefined) resources.cpus = spec.resources.cpus;
    if (spec.resources.memoryMb !== undefined) resources.memoryMb = spec.resources.memoryMb;
    run.resources = resources;
  }
  return run;
}

/**
 * How an observed exit reads: a requested stop is 'stopped' whatever the code; an unobserved exit is a transient
 * failure. `oom`: the runtime saw the kernel's OOM killer end it (Docker's State.OOMKilled), with the spec's memory
 * limit when the worker knows it: the reason says so, not only the 137 that SIGKILL leaves. `outOfSpace`: the runtime
 * saw the disk full as it ran (ExitStatus.outOfSpace): a transient failure of the host, reported without its exit code
 * (the managers read a failure with an exit code as the task's own, for its restart policy to judge).
 */
export function exitOutcome(
  exitCode: number | null, stopRequested: boolean, oom: { memoryMb: number | undefined } | null = null, outOfSpace?: string, what: RunsAs = 'container',
): { state: LocalState; error: TaskError | null; exitCode: number | null } {
  if (stopRequested) return { state: 'stopped', error: null, exitCode };
  if (exitCode === 0) return { state: 'succeeded', error: null, exitCode };
  if (outOfSpace !== undefined) {
    return { state: 'failed', error: { class: 'transient', message: `out of disk space: ${outOfSpace} (the ${what} exited with code ${exitCode ?? 'unknown'})` }, exitCode: null };
  }
  return { ...ownExitOutcome(exitCode, oom, what), exitCode };
}

/** What a runtime runs a task as, in the messages a user reads: a process runtime's task is no container. */
export type RunsAs = 'container' | 'process';

export function runsAs(kind: RuntimeKind): RunsAs {
  return kind === 'process' ? 'process' : 'container';
}

/** Why an exit code is unknown: a container's exit was not watched; a process's wrapper left no exit file. */
const unknownExit: Record<RunsAs, string> = {
  container: 'the container exited while no worker watched it; its exit code is unknown',
  process: 'the process ended without leaving its exit code (its wrapper shell was killed from outside the worker, or the host restarted); its exit code is unknown',
};

function ownExitOutcome(exitCode: number | null, oom: { memoryMb: number | undefined } | null, what: RunsAs): { state: LocalState; error: TaskError | null } {
  if (exitCode === null) return { state: 'failed', error: { class: 'transient', message: unknownExit[what] } };
  // The task's own failure: retrying the same spec is the restart policy's decision, not the failure class's.
  if (oom !== null) {
    const message = oom.memoryMb === undefined
      ? `the container was killed by the kernel's OOM killer (out of memory; exit code ${exitCode})`
      : `the container was killed for exceeding its memory limit of ${oom.memoryMb} MiB (exit code ${exitCode})`;
    return { state: 'failed', error: { class: 'permanent', message } };
  }
  return { state: 'failed', error: { class: 'permanent', message: `the ${what} exited with code ${exitCode}` } };
}

/** exitOutcome's `oom` for an entry whose container the OOM killer ended (else null). */
export function oomOf(entry: Pick<TaskEntry, 'spec'>, oomKilled: boolean | undefined): { memoryMb: number | undefined } | null {
  return oomKilled === true ? { memoryMb: entry.spec.resources?.memoryMb } : null;
}

/**
 * The entry's status. The same object comes back while nothing it shows has changed, so that a heartbeat can tell
 * "changed since the managers accepted it" by identity, without formatting every task's status on every beat.
 */
export function statusOf(e: TaskEntry): WorkerTaskStatus {
  const c = e.statusCache;
  if (c !== null && c.startedAtMs === e.startedAtMs && c.finishedAtMs === e.finishedAtMs) {
    const s = c.status;
    if (s.state === e.state && s.containerId === e.containerId && s.exitCode === e.exitCode && s.error === e.error && s.health === e.health && s.ports === e.ports) return s;
  }
  const status: WorkerTaskStatus = {
    taskId: e.taskId,
    attempt: e.attempt,
    term: e.term,
    state: e.state,
    containerId: e.containerId,
    exitCode: e.exitCode,
    error: e.error,
    startedAt: e.startedAtMs === null ? null : new Date(e.startedAtMs).toISOString(),
    finishedAt: e.finishedAtMs === null ? null : new Date(e.finishedAtMs).toISOString(),
    ...(e.ports === undefined ? {} : { ports: e.ports }),
    ...(e.health === undefined ? {} : { health: e.health }),
  };
  e.statusCache = { status, startedAtMs: e.startedAtMs, finishedAtMs: e.finishedAtMs };
  return status;
}

export function assignmentToken(a: Assignment): FencingToken {
  return { taskId: a.taskId, attempt: a.attempt, term: a.term };
}
