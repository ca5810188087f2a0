// The worker agent: a bounded in-memory map of its tasks, fenced by (attempt, term), started and watched through a
// ContainerRuntime. It answers about its tasks without asking a manager and keeps them running while managers are down.
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { askableTaskIdPattern, type Assignment, type AssignmentList, type WaitOptions, type WorkerAgentApi, type WorkerTaskStatus } from '../contracts/worker.js';
import type { FencingToken, TaskSpec, WorkerStats } from '../contracts/task-model.js';
import { backoffCeilingMs } from '../lib/backoff.js';
import { sleepOn, systemClock, type Clock, type Timer } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { endSpan, isTraceparent, startSpan } from '../lib/trace.js';
import { classifyRuntimeError } from '../runtime/classify.js';
import { tailBytes, tailLines } from '../runtime/spec.js';
import type { KeptLog, KeptLogFile, KeptLogStore } from './kept-logs.js';
import type { ContainerInfo, ContainerRuntime, ExitStatus, RunSpec } from '../runtime/types.js';
import { endedBeforeRestart, foreignTaskIds, planReconcile, type Correction } from './reconcile.js';
import { HealthMonitor, hostExec, type ExecProbe } from './health.js';
import { labelPorts, portEnv, portsLabel, type PortAllocator } from './ports.js';
import type { AgentObserver } from './metrics.js';
import {
  assignmentToken, compareTokens, exitOutcome, isActive, isFinal, labelWorker, newEntry, oomOf, ownedByInstance, runsAs, runSpecFor, statusOf, stopOfContainer,
  tokenOfContainer, tokenText, type LocalState, type TaskEntry,
} from './task-entry.js';

/** Host figures for a heartbeat; the agent adds its own running-task count. */
export type HostStatsSource = () => Promise<Omit<WorkerStats, 'runningTasks'>>;

export interface WorkerAgentOptions {
  workerId: string;
  /**
   * This worker's instance (an id kept in its data directory, labelInstance): its containers carry it, and containers
   * of its worker id made by another instance (another cluster's worker of that name, on the same engine) are never
   * adopted at start nor removed as orphans. Absent: every container labelled with the worker id is its own.
   */
  instance?: string;
  runtime: ContainerRuntime;
  logger: Logger;
  /** SIGTERM to SIGKILL (the config's tasks.stopTimeoutMs). */
  stopTimeoutMs: number;
  hostStats?: HostStatsSource;
  clock?: Clock;
  /** assign() answers 'starting' if the container has not started by then (an image pull can take minutes). */
  assignWaitMs?: number;
  tasksMax?: number;
  finishedRetentionMs?: number;
  /** Pause before waiting again on a container after the runtime failed (the daemon restarting). */
  waitRetryMs?: number;
  /** Containers being started at once; more assignments wait their turn as 'starting'. */
  startConcurrency?: number;
  /** Host ports for tasks' named ports (none: a task with ports fails to start). */
  ports?: PortAllocator;
  /** Metrics (src/worker/metrics.ts): container starts. */
  observer?: AgentObserver;
  /** Where the output tails of removed containers are kept across restarts (none: in memory only). */
  keptLogs?: KeptLogStore;
}

export interface ReconcileReport {
  /** false: no manager answered, and nothing was changed. */
  readonly reached: boolean;
  readonly corrections: readonly Correction[];
  readonly evicted: number;
}

export type { WaitOptions } from '../contracts/worker.js';

/** standDown()'s answer: how many running tasks were left to the holder on this engine, or stopped (and which engines were known). */
export type StandDown =
  | { readonly kind: 'left'; readonly tasks: number; readonly engine: string }
  | {
      readonly kind: 'stopped';
      readonly tasks: number;
      readonly engine: string | undefined;
      readonly holderEngine: string | undefined;
      /** Both engines known, and not one: nothing of this instance's runs for the holder here. */
      readonly otherEngine: boolean;
    };

/** A tail an earlier run kept: its output (null: the file records nothing usable), and when it is deleted (monoMs). */
interface Restored {
  readonly log: KeptLog | null;
  readonly dueMonoMs: number;
}

const noHostStats: HostStatsSource = async () => ({ cpuUtilization: null, memoryTotalBytes: 0, memoryAvailableBytes: 0, diskFreeBytes: 0 });

export class WorkerAgent implements WorkerAgentApi {
  readonly workerId: string;
  private readonly instance: string | undefined;
  private readonly runtime: ContainerRuntime;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly stopTimeoutMs: number;
  private readonly hostStats: HostStatsSource;
  private readonly assignWaitMs: number;
  private readonly startSlots: Slots;
  private readonly tasksMax: number;
  private readonly finishedRetentionMs: number;
  private readonly waitRetryMs: number;
  private readonly ports: PortAllocator | null;
  private readonly tasks = new Map<string, TaskEntry>();
  /** Replaced entries whose containers are being stopped: their containers are not orphans. */
  private readonly retiring = new Set<TaskEntry>();
  private readonly closing = new AbortController();
  /** Work on ended attempts under way (their output kept on disk, their container removed): close() waits for it. */
  private readonly endings = new Set<Promise<void>>();
  private readonly observer: AgentObserver | undefined;
  private readonly keptLogs: KeptLogStore | null;
  /**
   * Output tails an earlier run of this worker kept (restoreKeptLogs): what `logs` answers for a finished task this
   * run has no entry of, until its retention (from its end) runs out or the managers say to forget it. A file that
   * records nothing usable (damaged) answers nothing (log null) but is deleted when due all the same.
   */
  private readonly restoredLogs = new Map<string, Restored>();
  /** The restored tails by due time, soonest first, walked by the one sweep timer (forgotten ones are skipped). */
  private restoredDue: { readonly taskId: string; readonly dueMonoMs: number }[] = [];
  private restoredNext = 0;
  private sweepTimer: Timer | null = null;
  private sweeping = false;
  /** relinquish(): why this instance no longer acts as the worker id (another instance holds it, or it was removed); nothing new is taken. */
  private relinquished: string | null = null;
  /** leave(): the containers are another instance's on this engine now; this one removes none of them. */
  private leftToHolder = false;
  /**
   * Containers of this worker id that another instance made (a start with an emptied data directory) are this
   * worker's stale copies when their tasks are the cluster's, and another cluster's worker's otherwise; the managers
   * tell which (reconcile() asks them). clusterTasks: those the managers said are theirs, while such a container is
   * there; foreignTasks: those they said are not (at most workerForeignTasksMax, never asked again); toAsk: the next
   * question, from the last container list.
   */
  private readonly clusterTasks = new Set<string>();
  private readonly foreignTasks = new Set<string>();
  private toAsk: readonly string[] = [];
  /** Told when a task's status changes (it runs, ends, or its health verdict changes): the heartbeat goes early. */
  private changeListener: (() => void) | null = null;

