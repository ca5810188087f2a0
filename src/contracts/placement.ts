// What the placement routes serve: `task why` (GET /v1/tasks/:id/placement) and quotas per namespace
// (PUT /v1/quotas/:namespace, GET /v1/quotas).
import type { Page, RequestContext } from './services.js';

export interface WorkerPlacementVerdict {
  readonly workerId: string;
  readonly eligible: boolean;
  /** "eligible", "down", "unreachable", "label zone!=a (it is b)", "no room: cpus 2 > 1.5 free". */
  readonly reason: string;
}

export interface TaskPlacementView {
  readonly taskId: string;
  readonly state: string;
  readonly priority: 'high' | 'normal' | 'low';
  readonly namespace: string;
  /** The worker of the current attempt, when placed. */
  readonly workerId: string | null;
  /** A pending retry waits for its backoff until then (ISO), else null. */
  readonly notBefore: string | null;
  /** One line per reason, as `minkube task why` prints them. */
  readonly lines: readonly string[];
  /** For a pending task: every worker's verdict (empty otherwise). */
  readonly workers: readonly WorkerPlacementVerdict[];
}

/**
 * Why no worker can take a pending task now, as progress lines and a rollout's message say it: the first workers'
 * verdicts (`w1: down; w2: label zone!=a (it is b); 2 more`), or `there are no workers`. Null when one can take it.
 */
export function noWorkerReason(workers: readonly WorkerPlacementVerdict[]): string | null {
  if (workers.some((v) => v.eligible)) return null;
  if (workers.length === 0) return 'there are no workers';
  const shown = workers.slice(0, noWorkerReasonWorkersMax).map((v) => `${v.workerId}: ${v.reason}`);
  if (workers.length > shown.length) shown.push(`${workers.length - shown.length} more`);
  return shown.join('; ');
}

/** Workers noWorkerReason names (a cluster may have a thousand). */
const noWorkerReasonWorkersMax = 3;

export interface QuotaView {
  readonly namespace: string;
  /** Absent: no limit. */
  readonly tasksMax?: number;
  readonly cpus?: number;
  readonly memoryMb?: number;
  /** What the namespace holds now: live tasks (not ended) and the resources they ask for. */
  readonly usage: { readonly tasks: number; readonly cpus: number; readonly memoryMb: number };
}

export interface PlacementService {
  taskPlacement(id: string, ctx: RequestContext): Promise<TaskPlacementView>;
  /** Replaces the namespace's quota; no limit at all removes it. */
  setQuota(namespace: string, limits: { tasksMax?: number; cpus?: number; memoryMb?: number }, ctx: RequestContext): Promise<QuotaView>;
  listQuotas(ctx: RequestContext): Promise<Page<QuotaView>>;
}
