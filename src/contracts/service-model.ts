// The service records replicated in the state machine (kv/service-store.ts) and the views the API answers: a service
// keeps `replicas` healthy copies of its current version's task spec running; its last versions are kept for rollback.
import type { Page, ReadConsistency, RequestContext } from './services.js';
import type { TaskSpec } from './task-model.js';

export const failureActions = ['rollback', 'pause'] as const;
export type FailureAction = (typeof failureActions)[number];
export const updateOrders = ['stop-first', 'start-first'] as const;
export type UpdateOrder = (typeof updateOrders)[number];

export interface UpdateConfig {
  /** Replicas replaced at once (and the copies allowed above `replicas`). */
  readonly parallelism: number;
  /** Seconds between batches, after a batch's monitoring. */
  readonly delayS: number;
  /** Seconds a batch must stay healthy before the next one starts. */
  readonly monitorS: number;
  readonly failureAction: FailureAction;
  readonly order: UpdateOrder;
}

export const updateDefaults: UpdateConfig = { parallelism: 1, delayS: 0, monitorS: 10, failureAction: 'rollback', order: 'stop-first' };

export interface ServiceVersion {
  readonly version: number;
  /** The replicas' task spec: the service's task with its ports, healthCheck, constraints, priority and namespace. */
  readonly spec: TaskSpec;
  readonly createdAtMs: number;
}

/**
 * stable: every replica runs the current version (or no rollout was asked for); updating / rolling-back: a rollout
 * in progress towards `version`; paused: a rollout stopped by its failure action (pause), until the next change;
 * rolled-back: the last update failed and the previous version is back (stable otherwise).
 */
export type RolloutState = 'stable' | 'updating' | 'rolling-back' | 'paused' | 'rolled-back';

export interface Rollout {
  readonly state: RolloutState;
  /** The version the rollout started from (null for none). */
  readonly fromVersion: number | null;
  readonly startedAtMs: number;
  /** The current batch is monitored until then (null: no batch under watch). */
  readonly monitorUntilMs: number | null;
  /** Why it paused or rolled back, or null. */
  readonly message: string | null;
}

export interface ServiceRecord {
  readonly name: string;
  readonly replicas: number;
  /** The version replicas should run. */
  readonly version: number;
  readonly previousVersion: number | null;
  /** The last versions (at most limits.serviceVersionsMax), oldest first; the current one is among them. */
  readonly versions: readonly ServiceVersion[];
  readonly update: UpdateConfig;
  readonly rollout: Rollout;
  /** Raised by every change: a reconcile decision made on an older revision is dropped. */
  readonly revision: number;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

/** One replica as GET /v1/services/:name shows it. */
export interface ReplicaView {
  readonly taskId: string;
  readonly version: number;
  readonly state: string;
  readonly desiredState: string;
  /** Its worker is being drained and it is being stopped there, to be placed again elsewhere (it serves no more). */
  readonly draining: boolean;
  readonly health: string | null;
  readonly workerId: string | null;
  /** The attempt the state and worker are of (from 1): a follower of its output knows a new one by it. */
  readonly attempt: number;
  /**
   * Why it failed by its own doing, as a rollout judges a replica: its health check fails now (`unhealthy: http 503
   * from /`), or its previous attempt exited, could not start, or turned unhealthy (`the container exited with code
   * 3`). Null otherwise (a lost worker is no failure of the replica's). `--wait` tells a new failure by `attempt`.
   */
  readonly failure: string | null;
  readonly ports: readonly { readonly name: string; readonly hostPort: number; readonly address: string }[];
}

export interface ServiceView {
  readonly name: string;
  readonly replicas: { readonly desired: number; readonly running: number; readonly healthy: number };
  readonly version: number;
  readonly previousVersion: number | null;
  readonly versions: readonly number[];
  /** The current version's task spec (secretEnv values redacted). */
  readonly spec: TaskSpec;
  readonly update: UpdateConfig;
  /** message: the record's (why it paused or rolled back), else while updating why a replica of the version waits. */
  readonly rollout: { readonly state: RolloutState; readonly fromVersion: number | null; readonly message: string | null };
  /**
   * Why a replica of the current version waits to be placed, when no worker can take it now (`waiting: replica t...
   * of version 1 has no worker to run on (w1: label zone!=a (it is b); see task why t...)`), else null.
   */
  readonly waiting: string | null;
  /** Every replica not yet ended (stopping ones included), by task id. */
  readonly tasks: readonly ReplicaView[];
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** POST /v1/services. */
export interface ServiceCreateRequest {
  readonly name: string;
  readonly task: TaskSpec;
  readonly replicas: number;
  readonly ports?: TaskSpec['ports'];
  readonly healthCheck?: TaskSpec['healthCheck'];
  readonly update?: Partial<UpdateConfig>;
  readonly constraints?: TaskSpec['constraints'];
  readonly priority?: TaskSpec['priority'];
  readonly namespace?: string;
}

/**
 * PATCH /v1/services/:name: replicas alone scales; anything else makes a new version and rolls it out. ifVersion: the
 * version the client read and built its change on (a task it sends whole): refused with 409 SERVICE_VERSION_MISMATCH
 * if the service is at another by then. Without it the change is made on whatever version is current.
 */
export type ServicePatchRequest = Partial<Omit<ServiceCreateRequest, 'name'>> & { readonly ifVersion?: number };

/** What the managers' service routes need (manager/service-service.ts implements it). */
export interface ServicesService {
  /** SERVICE_EXISTS (409); QUEUE_FULL past limits.servicesMax. */
  createService(req: ServiceCreateRequest, ctx: RequestContext): Promise<ServiceView>;
  listServices(q: { readonly limit: number; readonly cursor?: string; readonly consistency: ReadConsistency }, ctx: RequestContext): Promise<Page<ServiceView>>;
  /** SERVICE_NOT_FOUND (404). */
  getService(name: string, consistency: ReadConsistency, ctx: RequestContext): Promise<ServiceView>;
  /** Scales (replicas alone) or makes a new version and rolls it out. SERVICE_NOT_FOUND. */
  updateService(name: string, patch: ServicePatchRequest, ctx: RequestContext): Promise<ServiceView>;
  /** Back to the previous version. SERVICE_NOT_FOUND; SERVICE_ROLLBACK_REFUSED (409) without one. */
  rollbackService(name: string, ctx: RequestContext): Promise<ServiceView>;
  /** Forgets the service and stops every replica; answers how many replicas were asked to stop. SERVICE_NOT_FOUND. */
  deleteService(name: string, ctx: RequestContext): Promise<{ readonly name: string; readonly deleted: true; readonly stopping: number }>;
}
