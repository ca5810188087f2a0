// The contract between the worker agent and whatever runs its tasks: Docker containers, plain processes, or a fake.
// Every implementation passes test/runtime/conformance.ts; every failure is a RuntimeFailure with a failure class.
import { MinkubeError } from '../lib/errors.js';

export type RuntimeKind = 'docker' | 'process' | 'memory';

export interface RunSpec {
  /** Unique per attempt on this host (Docker refuses a second container with the same name). */
  name: string;
  /** Docker: the image to run (pulled when not present). Process: only recorded. */
  image: string;
  /** argv, run without a shell. Docker: the image's default command when absent; process: required. */
  command?: string[];
  env?: Record<string, string>;
  /** Kept with the container; list() filters on them (minkube.task, minkube.worker, minkube.attempt, ...). */
  labels: Record<string, string>;
  /** Docker enforces them; the process runtime only records them. */
  resources?: { cpus?: number; memoryMb?: number };
  /**
   * Docker: the container shares the host's network namespace (a task with ports listens on its host port there;
   * works on an engine started with --bridge=none). The process runtime's processes always do.
   */
  hostNetwork?: boolean;
  /**
   * What stop() sends first when it is given no signal (default SIGTERM). Docker: the container's StopSignal; the
   * process runtime keeps it with its record, so a restarted worker stops an adopted task the same way.
   */
  stopSignal?: NodeJS.Signals;
  /**
   * Docker: the container's StopTimeout, what the engine's own stops wait (`docker stop` by hand, its shutdown). The
   * worker's stops pass their timeout on each call, which it also reads from the labels it gave the container.
   */
  stopTimeoutS?: number;
}

export type ContainerState = 'created' | 'running' | 'exited';

export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: ContainerState;
  /** Set once exited; null while not exited, or when the runtime could not observe the exit (see wait). */
  exitCode: number | null;
  /** Epoch milliseconds. */
  startedAt?: number;
  finishedAt?: number;
  /** Docker (and the memory runtime): the kernel's OOM killer ended it (exit code 137). */
  oomKilled?: boolean;
}

/** How a container ended, as wait() answers it. */
export interface ExitStatus {
  exitCode: number | null;
  /** Present (true) only when the kernel's OOM killer ended it. */
  oomKilled?: true;
  /**
   * Present when it exited non-zero and the runtime saw its disk full meanwhile (a write of its output or its record
   * failed with ENOSPC or EDQUOT, or the disk had next to nothing free when it ended): why, naming the path. The
   * worker reports such an attempt as a transient out-of-space failure, not as the task's own exit code.
   */
  outOfSpace?: string;
}

export interface ContainerRuntime {
  readonly kind: RuntimeKind;
  /** Resolves when the runtime can take work; throws RuntimeFailure('daemon-unreachable', transient) when not. */
  ping(): Promise<void>;
  /** Ensures the image (local, else pulled), creates the container with its labels and limits, and starts it. */
  run(spec: RunSpec): Promise<{ id: string }>;
  /**
   * Resolves when the container has exited (at once if it already has). exitCode is null only when nothing
   * recorded the exit (a process runtime's task whose exit file is missing: the host restarted, say). oomKilled is
   * there (true) only when the runtime knows the kernel's OOM killer ended it (Docker: over its memory limit; the
   * process runtime enforces no limit). Throws RuntimeFailure('container-not-found', permanent) for an unknown id.
   * The signal abandons the wait.
   */
  wait(id: string, opts?: { signal?: AbortSignal }): Promise<ExitStatus>;
  /**
   * `signal` (else the run's stopSignal, else SIGTERM), then SIGKILL after timeoutMs (Docker rounds up to whole
   * seconds). A no-op if exited or unknown.
   */
  stop(id: string, timeoutMs: number, signal?: NodeJS.Signals): Promise<void>;
  /** Forgets the container and its logs, killing it first if it still runs. A no-op if unknown. */
  remove(id: string): Promise<void>;
  /** null for an unknown id. */
  inspect(id: string): Promise<ContainerInfo | null>;
  /**
   * Containers (running or not) carrying every given label; how a restarted worker re-adopts its tasks. `brief`: the
   * caller needs no times of running containers (startedAt may be absent on them), so a runtime that must ask about
   * each container separately (Docker) asks only about those not running: a worker reconciles every second.
   */
  list(labelFilter: Record<string, string>, opts?: { brief?: boolean }): Promise<ContainerInfo[]>;
  /** stdout and stderr interleaved, at most limits.runtimeLogBytesMax bytes (the newest). */
  logs(id: string, opts?: { tailLines?: number }): Promise<string>;
  /**
   * The newest tailLines lines, then the output as it is written, until the container has exited and its output is
   * read (or it is removed). Aborting `signal` ends the iteration early, without an error. The promise rejects as
   * logs() does (container-not-found for an unknown id); the caller reads the iterable to its end or aborts.
   */
  followLogs(id: string, opts: { tailLines?: number; signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>>;
  /**
   * Which engine runs the containers, the same string from every runtime on it (Docker: `docker:` and the engine's
   * ID), so that two worker processes of one id can tell whether they share one: a process replaced by another on
   * the same engine leaves the containers to it (the other adopted them) instead of stopping them. Undefined when it
   * cannot tell (the engine did not answer); never rejects. Absent: no other process can take over its containers
   * (the process runtime's processes are known to its own data directory alone).
   */
  engine?(): Promise<string | undefined>;
  /** Runs a command inside a running container (health checks of type exec); its exit code. Absent: run on the host. */
  exec?(id: string, command: string[], timeoutMs: number): Promise<number>;
  /** Releases timers and connections. Leaves containers running: a restarted worker re-adopts them. */
  close(): Promise<void>;
}

/** Permanent: retrying the same spec cannot succeed. Transient: it may once the host or daemon recovers. */
export type FailureClass = 'transient' | 'permanent';

export type RuntimeFailureReason =
  | 'image-not-found'
  | 'invalid-spec'
  | 'command-not-found'
  | 'name-conflict'
  | 'container-not-found'
  | 'daemon-unreachable'
  | 'out-of-space'
  | 'timeout'
  | 'daemon-error'
  | 'unknown';

export const failureClassOf: Readonly<Record<RuntimeFailureReason, FailureClass>> = {
  'image-not-found': 'permanent',
  'invalid-spec': 'permanent',
  'command-not-found': 'permanent',
  'name-conflict': 'permanent',
  'container-not-found': 'permanent',
  'daemon-unreachable': 'transient',
  'out-of-space': 'transient',
  timeout: 'transient',
  'daemon-error': 'transient',
  // Unrecognised failures are retried: the worker bounds its retries, and a wrong "permanent" loses a task for good.
  unknown: 'transient',
};

export class RuntimeFailure extends MinkubeError {
  readonly reason: RuntimeFailureReason;
  readonly failureClass: FailureClass;

  constructor(reason: RuntimeFailureReason, message: string, options: { cause?: unknown } = {}) {
    const failureClass = failureClassOf[reason];
    super('RUNTIME_ERROR', message, { ...options, details: { reason, failureClass } });
    this.reason = reason;
    this.failureClass = failureClass;
  }
}

export function isRuntimeFailure(err: unknown): err is RuntimeFailure {
  return err instanceof RuntimeFailure;
}
