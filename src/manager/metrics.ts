// A manager's Prometheus metrics, named as etcd names its own (under minkube_). Values the manager already keeps
// (Raft's term and indexes, tasks and workers by state, bytes sent to each peer) are read when /metrics is scraped;
// the driver, the API and the state machine's listener call the small observers below on their paths.
import type { Counter, Gauge, Histogram } from 'prom-client';
import { availabilityOf, workerAvailabilities, type TaskRecord, type TaskState, type WorkerState } from '../contracts/task-model.js';
import type { StoredWorker, TaskStoreListener } from '../kv/task-store.js';
import { fsyncBucketsS, latencyBucketsS, MetricsRegistry, type FastHistogram, roundTripBucketsS, setCounter, slowBucketsS, type MetricsRegistryOptions } from '../lib/metrics.js';

const taskStates: readonly TaskState[] = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost'];
/** A heartbeat unanswered this long is not timed: a peer that comes back must not record its outage as a round trip. */
const heartbeatLostMs = 5000;
const workerStates: readonly WorkerState[] = ['ready', 'unreachable', 'down'];

/** What is read at scrape time; set by attach() once the parts exist. */
export interface ManagerMetricsSources {
  raft(): { term: number; commitIndex: number; role: string; leaderId: string | null };
  appliedIndex(): number;
  pendingProposals(): number;
  countTasksIn(state: TaskState): number;
  workers(): readonly Pick<StoredWorker, 'state' | 'availability'>[];
  /** Bytes written to each peer's connection since the start. */
  peerBytesSent(): ReadonlyMap<string, number>;
  /** Free bytes on the data directory's file system (null when it cannot be read). */
  dataDirFreeBytes?(): number | null;
}

/** What RaftNodeDriver reports (RaftNodeDriverOptions.observer). */
export interface DriverObserver {
  /** Called as a synced log write begins; the returned function when it is durable. */
  fsyncTimer(): () => void;
  snapshotSaved(sizeBytes: number, seconds: number): void;
  proposalFailed(code: string): void;
  /** The leader sent a heartbeat to the peer / the peer answered one: their distance is the round trip. */
  heartbeatSent(peer: string): void;
  heartbeatAnswered(peer: string): void;
  /** This manager finished repairing lost or damaged storage from the leader (docs/storage-faults.md). */
  storageRepaired?(): void;
}

export class ManagerMetrics implements DriverObserver {
  readonly registry: MetricsRegistry;
  private sources: ManagerMetricsSources | null = null;
  private lastLeader: string | null = null;
  private readonly heartbeatsInFlight = new Map<string, number>();
  private readonly leaderChanges: Counter;
  private readonly proposalsFailed: Counter<'reason'>;
  private readonly fsync: Histogram;
  private readonly snapshotSave: Histogram;
  private readonly snapshotSize: Gauge;
  private readonly peerRtt: Histogram<'peer'>;
  private readonly http: FastHistogram<'route' | 'method' | 'code'>;
  private readonly schedulingDelay: Histogram<'phase'>;
  private readonly taskFailures: Counter<'class'>;
  private readonly storageRepairs: Counter;

  constructor(o: MetricsRegistryOptions = {}) {
    const r = (this.registry = new MetricsRegistry(o));
    const src = (): ManagerMetricsSources | null => this.sources;
    r.gauge('has_leader', 'Whether this manager knows a leader (1) or not (0).', [], (g) => g.set(src()?.raft().leaderId != null ? 1 : 0));
    r.gauge('is_leader', 'Whether this manager is the leader (1) or not (0).', [], (g) => g.set(src()?.raft().role === 'leader' ? 1 : 0));
    this.leaderChanges = r.counter('leader_changes_seen_total', 'Leader changes this manager has seen since it started.');
    this.storageRepairs = r.counter('storage_repairs_total', 'Times this manager repaired lost or damaged storage from the leader and became a voter again, since it started.');
    r.gauge('raft_term', 'The current Raft term.', [], (g) => g.set(src()?.raft().term ?? 0));
    r.gauge('raft_commit_index', 'The highest log index known to be committed.', [], (g) => g.set(src()?.raft().commitIndex ?? 0));
    r.gauge('raft_applied_index', 'The highest log index applied to the state machine.', [], (g) => g.set(src()?.appliedIndex() ?? 0));
    r.counter('proposals_committed_total', 'Entries committed (as etcd: the commit index).', [], (c) => setCounter(c, src()?.raft().commitIndex ?? 0));
    r.counter('proposals_applied_total', 'Entries applied (as etcd: the applied index).', [], (c) => setCounter(c, src()?.appliedIndex() ?? 0));
    r.gauge('proposals_pending', "This manager's own proposals waiting to be applied.", [], (g) => g.set(src()?.pendingProposals() ?? 0));
    this.proposalsFailed = r.counter('proposals_failed_total', "This manager's proposals that failed, by error code.", ['reason']);
    this.fsync = r.histogram('disk_fsync_duration_seconds', 'Synced writes of the Raft log (entries, term or vote): write and fsync.', fsyncBucketsS);
    this.snapshotSave = r.histogram('snapshot_save_duration_seconds', 'Taking a snapshot: capture, encode, write and fsync.', slowBucketsS);
    this.snapshotSize = r.gauge('snapshot_size_bytes', 'The size of the last snapshot this manager took.');
    this.peerRtt = r.histogram('peer_round_trip_time_seconds', "The leader's heartbeat to a peer and its answer.", roundTripBucketsS, ['peer']);
    r.counter('peer_sent_bytes_total', 'Bytes sent to each peer over the Raft transport.', ['peer'], (c) => {
      c.reset();
      for (const [peer, bytes] of src()?.peerBytesSent() ?? []) c.inc({ peer }, bytes);
    });
    this.http = r.fastHistogram('http_request_duration_seconds', 'API requests by route template, method and status code.', latencyBucketsS, ['route', 'method', 'code']);
    // A full disk stops a manager (STORAGE_FAILED): this shows it coming, as workers' host_disk_free_bytes does theirs.
    r.gauge('data_dir_free_bytes', "Free space on the file system of the manager's data directory.", [], (g) => g.set(src()?.dataDirFreeBytes?.() ?? 0));
    r.gauge('tasks', 'Task records by state.', ['state'], (g) => {
      for (const state of taskStates) g.set({ state }, src()?.countTasksIn(state) ?? 0);
    });
    r.gauge('workers', 'Registered workers by state.', ['state'], (g) => {
      const counts = new Map<string, number>(workerStates.map((s) => [s, 0]));
      for (const w of src()?.workers() ?? []) counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
      for (const [state, n] of counts) g.set({ state }, n);
    });
    r.gauge('workers_availability', 'Registered workers by availability (minkube worker drain, pause, activate).', ['availability'], (g) => {
      const counts = new Map<string, number>(workerAvailabilities.map((a) => [a, 0]));
      for (const w of src()?.workers() ?? []) counts.set(availabilityOf(w), (counts.get(availabilityOf(w)) ?? 0) + 1);
      for (const [availability, n] of counts) g.set({ availability }, n);
    });
    this.schedulingDelay = r.histogram('scheduling_delay_seconds', 'Observed by the leader: pending to scheduled (phase="placed"), scheduled to running (phase="running").', slowBucketsS, ['phase']);
    this.taskFailures = r.counter('task_failures_total', 'Task attempts that failed (or were lost), by failure class, observed by the leader.', ['class']);
  }

