// The dashboard's live feed (GET /v1/events): snapshots of the cluster as this manager sees it (members with what
// each one says of itself, workers, tasks by state, rates) and batches of the task changes it applies.
import type { Logger } from 'pino';
import type { HttpClient } from '../client/http.js';
import type {
  ClusterView,
  DashboardEvent,
  DashboardSnapshot,
  EventsService,
  MemberStatus,
  RateSample,
  TaskChange,
} from '../contracts/services.js';
import type { TaskRecord, TaskState, WorkerRecord } from '../contracts/task-model.js';
import type { TaskStoreListener } from '../kv/task-store.js';
import type { Role } from '../raft/types.js';
import type { Clock } from '../lib/clock.js';
import { limits } from '../lib/limits.js';

/** What a member says of itself in GET /v1/cluster. */
export interface PeerSelfView {
  readonly role: Role;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

export interface DashboardFeedOptions {
  cluster: () => ClusterView;
  tasks: { countIn(state: TaskState): number; listWorkers(o: { limit: number }): { items: WorkerRecord[] } };
  /** Member `id`'s own view (its certificate must name it), or null when it does not answer in time. */
  peerView: (apiAddress: string, id: string) => Promise<PeerSelfView | null>;
  clock: Clock;
  logger: Logger;
}

const taskStates: readonly TaskState[] = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost'];

interface Peer {
  view: PeerSelfView | null;
  polling: boolean;
}

export class DashboardFeed implements EventsService {
  private readonly subscribers = new Set<(event: DashboardEvent) => void>();
  private readonly history: RateSample[] = [];
  private readonly pending = new Map<string, TaskChange>();
  private readonly peers = new Map<string, Peer>();
  private dropped = 0;
  private placements = 0;
  /** atMs is shown (wall); monoMs times the rate, which a wall-clock step must not make up or divide by nothing. */
  private lastSample: { atMs: number; monoMs: number; applied: number; placements: number } | null = null;
  private lastKey = '';
  /** On clock.monoMs(): a wall-clock step back must not hold off the next snapshot for the length of the step. */
  private lastSnapshotMonoMs = -Infinity;
  private sampleTimer: { cancel(): void } | null = null;
  private checkTimer: { cancel(): void } | null = null;
  private closed = false;

  constructor(private readonly o: DashboardFeedOptions) {}

  /** Starts the rate sampler (always on, so a dashboard opened later sees the last minutes). */
  start(): void {
    this.sample();
  }

  close(): void {
    this.closed = true;
    this.sampleTimer?.cancel();
    this.checkTimer?.cancel();
    this.subscribers.clear();
  }

  subscribe(send: (event: DashboardEvent) => void): { close(): void } {
    const first = this.snapshot(true);
    if (first !== null) send({ type: 'snapshot', data: first });
    this.subscribers.add(send);
    if (this.subscribers.size === 1) {
      this.pollPeers();
      this.check();
    }
    return { close: () => this.subscribers.delete(send) };
  }

  /** Chain it after the leader loops' listener (teeTaskListener): counts placements and batches changes. */
  taskChanged(task: TaskRecord, previous: TaskRecord | null): void {
    if (task.state === 'scheduled' && previous?.state !== 'scheduled') this.placements++;
    if (this.subscribers.size === 0) return;
    if (!this.pending.has(task.id) && this.pending.size >= limits.eventTaskChangesMax) {
      this.dropped++;
      return;
    }
    this.pending.set(task.id, changeOf(task));
  }

  private sample(): void {
    if (this.closed) return;
    const view = this.clusterView();
    const atMs = this.o.clock.nowMs();
    const monoMs = this.o.clock.monoMs();
    if (view !== null) {
      const prev = this.lastSample;
      if (prev !== null && monoMs > prev.monoMs) {
        const perS = (n: number): number => Math.round((n * 10_000) / (monoMs - prev.monoMs)) / 10;
        this.history.push({ atMs, writesPerS: perS(Math.max(0, view.appliedIndex - prev.applied)), placementsPerS: perS(this.placements - prev.placements) });
        if (this.history.length > limits.eventRateSamplesMax) this.history.shift();
      }
      this.lastSample = { atMs, monoMs, applied: view.appliedIndex, placements: this.placements };
    }
    this.sampleTimer = this.o.clock.setTimeout(() => this.sample(), limits.eventRateSampleMs);
  }

  /** While anyone listens: task changes every check, a snapshot on any change of leader, term or member, else every second. */
  private check(): void {
    this.checkTimer = null;
    if (this.closed || this.subscribers.size === 0) return;
    if (this.pending.size > 0 || this.dropped > 0) {
      const items = [...this.pending.values()];
      const dropped = this.dropped;
      this.pending.clear();
      this.dropped = 0;
      this.broadcast({ type: 'tasks', data: { items, dropped } });
    }
    const now = this.o.clock.monoMs();
    const key = this.changeKey();
    if (key !== this.lastKey || now - this.lastSnapshotMonoMs >= limits.eventSnapshotIntervalMs) {
      if (now - this.lastSnapshotMonoMs >= limits.eventSnapshotIntervalMs) this.pollPeers();
      const snap = this.snapshot(false);
      if (snap !== null) this.broadcast({ type: 'snapshot', data: snap });
    }
    this.checkTimer = this.o.clock.setTimeout(() => this.check(), limits.eventCheckIntervalMs);
  }

