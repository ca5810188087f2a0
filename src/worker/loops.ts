// The worker's background loops: registration (retried forever with backoff and full jitter), heartbeats carrying
// stats and every task status, and periodic reconciliation. No manager answering never stops or crashes them; a
// manager saying another instance registered this worker id since its own registration (WORKER_REPLACED), or that
// this worker was removed from the cluster after its certificate was issued (401 with details.removed), ends them for
// good (`replaced`). Reconciliation waits for the registration.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { EngineUnreachable, RegisterRequest, WorkerReplacedDetails, WorkerTaskStatus } from '../contracts/worker.js';
import { fullJitterMs } from '../lib/backoff.js';
import { sleepOn, systemClock, type Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { SeededRandom, type Random } from '../lib/random.js';
import type { WorkerAgent } from './agent.js';
import type { ManagerLink } from './managers.js';
import type { LoopsObserver } from './metrics.js';

/** While no manager answers, the worker says so again this often. */
const unreachableReminderMs = 30_000;

export interface WorkerLoopsOptions {
  agent: WorkerAgent;
  link: ManagerLink;
  registration: RegisterRequest;
  heartbeatIntervalMs: number;
  reconcileIntervalMs: number;
  logger: Logger;
  /** The system clock unless given. */
  clock?: Clock;
  random?: Random;
  /** Registration retries wait a random time in [0, min(cap, base * 2^failures)). */
  registerBackoffBaseMs?: number;
  registerBackoffCapMs?: number;
  /** Metrics (src/worker/metrics.ts): each heartbeat's round trip. */
  observer?: LoopsObserver;
  /** The worker's judgement of its engine (src/worker/engine-health.ts), said in each heartbeat; absent: none. */
  engine?: { unreachable(): EngineUnreachable | undefined };
}

/** Heartbeat intervals a manager may ask for; anything else keeps the configured one. */
const heartbeatIntervalMsRange = { min: 10, max: 60_000 } as const;

/** An unchanged status is still sent once every this many heartbeats. */
const statusResendBeats = 20;

/**
 * A task's status change sends the heartbeat early, but no sooner than this after the previous one started, so that a
 * burst of changes (50 replicas turning healthy) rides in a few beats rather than one each.
 */
const earlyBeatGapMsMin = 50;

export class WorkerLoops {
  private readonly opts: WorkerLoopsOptions;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly abort = new AbortController();
  private readonly logger: Logger;
  private heartbeatIntervalMs: number;
  private running: Promise<unknown> | null = null;
  private registered = false;
  /** taskId -> the status a manager last accepted, and when (clock.monoMs()). */
  private readonly acceptedStatus = new Map<string, { status: WorkerTaskStatus; atMonoMs: number }>();
  /** Logged on change only: a long outage must not write a line per heartbeat. */
  private managersReachable: boolean | null = null;
  /** Since when no manager answers, and when that was last said (clock.monoMs()). */
  private unreachableSinceMonoMs = 0;
  private unreachableSaidMonoMs = 0;
  /** A status changed since the last heartbeat was built: the next one goes early. */
  private changedSinceBeat = false;
  /** Ends the heartbeat loop's wait early (a status changed). */
  private wakeBeat: (() => void) | null = null;
  heartbeatsSent = 0;
  reconciliations = 0;
  private onReplaced: ((err: MinkubeError) => void) | null = null;
  /**
   * Resolves once a manager refused this instance for good: another one registered the worker id since
   * (WORKER_REPLACED), or the worker was removed (`worker rm`) after its certificate was issued (UNAUTHENTICATED,
   * isRemovedRefusal). The loops have ended (no heartbeat goes out any more), and the caller stops the tasks' copies
   * and exits (src/daemon/worker.ts).
   */
  readonly replaced: Promise<MinkubeError>;

  constructor(opts: WorkerLoopsOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? new SeededRandom(randomInt(0x7fffffff));
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs;
    this.replaced = new Promise((resolve) => {
      this.onReplaced = resolve;
    });
    opts.agent.onStatusChange(() => this.statusChanged());
  }

  /**
   * A manager's WORKER_REPLACED (two instances must never act as one id), or its refusal of this worker's certificate
   * as issued before the worker's removal (retrying cannot help, and its tasks run elsewhere now): this one goes
   * quiet at once, for good.
   *
   * `sentRegistered`: the request went out after a manager acknowledged this instance's registration. Only then does
   * WORKER_REPLACED mean that another instance registered the id after this one (a manager checks it against a state
   * that holds this registration: it catches up before refusing). Asked before, the record still names the instance
   * this one is replacing (the older process, or the one before a restart with an emptied data directory): taken as
   * its own replacement, both processes exited and left the id with no worker (outside tester). Such an answer is
   * dropped (a false return: the caller treats it as any failed request) and the registration goes on.
   */
  private noteReplaced(err: unknown, sentRegistered: boolean): boolean {
    const removed = isRemovedRefusal(err);
    if (!(err instanceof MinkubeError && (err.code === 'WORKER_REPLACED' || removed))) return false;
    if (err.code === 'WORKER_REPLACED' && !sentRegistered) {
      this.logger.info({ instance: this.opts.registration.instance, reason: err.message }, 'the id is still registered to the instance this one replaces: not yet this one\'s own registration, which goes on');
      return false;
    }
    const resolve = this.onReplaced;
    if (resolve === null) return true;
    this.onReplaced = null;
    this.abort.abort();
    this.wakeBeat?.();
    const what = removed ? 'this worker was removed from the cluster after its certificate was issued' : 'another instance registered this worker id';
    this.logger.error({ instance: this.opts.registration.instance, reason: err.message }, `${what}: this one stops heartbeating, stops its copies of the tasks and exits`);
    resolve(err);
    return true;
  }

  /** The engine's judgement changed: the managers hear it with an early heartbeat, as a task's status change. */
  engineChanged(): void {
    this.statusChanged();
  }

  /** A task's status changed: the managers hear it with an early heartbeat (see earlyBeatGapMsMin). */
  private statusChanged(): void {
    this.changedSinceBeat = true;
    this.wakeBeat?.();
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  start(): void {
    this.running ??= Promise.all([this.heartbeatLoop(), this.reconcileLoop()]);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async heartbeatLoop(): Promise<void> {
    const { signal } = this.abort;
    let failures = 0;
    let notFoundStreak = 0;
    while (!signal.aborted) {
      if (!this.registered) {
        if (!(await this.tryRegister())) {
          await sleepOn(this.clock, this.backoffMs(failures++), signal);
          continue;
        }
        failures = 0;
        // Stopped (or refused for good) while the registration was in flight: nothing more goes out.
        if (signal.aborted) return;
      }
      const outcome = await this.beat();
      notFoundStreak = outcome === 'not-registered' ? notFoundStreak + 1 : 0;
      // Register again at once, unless the managers keep forgetting us right after registering.
      if (outcome === 'not-registered' && notFoundStreak === 1) continue;
      if (outcome === 'ok') await this.untilNextBeat(signal);
      else await sleepOn(this.clock, outcome === 'not-registered' ? this.backoffMs(notFoundStreak) : this.heartbeatIntervalMs, signal);
    }
  }

  /**
   * The heartbeat interval, cut short by a status change (but not below the gap). Timed on the monotonic clock: on the
   * wall clock a step back of 10 minutes held the next heartbeat for 10 minutes, and the managers declared us down.
   */
  private async untilNextBeat(signal: AbortSignal): Promise<void> {
    // An abort that came before the listener below is added would never end the wait.
    if (signal.aborted) return;
    const beganMonoMs = this.clock.monoMs();
    const gapMs = Math.min(earlyBeatGapMsMin, this.heartbeatIntervalMs);
    const elapsedMs = (): number => this.clock.monoMs() - beganMonoMs;
    if (!this.changedSinceBeat) {
      const woken = new Promise<void>((resolve) => {
        this.wakeBeat = resolve;
      });
      const abort = new AbortController();
      const onAbort = (): void => abort.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      await Promise.race([sleepOn(this.clock, Math.max(0, this.heartbeatIntervalMs - elapsedMs()), abort.signal), woken]);
      abort.abort();
      signal.removeEventListener('abort', onAbort);
      this.wakeBeat = null;
    }
    if (elapsedMs() < gapMs) await sleepOn(this.clock, gapMs - elapsedMs(), signal);
  }

  private async tryRegister(): Promise<boolean> {
    try {
      const worker = await this.opts.link.register(this.opts.registration);
      this.registered = true;
      this.reachable(true);
      this.logger.info({ state: worker.state, apiAddress: this.opts.registration.apiAddress }, 'registered with the managers');
      return true;
    } catch (err) {
      if (this.noteReplaced(err, false)) return false;
      this.reachable(false, err);
      return false;
    }
  }

  /**
   * The statuses a heartbeat carries: those that changed since a manager last accepted them, at most
   * limits.workerHeartbeatTasksMax, so a heartbeat stays small however many tasks the worker holds (the rest go
   * in the next beats). A status the managers accepted is not sent again until it changes.
   */
  private changedStatuses(nowMonoMs: number): WorkerTaskStatus[] {
    const all = this.opts.agent.list();
    if (this.acceptedStatus.size > all.length) {
      const live = new Set(all.map((t) => t.taskId));
      for (const id of this.acceptedStatus.keys()) if (!live.has(id)) this.acceptedStatus.delete(id);
    }
    const tasks: WorkerTaskStatus[] = [];
    for (const t of all) {
      if (tasks.length >= limits.workerHeartbeatTasksMax) break;
      const accepted = this.acceptedStatus.get(t.taskId);
      // The agent answers the same status object while it is unchanged. Sent again now and then even so: a manager
      // that was behind may have ignored it as not yet placed.
      if (accepted !== undefined && accepted.status === t && nowMonoMs - accepted.atMonoMs < this.heartbeatIntervalMs * statusResendBeats) continue;
      tasks.push(t);
    }
    return tasks;
  }

  private async beat(): Promise<'ok' | 'not-registered' | 'failed'> {
    try {
      const stats = await this.opts.agent.stats();
      const nowMonoMs = this.clock.monoMs();
      this.changedSinceBeat = false;
      const tasks = this.changedStatuses(nowMonoMs);
      const timed = this.opts.observer?.heartbeatTimer();
      const instance = this.opts.registration.instance;
      const engineUnreachable = this.opts.engine?.unreachable();
      const body = { stats, tasks, ...(instance === undefined ? {} : { instance }), ...(engineUnreachable === undefined ? {} : { engineUnreachable }) };
      const res = await this.opts.link.heartbeat(this.opts.agent.workerId, body).catch((err: unknown) => {
        timed?.('failed');
        throw err;
      });
      timed?.('ok');
      for (const status of tasks) this.acceptedStatus.set(status.taskId, { status, atMonoMs: nowMonoMs });
      this.heartbeatsSent++;
      this.reachable(true);
      if (Array.isArray(res.forget) && res.forget.length > 0) {
        const forgotten = this.opts.agent.forget(res.forget);
        if (forgotten > 0) this.logger.info({ forgotten }, 'forgot finished tasks whose records the managers removed');
      }
      if (Array.isArray(res.managers)) this.opts.link.learnManagers?.(res.managers);
      const asked = res.heartbeatIntervalMs;
      if (Number.isInteger(asked) && asked >= heartbeatIntervalMsRange.min && asked <= heartbeatIntervalMsRange.max) this.heartbeatIntervalMs = asked;
      return 'ok';
    } catch (err) {
      // The heartbeat loop sends one only once this instance is registered.
      if (this.noteReplaced(err, true)) return 'failed';
      if (err instanceof MinkubeError && err.code === 'WORKER_NOT_FOUND') {
        this.registered = false;
        this.acceptedStatus.clear(); // a re-registered worker reports everything again
        this.logger.warn('the managers do not know this worker; registering again');
        return 'not-registered';
      }
      this.reachable(false, err);
      return 'failed';
    }
  }

  private async reconcileLoop(): Promise<void> {
    const { signal } = this.abort;
    const { agent, link } = this.opts;
    for (;;) {
      await sleepOn(this.clock, this.opts.reconcileIntervalMs, signal);
      if (signal.aborted) return;
      // Not before this instance is registered: the id's record may still name the instance it replaces, whose
      // assignments are not its own yet (and the answer is WORKER_REPLACED). The heartbeat loop registers it.
      if (!this.registered) continue;
      try {
        const { instance } = this.opts.registration;
        const report = await agent.reconcile((askTasks) => {
          const sentRegistered = this.registered;
          return link.assignments(agent.workerId, instance, askTasks).catch((err: unknown) => {
            this.noteReplaced(err, sentRegistered);
            throw err;
          });
        });
        this.reconciliations++;
        if (report.evicted > 0) this.logger.info({ evicted: report.evicted }, 'evicted finished tasks');
      } catch (err) {
        if (signal.aborted) return;
        this.logger.error({ err }, 'reconciliation failed');
      }
    }
  }

  private reachable(now: boolean, err?: unknown): void {
    const before = this.managersReachable;
    const nowMonoMs = this.clock.monoMs();
    if (before === now) {
      // Said again now and then while it lasts, with the latest reason, so a log read later still shows it.
      if (!now && nowMonoMs - this.unreachableSaidMonoMs >= unreachableReminderMs) {
        this.unreachableSaidMonoMs = nowMonoMs;
        this.logger.warn({ err, forS: Math.round((nowMonoMs - this.unreachableSinceMonoMs) / 1000) }, 'still no manager answers; tasks keep running, retrying in the background');
      }
      return;
    }
    this.managersReachable = now;
    if (now) {
      if (before === false) this.logger.info({ afterS: Math.round((nowMonoMs - this.unreachableSinceMonoMs) / 1000) }, 'the managers answer again');
      return;
    }
    this.unreachableSinceMonoMs = nowMonoMs;
    this.unreachableSaidMonoMs = nowMonoMs;
    this.logger.warn({ err }, 'no manager answers; tasks keep running, retrying in the background');
  }

  private backoffMs(failures: number): number {
    const base = this.opts.registerBackoffBaseMs ?? Math.min(this.opts.heartbeatIntervalMs, 500);
    const cap = this.opts.registerBackoffCapMs ?? 10_000;
    return Math.max(1, fullJitterMs(Math.min(failures, 20) + 1, { baseMs: base, capMs: cap }, () => this.random.next()));
  }
}

/**
 * A manager's refusal of this worker's certificate because the worker was removed from the cluster (`worker rm`) after
 * it was issued: 401 UNAUTHENTICATED with details.removed (src/api/auth.ts). Every other 401 may be passing.
 */
export function isRemovedRefusal(err: unknown): err is MinkubeError {
  return err instanceof MinkubeError && err.code === 'UNAUTHENTICATED' && (err.details as { removed?: unknown } | null | undefined)?.removed === true;
}

/**
 * The engine of the instance that holds the id, as a manager's WORKER_REPLACED names it (details.engine); undefined
 * for any other refusal, or when the holder registered none (or the manager predates it).
 */
export function holderEngineOf(err: unknown): string | undefined {
  if (!(err instanceof MinkubeError) || err.code !== 'WORKER_REPLACED') return undefined;
  const engine = (err.details as WorkerReplacedDetails | null | undefined)?.engine;
  return typeof engine === 'string' && engine !== '' ? engine : undefined;
}