  attach(sources: ManagerMetricsSources): void {
    this.sources = sources;
  }

  // ---- observers (called on hot paths: keep them cheap) ----

  roleChanged(leaderId: string | null): void {
    if (leaderId !== null && leaderId !== this.lastLeader) this.leaderChanges.inc();
    if (leaderId !== null) this.lastLeader = leaderId;
  }

  fsyncTimer(): () => void {
    return this.fsync.startTimer();
  }

  snapshotSaved(sizeBytes: number, seconds: number): void {
    this.snapshotSave.observe(seconds);
    this.snapshotSize.set(sizeBytes);
  }

  proposalFailed(code: string): void {
    this.proposalsFailed.inc({ reason: code });
  }

  heartbeatSent(peer: string): void {
    // One heartbeat in flight per peer is timed; the next one after its answer, or once it is surely lost.
    const now = performance.now();
    const sentMs = this.heartbeatsInFlight.get(peer);
    if (sentMs === undefined || now - sentMs > heartbeatLostMs) this.heartbeatsInFlight.set(peer, now);
  }

  storageRepaired(): void {
    this.storageRepairs.inc();
  }

  heartbeatAnswered(peer: string): void {
    const sentMs = this.heartbeatsInFlight.get(peer);
    if (sentMs === undefined) return;
    this.heartbeatsInFlight.delete(peer);
    this.peerRtt.observe({ peer }, (performance.now() - sentMs) / 1000);
  }

  /** route: the route's template (never the URL), or "unmatched". */
  httpRequest(route: string, method: string, code: number, seconds: number): void {
    // Called for every request: the key is built from the values, the label object only for a new series.
    this.http.observe(`${method} ${code} ${route}`, () => ({ route, method, code: String(code) }), seconds);
  }

  /** From the task store's listener, on every manager; only the leader counts, so a sum over managers counts once. */
  taskChanged(task: TaskRecord, previous: TaskRecord | null): void {
    if (previous === null || previous.state === task.state || this.sources?.raft().role !== 'leader') return;
    if (task.state === 'scheduled') this.observeDelay('placed', task, 'pending');
    else if (task.state === 'running') this.observeDelay('running', task, 'scheduled');
    // An attempt its worker's drain ended failed at nothing.
    const drained = (task.drainedAttempts ?? 0) > (previous.drainedAttempts ?? 0);
    if (drained) return;
    // A lost attempt is counted as it is lost: its next step (pending again, or failed past maxAttempts) brings the
    // outcome's error, and counting that too made each lost attempt two.
    if (previous.state === 'lost') return;
    if (task.error !== null && task.error !== previous.error && (task.state === 'failed' || task.state === 'pending' || task.state === 'lost')) {
      this.taskFailures.inc({ class: task.error.class });
    } else if (task.state === 'lost') {
      this.taskFailures.inc({ class: 'transient' });
    }
  }

  private observeDelay(phase: 'placed' | 'running', task: TaskRecord, from: TaskState): void {
    const h = task.history;
    const to = h[h.length - 1];
    if (to === undefined || to.state !== task.state) return;
    for (let i = h.length - 2; i >= 0; i--) {
      const e = h[i]!;
      if (e.state !== from || e.attempt !== to.attempt) continue;
      this.schedulingDelay.observe({ phase }, Math.max(0, to.atMs - e.atMs) / 1000);
      return;
    }
  }
}

/** The task store's one listener, followed by the metrics' (scheduling delays, failures). */
export function withTaskMetrics(listener: TaskStoreListener, metrics: ManagerMetrics): TaskStoreListener {
  return {
    taskChanged: (task, previous) => {
      listener.taskChanged(task, previous);
      metrics.taskChanged(task, previous);
    },
    workerSeen: (id) => listener.workerSeen(id),
    workerChanged: (w) => listener.workerChanged(w),
    workerRemoved: (id) => listener.workerRemoved?.(id),
  };
}