  constructor(opts: WorkerAgentOptions) {
    // Every watched container (at most tasksMax, plus retiring ones) listens on this one signal.
    setMaxListeners(2 * (opts.tasksMax ?? limits.workerTasksMax) + 16, this.closing.signal);
    this.workerId = opts.workerId;
    this.instance = opts.instance;
    this.runtime = opts.runtime;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.stopTimeoutMs = opts.stopTimeoutMs;
    this.hostStats = opts.hostStats ?? noHostStats;
    this.assignWaitMs = opts.assignWaitMs ?? 5000;
    this.startSlots = new Slots(opts.startConcurrency ?? limits.workerStartConcurrencyMax);
    this.tasksMax = opts.tasksMax ?? limits.workerTasksMax;
    this.finishedRetentionMs = opts.finishedRetentionMs ?? limits.workerFinishedRetentionMsDefault;
    this.waitRetryMs = opts.waitRetryMs ?? 1000;
    this.ports = opts.ports ?? null;
    this.observer = opts.observer;
    this.keptLogs = opts.keptLogs ?? null;
  }

  /** One listener (the worker's loops): called, synchronously and cheaply, whenever a task's status changes. */
  onStatusChange(listener: () => void): void {
    this.changeListener = listener;
  }

  private changed(): void {
    this.changeListener?.();
  }

  // ---- queries: answered from the map alone ----

  get(taskId: string): WorkerTaskStatus {
    const e = this.tasks.get(taskId);
    if (e === undefined) throw new MinkubeError('TASK_NOT_FOUND', `no task ${taskId} on worker ${this.workerId}`);
    return statusOf(e);
  }

  list(): WorkerTaskStatus[] {
    return [...this.tasks.values()].map(statusOf);
  }

  runningCount(): number {
    let n = 0;
    for (const e of this.tasks.values()) if (isActive(e.state)) n++;
    return n;
  }

  /** Host figures fail soft: a heartbeat with zeros beats no heartbeat (the managers would think the worker down). */
  async stats(): Promise<WorkerStats> {
    let host: Omit<WorkerStats, 'runningTasks'>;
    try {
      host = await this.hostStats();
    } catch (err) {
      this.logger.warn({ err }, 'could not read the host stats');
      host = await noHostStats();
    }
    return { ...host, runningTasks: this.runningCount() };
  }

  /** The newest tailLines lines: from the container while it exists, else from the tail kept when it was removed. */
  async logs(taskId: string, tailLinesMax: number): Promise<string> {
    const e = this.tasks.get(taskId);
    if (e === undefined) {
      const kept = this.restoredLogs.get(taskId)?.log ?? null;
      if (kept !== null) return tailLines(kept.text, tailLinesMax);
      throw new MinkubeError('TASK_NOT_FOUND', `no task ${taskId} on worker ${this.workerId}`);
    }
    if (e.containerId !== null && e.cleanup !== 'done') {
      try {
        return await this.runtime.logs(e.containerId, { tailLines: tailLinesMax });
      } catch (err) {
        // Removed between the check and the call: the kept tail answers below.
        if (e.logTail === null) throw classifyRuntimeError(err);
      }
    }
    return tailLines(e.logTail ?? '', tailLinesMax);
  }

  /** logs(), then what the container writes until it has exited; a task without a container answers its kept tail. */
  async followLogs(taskId: string, tailLinesMax: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const e = this.tasks.get(taskId);
    if (e !== undefined && e.containerId !== null && e.cleanup !== 'done') {
      try {
        return await this.runtime.followLogs(e.containerId, { tailLines: tailLinesMax, signal });
      } catch (err) {
        // Removed between the check and the call: the kept tail answers below.
        if (e.logTail === null) throw classifyRuntimeError(err);
      }
    }
    return once(Buffer.from(await this.logs(taskId, tailLinesMax)));
  }

  // ---- commands from the leader ----

  /**
   * Fenced: an older token is refused, the same token again answers the current status (never a second container),
   * a newer one replaces the older attempt (its container is stopped first).
   */
  async assign(a: Assignment, opts: WaitOptions = {}): Promise<WorkerTaskStatus> {
    this.assertOpen();
    const current = this.tasks.get(a.taskId);
    if (current !== undefined) {
      const order = compareTokens(a, current);
      if (order < 0) throw staleToken(a, current);
      if (order === 0) {
        // The same attempt: its spec, which an adopted entry lacks (but the stop its container's labels record) until a reconcile.
        if (current.spec !== a.spec) this.refreshSpecs([a]);
        if (a.desiredState === 'stop') return this.stop(assignmentToken(a), opts);
        await this.settle(current.started, this.untilMs(opts, this.assignWaitMs));
        return statusOf(current);
      }
    } else {
      const ended = this.restoredLogs.get(a.taskId)?.log ?? null;
      if (ended !== null && ended.attempt >= a.attempt && a.desiredState === 'run') {
        // It ran here before this worker restarted (its output was kept when it ended): never a second run of it.
        this.recordGone(a, endedBeforeRestart(a));
        return statusOf(this.tasks.get(a.taskId)!);
      }
      this.makeRoom();
    }
    const entry = newEntry(assignmentToken(a), a.spec, this.clock.nowMs());
    if (a.traceparent !== undefined && isTraceparent(a.traceparent)) entry.traceparent = a.traceparent;
    this.tasks.set(a.taskId, entry);
    if (a.desiredState === 'stop') {
      this.finish(entry, 'stopped', null, null);
      if (current !== undefined) await this.settle(this.retire(current, entry), this.untilMs(opts, this.assignWaitMs));
      return statusOf(entry);
    }
    entry.started = this.startEntry(entry, current);
    await this.settle(entry.started, this.untilMs(opts, this.assignWaitMs));
    return statusOf(entry);
  }

