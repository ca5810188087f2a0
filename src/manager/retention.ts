// Retention of finished task records: the leader's loop proposes task.remove for what is due (src/kv/retention.ts),
// a bounded batch at a time, on the injected clock; POST /v1/gc (`minkube gc`) removes everything due now from any
// manager. Acting on a stale view is harmless: a final state is never left, and the command is applied only to
// records that are final when it applies.
import type { Logger } from 'pino';
import type { TaskRetentionConfig } from '../config/cluster.js';
import type { GcResult, RequestContext, RetentionService } from '../contracts/services.js';
import type { TaskStore } from '../kv/task-store.js';
import { selectForRemoval } from '../kv/retention.js';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { Role } from '../raft/types.js';
import type { Proposer } from './task-service.js';

/** How often the leader looks; a full batch is followed at once by the next. */
const CHECK_INTERVAL_MS = 1000;
/** gc's rounds: a backlog of 200,000 is 200 batches. */
const GC_ROUNDS_MAX = 1000;

export interface RetentionOptions {
  store: TaskStore;
  raft: Proposer;
  policy: TaskRetentionConfig;
  clock: Clock;
  logger: Logger;
  proposalTimeoutMs: number;
  batchMax?: number;
}

export class Retention implements RetentionService {
  private timer: { cancel(): void } | null = null;
  private leaderTerm: number | null = null;
  private busy = false;
  private removedTotal = 0;
  private readonly batchMax: number;

  constructor(private readonly o: RetentionOptions) {
    this.batchMax = o.batchMax ?? limits.retentionBatchMax;
  }

  /** Records removed by this manager's proposals since it started. */
  get removed(): number {
    return this.removedTotal;
  }

  /** Wire to the driver's role changes: the loop runs while this manager leads. */
  onRoleChange(role: Role, term: number): void {
    if (role === 'leader') {
      if (this.leaderTerm === term) return;
      this.leaderTerm = term;
      this.schedule(CHECK_INTERVAL_MS);
    } else if (this.leaderTerm !== null) {
      this.leaderTerm = null;
      this.timer?.cancel();
      this.timer = null;
    }
  }

  close(): void {
    this.leaderTerm = null;
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    this.timer?.cancel();
    this.timer = this.o.clock.setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    if (this.leaderTerm === null) return;
    let removed = 0;
    try {
      removed = await this.round(`retention-${this.o.clock.nowMs()}`);
    } catch (err) {
      this.o.logger.debug({ err }, 'retention round failed; retrying');
    }
    if (this.leaderTerm !== null) this.schedule(removed >= this.batchMax ? 0 : CHECK_INTERVAL_MS);
  }

  /** One batch: selects what is due in this manager's view and proposes its removal; answers how many went. */
  private async round(requestId: string, ctx?: RequestContext): Promise<number> {
    if (this.busy && ctx === undefined) return 0;
    const ids = selectForRemoval(this.o.store, this.o.policy, this.o.clock.nowMs(), this.batchMax);
    if (ids.length === 0) return 0;
    this.busy = true;
    try {
      const deadlineMs = ctx?.deadlineMs ?? this.o.clock.monoMs() + this.o.proposalTimeoutMs;
      const r = await this.o.raft.proposeCommand({ op: 'task.remove', atMs: this.o.clock.nowMs(), taskIds: ids }, deadlineMs, ctx?.requestId ?? requestId, ctx?.principal);
      if (!r.ok) throw new MinkubeError(r.code, r.message);
      // The entry's own count is not in its result: the ids it kept are those still present.
      const removed = ids.filter((id) => this.o.store.task(id) === undefined).length;
      this.removedTotal += removed;
      if (removed > 0) this.o.logger.debug({ removed, tasks: this.o.store.taskCount }, 'finished task records removed');
      return removed;
    } finally {
      this.busy = false;
    }
  }

  /** Everything due now, batch after batch, after a barrier (this manager's view holds every acknowledged change). */
  async gc(ctx: RequestContext): Promise<GcResult> {
    await this.o.raft.barrier(ctx.deadlineMs);
    let removed = 0;
    for (let i = 0; i < GC_ROUNDS_MAX; i++) {
      // Each round gets a fresh deadline: the request's covers the first only.
      const round = await this.round(ctx.requestId, { ...ctx, deadlineMs: Math.max(ctx.deadlineMs, this.o.clock.monoMs() + this.o.proposalTimeoutMs) });
      removed += round;
      if (round === 0) break;
    }
    return { removed, tasks: this.o.store.taskCount };
  }
}
