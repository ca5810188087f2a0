// A traced submission's path through the managers: every manager that applies an entry carrying a trace context
// (CommandEnvelope.tp) marks a span and logs the trace id, and remembers the context of each task it submitted, so
// that the leader's assignment to a worker (tracedWorkerApi) and the task's report of running join the same trace.
// The memory is per manager and bounded; a manager that restarts from a snapshot has forgotten older tasks' traces.
import type { Logger } from 'pino';
import type { Assignment, WorkerTaskStatus } from '../contracts/worker.js';
import type { Command } from '../kv/commands.js';
import type { AppliedCommand } from '../kv/state-machine.js';
import type { TaskReport } from '../kv/task-commands.js';
import type { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { endSpan, markSpan, SpanKind, startSpan, traceIdOf } from '../lib/trace.js';
import type { WorkerApi, WorkerCallOptions } from './worker-client.js';

export interface TaskTracesOptions {
  node: string;
  logger: Logger;
  tracedTasksMax?: number;
}

function reportsOf(cmd: Command): readonly TaskReport[] {
  return cmd.op === 'task.report' || cmd.op === 'worker.heartbeat' ? cmd.reports : [];
}

function submittedIds(cmd: Command): string[] {
  if (cmd.op === 'task.submit') return [cmd.taskId];
  if (cmd.op === 'task.submitBatch') return cmd.tasks.map((t) => t.taskId);
  return [];
}

export class TaskTraces {
  /**
   * taskId -> the traceparent of the request that submitted it, and the last attempt marked running (a running task
   * is reported again when its health or ports change: one task.running span per attempt). Map order is oldest first.
   */
  private readonly book = new Map<string, { tp: string; runningAttempt: number }>();
  private readonly max: number;

  constructor(private readonly o: TaskTracesOptions) {
    this.max = o.tracedTasksMax ?? limits.tracedTasksMax;
  }

  get size(): number {
    return this.book.size;
  }

  /** The submission's trace context of a task, if it was traced and is remembered here. */
  of(taskId: string): string | undefined {
    return this.book.get(taskId)?.tp;
  }

  /**
   * Entries up to this index were in the log before this process started: applied again at start (the log after the
   * snapshot replayed), they mark no span, since the process before most likely marked them (a restart sent every
   * traced task's spans again). One that arrived just before a crash, never applied then, is not marked on this
   * manager: a span missing here rather than one twice.
   */
  replayedThrough = 0;

  /** Told of every entry applied on this manager (after the state machine). Untraced entries cost a field read. */
  applied(index: number, applied: AppliedCommand): void {
    const envelope = applied.envelope;
    if (envelope === undefined) return;
    const replayed = index <= this.replayedThrough;
    const tp = envelope.tp;
    if (tp !== undefined && applied.fresh) {
      // A replayed submission is still remembered (bounded), so that its task's later attempts join its trace.
      if (replayed) for (const id of submittedIds(envelope.cmd)) this.remember(id, tp);
      else this.appliedTraced(index, envelope.cmd, tp);
    }
    if (this.book.size > 0) this.followReports(envelope.cmd, !replayed);
  }

  private appliedTraced(index: number, cmd: Command, tp: string): void {
    const ids = submittedIds(cmd);
    const attributes = { 'minkube.node': this.o.node, 'minkube.raft.index': index, 'minkube.command': cmd.op, ...(ids.length === 1 ? { 'minkube.task': ids[0]! } : {}) };
    markSpan(`raft.apply ${cmd.op}`, tp, attributes);
    this.o.logger.debug({ traceId: traceIdOf(tp), index, op: cmd.op, tasks: ids.length }, 'applied a traced command');
    for (const id of ids) this.remember(id, tp);
  }

  private remember(taskId: string, tp: string): void {
    this.book.delete(taskId);
    this.book.set(taskId, { tp, runningAttempt: 0 });
    if (this.book.size > this.max) this.book.delete(this.book.keys().next().value!);
  }

  /** The traced tasks' reports: a span each (unless `mark` is false: replayed), and what the book keeps of them. */
  private followReports(cmd: Command, mark: boolean): void {
    for (const r of reportsOf(cmd)) {
      const traced = this.book.get(r.taskId);
      if (traced === undefined) continue;
      const { tp } = traced;
      if (!mark) {
        if (r.state === 'running') traced.runningAttempt = Math.max(traced.runningAttempt, r.attempt);
        else if (r.state !== 'failed') this.book.delete(r.taskId);
        continue;
      }
      if (r.state === 'running') {
        if (traced.runningAttempt >= r.attempt) continue;
        traced.runningAttempt = r.attempt;
        markSpan('task.running', tp, { 'minkube.node': this.o.node, 'minkube.task': r.taskId, 'minkube.worker': r.workerId, 'minkube.attempt': r.attempt });
        this.o.logger.info({ traceId: traceIdOf(tp), task: r.taskId, worker: r.workerId, attempt: r.attempt }, 'traced task running');
      } else {
        // Final (succeeded, failed, stopped): a retry is a new attempt of the same trace only while remembered.
        markSpan(`task.${r.state}`, tp, { 'minkube.node': this.o.node, 'minkube.task': r.taskId, 'minkube.worker': r.workerId });
        if (r.state !== 'failed') this.book.delete(r.taskId);
      }
    }
  }
}

/**
 * The leader's calls to workers with traced assignments: each traced one gets a `task.assign` span (a child of its
 * submission) whose context travels with it (the assignment's traceparent, and the header for a single one).
 */
export function tracedWorkerApi(inner: WorkerApi, traces: TaskTraces, node: string): WorkerApi {
  const withTrace = (a: Assignment, worker: string) => {
    const tp = traces.of(a.taskId);
    if (tp === undefined) return { a, span: null };
    const span = startSpan('task.assign', tp, { 'minkube.node': node, 'minkube.task': a.taskId, 'minkube.worker': worker, 'minkube.attempt': a.attempt, 'minkube.desired': a.desiredState }, SpanKind.CLIENT);
    return { a: span === null ? a : { ...a, traceparent: span.traceparent }, span };
  };
  return {
    async assign(apiAddress: string, a: Assignment, o: WorkerCallOptions): Promise<WorkerTaskStatus> {
      if (traces.size === 0) return inner.assign(apiAddress, a, o);
      const t = withTrace(a, apiAddress);
      try {
        const status = await inner.assign(apiAddress, t.a, o);
        endSpan(t.span);
        return status;
      } catch (err) {
        endSpan(t.span, err);
        throw err;
      }
    },
    async assignMany(apiAddress: string, as: readonly Assignment[], o: WorkerCallOptions): Promise<(WorkerTaskStatus | MinkubeError)[]> {
      if (traces.size === 0) return inner.assignMany(apiAddress, as, o);
      const ts = as.map((a) => withTrace(a, apiAddress));
      try {
        const answers = await inner.assignMany(apiAddress, ts.map((t) => t.a), o);
        ts.forEach((t, i) => endSpan(t.span, answers[i] instanceof Error ? answers[i] : undefined));
        return answers;
      } catch (err) {
        for (const t of ts) endSpan(t.span, err);
        throw err;
      }
    },
    logs: (apiAddress, taskId, tailLines, o) => inner.logs(apiAddress, taskId, tailLines, o),
    followLogs: (apiAddress, taskId, tailLines, o) => inner.followLogs(apiAddress, taskId, tailLines, o),
  };
}