  /** Fenced like assign. A newer token than the task's stops the older attempt and records the newer one as stopped. */
  async stop(token: FencingToken, opts: WaitOptions = {}): Promise<WorkerTaskStatus> {
    this.assertOpen();
    const current = this.tasks.get(token.taskId);
    if (current === undefined) throw new MinkubeError('TASK_NOT_FOUND', `no task ${token.taskId} on worker ${this.workerId}`);
    const order = compareTokens(token, current);
    if (order < 0) throw staleToken(token, current);
    if (order > 0) {
      const entry = newEntry(token, current.spec, this.clock.nowMs());
      this.finish(entry, 'stopped', null, null);
      this.tasks.set(token.taskId, entry);
      await this.settle(this.retire(current, entry), this.untilMs(opts, this.stopTimeoutOf(current.spec) + 2000));
      return statusOf(entry);
    }
    if (!isFinal(current.state)) await this.settle(this.stopEntry(current), this.untilMs(opts, this.stopTimeoutOf(current.spec) + 2000));
    return statusOf(current);
  }

  // ---- start, watch, stop, clean up ----

  private async startEntry(entry: TaskEntry, previous: TaskEntry | undefined): Promise<void> {
    if (previous !== undefined) await this.retire(previous, entry);
    // A batch of assignments must not become hundreds of container starts at once on one daemon.
    await this.startSlots.acquire();
    try {
      await this.startNow(entry);
    } finally {
      this.startSlots.release();
    }
  }

  private async startNow(entry: TaskEntry): Promise<void> {
    if (entry.stopRequested) {
      this.finish(entry, 'stopped', null, null);
      return;
    }
    // Bindings per line rather than a child logger: one child per task costs more than the lines it would write.
    const task = { task: entry.taskId, attempt: entry.attempt, term: entry.term };
    const traced = entry.traceparent === undefined ? null : startSpan('container.start', entry.traceparent, { 'minkube.worker': this.workerId, 'minkube.task': entry.taskId, 'minkube.attempt': entry.attempt, 'container.image.name': entry.spec.image });
    const trace = traced === null ? {} : { traceId: traced.traceId };
    const timed = this.observer?.taskStartTimer();
    try {
      const { id } = await this.runtime.run(await this.withPorts(entry, runSpecFor(this.workerId, entry, traced?.traceparent, this.instance)));
      timed?.('started');
      // Its stop came while it was starting (a reconcile pass found it assigned elsewhere, say): it has done nothing
      // worth a graceful stop, and a copy of it may be running on another worker meanwhile.
      if (entry.stopRequested) entry.stopAtOnce = true;
      entry.containerId = id;
      entry.state = 'running';
      entry.startedAtMs = this.clock.nowMs();
      this.changed();
      traced?.span.setAttribute('container.id', id);
      endSpan(traced);
      this.logger.info({ ...task, ...trace, containerId: id }, 'task started');
      void this.watch(entry);
      this.watchHealth(entry);
    } catch (err) {
      timed?.('failed');
      const failure = classifyRuntimeError(err);
      endSpan(traced, failure.message);
      this.finish(entry, 'failed', null, { class: failure.failureClass, message: failure.message });
      this.logger.warn({ ...task, ...trace, reason: failure.reason, failureClass: failure.failureClass, problem: failure.message }, 'task failed to start');
    }
  }

  /**
   * Waits for the container's exit (again after a runtime failure, sooner when a reconciliation saw it exited: lookAgain),
   * records it, then keeps a log tail and removes it. The pauses between failed waits grow to workerWaitRetryMsMax.
   */
  private async watch(entry: TaskEntry): Promise<void> {
    const id = entry.containerId;
    if (id === null) return;
    for (let failures = 0; !isFinal(entry.state);) {
      // One controller per wait, aborted by close() or by lookAgain(): at most one listener on closing per watch.
      const look = new AbortController();
      const onClose = (): void => look.abort();
      this.closing.signal.addEventListener('abort', onClose, { once: true });
      entry.lookAgain = () => look.abort();
      try {
        const exit = await this.runtime.wait(id, { signal: look.signal });
        this.recordExit(entry, id, exit, await this.endedBeforeStop(entry, id));
      } catch (err) {
        if (this.closing.signal.aborted) return;
        // A reconciliation saw the container exited while this wait had not answered: wait again now.
        if (look.signal.aborted) continue;
        const failure = classifyRuntimeError(err);
        if (failure.reason === 'container-not-found') {
          this.finish(entry, 'failed', null, { class: 'transient', message: `the ${runsAs(this.runtime.kind)} ${id} disappeared` });
          this.logger.warn({ task: entry.taskId, containerId: id }, 'task container disappeared');
          return;
        }
        failures++;
        const retryMs = backoffCeilingMs(failures, { baseMs: this.waitRetryMs, capMs: Math.max(this.waitRetryMs, limits.workerWaitRetryMsMax) });
        this.logger.warn({ task: entry.taskId, containerId: id, problem: failure.message, retryMs }, 'waiting on a container failed; retrying');
        await sleepOn(this.clock, retryMs, look.signal);
      } finally {
        this.closing.signal.removeEventListener('abort', onClose);
        entry.lookAgain = undefined;
      }
    }
    await this.cleanUp(entry);
  }

  private recordExit(entry: TaskEntry, id: string, { exitCode, oomKilled, outOfSpace }: ExitStatus, endedBeforeStop: boolean): void {
    const stopped = entry.stopRequested && !endedBeforeStop;
    // A task its health check condemned failed, whatever its exit code (the worker stopped it).
    const condemned = entry.unhealthy !== undefined && !stopped;
    // No exit code for a condemned task: the failure is the health check's, not the code its stop caused.
    const outcome = condemned
      ? { state: 'failed' as const, error: { class: 'transient' as const, message: entry.unhealthy! }, exitCode: null }
      : exitOutcome(exitCode, stopped, oomOf(entry, oomKilled), outOfSpace, runsAs(this.runtime.kind));
    this.finish(entry, outcome.state, outcome.exitCode, outcome.error);
    this.logger.info({ task: entry.taskId, attempt: entry.attempt, containerId: id, exitCode, state: outcome.state }, 'task exited');
  }

  /**
   * Whether the container had ended by itself before its stop was asked for: a worker that was paused (or busy) sees
   * an exit late, maybe after a stop its reconciliation asked for meanwhile, and that exit is the task's own (a success
   * or a failure its restart policy judges), not a stop's. Judged by when the runtime says it ended.
   */
  private async endedBeforeStop(entry: TaskEntry, id: string): Promise<boolean> {
    const askedAtMs = entry.stopRequestedAtMs;
    if (askedAtMs === undefined) return false;
    const info = await this.runtime.inspect(id).catch(() => null);
    return info?.finishedAt !== undefined && info.finishedAt < askedAtMs - limits.stopEndedBeforeMarginMs;
  }

