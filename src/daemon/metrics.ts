// Wires a node's metrics and status page to its parts: what ManagerMetrics and WorkerMetrics read at scrape time,
// the app options that serve /metrics and /status, and a worker's metrics fetched by a manager.
import { errorFromResponse, isOk, normaliseBaseUrl, type HttpClient, type TlsMaterial } from '../client/http.js';
import type { ManagerAppOptions } from '../api/manager-app.js';
import type { WorkerAppOptions } from '../api/worker-app.js';
import type { StatusSource } from '../api/routes/status.js';
import type { TaskStore } from '../kv/task-store.js';
import { MinkubeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { ManagerMetrics } from '../manager/metrics.js';
import type { RaftNodeDriver } from '../manager/node.js';
import type { TcpTransport } from '../transport/tcp.js';
import { WorkerMetrics } from '../worker/metrics.js';
import { FollowerProbe } from '../manager/follower-probe.js';
import { statfsSync } from 'node:fs';
import { systemClock } from '../lib/clock.js';

export interface ManagerParts {
  driver: RaftNodeDriver<unknown>;
  store: TaskStore;
  transport: TcpTransport;
  http: HttpClient;
  /** The manager's client TLS (a secure cluster): how it reaches a worker's /metrics. */
  tls?: TlsMaterial | undefined;
  dataDir: string;
}

/** Scrape-time sources for a manager's metrics. */
export function attachManagerMetrics(metrics: ManagerMetrics, p: ManagerParts): void {
  metrics.attach({
    raft: () => p.driver.status(),
    appliedIndex: () => p.driver.applied,
    pendingProposals: () => p.driver.pendingProposals,
    countTasksIn: (state) => p.store.countIn(state),
    workers: () => p.store.allWorkers(),
    peerBytesSent: () => p.transport.peerBytesSent(),
    dataDirFreeBytes: () => {
      try {
        const s = statfsSync(p.dataDir);
        return s.bavail * s.bsize;
      } catch {
        return null;
      }
    },
  });
}

/** The manager app's metrics and status options (metrics null: metrics.enabled is false, no /metrics route). */
export function managerObservability(metrics: ManagerMetrics | null, p: ManagerParts): Pick<ManagerAppOptions, 'metrics' | 'status'> {
  const status = managerStatus(p);
  if (metrics === null) return { status };
  return {
    status,
    metrics: {
      endpoint: metrics.registry,
      observeRequest: (route, method, code, seconds) => metrics.httpRequest(route, method, code, seconds),
      workerMetrics: (id) => fetchWorkerMetrics(p, id),
    },
  };
}

/** A follower's probe of another follower: GET /health answered within this long (a verdict kept a second). */
const followerProbeTimeoutMs = 500;
const followerProbeAgeMsMax = 1000;

function managerStatus(p: ManagerParts): StatusSource {
  const probe = new FollowerProbe({
    clock: systemClock,
    ageMsMax: followerProbeAgeMsMax,
    timeoutMs: followerProbeTimeoutMs,
    ask: async (apiAddress) => {
      try {
        const res = await p.http.request({ method: 'GET', url: p.http.baseUrlOf(apiAddress), path: '/health', timeoutMs: followerProbeTimeoutMs });
        return isOk(res.status);
      } catch {
        return false;
      }
    },
  });
  return {
    facts: async () => {
      const st = p.driver.status();
      const self = p.driver.id;
      // A follower hears from its leader alone: another follower's open connection says nothing (follower-probe.ts).
      const answered = await Promise.all(
        st.voters.map(async (v) => {
          if (v === self) return true;
          if (!p.driver.reachable(v as NodeId)) return false;
          if (st.role === 'leader' || v === st.leaderId) return true;
          const apiAddress = p.driver.directory.get(v)?.apiAddress;
          return apiAddress === undefined || apiAddress === '' ? true : probe.answers(apiAddress);
        }),
      );
      probe.keepOnly(new Set(st.voters.map((v) => p.driver.directory.get(v)?.apiAddress ?? '')));
      const reachable = st.voters.filter((_, i) => answered[i]);
      const votersReachable = reachable.length;
      const storage = p.driver.storage();
      const votersRecovering = reachable.filter((v) => (v === self ? storage.state === 'recovering' : st.peersRecovering.includes(v))).length;
      const workers = p.store.allWorkers();
      return {
        leaderId: st.leaderId,
        votersReachable,
        voters: st.voters.length,
        votersRecovering,
        ...(p.driver.notMemberError() === null ? {} : { notMember: true }),
        workersReady: workers.filter((w) => w.state === 'ready').length,
        workers: workers.length,
        workersDrainedNotReady: workers.filter((w) => w.state !== 'ready' && w.availability === 'drain').length,
        workersActive: workers.filter((w) => w.state === 'ready' && w.availability === undefined).length,
        // What `minkube status` shows of a member that cannot check its token yet (recovering from an empty log).
        self: { id: self, role: st.role, storage: storage.state, storageTargetIndex: storage.targetIndex, commitIndex: st.commitIndex },
      };
    },
  };
}

/** A worker's own /metrics, asked with this manager's certificate (the only caller a worker's API admits). */
async function fetchWorkerMetrics(p: ManagerParts, id: string): Promise<string> {
  const worker = p.store.storedWorker(id);
  if (worker === undefined) throw new MinkubeError('WORKER_NOT_FOUND', `no worker ${id}`);
  const res = await p.http.request({ method: 'GET', url: normaliseBaseUrl(worker.apiAddress, { tls: p.tls }), path: '/metrics', headers: { accept: 'text/plain' }, server: { role: 'worker', id } });
  if (!isOk(res.status)) throw errorFromResponse(res);
  return res.text;
}

/** A worker's metrics (null when metrics.enabled is false) and its app options. */
export function workerObservability(enabled: boolean): { metrics: WorkerMetrics | null; app: Pick<WorkerAppOptions, 'metrics'> } {
  if (!enabled) return { metrics: null, app: {} };
  const metrics = new WorkerMetrics();
  return {
    metrics,
    app: { metrics: { endpoint: metrics.registry } },
  };
}

export { ManagerMetrics, WorkerMetrics };
