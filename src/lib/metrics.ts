// Prometheus metrics for one node: a registry of its own (several nodes share a process in tests), every name under
// `minkube_`, and label names checked when a metric is made so none is named job or instance. The manager's and the
// worker's metrics (src/manager/metrics.ts, src/worker/metrics.ts) are made through this.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { assert } from './assert.js';
import { readFdLimit } from './fds.js';

export const metricsPrefix = 'minkube_';

/** Prometheus sets these itself on every scraped series: a metric's own label of that name would be renamed. */
const reservedLabelNames: ReadonlySet<string> = new Set(['job', 'instance', 'le', 'quantile']);

/** Seconds, for request latencies and short waits: 1 ms .. 10 s. */
export const latencyBucketsS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds, for disk syncs (as etcd's wal_fsync_duration_seconds): 1 ms doubling up to 8.192 s. */
export const fsyncBucketsS: readonly number[] = Array.from({ length: 14 }, (_, i) => 0.001 * 2 ** i);
/** Seconds, for things that may take minutes (scheduling, container starts, snapshots): 5 ms .. 5 min. */
export const slowBucketsS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Seconds, for round trips between managers: 0.1 ms doubling up to 3.3 s. */
export const roundTripBucketsS: readonly number[] = Array.from({ length: 16 }, (_, i) => 0.0001 * 2 ** i);

export interface MetricsRegistryOptions {
  /** prom-client's process and Node.js metrics (process_cpu_seconds_total, nodejs_heap_size_used_bytes, ...). Default true. */
  processDefaults?: boolean;
}

/** process_max_fds, the descriptor limit as it is when scraped; none without /proc (not Linux), as prom-client's. */
function registerLiveMaxFds(registry: Registry): void {
  if (readFdLimit() === null) return;
  new Gauge({
    name: 'process_max_fds',
    help: 'Maximum number of open file descriptors.',
    registers: [registry],
    collect() {
      const limit = readFdLimit();
      if (limit !== null) this.set(limit);
    },
  });
}

const gaugesNamedAsCounters = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * One node's metrics. To add one: `registry.counter('thing_total', 'what it counts', ['outcome'])` (the prefix is
 * added), keep the object and call `.inc({ outcome: 'ok' })` where it happens; for a value that is cheap to read,
 * `registry.gauge('things', 'help', [], (g) => g.set(read()))` reads it only when /metrics is scraped. Labels must take
 * a small, closed set of values: never an id, a key or a message.
 */
export class MetricsRegistry {
  readonly registry = new Registry();

  constructor(o: MetricsRegistryOptions = {}) {
    if (o.processDefaults !== false) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters, which `promtool check metrics` flags (and exits 3): the same counts stay, by type,
      // in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
      for (const name of gaugesNamedAsCounters) this.registry.removeSingleMetric(name);
      // prom-client reads the limit once per process, at its first registry: after `prlimit` lowered it under a
      // running node, process_max_fds still said the old one. Read when scraped instead (process_open_fds already is).
      this.registry.removeSingleMetric('process_max_fds');
      registerLiveMaxFds(this.registry);
    }
  }

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: (c: Counter<L>) => void): Counter<L> {
    checkNames(name, labelNames);
    const collector = collect === undefined ? {} : { collect(this: Counter<L>) { collect(this); } };
    return new Counter<L>({ name: metricsPrefix + name, help, labelNames, registers: [this.registry], ...collector });
  }

  gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: (g: Gauge<L>) => void | Promise<void>): Gauge<L> {
    checkNames(name, labelNames);
    const collector = collect === undefined ? {} : { collect(this: Gauge<L>) { return collect(this); } };
    return new Gauge<L>({ name: metricsPrefix + name, help, labelNames, registers: [this.registry], ...collector });
  }

  histogram<L extends string = never>(name: string, help: string, buckets: readonly number[], labelNames: readonly L[] = []): Histogram<L> {
    checkNames(name, labelNames);
    return new Histogram<L>({ name: metricsPrefix + name, help, labelNames, buckets: [...buckets], registers: [this.registry] });
  }

  /** A histogram for per-request paths (see FastHistogram): the caller builds the key of a label set. */
  fastHistogram<L extends string>(name: string, help: string, buckets: readonly number[], labelNames: readonly L[]): FastHistogram<L> {
    checkNames(name, labelNames);
    const h = new FastHistogram<L>(metricsPrefix + name, help, buckets);
    this.registry.registerMetric(h as unknown as Metric);
    return h;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text format: collect() of every gauge runs now. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

function checkNames(name: string, labelNames: readonly string[]): void {
  assert(/^[a-z][a-z0-9_]*$/.test(name) && !name.startsWith(metricsPrefix), `metric name ${name}: lower-case, without the ${metricsPrefix} prefix`);
  for (const l of labelNames) assert(!reservedLabelNames.has(l), `metric ${name}: the label name ${l} is reserved by Prometheus`);
}

/** A counter whose value is read from somewhere else at scrape time (a monotonic number the code already keeps). */
export function setCounter<L extends string>(c: Counter<L>, value: number, labels?: Partial<Record<L, string>>): void {
  // prom-client has no set() on counters: the value is rebuilt from the source on every scrape.
  if (labels === undefined) {
    c.reset();
    c.inc(Math.max(0, value));
  } else {
    c.remove(labels);
    c.inc(labels, Math.max(0, value));
  }
}

/** Series one FastHistogram keeps at most; observations of more label sets are dropped (a bug upstream, not load). */
const fastHistogramSeriesMax = 1000;

interface FastSeries<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  /** counts[i]: observations in (buckets[i-1], buckets[i]]; the last slot is above every bucket. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram for per-request paths: observing is one map lookup by a key the caller builds and a few array writes
 * (prom-client's histogram hashes its label object on every call). Renders as prom-client's does. Make it with
 * MetricsRegistry.fastHistogram.
 */
export class FastHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, FastSeries<L>>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
  ) {}

  /** key: the label values joined (one key per label set); labels() is called for a key's first observation only. */
  observe(key: string, labels: () => Record<L, string>, value: number): void {
    let s = this.series.get(key);
    if (s === undefined) {
      if (this.series.size >= fastHistogramSeriesMax) return;
      s = { labels: labels(), counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** What prom-client's Registry renders (its Metric.get()). */
  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ labels: { le: i < this.buckets.length ? this.buckets[i]! : '+Inf', ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }
}
