// One name, one node: a manager and a worker never share an id (logs, audit lines, DNS names, certificates and
// `minkube status` name nodes by it). The checks every way of giving out an id shares: a join (join-service.ts), a
// member add (membership.ts) and a worker's registration (task-service.ts), each answering 409 JOIN_REFUSED.
import type { WorkerState } from '../contracts/task-model.js';
import { workerRegisteredBy } from '../kv/commands.js';
import { MinkubeError } from '../lib/errors.js';

/**
 * Why a manager may not take `id`: a worker holds it, registered (in any state: a down worker may come back, and
 * only `worker rm` frees its id, as it frees it for a new worker) or about to be (`unapplied`: commands this node
 * holds but has not applied, whose registration of `id` the applied state does not show yet). null when none does.
 */
export function workerHoldingId(id: string, worker: { readonly state: WorkerState } | undefined, unapplied: Iterable<Uint8Array> = []): MinkubeError | null {
  if (worker !== undefined) {
    return new MinkubeError(
      'JOIN_REFUSED',
      `${id} is a worker of this cluster (registered, ${worker.state}); a manager needs an id of its own (a retired worker's id is free once minkube worker rm ${id} forgets it)`,
    );
  }
  for (const data of unapplied) {
    if (workerRegisteredBy(data) === id) return new MinkubeError('JOIN_REFUSED', `${id} is a worker of this cluster (its registration is being committed); a manager needs an id of its own`);
  }
  return null;
}

/** Why a worker may not take `id`: a manager of the configuration (voter or learner) holds it. null when none does. */
export function managerHoldingId(id: string, managerIds: readonly string[]): MinkubeError | null {
  return managerIds.includes(id) ? new MinkubeError('JOIN_REFUSED', `${id} is a manager of this cluster; a worker needs an id of its own`) : null;
}
