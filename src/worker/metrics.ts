// A worker's Prometheus metrics (under minkube_): host CPU, memory and disk as its last heartbeat read them, its
// containers by state (read at scrape time), task starts, health-check failures and the heartbeat's round trip to
// the managers. The agent, the loops and the daemon call the small observers below.
import type { Counter, Histogram } from 'prom-client';
import { latencyBucketsS, MetricsRegistry, slowBucketsS, type MetricsRegistryOptions } from '../lib/metrics.js';

/** The host figures a heartbeat carries (WorkerStats without the task count). */
export interface HostFigures {
  cpuUtilization: number | null;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  diskFreeBytes: number;
}

/** What the agent reports (WorkerAgentOptions.observer). */
export interface AgentObserver {
  /** Called as a container start begins; the returned function when it ended. */
  taskStartTimer(): (outcome: 'started' | 'failed') => void;
  healthCheckFailed(): void;
}

/** What the loops report (WorkerLoopsOptions.observer). */
export interface LoopsObserver {
  /** Called as a heartbeat is sent; the returned function when it was answered or failed. */
  heartbeatTimer(): (outcome: 'ok' | 'failed') => void;
}

const containerStates = ['starting', 'running', 'succeeded', 'failed', 'stopped'] as const;

export class WorkerMetrics implements AgentObserver, LoopsObserver {
  readonly registry: MetricsRegistry;
  private host: HostFigures | null = null;
  private containers: () => Iterable<{ state: string }> = () => [];
  private readonly taskStarts: Counter<'outcome'>;
  private readonly taskStartDuration: Histogram;
  private readonly healthCheckFailures: Counter;
  private readonly heartbeat: Histogram<'outcome'>;

  constructor(o: MetricsRegistryOptions = {}) {
    const r = (this.registry = new MetricsRegistry(o));
    r.gauge('host_cpu_utilization', 'Busy share of the host CPUs (0..1) between the last two heartbeats.', [], (g) => g.set(this.host?.cpuUtilization ?? 0));
    r.gauge('host_memory_total_bytes', 'Host memory.', [], (g) => g.set(this.host?.memoryTotalBytes ?? 0));
    r.gauge('host_memory_available_bytes', 'Host memory available to new processes.', [], (g) => g.set(this.host?.memoryAvailableBytes ?? 0));
    r.gauge('host_disk_free_bytes', "Free space under the worker's data directory.", [], (g) => g.set(this.host?.diskFreeBytes ?? 0));
    r.gauge('containers', "This worker's tasks by local state.", ['state'], (g) => {
      const counts = new Map<string, number>(containerStates.map((s) => [s, 0]));
      for (const c of this.containers()) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
      for (const [state, n] of counts) g.set({ state }, n);
    });
    this.taskStarts = r.counter('task_starts_total', 'Container starts, by outcome (started, failed).', ['outcome']);
    this.taskStartDuration = r.histogram('task_start_duration_seconds', 'From an assignment reaching the runtime to its container running.', slowBucketsS);
    this.healthCheckFailures = r.counter('health_check_failures_total', "Failed health checks of this worker's tasks.");
    this.heartbeat = r.histogram('heartbeat_duration_seconds', 'A heartbeat to the managers until answered, by outcome (ok, failed).', latencyBucketsS, ['outcome']);
  }

  /** What /metrics counts as containers: the agent's task map, read at scrape time. */
  attach(containers: () => Iterable<{ state: string }>): void {
    this.containers = containers;
  }

  hostStats(figures: HostFigures): void {
    this.host = figures;
  }

  taskStartTimer(): (outcome: 'started' | 'failed') => void {
    const end = this.taskStartDuration.startTimer();
    return (outcome) => {
      if (outcome === 'started') end();
      this.taskStarts.inc({ outcome });
    };
  }

  healthCheckFailed(): void {
    this.healthCheckFailures.inc();
  }

  heartbeatTimer(): (outcome: 'ok' | 'failed') => void {
    const end = this.heartbeat.startTimer();
    return (outcome) => end({ outcome });
  }
}