  private broadcast(event: DashboardEvent): void {
    for (const send of [...this.subscribers]) {
      try {
        send(event);
      } catch (err) {
        this.o.logger.warn({ err }, 'an event stream failed; dropping it');
        this.subscribers.delete(send);
      }
    }
  }

  private clusterView(): ClusterView | null {
    try {
      return this.o.cluster();
    } catch {
      return null; // still starting
    }
  }

  private changeKey(): string {
    const v = this.clusterView();
    if (v === null) return '';
    const members = v.members.map((m) => `${m.id}:${m.voter}:${m.reachable}:${this.peers.get(m.id)?.view?.role ?? '-'}`).join(',');
    return `${v.leaderId}|${v.term}|${v.role}|${members}`;
  }

  /** Asks every other member for its own view, one request at a time per member; answers arrive for the next snapshot. */
  private pollPeers(): void {
    const v = this.clusterView();
    if (v === null) return;
    for (const id of [...this.peers.keys()]) if (!v.members.some((m) => m.id === id)) this.peers.delete(id);
    for (const m of v.members) {
      if (m.id === v.id || m.apiAddress === '') continue;
      let peer = this.peers.get(m.id);
      if (peer === undefined) this.peers.set(m.id, (peer = { view: null, polling: false }));
      if (peer.polling) continue;
      const p = peer;
      p.polling = true;
      this.o
        .peerView(m.apiAddress, m.id)
        .catch(() => null)
        .then((view) => {
          p.view = view;
          p.polling = false;
        })
        .catch(() => undefined);
    }
  }

  private snapshot(withHistory: boolean): DashboardSnapshot | null {
    const v = this.clusterView();
    if (v === null) return null;
    const atMs = this.o.clock.nowMs();
    this.lastSnapshotMonoMs = this.o.clock.monoMs();
    this.lastKey = this.changeKey();
    const tasks = Object.fromEntries(taskStates.map((s) => [s, this.o.tasks.countIn(s)])) as Record<TaskState, number>;
    const snap: DashboardSnapshot = {
      atMs,
      servedBy: v.id,
      role: v.role,
      term: v.term,
      leaderId: v.leaderId,
      commitIndex: v.commitIndex,
      appliedIndex: v.appliedIndex,
      members: this.members(v),
      workers: this.o.tasks.listWorkers({ limit: limits.eventWorkersMax }).items,
      tasks,
      rate: this.history.at(-1) ?? null,
    };
    return withHistory ? { ...snap, history: [...this.history] } : snap;
  }

  private members(v: ClusterView): MemberStatus[] {
    const selves = new Map<string, PeerSelfView | null>(v.members.map((m) => [m.id, m.id === v.id ? v : (this.peers.get(m.id)?.view ?? null)]));
    const leader = v.leaderId === null ? undefined : selves.get(v.leaderId);
    const known = [...selves.values()].flatMap((s) => (s === null ? [] : [s.commitIndex]));
    const commit = leader?.commitIndex ?? (known.length === 0 ? null : Math.max(...known));
    return v.members.map((m) => {
      const self = selves.get(m.id) ?? null;
      return {
        id: m.id,
        apiAddress: m.apiAddress,
        voter: m.voter,
        reachable: m.reachable,
        answered: self !== null,
        role: self?.role ?? null,
        term: self?.term ?? null,
        commitIndex: self?.commitIndex ?? null,
        appliedIndex: self?.appliedIndex ?? null,
        lag: self === null || commit === null ? null : Math.max(0, commit - self.appliedIndex),
      };
    });
  }
}

function changeOf(t: TaskRecord): TaskChange {
  return {
    id: t.id,
    name: t.spec.name ?? null,
    state: t.state,
    desiredState: t.desiredState,
    workerId: t.workerId,
    attempt: t.attempt,
    // As the task answers show it (taskView): a running attempt has no exit code of its own yet.
    exitCode: t.state === 'running' ? null : t.exitCode,
    updatedAt: t.updatedAt,
  };
}

/** One listener that tells both (the task store holds one). */
export function teeTaskListener(first: TaskStoreListener, second: Pick<TaskStoreListener, 'taskChanged'>): TaskStoreListener {
  return {
    taskChanged: (task, previous) => {
      first.taskChanged(task, previous);
      second.taskChanged(task, previous);
    },
    workerSeen: (id) => first.workerSeen(id),
    workerChanged: (w) => first.workerChanged(w),
    workerRemoved: (id) => first.workerRemoved?.(id),
  };
}

/** A member's GET /v1/cluster through the manager's own client (its certificate reaches every route). */
export function httpPeerView(http: HttpClient): (apiAddress: string, id: string) => Promise<PeerSelfView | null> {
  return async (apiAddress, id) => {
    const res = await http.request({ method: 'GET', url: http.baseUrlOf(apiAddress), path: '/v1/cluster', timeoutMs: limits.eventPeerPollTimeoutMs, server: { role: 'manager', id } });
    if (res.status !== 200) return null;
    const body = JSON.parse(res.text) as Partial<PeerSelfView>;
    if (typeof body.term !== 'number' || typeof body.commitIndex !== 'number' || typeof body.appliedIndex !== 'number' || typeof body.role !== 'string') return null;
    return { role: body.role, term: body.term, commitIndex: body.commitIndex, appliedIndex: body.appliedIndex };
  };
}