  /** Keeps a bounded log tail, then removes the exited container; a failure is retried by reconciliation. */
  private async cleanUp(entry: TaskEntry): Promise<void> {
    const id = entry.containerId;
    if (id === null || entry.cleanup === 'pending' || entry.cleanup === 'done') return;
    // Left to the holder on this engine (leave()): the exit, the output and the removal are its to take.
    if (this.leftToHolder) return;
    entry.cleanup = 'pending';
    await this.tracked(this.cleanUpContainer(entry, id));
  }

  private async cleanUpContainer(entry: TaskEntry, id: string): Promise<void> {
    try {
      entry.logTail = await lastOutputBytes(this.runtime, id, limits.workerFinishedLogBytesMax);
    } catch (err) {
      this.logger.warn({ task: entry.taskId, containerId: id, err }, 'could not keep the logs of an exited container');
    }
    // On disk before the container goes, so a restart right after still has the output.
    if (entry.logTail !== null) await this.keepOnDisk(entry, entry.logTail);
    try {
      await this.runtime.remove(id);
      entry.cleanup = 'done';
    } catch (err) {
      entry.cleanup = 'failed';
      this.logger.warn({ task: entry.taskId, containerId: id, err }, 'could not remove an exited container');
    }
  }

  /** Stops the entry's container (once, however many ask) and waits until the exit is recorded. */
  private stopEntry(entry: TaskEntry): Promise<void> {
    entry.stopRequested = true;
    entry.stopRequestedAtMs ??= this.clock.nowMs();
    entry.stopping ??= (async () => {
      await entry.started;
      if (entry.state !== 'running' || entry.containerId === null) return;
      try {
        await this.runtime.stop(entry.containerId, entry.stopAtOnce === true ? 0 : this.stopTimeoutOf(entry.spec), entry.spec.stopSignal);
      } catch (err) {
        entry.stopping = null;
        this.logger.warn({ task: entry.taskId, containerId: entry.containerId, err }, 'stopping a container failed');
        return;
      }
      await entry.finished;
    })();
    return entry.stopping;
  }

  /** From the stop signal to SIGKILL: the spec's stopTimeoutS, else the config's tasks.stopTimeoutMs. */
  private stopTimeoutOf(spec: Pick<TaskSpec, 'stopTimeoutS'>): number {
    return spec.stopTimeoutS === undefined ? this.stopTimeoutMs : spec.stopTimeoutS * 1000;
  }

  /** Stops a replaced attempt, bounded so a hung runtime cannot block the newer attempt forever. */
  private async retire(old: TaskEntry, by: TaskEntry): Promise<void> {
    if (isFinal(old.state) && (old.containerId === null || old.cleanup === 'done')) return;
    this.retiring.add(old);
    this.logger.info({ task: old.taskId, old: tokenText(old), new: tokenText(by), containerId: old.containerId }, 'replacing an older attempt');
    try {
      await this.settle(this.stopEntry(old), this.clock.monoMs() + this.stopTimeoutOf(old.spec) + 5000);
      await this.settle(old.finished.then(() => this.cleanUp(old)), this.clock.monoMs() + 5000);
    } finally {
      this.retiring.delete(old);
    }
  }

  private finish(entry: TaskEntry, state: LocalState, exitCode: number | null, error: WorkerTaskStatus['error']): void {
    if (isFinal(entry.state)) return;
    entry.state = state;
    entry.exitCode = exitCode;
    entry.error = error;
    entry.finishedAtMs = this.clock.nowMs();
    entry.markFinished();
    entry.monitor?.stop();
    this.ports?.release(portKey(entry));
    this.changed();
    // An attempt that never had a container (its start failed: no such command or image) wrote nothing, and `logs`
    // answers that; kept like any other attempt's output, a restarted worker answers the same until its retention,
    // rather than not knowing the task (which the managers answer as TASK_LOGS_GONE).
    if (entry.containerId === null) void this.keepOnDisk(entry, entry.logTail ?? '');
  }

  /** Keeps an ended attempt's output tail for the next run of this worker (restoreKeptLogs); never rejects. */
  private async keepOnDisk(entry: TaskEntry, text: string): Promise<void> {
    if (this.keptLogs === null) return;
    const log = { taskId: entry.taskId, attempt: entry.attempt, finishedAtMs: entry.finishedAtMs ?? this.clock.nowMs(), text };
    await this.tracked(this.keptLogs.save(log).catch((err: unknown) => this.logger.warn({ task: entry.taskId, err }, 'could not keep the output of an ended attempt on disk')));
  }

  /** Awaits `work`, which close() waits for too: a worker that has stopped writes nothing more into its data directory. */
  private async tracked(work: Promise<void>): Promise<void> {
    this.endings.add(work);
    try {
      await work;
    } finally {
      this.endings.delete(work);
    }
  }

  // ---- ports and health checks ----

  /** Allocates the task's named ports and hands them to it (env MINKUBE_PORT_<NAME> and PORT; Docker: host network). */
  private async withPorts(entry: TaskEntry, run: RunSpec): Promise<RunSpec> {
    const specs = entry.spec.ports;
    if (specs === undefined || specs.length === 0) return run;
    if (this.ports === null) throw new MinkubeError('INVALID_TASK_SPEC', `worker ${this.workerId} hands out no ports`);
    const ports = await this.ports.allocate(portKey(entry), specs);
    entry.ports = ports;
    return { ...run, env: { ...run.env, ...portEnv(ports) }, labels: { ...run.labels, [labelPorts]: portsLabel(ports) }, hostNetwork: true };
  }

  /** Starts the task's health check if it has one and runs; an unhealthy verdict stops the task as failed. */
  private watchHealth(entry: TaskEntry): void {
    const check = entry.spec.healthCheck;
    if (check === undefined || entry.monitor !== undefined || entry.state !== 'running' || entry.containerId === null) return;
    entry.health = 'starting';
    const containerId = entry.containerId;
    const env = { ...entry.spec.env, ...entry.spec.secretEnv, ...portEnv(entry.ports ?? []) };
    const exec: ExecProbe = this.runtime.exec !== undefined
      ? (command, timeoutMs) => this.runtime.exec!(containerId, [...command], timeoutMs)
      : (command, timeoutMs) => hostExec(command, env, timeoutMs);
    const monitor = new HealthMonitor({ check, ports: entry.ports ?? [], exec }, this.clock, (s) => {
      if (isFinal(entry.state)) return;
      entry.health = s.health;
      // A replica turning healthy is what a rollout waits on: the leader hears it now, not at the next heartbeat.
      this.changed();
      if (s.health !== 'unhealthy') return;
      entry.unhealthy = `unhealthy: ${s.lastFailure ?? 'the health check failed'}`;
      // Shown beside the verdict, so the task's history says why before the exit is seen.
      entry.error = { class: 'transient', message: entry.unhealthy };
      this.logger.warn({ task: entry.taskId, attempt: entry.attempt, reason: entry.unhealthy }, 'task unhealthy; restarting it');
      void this.runtime.stop(containerId, this.stopTimeoutOf(entry.spec), entry.spec.stopSignal).catch((err: unknown) => this.logger.warn({ task: entry.taskId, err }, 'could not stop an unhealthy task'));
    }, this.observer === undefined ? undefined : () => this.observer!.healthCheckFailed());
    entry.monitor = monitor;
    monitor.start();
  }

