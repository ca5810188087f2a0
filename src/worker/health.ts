// A task's health check, run by its worker: http (a GET answered 2xx or 3xx), tcp (a connection accepted) or exec (a
// command that exits 0), at the start and then every intervalS, each bounded by timeoutS. Healthy after one success;
// unhealthy after `retries` failures in a row (failures within startPeriodS do not count), and then the worker
// restarts the task. Until its first success, a check failed within startPeriodS is tried again sooner (0.1 s,
// doubling up to intervalS): a replica's readiness is what a rollout waits on, and it rarely listens at its first
// millisecond.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { request } from 'node:http';
import type { AssignedPort, HealthCheckSpec, TaskHealth } from '../contracts/task-model.js';
import { splitHostPort } from '../lib/address.js';
import { backoffCeilingMs } from '../lib/backoff.js';
import type { Clock, Timer } from '../lib/clock.js';

/** Runs a command for an exec check: the exit code (non-zero or a throw is a failure). */
export type ExecProbe = (command: readonly string[], timeoutMs: number) => Promise<number>;

export interface HealthTarget {
  readonly check: HealthCheckSpec;
  /**
   * http and tcp checks connect to the named port's advertised address (the worker's API host): what the task record
   * and DNS give clients is what is checked. A process, and a Docker task with ports (host networking), listens there.
   */
  readonly ports: readonly AssignedPort[];
  readonly exec: ExecProbe;
}

/** One probe: null when it passed, else what failed ("http 503 from /healthz"). */
export async function probeOnce(t: HealthTarget): Promise<string | null> {
  const { check } = t;
  const timeoutMs = Math.max(1, Math.round(check.timeoutS * 1000));
  if (check.type === 'exec') {
    try {
      const code = await t.exec(check.command ?? [], timeoutMs);
      return code === 0 ? null : `exec exited with code ${code}`;
    } catch (err) {
      return `exec failed: ${(err as Error).message}`;
    }
  }
  const target = t.ports.find((p) => p.name === check.port);
  if (target === undefined) return `no port named ${check.port ?? '?'}`;
  const { host } = splitHostPort(target.address);
  const port = target.hostPort;
  return check.type === 'http' ? httpProbe(host, port, check.path ?? '/', timeoutMs) : tcpProbe(host, port, timeoutMs);
}

function httpProbe(host: string, port: number, path: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: 'GET', timeout: timeoutMs, agent: false, headers: { 'user-agent': 'minkube-health' } }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400 ? null : `http ${code} from ${path}`);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve(`http ${path}: ${err.message}`));
    req.end();
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve(null);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(`tcp ${port}: no connection within ${timeoutMs} ms`);
    });
    socket.once('error', (err) => resolve(`tcp ${port}: ${err.message}`));
  });
}

/** The verdict so far: a pure fold of probe results, so the rule is testable without sockets. */
export interface HealthState {
  readonly health: TaskHealth;
  readonly failuresInRow: number;
  readonly lastFailure: string | null;
}

export const initialHealth: HealthState = { health: 'starting', failuresInRow: 0, lastFailure: null };

export function nextHealth(s: HealthState, failure: string | null, inStartPeriod: boolean, retries: number): HealthState {
  if (failure === null) return { health: 'healthy', failuresInRow: 0, lastFailure: null };
  if (inStartPeriod && s.health === 'starting') return { ...s, lastFailure: failure };
  const failuresInRow = s.failuresInRow + 1;
  return { health: failuresInRow >= retries ? 'unhealthy' : s.health, failuresInRow, lastFailure: failure };
}

/** The first retry of a check failed in its start period, before its first success. */
const startRetryBaseMs = 100;

/** Probes one running task until stopped; tells `onChange` of every new verdict. */
export class HealthMonitor {
  private state: HealthState = initialHealth;
  private timer: Timer | null = null;
  private stopped = false;
  /** On clock.monoMs(): the start period is a duration, which a wall-clock step must not stretch or cut. */
  private readonly startedAtMs: number;

  constructor(
    private readonly target: HealthTarget,
    private readonly clock: Clock,
    private readonly onChange: (s: HealthState) => void,
    /** Every failed probe (metrics: health_check_failures_total), in the start period too. */
    private readonly onProbeFailed?: () => void,
  ) {
    this.startedAtMs = clock.monoMs();
  }

  get current(): HealthState {
    return this.state;
  }

  /** Failed probes in the start period before the first success (each tried again sooner than intervalS). */
  private startRetries = 0;

  /** The first probe at once: a task that listens at its start is healthy then, not one interval later. */
  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.probe(), delayMs);
  }

  private async probe(): Promise<void> {
    const { check } = this.target;
    const failure = await probeOnce(this.target);
    if (this.stopped) return;
    if (failure !== null) this.onProbeFailed?.();
    const inStartPeriod = this.clock.monoMs() - this.startedAtMs < check.startPeriodS * 1000;
    const next = nextHealth(this.state, failure, inStartPeriod, check.retries);
    const changed = next.health !== this.state.health;
    this.state = next;
    if (changed) this.onChange(next);
    if (next.health === 'unhealthy') return;
    const intervalMs = Math.max(10, Math.round(check.intervalS * 1000));
    const early = failure !== null && inStartPeriod && next.health === 'starting';
    this.schedule(early ? backoffCeilingMs(++this.startRetries, { baseMs: startRetryBaseMs, capMs: intervalMs }) : intervalMs);
  }
}

/** An exec check on the worker's host (the process runtime's tasks run there) with the task's environment. */
export function hostExec(command: readonly string[], env: Readonly<Record<string, string>>, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] ?? '', command.slice(1), { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: 'ignore', timeout: timeoutMs });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}
