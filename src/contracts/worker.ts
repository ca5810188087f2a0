// The HTTP contract between managers and workers (both directions). Bodies are JSON; failures use the error registry.
//
// Worker -> any manager (a follower proposes through Raft like any other write):
//   POST /v1/workers                      RegisterRequest            -> 200 { worker: WorkerRecord }
//   POST /v1/workers/:id/heartbeat        HeartbeatRequest           -> 200 HeartbeatResponse | 409 WORKER_REPLACED
//   GET  /v1/workers/:id/assignments      (linearizable; headers workerInstanceHeader, workerAskTasksHeader)
//                                                                    -> 200 AssignmentList & { nextCursor: null } | 409 WORKER_REPLACED
// A worker id is held by its newest registration's instance: a heartbeat or assignment fetch that names another
// instance is answered 409 WORKER_REPLACED (error.details.engine: the holder's engine, when it registered one), and
// that worker stops its copies, or leaves them to the holder on its own engine, and exits (src/worker/loops.ts).
// Leader -> worker:
//   POST   /v1/tasks                      Assignment                 -> 200 WorkerTaskStatus | 409 TASK_STALE_FENCING_TOKEN | 4xx/5xx classified
//   POST   /v1/tasks/batch                { assignments: Assignment[] } (1..limits.assignBatchMax)
//                                          -> 200 { items: ({ status: WorkerTaskStatus } | { error: { code, message } })[] }, in order
//   DELETE /v1/tasks/:id?attempt=&term=   (the stop's fencing token) -> 200 WorkerTaskStatus | 404 TASK_NOT_FOUND | 409 TASK_STALE_FENCING_TOKEN
//   GET    /v1/tasks                                                 -> 200 { items: WorkerTaskStatus[], nextCursor: null }
//   GET    /v1/tasks/:id                                             -> 200 WorkerTaskStatus
//   GET    /v1/tasks/:id/logs?tail=N[&follow=true]                   -> 200 text/plain (follow: written as it comes,
//                                                                        ended once the container has exited)
//   GET    /v1/stats                                                 -> 200 WorkerStats
import type { AssignedPort, DesiredState, FencingToken, TaskError, TaskHealth, TaskSpec, WorkerCapacity, WorkerStats } from './task-model.js';

export interface RegisterRequest {
  readonly id: string;
  readonly apiAddress: string;
  readonly runtime: 'docker' | 'process' | 'memory';
  /** Matched by task constraints ("zone==a"). */
  readonly labels?: Readonly<Record<string, string>>;
  /** What tasks' resources may reserve on this worker. */
  readonly capacity?: WorkerCapacity;
  /**
   * The worker's instance (its data directory's id, src/worker/instance.ts): the id is registered to it from now on,
   * and heartbeats and assignment fetches naming another instance are refused (WORKER_REPLACED). Absent from workers
   * that predate it: such a registration holds the id without fencing anyone.
   */
  readonly instance?: string;
  /**
   * The engine that runs its containers (ContainerRuntime.engine: `docker:<ID>`), when it could tell. A replaced
   * instance is told it (WORKER_REPLACED's details.engine): on that same engine, the holder adopted the containers,
   * and the replaced one leaves them running instead of stopping them. Absent: unknown, or a process runtime.
   */
  readonly engine?: string;
}

/** WORKER_REPLACED's `error.details`: the engine of the instance that holds the id, when it registered one. */
export interface WorkerReplacedDetails {
  readonly engine?: string;
}

/** The header a worker's GET assignments names its instance in (a header: managers that predate it ignore it). */
export const workerInstanceHeader = 'x-minkube-worker-instance';

/**
 * The header a worker's GET assignments asks in, comma-separated (at most limits.workerAskTasksMax), about the task
 * ids of containers of its worker id that another instance made and that it knows nothing of: the answer's
 * knownTaskIds names those that are the cluster's tasks (its stale copies, to stop), the rest being another cluster's
 * worker of the same name. A header, so that managers that predate it ignore it (and answer no knownTaskIds).
 */
export const workerAskTasksHeader = 'x-minkube-ask-tasks';

/** A task id as the managers make them (src/manager/task-ids.ts), and so as one may be asked about in that header. */
export const askableTaskIdPattern = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** GET assignments' answer. */
export interface AssignmentList {
  readonly items: readonly Assignment[];
  /** Of the task ids asked (workerAskTasksHeader), those the cluster has or had a record of. Absent: none asked, or an older manager. */
  readonly knownTaskIds?: readonly string[];
}