  /**
   * The instance whose containers are this worker's (undefined: all of its worker id). Docker's engine may hold
   * another cluster's worker of the same name; the process runtime's records are in this worker's data directory
   * alone, so each is its own whatever instance made it. Filtered by instance, the processes a start after an emptied
   * data directory adopted from /proc (labelled with the instance before) were never stopped as stale copies, and ran
   * beside their tasks' next attempts for good (re-tester).
   */
  private get ownerInstance(): string | undefined {
    return this.runtime.kind === 'process' ? undefined : this.instance;
  }

  // ---- restart: re-adoption ----

  /**
   * Rebuilds the map from the containers labelled with this worker: running ones are watched again, exited ones have
   * their exit recorded (and are removed). Of several containers of one task, the newest token wins; the older ones
   * are left to reconciliation, which removes them as orphans. Call before serving the API.
   */
  async adopt(): Promise<number> {
    const containers = (await this.runtime.list({ [labelWorker]: this.workerId })).filter((c) => ownedByInstance(c, this.ownerInstance));
    const newest = new Map<string, { info: ContainerInfo; token: FencingToken }>();
    for (const info of containers) {
      const token = tokenOfContainer(info);
      if (token === null) continue;
      const seen = newest.get(token.taskId);
      if (seen === undefined || compareTokens(token, seen.token) > 0) newest.set(token.taskId, { info, token });
    }
    const cleanups: Promise<void>[] = [];
    for (const { info, token } of newest.values()) {
      if (this.tasks.has(token.taskId) || this.tasks.size >= this.tasksMax) continue;
      const entry = this.adoptContainer(info, token);
      if (isFinal(entry.state)) cleanups.push(this.cleanUp(entry));
    }
    await Promise.all(cleanups);
    this.logger.info({ containers: containers.length, tasks: this.tasks.size, running: this.runningCount() }, 're-adopted containers');
    return newest.size;
  }

  /**
   * `spec`: the assignment's; without one (at start) the entry knows the image and the stop its labels record, so that
   * a stop before any assignment hands the spec back (the task is no longer assigned here) is still the task's own.
   */
  private adoptContainer(info: ContainerInfo, token: FencingToken, spec: TaskSpec = { image: info.image, ...stopOfContainer(info) }): TaskEntry {
    const entry = newEntry(token, spec, this.clock.nowMs());
    entry.containerId = info.id;
    entry.startedAtMs = info.startedAt ?? null;
    if (info.state === 'running' && this.ports !== null && info.labels[labelPorts] !== undefined) entry.ports = this.ports.adopt(portKey(entry), info.labels[labelPorts]);
    this.tasks.set(token.taskId, entry);
    if (info.state === 'running') {
      entry.state = 'running';
      void this.watch(entry);
    } else if (info.state === 'exited') {
      entry.state = 'running';
      const outcome = exitOutcome(info.exitCode, false, oomOf(entry, info.oomKilled), undefined, runsAs(this.runtime.kind));
      this.finish(entry, outcome.state, outcome.exitCode, outcome.error);
      if (info.finishedAt !== undefined) entry.finishedAtMs = info.finishedAt;
    } else {
      // Created but never started: the worker died inside run(). Nothing of the task ran; a retry may succeed.
      this.finish(entry, 'failed', null, { class: 'transient', message: `the container ${info.id} was created but never started` });
    }
    return entry;
  }

  // ---- reconciliation ----

  /**
   * Compares the managers' assignments with the map and the runtime's containers and corrects the differences, one log
   * line each. When fetchAssignments fails (no manager answers), nothing changes: the tasks keep running.
   */
  async reconcile(fetchAssignments: (askTasks: readonly string[]) => Promise<readonly Assignment[] | AssignmentList>): Promise<ReconcileReport> {
    this.assertOpen();
    const listedAtMs = this.clock.nowMs();
    let assignments: readonly Assignment[];
    const asked = this.toAsk;
    try {
      const answer = await fetchAssignments(asked);
      assignments = isAssignmentList(answer) ? answer.items : answer;
      if (isAssignmentList(answer)) this.learnTasks(asked, answer.knownTaskIds);
    } catch (err) {
      this.logger.debug({ err }, 'reconciliation skipped: no manager answered');
      return { reached: false, corrections: [], evicted: 0 };
    }
    let containers: ContainerInfo[] | null = null;
    try {
      // Brief: only states and labels are compared; an adopted container is inspected on its own (correct()).
      containers = await this.runtime.list({ [labelWorker]: this.workerId }, { brief: true });
    } catch (err) {
      this.logger.warn({ err }, 'reconciliation: the runtime could not list containers; reconciling the task map only');
    }
    this.refreshSpecs(assignments);
    const owner = this.ownerInstance;
    const endedAttempts = new Map<string, number>();
    for (const { log } of this.restoredLogs.values()) if (log !== null) endedAttempts.set(log.taskId, log.attempt);
    const input = {
      assignments, entries: [...this.tasks.values()], retiring: [...this.retiring], containers, listedAtMs, endedAttempts, knownTaskIds: this.clusterTasks,
      ...(owner === undefined ? {} : { instance: owner }),
    };
    const corrections = planReconcile(input);
    if (containers !== null) this.nextQuestion(foreignTaskIds(input, containers));
    await Promise.all(corrections.map((c) => this.correct(c)));
    this.acknowledge(assignments, listedAtMs);
    return { reached: true, corrections, evicted: this.evictExpired() };
  }

