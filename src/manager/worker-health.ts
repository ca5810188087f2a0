// The leader's worker-health loop: a worker silent for workerTtlMs is marked unreachable; after lostGraceMs more it is
// marked down and its scheduled and running attempts become lost (retried elsewhere with backoff, or ended). Silence is
// measured on the leader's own monotonic clock from when it last applied (or answered) the worker's heartbeat: a step
// of its wall clock must not make every worker look silent (forward) or keep a dead one ready (back).
import type { Logger } from 'pino';
import type { LostTask, WorkerStateCommand } from '../kv/task-commands.js';
import type { StoredWorker, TaskStore } from '../kv/task-store.js';
import type { TasksConfig } from '../config/cluster.js';
import { retryAtMs } from '../lib/backoff.js';
import { setIntervalOn, type Clock, type Timer } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Proposer } from './task-service.js';

export interface WorkerHealthOptions {
  store: TaskStore;
  raft: Proposer;
  tasks: TasksConfig;
  clock: Clock;
  random: Random;
  logger: Logger;
  proposalTimeoutMs: number;
}

export class WorkerHealth {
  /** workerId -> clock.monoMs() when its heartbeat was last seen here. */
  private readonly lastSeenMonoMs = new Map<string, number>();
  /** Workers with a verdict in flight: one proposal per worker at a time. */
  private readonly judging = new Set<string>();
  private timer: Timer | null = null;
  private term = 0;
  private seq = 0;

  constructor(private readonly o: WorkerHealthOptions) {}

  /** Every worker gets a full TTL from now: a new leader has not heard anyone yet. */
  start(term: number): void {
    this.stop();
    this.term = term;
    const now = this.o.clock.monoMs();
    for (const w of this.o.store.allWorkers()) this.lastSeenMonoMs.set(w.id, now);
    const checkMs = Math.max(20, Math.min(this.o.tasks.workerHeartbeatIntervalMs, 250));
    this.timer = setIntervalOn(this.o.clock, () => this.check(), checkMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.judging.clear();
  }

  /** A heartbeat or registration of this worker was applied here or answered here. */
  seen(workerId: string): void {
    this.lastSeenMonoMs.set(workerId, this.o.clock.monoMs());
  }

  /** A retired worker's record was removed: nothing of it is kept. */
  forget(workerId: string): void {
    this.lastSeenMonoMs.delete(workerId);
  }

  check(): void {
    if (this.timer === null) return;
    const now = this.o.clock.monoMs();
    const { workerTtlMs, lostGraceMs } = this.o.tasks;
    for (const w of this.o.store.allWorkers()) {
      if (this.judging.has(w.id)) continue;
      const silentMs = now - (this.lastSeenMonoMs.get(w.id) ?? now);
      if (!this.lastSeenMonoMs.has(w.id)) this.lastSeenMonoMs.set(w.id, now);
      if (w.state === 'ready' && silentMs > workerTtlMs) this.judge(w, 'unreachable', silentMs);
      else if (w.state === 'unreachable' && silentMs > workerTtlMs + lostGraceMs) this.judge(w, 'down', silentMs);
      // Placed on it just before it went down, or more than one command's worth: finish the job.
      else if (w.state === 'down' && this.o.store.activeCount(w.id) > 0) this.judge(w, 'down', silentMs);
    }
  }

  private judge(w: StoredWorker, state: 'unreachable' | 'down', silentMs: number): void {
    // Wall time: it goes into the command (atMs, the lost attempts' retryAtMs), as every command's time does.
    const now = this.o.clock.nowMs();
    const lost: LostTask[] = [];
    if (state === 'down') {
      const { backoffBaseMs: baseMs, backoffCapMs: capMs } = this.o.tasks;
      for (const t of this.o.store.activeOn(w.id).slice(0, limits.placementBatchMax)) {
        lost.push({ taskId: t.id, attempt: t.attempt, retryAtMs: retryAtMs(now, t.attempt, { baseMs, capMs }, this.o.random) });
      }
    }
    const cmd: WorkerStateCommand = { op: 'worker.state', workerId: w.id, state, atMs: now, ifHeartbeats: w.heartbeats, lost };
    if (w.state !== state) this.o.logger.warn({ worker: w.id, silentMs, lostTasks: lost.length }, `worker ${w.id} is ${state}`);
    this.judging.add(w.id);
    this.o.raft
      .proposeCommand(cmd, this.o.clock.monoMs() + this.o.proposalTimeoutMs, `leader-${this.term}-health-${++this.seq}`)
      .catch((err: unknown) => this.o.logger.warn({ err, worker: w.id }, 'could not commit a worker verdict; retrying'))
      .finally(() => this.judging.delete(w.id));
  }
}
