// The placement routes' service: `task why` from this manager's applied state (after a linearizable barrier), and
// quotas, set through Raft and read from the state machine.
import type { Page, RequestContext } from '../contracts/services.js';
import type { PlacementService, QuotaView, TaskPlacementView } from '../contracts/placement.js';
import type { QuotaStore } from '../kv/quota-store.js';
import { namespaceOf } from '../kv/quota-usage.js';
import type { TaskStore } from '../kv/task-store.js';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { priorityOf } from '../scheduler/priority.js';
import { verdictsFor } from './placement-input.js';
import type { Proposer } from './task-service.js';

export interface PlacementServiceOptions {
  store: TaskStore;
  quotas: QuotaStore;
  raft: Proposer;
  clock: Clock;
}

export class PlacementServiceImpl implements PlacementService {
  constructor(private readonly o: PlacementServiceOptions) {}

  async taskPlacement(id: string, ctx: RequestContext): Promise<TaskPlacementView> {
    await this.o.raft.barrier(ctx.deadlineMs);
    const t = this.o.store.task(id);
    if (t === undefined) throw new MinkubeError('TASK_NOT_FOUND', `no task ${id}`);
    const base = { taskId: t.id, state: t.state, priority: priorityOf(t.spec), namespace: namespaceOf(t.spec), workerId: t.workerId };
    const now = this.o.clock.nowMs();
    const notBefore = t.state === 'pending' && t.notBeforeMs > now ? new Date(t.notBeforeMs).toISOString() : null;
    if (t.state !== 'pending') {
      const line = t.workerId !== null ? `placed on ${t.workerId} (${t.state})` : `not waiting to be placed: ${t.state}`;
      return { ...base, notBefore, lines: [line], workers: [] };
    }
    if (t.desiredState === 'stop') return { ...base, notBefore, lines: ['stopping: it will not be placed'], workers: [] };
    const workers = verdictsFor(this.o.store, t);
    const lines: string[] = [];
    if (notBefore !== null) lines.push(`waiting for its retry until ${notBefore}`);
    if (workers.length === 0) lines.push('no worker is registered');
    for (const w of workers) lines.push(`${w.workerId}: ${w.reason}`);
    return { ...base, notBefore, lines, workers };
  }

  async setQuota(namespace: string, limits: { tasksMax?: number; cpus?: number; memoryMb?: number }, ctx: RequestContext): Promise<QuotaView> {
    const r = await this.o.raft.proposeCommand({ op: 'quota.set', namespace, ...limits }, ctx.deadlineMs, ctx.requestId, ctx.principal);
    if (!r.ok) throw new MinkubeError(r.code, r.message);
    return this.view(namespace);
  }

  async listQuotas(ctx: RequestContext): Promise<Page<QuotaView>> {
    await this.o.raft.barrier(ctx.deadlineMs);
    return { items: this.o.quotas.list().map((q) => this.view(q.namespace)), nextCursor: null };
  }

  private view(namespace: string): QuotaView {
    const q = this.o.quotas.get(namespace);
    const u = this.o.store.usage.of(namespace);
    return {
      namespace,
      ...(q?.tasksMax === undefined ? {} : { tasksMax: q.tasksMax }),
      ...(q?.cpus === undefined ? {} : { cpus: q.cpus }),
      ...(q?.memoryMb === undefined ? {} : { memoryMb: q.memoryMb }),
      usage: { tasks: u.tasks, cpus: u.cpus, memoryMb: u.memoryMb },
    };
  }
}