  private async correct(c: Correction): Promise<void> {
    this.logger.info({ correction: c.kind, reason: c.reason }, `reconcile: ${c.kind}: ${c.reason}`);
    try {
      switch (c.kind) {
        case 'start':
          await this.assign(c.assignment, { waitUntilMs: this.clock.monoMs() });
          return;
        case 'gone':
          this.recordGone(c.assignment, c.reason);
          return;
        case 'adopt': {
          if (this.tasks.has(c.assignment.taskId)) return;
          // The brief list has no start time of a running container: ask for it (gone meanwhile: adopt what was seen).
          const info = c.container.state === 'running' ? ((await this.runtime.inspect(c.container.id)) ?? c.container) : c.container;
          if (!this.tasks.has(c.assignment.taskId)) this.adoptContainer(info, assignmentToken(c.assignment), c.assignment.spec);
          return;
        }
        case 'stop':
          await this.stop(c.token, { waitUntilMs: this.clock.monoMs() });
          return;
        case 'lost': {
          const e = this.tasks.get(c.taskId);
          if (e !== undefined) this.finish(e, 'failed', null, { class: 'transient', message: c.reason });
          return;
        }
        case 'exited':
          this.tasks.get(c.taskId)?.lookAgain?.();
          return;
        case 'cleanup': {
          const e = this.tasks.get(c.taskId);
          if (e !== undefined) await this.cleanUp(e);
          return;
        }
        case 'remove-orphan':
          await this.removeOrphan(c.container);
          return;
      }
    } catch (err) {
      // A full worker is expected in a burst (the task waits for room, at no cost): one debug line, no stack.
      if (err instanceof MinkubeError && err.code === 'WORKER_FULL') this.logger.debug({ correction: c.kind, reason: err.message }, 'reconcile: no room for the correction yet');
      else this.logger.warn({ correction: c.kind, err }, 'reconcile: the correction failed');
    }
  }

  /** What the managers answered about the task ids asked (none: a manager that predates the question). */
  private learnTasks(asked: readonly string[], known: readonly string[] | undefined): void {
    if (known === undefined) return;
    for (const id of known) this.clusterTasks.add(id);
    const ours = new Set(known);
    for (const id of asked) {
      if (ours.has(id) || this.foreignTasks.has(id)) continue;
      if (this.foreignTasks.size >= limits.workerForeignTasksMax) this.foreignTasks.delete(this.foreignTasks.values().next().value!);
      this.foreignTasks.add(id);
    }
  }

  /** From another instance's containers whose tasks this worker does not know: the ids to ask about next. */
  private nextQuestion(foreign: readonly string[]): void {
    const present = new Set(foreign);
    for (const id of this.clusterTasks) if (!present.has(id)) this.clusterTasks.delete(id);
    this.toAsk = foreign.filter((id) => !this.clusterTasks.has(id) && !this.foreignTasks.has(id) && askableTaskIdPattern.test(id)).slice(0, limits.workerAskTasksMax);
  }

  /**
   * An attempt started here before whose entry and container are both gone: failed with an unknown outcome (a transient
   * failure, which the managers retry as a new attempt), as the process runtime reports a process whose exit it could
   * not learn. The output this worker kept of it, if any, stays its output.
   */
  private recordGone(a: Assignment, reason: string): void {
    if (this.tasks.has(a.taskId)) return;
    this.makeRoom();
    const entry = newEntry(assignmentToken(a), a.spec, this.clock.nowMs());
    const kept = this.restoredLogs.get(a.taskId)?.log ?? null;
    if (kept !== null && kept.attempt === a.attempt) entry.logTail = kept.text;
    this.tasks.set(a.taskId, entry);
    this.finish(entry, 'failed', null, { class: 'transient', message: reason });
    this.logger.warn({ task: a.taskId, attempt: a.attempt, term: a.term, reason }, 'an attempt started here is gone; reporting its outcome unknown');
  }

  private async removeOrphan(c: ContainerInfo): Promise<void> {
    if (c.state === 'running') {
      const stop = stopOfContainer(c);
      await this.runtime.stop(c.id, this.stopTimeoutOf(stop), stop.stopSignal);
    }
    await this.runtime.remove(c.id);
  }

  /** Adopted entries only know their image and stop (adoptContainer): the assignment list hands back the full spec. */
  private refreshSpecs(assignments: readonly Assignment[]): void {
    for (const a of assignments) {
      const e = this.tasks.get(a.taskId);
      if (e !== undefined && compareTokens(a, e) === 0) {
        e.spec = a.spec;
        // An adopted task's health check starts once its spec is known again.
        this.watchHealth(e);
      }
    }
  }

  // ---- bounds ----

  /**
   * Forgets finished tasks whose records the managers removed (a heartbeat's `forget`): their entries go now, with
   * the log tails kept since their containers were removed (a container not removed yet goes as an orphan at the next
   * reconciliation). Active ones are kept.
   */
  forget(taskIds: readonly string[]): number {
    let forgotten = 0;
    for (const id of taskIds) {
      if (this.restoredLogs.delete(id)) this.dropKeptLog(id);
      const e = this.tasks.get(id);
      if (e === undefined || !isFinal(e.state) || e.cleanup === 'pending') continue;
      this.deleteEntry(id);
      forgotten++;
    }
    return forgotten;
  }

  /**
   * At start, before serving: every output tail an earlier run kept (each file of its data directory's `logs`), for
   * `logs` of tasks this run has no entry of. Each is deleted `finishedRetentionMs` after its task ended (what the file
   * records, else when it was written), or sooner on a forget; those already due go now, and at most tasksMax of the
   * newest are kept. Files are read a batch at a time, and one timer deletes them as they fall due (sweepRestored).
   */
  async restoreKeptLogs(): Promise<number> {
    const store = this.keptLogs;
    if (store === null) return 0;
    let ids: string[];
    try {
      ids = await store.list();
    } catch (err) {
      this.logger.warn({ err }, 'could not read the output kept by the previous run');
      return 0;
    }
    const batchMax = limits.workerKeptLogsBatchMax;
    const kept: { taskId: string; log: KeptLog | null; dueMonoMs: number }[] = [];
    let answered = 0;
    for (let i = 0; i < ids.length; i += batchMax) {
      const files = await Promise.all(ids.slice(i, i + batchMax).map((id) => store.read(id).catch((err: unknown) => {
        this.logger.warn({ task: id, err }, 'could not read kept output');
        return null;
      })));
      const drop: string[] = [];
      for (const file of files) {
        if (file === null) continue;
        const decision = this.restoreDecision(file);
        if (decision === 'drop') drop.push(file.taskId);
        else if (decision !== 'skip') {
          kept.push({ taskId: file.taskId, log: file.log, dueMonoMs: decision });
          if (file.log !== null) answered++;
        }
      }
      // The text of more than tasksMax tails is not held: the oldest beyond it go now, as they would go first anyway.
      if (answered > this.tasksMax) {
        kept.sort((a, b) => (b.log?.finishedAtMs ?? Infinity) - (a.log?.finishedAtMs ?? Infinity));
        let seen = 0;
        for (let j = 0; j < kept.length; j++) {
          if (kept[j]!.log === null || ++seen <= this.tasksMax) continue;
          drop.push(kept[j]!.taskId);
          kept.splice(j--, 1);
          answered--;
        }
      }
      await Promise.all(drop.map((id) => this.removeKeptLog(id)));
    }
    for (const k of kept) this.restoredLogs.set(k.taskId, { log: k.log, dueMonoMs: k.dueMonoMs });
    this.restoredDue = kept.map(({ taskId, dueMonoMs }) => ({ taskId, dueMonoMs })).sort((a, b) => a.dueMonoMs - b.dueMonoMs);
    this.restoredNext = 0;
    this.sweepRestored();
    return answered;
  }

