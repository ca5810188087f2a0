// Starts and stops the leader-only loops (scheduling, worker health) as this manager's Raft role changes, and feeds
// them the state machine's changes. A new leader first waits until it has applied everything committed before its
// term (a ReadIndex barrier), so its full reconcile pass never acts on a stale view; stepping down cancels everything.
import type { Logger } from 'pino';
import type { TaskRecord } from '../contracts/task-model.js';
import type { StoredWorker, TaskStore, TaskStoreListener } from '../kv/task-store.js';
import type { TasksConfig } from '../config/cluster.js';
import { sleepOn, type Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { Role } from '../raft/types.js';
import type { PlacementPolicy } from '../scheduler/policy.js';
import { roundRobin } from '../scheduler/round-robin.js';
import { SchedulerLoop } from './scheduler-loop.js';
import type { Proposer } from './task-service.js';
import type { WorkerApi } from './worker-client.js';
import { WorkerHealth } from './worker-health.js';
import type { QuotaStore } from '../kv/quota-store.js';
import type { ServiceStore } from '../kv/service-store.js';
import { ServiceLoop } from './service-loop.js';

export interface LeaderLoopsOptions {
  store: TaskStore;
  raft: Proposer;
  workers: WorkerApi;
  tasks: TasksConfig;
  clock: Clock;
  random: Random;
  logger: Logger;
  proposalTimeoutMs: number;
  policy?: PlacementPolicy;
  /** scheduler.preemption in the config. */
  preemption?: boolean;
  /** The services the service loop reconciles (none without it). */
  services?: ServiceStore;
  /** The namespaces' quotas, which bound the replicas the service loop starts. */
  quotas?: QuotaStore;
}

export class LeaderLoops implements TaskStoreListener {
  readonly scheduler: SchedulerLoop;
  readonly health: WorkerHealth;
  readonly services: ServiceLoop | null;
  /** Raised by every role change: a barrier that resolves for an older leadership starts nothing. */
  private generation = 0;
  private leaderTerm: number | null = null;
  private closed = false;

  constructor(private readonly o: LeaderLoopsOptions) {
    const common = { store: o.store, raft: o.raft, tasks: o.tasks, clock: o.clock, random: o.random, proposalTimeoutMs: o.proposalTimeoutMs };
    this.scheduler = new SchedulerLoop({ ...common, workers: o.workers, policy: o.policy ?? roundRobin, preemption: o.preemption === true, logger: o.logger.child({ loop: 'scheduler' }) });
    this.health = new WorkerHealth({ ...common, logger: o.logger.child({ loop: 'health' }) });
    const services = o.services;
    this.services = services === undefined ? null : new ServiceLoop({
      services, tasks: o.store, ...(o.quotas === undefined ? {} : { quotas: o.quotas }), raft: o.raft, clock: o.clock, logger: o.logger.child({ loop: 'services' }),
      proposalTimeoutMs: o.proposalTimeoutMs, reconcileIntervalMs: o.tasks.reconcileIntervalMs,
    });
    if (services !== undefined) services.listener = (name) => this.services?.touch(name);
  }

  get active(): boolean {
    return this.scheduler.running;
  }

  /** Wire to RaftNodeDriver's onRoleChange. */
  onRoleChange(role: Role, term: number): void {
    if (this.closed) return;
    if (role === 'leader') {
      if (this.leaderTerm === term) return;
      this.leaderTerm = term;
      this.halt();
      void this.begin(++this.generation, term);
    } else if (this.leaderTerm !== null) {
      this.leaderTerm = null;
      this.generation++;
      this.halt();
      this.o.logger.info({ term }, 'stepped down: leader loops stopped');
    }
  }

  private async begin(generation: number, term: number): Promise<void> {
    for (;;) {
      try {
        await this.o.raft.barrier(this.o.clock.monoMs() + this.o.proposalTimeoutMs);
        break;
      } catch (err) {
        if (generation !== this.generation) return;
        this.o.logger.debug({ err }, 'leader barrier failed; retrying');
        await sleepOn(this.o.clock, 50);
      }
      if (generation !== this.generation) return;
    }
    if (generation !== this.generation || this.closed) return;
    this.health.start(term);
    this.scheduler.start(term);
    this.services?.start(term);
    this.o.logger.info({ term, tasks: this.o.store.taskCount, pending: this.o.store.countIn('pending') }, 'leader loops started');
  }

  private halt(): void {
    this.scheduler.stop();
    this.health.stop();
    this.services?.stop();
  }

  close(): void {
    this.closed = true;
    this.generation++;
    this.halt();
  }

  // ---- TaskStoreListener: called as entries are applied, on every manager ----

  taskChanged(task: TaskRecord, previous: TaskRecord | null): void {
    this.scheduler.onTaskChanged(task, previous);
    if (task.service !== undefined) this.services?.touch(task.service.name);
  }

  workerSeen(workerId: string): void {
    this.health.seen(workerId);
  }

  workerChanged(worker: StoredWorker): void {
    if (worker.state === 'ready') this.scheduler.onWorkerReady();
    // A paced drain changes none of the worker's replicas when it applies: their services decide which go first.
    if (worker.availability === 'drain' && this.services?.active === true) {
      for (const t of this.o.store.activeOn(worker.id)) if (t.service !== undefined) this.services.touch(t.service.name);
    }
  }

  workerRemoved(workerId: string): void {
    this.health.forget(workerId);
  }
}
