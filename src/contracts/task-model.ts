// The task and worker records replicated in the state machine, and the one table of allowed task transitions.
import type { FailureClass } from '../lib/failure.js';
import { limits } from '../lib/limits.js';

export type { FailureClass };

export type RestartPolicy = 'never' | 'on-failure' | 'always';

export interface TaskSpec {
  readonly name?: string;
  readonly image: string;
  readonly command?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Environment values delivered to the worker only (in the assignment) and put in the container's environment
   * beside env. Stored in the replicated state like the rest of the spec; every API answer shows them redacted
   * (taskView in task-spec.ts).
   */
  readonly secretEnv?: Readonly<Record<string, string>>;
  readonly restartPolicy?: RestartPolicy;
  readonly maxAttempts?: number;
  readonly resources?: { readonly cpus?: number; readonly memoryMb?: number };
  readonly labels?: Readonly<Record<string, string>>;
  /** Named ports; the worker allocates a host port for each and passes it as MINKUBE_PORT_<NAME> (and PORT for the first). */
  readonly ports?: readonly PortSpec[];
  readonly healthCheck?: HealthCheckSpec;
  /** On worker labels: "zone==a", "disk!=hdd", "gpu" (present). */
  readonly constraints?: readonly string[];
  readonly priority?: TaskPriority;
  readonly namespace?: string;
  /** What a stop sends first (default SIGTERM); SIGKILL follows after stopTimeoutS if the task still runs. */
  readonly stopSignal?: StopSignal;
  /** Seconds from stopSignal to SIGKILL, 0..3600 (default: the worker's tasks.stopTimeoutMs, 10 s). */
  readonly stopTimeoutS?: number;
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A name env and secretEnv may hold (one a shell and exec accept): the rule the managers check and the CLI checks first. */
export function isEnvName(name: string): boolean {
  return name.length <= limits.taskEnvNameCharsMax && envNamePattern.test(name);
}

/** How isEnvName's rule reads in a message. */
export const envNameRule = 'letters, digits and _, not starting with a digit';

/** The signals a task may name as its stop signal. */
export const stopSignals = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGKILL'] as const;
export type StopSignal = (typeof stopSignals)[number];

export const taskPriorities = ['high', 'normal', 'low'] as const;
export type TaskPriority = (typeof taskPriorities)[number];

export interface PortSpec {
  readonly name: string;
}

/** A port the worker allocated to a running attempt. */
export interface AssignedPort {
  readonly name: string;
  readonly hostPort: number;
  /** host:port where the task listens. */
  readonly address: string;
}

export interface HealthCheckSpec {
  readonly type: 'http' | 'tcp' | 'exec';
  /** The name of a declared port (http, tcp). */
  readonly port?: string;
  readonly path?: string;
  readonly command?: readonly string[];
  readonly intervalS: number;
  readonly timeoutS: number;
  readonly retries: number;
  readonly startPeriodS: number;
}

export type TaskHealth = 'starting' | 'healthy' | 'unhealthy';

/** The service a task is a replica of, and the service version whose spec it runs. */
export interface TaskServiceRef {
  readonly name: string;
  readonly version: number;
}

/** Observed states. pending -> scheduled -> running -> succeeded | failed | stopped, plus lost. */
export type TaskState = 'pending' | 'scheduled' | 'running' | 'succeeded' | 'failed' | 'stopped' | 'lost';
export type DesiredState = 'run' | 'stop';

export const finalTaskStates: ReadonlySet<TaskState> = new Set(['succeeded', 'failed', 'stopped']);

/**
 * The allowed transitions. A retry (transient failure, restart policy, lost worker) goes back to pending with the
 * attempt number raised; a final state is never left.
 */
export const taskTransitions: Readonly<Record<TaskState, readonly TaskState[]>> = {
  pending: ['scheduled', 'failed', 'stopped'],
  scheduled: ['running', 'succeeded', 'failed', 'stopped', 'lost', 'pending'],
  running: ['succeeded', 'failed', 'stopped', 'lost', 'pending'],
  lost: ['pending', 'failed', 'stopped'],
  succeeded: [],
  failed: [],
  stopped: [],
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return taskTransitions[from].includes(to);
}

export interface TaskError {
  readonly class: FailureClass;
  readonly message: string;
}

export interface TaskTransition {
  readonly state: TaskState;
  readonly attempt: number;
  readonly atMs: number;
  readonly workerId: string | null;
  readonly reason?: string;
}

/** The fencing token of an assignment or a stop: a worker refuses one older than the newest it has seen for the task. */
export interface FencingToken {
  readonly taskId: string;
  readonly attempt: number;
  readonly term: number;
}

export interface TaskRecord {
  readonly id: string;
  readonly spec: TaskSpec;
  readonly state: TaskState;
  readonly desiredState: DesiredState;
  readonly workerId: string | null;
  /** From 1; raised by every retry. */
  readonly attempt: number;
  /** The term of the leader that placed the current attempt (part of the fencing token). */
  readonly term: number;
  readonly containerId: string | null;
  readonly exitCode: number | null;
  readonly error: TaskError | null;
  /** A pending retry is not placed before this time (exponential backoff with full jitter). */
  readonly notBeforeMs: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Bounded by limits.taskHistoryMax, oldest dropped first. */
  readonly history: readonly TaskTransition[];
  /** Set on a service's replicas. */
  readonly service?: TaskServiceRef | undefined;
  /** The host ports of the current attempt, once its worker allocated them. */
  readonly ports?: readonly AssignedPort[] | undefined;
  /** The worker's health-check verdict on the current attempt (only with spec.healthCheck). */
  readonly health?: TaskHealth | undefined;
  /**
   * The current attempt is being stopped because its worker is drained (`minkube worker drain`): once its worker says
   * it ended, the task goes back to pending as its next attempt, elsewhere. Only on a placed attempt meant to run.
   */
  readonly draining?: true | undefined;
  /** Attempts that ended because their worker was drained: they do not count against maxAttempts. Absent: none. */
  readonly drainedAttempts?: number | undefined;
}

export type WorkerState = 'ready' | 'unreachable' | 'down';

/**
 * Whether the leader may place tasks on a worker, set by an operator (`minkube worker drain|pause|activate`): active
 * (the default), pause (nothing new; what runs there stays) or drain (nothing new, and what runs there is moved away).
 */
export const workerAvailabilities = ['active', 'pause', 'drain'] as const;
export type WorkerAvailability = (typeof workerAvailabilities)[number];

export interface WorkerStats {
  /** 0..1 over the last heartbeat interval; null until two readings exist. */
  readonly cpuUtilization: number | null;
  readonly memoryTotalBytes: number;
  readonly memoryAvailableBytes: number;
  readonly diskFreeBytes: number;
  readonly runningTasks: number;
}

export interface WorkerRecord {
  readonly id: string;
  readonly apiAddress: string;
  readonly state: WorkerState;
  readonly runtime: string;
  readonly registeredAt: string;
  readonly lastHeartbeatAt: string | null;
  readonly stats: WorkerStats | null;
  readonly taskCount: number;
  /** Whether the leader places tasks on it (worker drain, pause, activate). */
  readonly availability: WorkerAvailability;
  /** From the config or the join; matched by task constraints. */
  readonly labels?: Readonly<Record<string, string>>;
  /** What the worker offers for reservations (task resources). */
  readonly capacity?: { readonly cpus: number; readonly memoryMb: number };
  /** The instance that registered the id last, which alone may heartbeat as it (absent: a worker that sent none). */
  readonly instance?: string;
  /** While its engine does not answer (the worker says so): why, and since when (ISO 8601). Nothing new is placed there. */
  readonly engineUnreachable?: { readonly reason: string; readonly since: string };
}

/** A worker as stored: the public record without its task count (derived), with times in ms. */
export interface StoredWorker {
  readonly id: string;
  readonly apiAddress: string;
  readonly state: WorkerState;
  readonly runtime: string;
  readonly registeredAtMs: number;
  readonly lastHeartbeatAtMs: number | null;
  readonly stats: WorkerStats | null;
  /** Registrations and heartbeats applied: a leader's verdict names the count it judged by (clock-free). */
  readonly heartbeats: number;
  /** As registered (absent for a worker that registered none). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly capacity?: WorkerCapacity;
  /** The registration's instance (RegisterRequest.instance); absent for one that sent none. */
  readonly instance?: string;
  /** The registration's engine (RegisterRequest.engine), told to the instance it replaced; absent for one that sent none. */
  readonly engine?: string;
  /** Set by worker.availability; absent: active. A registration keeps it. */
  readonly availability?: 'pause' | 'drain';
  /** Set by worker.engine while the worker says its engine does not answer; absent: it answers (or it never said). */
  readonly engineUnreachable?: { readonly reason: string; readonly sinceMs: number };
}

/** A stored worker's availability (absent: active). */
export function availabilityOf(w: Pick<StoredWorker, 'availability'>): WorkerAvailability {
  return w.availability ?? 'active';
}

/** What a worker offers for reservations: CPU cores and memory in MiB. */
export interface WorkerCapacity {
  readonly cpus: number;
  readonly memoryMb: number;
}