  /** A kept file found at start: deleted now ('drop'), left to this run's entry of the task ('skip'), or kept until a monotonic due time. */
  private restoreDecision(file: KeptLogFile): 'drop' | 'skip' | number {
    const live = this.tasks.get(file.taskId);
    if (live !== undefined && (file.log === null || live.attempt >= file.log.attempt)) return 'skip';
    // The end is a wall time (stored): the wait left is measured on monoMs from now, and never longer than the
    // retention, so a file written by a clock that ran ahead is not kept for longer.
    const endedAtMs = file.log?.finishedAtMs ?? file.writtenAtMs;
    const leftMs = Math.min(this.finishedRetentionMs, endedAtMs + this.finishedRetentionMs - this.clock.nowMs());
    if (leftMs > 0) return this.clock.monoMs() + leftMs;
    return live === undefined ? 'drop' : 'skip';
  }

  /**
   * Deletes the restored tails that are due (a batch at a time; the next batch at once), then sets the one timer for
   * the next one due. Called by that timer, and by evictExpired.
   */
  private sweepRestored(): void {
    if (this.sweeping) return;
    this.sweepTimer?.cancel();
    this.sweepTimer = null;
    const now = this.clock.monoMs();
    const drop: string[] = [];
    while (this.restoredNext < this.restoredDue.length && drop.length < limits.workerKeptLogsBatchMax) {
      const next = this.restoredDue[this.restoredNext]!;
      if (next.dueMonoMs > now) break;
      this.restoredNext++;
      const restored = this.restoredLogs.get(next.taskId);
      if (restored === undefined || restored.dueMonoMs !== next.dueMonoMs) continue; // forgotten since
      this.restoredLogs.delete(next.taskId);
      if (!this.tasks.has(next.taskId)) drop.push(next.taskId);
    }
    if (this.restoredNext >= this.restoredDue.length) {
      this.restoredDue = [];
      this.restoredNext = 0;
    }
    this.sweeping = true;
    void this.tracked(Promise.all(drop.map((id) => this.removeKeptLog(id))).then(() => undefined)).finally(() => {
      this.sweeping = false;
      const next = this.restoredDue[this.restoredNext];
      if (next === undefined || this.closing.signal.aborted) return;
      const full = drop.length >= limits.workerKeptLogsBatchMax;
      this.sweepTimer = this.clock.setTimeout(() => this.sweepRestored(), full ? 0 : Math.max(0, next.dueMonoMs - this.clock.monoMs()));
    });
  }

  /** Deletes a task's entry and the output tails kept for it (on disk, and any an earlier run left). */
  private deleteEntry(taskId: string): void {
    this.tasks.delete(taskId);
    this.restoredLogs.delete(taskId);
    this.dropKeptLog(taskId);
  }

  private dropKeptLog(taskId: string): void {
    void this.removeKeptLog(taskId);
  }

  /** Never rejects. */
  private async removeKeptLog(taskId: string): Promise<void> {
    await this.keptLogs?.remove(taskId).catch((err: unknown) => this.logger.warn({ task: taskId, err }, 'could not delete kept output'));
  }

  /** Finished tasks the managers no longer list are acknowledged: they may be evicted after the retention time. */
  private acknowledge(assignments: readonly Assignment[], listedAtMs: number): void {
    const listed = new Set(assignments.map((a) => a.taskId));
    const now = this.clock.monoMs();
    for (const e of this.tasks.values()) {
      if (!isFinal(e.state) || e.acknowledgedAtMs !== null || (e.finishedAtMs ?? Infinity) >= listedAtMs) continue;
      if (!listed.has(e.taskId)) e.acknowledgedAtMs = now;
    }
  }

  private evictExpired(): number {
    const now = this.clock.monoMs();
    let evicted = 0;
    for (const [id, e] of this.tasks) {
      if (e.acknowledgedAtMs !== null && now - e.acknowledgedAtMs >= this.finishedRetentionMs && e.cleanup !== 'pending') {
        this.deleteEntry(id);
        evicted++;
      }
    }
    this.sweepRestored();
    return evicted;
  }

  /** A full map evicts the oldest acknowledged finished task even within its retention; with none, QUEUE_FULL. */
  private makeRoom(): void {
    if (this.tasks.size < this.tasksMax) return;
    this.evictExpired();
    if (this.tasks.size < this.tasksMax) return;
    let oldest: TaskEntry | undefined;
    for (const e of this.tasks.values()) {
      if (e.acknowledgedAtMs !== null && (oldest === undefined || (e.finishedAtMs ?? 0) < (oldest.finishedAtMs ?? 0))) oldest = e;
    }
    if (oldest === undefined) {
      throw new MinkubeError('WORKER_FULL', `worker ${this.workerId} holds ${this.tasks.size} tasks (the limit); none can be evicted yet`);
    }
    this.deleteEntry(oldest.taskId);
  }

  // ---- lifecycle ----

