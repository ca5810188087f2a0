// Questions the fault test asks the managers: each one's view of the cluster, who leads, whether a node answers.
import type { ChaosCluster } from './cluster.js';
import { waitFor } from '../support/wait.js';

export interface ClusterView {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leaderId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

/** GET /v1/cluster from one manager, or null if it does not answer 200 in time (a 401 before the admin token is bootstrapped, too). */
export async function viewOf(cluster: ChaosCluster, id: string, timeoutMs = 1000): Promise<ClusterView | null> {
  const o = await cluster.send(id, 'GET', '/v1/cluster', { timeoutMs });
  if (o.kind !== 'answer' || o.status !== 200) return null;
  const b = o.body;
  return {
    id,
    role: String(b.role),
    term: Number(b.term),
    leaderId: typeof b.leaderId === 'string' ? b.leaderId : null,
    commitIndex: Number(b.commitIndex),
    appliedIndex: Number(b.appliedIndex),
  };
}

/** Every manager's view, in id order (null for those that do not answer). */
export async function views(cluster: ChaosCluster, timeoutMs = 1000): Promise<(ClusterView | null)[]> {
  return Promise.all(cluster.managerIds.map((id) => (cluster.isServing(id) ? viewOf(cluster, id, timeoutMs) : Promise.resolve(null))));
}

/** The manager that says it leads in the highest term, if any answers so. */
export async function findLeader(cluster: ChaosCluster): Promise<string | null> {
  let best: ClusterView | null = null;
  for (const v of await views(cluster, 800)) {
    if (v !== null && v.role === 'leader' && (best === null || v.term > best.term)) best = v;
  }
  return best?.id ?? null;
}

/** A waitFor that ran out of time answers `value`; any other error goes on. */
function timedOutAs<T>(value: T): (err: unknown) => T {
  return (err) => {
    if (err instanceof Error && err.message.startsWith('timed out')) return value;
    throw err;
  };
}

/** Waits until every manager that is up names one leader that says it leads; returns it, or null after timeoutMs. */
export async function waitForAgreedLeader(cluster: ChaosCluster, timeoutMs: number): Promise<string | null> {
  return waitFor('an agreed leader', async () => {
    const vs = (await views(cluster)).filter((v) => v !== null);
    const named = new Set(vs.map((v) => v.leaderId));
    const [only] = [...named];
    return vs.length > 0 && named.size === 1 && typeof only === 'string' && vs.some((v) => v.id === only && v.role === 'leader') ? only : undefined;
  }, timeoutMs, 100).catch(timedOutAs(null));
}

/** Waits until GET /health answers on the node; false after timeoutMs. */
export async function waitForHealth(cluster: ChaosCluster, id: string, timeoutMs: number): Promise<boolean> {
  const answer = await waitFor(`${id} to answer GET /health`, async () => {
    if (!cluster.isUp(id)) return 'down';
    const o = await cluster.send(id, 'GET', '/health', { timeoutMs: 1000 });
    return o.kind === 'answer' && o.status === 200 ? 'healthy' : undefined;
  }, timeoutMs, 100).catch(timedOutAs('timed out'));
  return answer === 'healthy';
}