/** What a worker knows of one task: it answers from its local map without asking a manager. */
export interface WorkerTaskStatus {
  readonly taskId: string;
  readonly attempt: number;
  readonly term: number;
  /** The worker's view: 'starting' until the container runs; the rest mirror the task states. */
  readonly state: 'starting' | 'running' | 'succeeded' | 'failed' | 'stopped';
  readonly containerId: string | null;
  readonly exitCode: number | null;
  readonly error: TaskError | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  /** The host ports allocated to this attempt's named ports. */
  readonly ports?: readonly AssignedPort[];
  /** The health check's verdict while it runs (tasks with a healthCheck). */
  readonly health?: TaskHealth;
}

export interface HeartbeatRequest {
  readonly stats: WorkerStats;
  /**
   * The task statuses that changed since a manager last accepted them (each unchanged one is also repeated now and
   * then), at most limits.workerHeartbeatTasksMax: the managers learn state changes without a separate report call,
   * and a heartbeat stays small however many tasks the worker holds. A task's absence means nothing.
   */
  readonly tasks: readonly WorkerTaskStatus[];
  /** The sender's instance (RegisterRequest.instance): refused with WORKER_REPLACED when another holds the id. */
  readonly instance?: string;
  /**
   * Present while the worker judges its runtime's engine unreachable (a call refused, or not answered within its
   * deadline; src/worker/engine-health.ts); absent once it answers again. The leader places no new task on such a
   * worker. Managers that predate it ignore it (the body schema allows unknown fields), and a worker that predates it
   * never sends it.
   */
  readonly engineUnreachable?: EngineUnreachable;
}

/** Why the worker's engine does not answer, and since when (the worker's wall clock, ms since the epoch). */
export interface EngineUnreachable {
  readonly reason: string;
  readonly sinceMs: number;
}

export interface HeartbeatResponse {
  /** The interval the managers expect heartbeats at. */
  readonly heartbeatIntervalMs: number;
  /**
   * Tasks of this heartbeat, in a final state, whose records retention has removed (tasks.retention): the worker
   * forgets them now (their kept output with them) instead of keeping them for containerRetentionS.
   * Absent when there are none.
   */
  readonly forget?: readonly string[];
  /**
   * The API addresses (host:port) of the cluster's managers now, voters and learners, as the answering manager knows
   * them: the worker asks these from then on (and keeps them), so it follows managers that join after it started.
   * Absent from managers that predate it.
   */
  readonly managers?: readonly string[];
}

/** A placement the leader committed, sent to the worker; also what GET assignments returns for reconciliation. */
export interface Assignment extends FencingToken {
  /** The spec as stored, secretEnv values included: only its worker (and GET assignments, nodes only) sees them. */
  readonly spec: TaskSpec;
  readonly desiredState: DesiredState;
  /**
   * The W3C traceparent of the leader's assignment span when the task's submission was traced: the worker's
   * container start joins that trace (a label minkube.traceparent and TRACEPARENT in its environment). A worker that
   * predates it ignores it (the body schema allows unknown fields).
   */
  readonly traceparent?: string;
  /**
   * GET assignments only: the managers' record says this attempt runs on this worker (the worker reported it running).
   * A worker that has neither its entry nor its container (removed while the worker was down) reports its outcome
   * unknown, a transient failure the managers retry as a new attempt, rather than start it again under the same one.
   * Absent from managers that predate it (the worker then starts it, as it used to).
   */
  readonly started?: true;
}

/**
 * On the agent's monotonic reading (Clock.monoMs, as a request's deadline is): answer with the current status by then
 * even if the operation is still under way.
 */
export interface WaitOptions {
  waitUntilMs?: number;
}

/** What a worker's routes need of its agent (the agent implements it; tests may pass a fake). */
export interface WorkerAgentApi {
  assign(a: Assignment, opts?: WaitOptions): Promise<WorkerTaskStatus>;
  stop(token: FencingToken, opts?: WaitOptions): Promise<WorkerTaskStatus>;
  get(taskId: string): WorkerTaskStatus;
  list(): WorkerTaskStatus[];
  logs(taskId: string, tailLinesMax: number): Promise<string>;
  /** The tail, then the output as it is written until the container has exited; the signal ends it early. */
  followLogs(taskId: string, tailLinesMax: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
  stats(): Promise<WorkerStats>;
  readiness(): { ready: boolean; reason?: string };
}