  /**
   * This instance lost its worker id to another one's registration (WORKER_REPLACED), or the worker was removed from
   * the cluster (its tasks were placed elsewhere before): the tasks it runs are another's to run now, so every copy it
   * runs is stopped (each with its stop signal and grace, then removed, as any stop) and no assignment is taken any
   * more. `why` words it (logs, readiness, refusals). Answers how many copies were stopped; close() comes after.
   */
  async relinquish(why = 'another instance holds this worker id'): Promise<number> {
    this.relinquished = why;
    const active = [...this.tasks.values()].filter((e) => !isFinal(e.state));
    await Promise.all(active.map(async (e) => {
      this.logger.warn({ task: e.taskId, attempt: e.attempt, term: e.term, containerId: e.containerId, why }, 'stopping a copy of a task this worker no longer holds');
      await this.settle(this.stopEntry(e), this.clock.monoMs() + this.stopTimeoutOf(e.spec) + 5000);
      await this.settle(e.finished.then(() => this.cleanUp(e)), this.clock.monoMs() + 5000);
      // Gone before this process exits, whoever was cleaning it up (cleanUp answers at once when one is under way):
      // a copy left behind, ended, is re-adopted by this instance's next start, which then reports that attempt
      // failed (143) though the holder runs it.
      if (e.containerId !== null) await this.settle(this.runtime.remove(e.containerId), this.clock.monoMs() + 5000);
    }));
    return active.length;
  }

  /**
   * relinquish() for an instance replaced by another on this same engine: that one adopted the containers (they carry
   * the current assignments' fencing tokens; it stops the stale ones itself), so they are left running and only
   * forgotten here. Stopping them would end the holder's tasks, which it would report failed (137). Their health
   * checks stop, and an exit seen from now on is not cleaned up: the container is the holder's to read and remove.
   * Answers how many were running; close() comes after.
   */
  leave(why = 'another instance of this worker id on this engine holds it'): number {
    this.relinquished = why;
    this.leftToHolder = true;
    const active = [...this.tasks.values()].filter((e) => !isFinal(e.state));
    for (const e of active) {
      e.monitor?.stop();
      this.logger.info({ task: e.taskId, attempt: e.attempt, term: e.term, containerId: e.containerId, why }, 'leaving a task\'s container to the instance that holds this worker id on this engine');
    }
    return active.length;
  }

  /**
   * What this instance does with its containers once the managers refused it for good (WorkerLoops.replaced): told
   * that the instance holding the id runs on this runtime's own engine (`holderEngine`, the refusal's details), it
   * leaves them to it (leave()); otherwise (another engine, or either one unknown: a manager or a holder that predates
   * engines, the process runtime) it stops its copies (relinquish()), so no task runs twice across two engines.
   */
  async standDown(holderEngine: string | undefined, why?: string): Promise<StandDown> {
    const engine = await this.runtime.engine?.().catch(() => undefined);
    if (engine !== undefined && engine === holderEngine) return { kind: 'left', tasks: this.leave(why), engine };
    return { kind: 'stopped', tasks: await this.relinquish(why), engine, holderEngine, otherEngine: engine !== undefined && holderEngine !== undefined };
  }

  /** Stops watching; leaves every container running for the next worker process to re-adopt. */
  async close(): Promise<void> {
    this.closing.abort();
    this.sweepTimer?.cancel();
    await Promise.all([...this.tasks.values()].map((e) => e.started));
    // Twice: an ending under way may start another (a clean-up keeps the output on disk).
    await Promise.all([...this.endings]);
    await Promise.all([...this.endings]);
  }

  /** For GET /ready: the API is served only after re-adoption, so only shutting down makes the worker unready. */
  readiness(): { ready: boolean; reason?: string } {
    if (this.relinquished !== null) return { ready: false, reason: `${this.relinquished}; this one is stopping` };
    return this.closing.signal.aborted ? { ready: false, reason: 'the worker is shutting down' } : { ready: true };
  }

  private assertOpen(): void {
    if (this.closing.signal.aborted) throw new MinkubeError('NOT_READY', `worker ${this.workerId} is shutting down`);
    if (this.relinquished !== null) throw new MinkubeError('NOT_READY', `this instance of worker ${this.workerId} is stopping: ${this.relinquished}`);
  }

  /** The caller's deadline, or waitMsMax from now if that comes first (on the monotonic reading, as deadlines are). */
  private untilMs(opts: WaitOptions, waitMsMax: number): number {
    return Math.min(opts.waitUntilMs ?? Infinity, this.clock.monoMs() + waitMsMax);
  }

  /** Waits for p, but no later than untilMs (clock.monoMs()). Never rejects. */
  private async settle(p: Promise<unknown>, untilMs: number): Promise<void> {
    const waitMs = untilMs - this.clock.monoMs();
    if (waitMs <= 0) return;
    let timer: { cancel(): void } | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = this.clock.setTimeout(resolve, waitMs);
    });
    try {
      await Promise.race([p.then(() => undefined, () => undefined), deadline]);
    } finally {
      timer?.cancel();
    }
  }
}

function isAssignmentList(a: readonly Assignment[] | AssignmentList): a is AssignmentList {
  return !Array.isArray(a);
}

/** One attempt's ports: a newer attempt of the task gets its own, and the older one's release never frees them. */
function portKey(e: { taskId: string; attempt: number; term: number }): string {
  return `${e.taskId}#${e.attempt}#${e.term}`;
}

function staleToken(t: FencingToken, current: TaskEntry): MinkubeError {
  return new MinkubeError(
    'TASK_STALE_FENCING_TOKEN',
    `task ${t.taskId}: ${tokenText(t)} is older than ${tokenText(current)}, already seen by this worker`,
    { details: { taskId: t.taskId, current: { attempt: current.attempt, term: current.term } } },
  );
}

/** At most `count` holders at once; the others wait in arrival order. */
class Slots {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free++;
  }
}

/** One chunk as an iterable (nothing for an empty one). */
/**
 * The last bytesMax bytes of a container's output, however many lines they hold. Runtimes answer in lines (Docker
 * has no byte tail), so this asks for more lines until the bytes are filled or the whole output was read; past
 * bytesMax lines it stops, since that many lines (each at least its newline) fill bytesMax.
 */
async function lastOutputBytes(runtime: ContainerRuntime, id: string, bytesMax: number): Promise<string> {
  for (let lines: number = limits.runtimeLogTailLinesDefault; ; lines = Math.min(lines * 16, bytesMax)) {
    const text = Buffer.from(await runtime.logs(id, { tailLines: lines }), 'utf8');
    if (text.length >= bytesMax || lines >= bytesMax || lineCount(text) < lines) return tailBytes(text, bytesMax);
  }
}

function lineCount(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) n++;
  // An unfinished last line counts too.
  return buf.length > 0 && buf[buf.length - 1] !== 0x0a ? n + 1 : n;
}

async function* once(chunk: Uint8Array): AsyncGenerator<Uint8Array> {
  if (chunk.length > 0) yield chunk;
}
