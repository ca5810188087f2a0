// What a cluster node may do once its certificate has named it (the auth plugin set req.principal): a worker may
// register, heartbeat and fetch assignments as itself only; everything else a node certificate reaches is a
// manager's (forwarded membership changes, snapshot chunks). Runs after the body is parsed: registration names
// its id in the body.
import type { FastifyRequest } from 'fastify';
import { MinkubeError } from '../lib/errors.js';

/** The routes workers call, and where each one names the worker. */
const workerRoutes: Readonly<Record<string, (req: FastifyRequest) => unknown>> = {
  'POST /v1/workers': (req) => (req.body as { id?: unknown } | undefined)?.id,
  'POST /v1/workers/:id/heartbeat': (req) => (req.params as { id?: unknown }).id,
  'GET /v1/workers/:id/assignments': (req) => (req.params as { id?: unknown }).id,
};

/** Routes for every node of the cluster, each speaking for itself (the route checks the identity). */
const anyNode: ReadonlySet<string> = new Set(['POST /v1/certs/renew']);

export function checkNodeCaller(req: FastifyRequest): void {
  const principal = req.principal;
  if (principal?.kind !== 'node') return;
  const named = workerRoutes[`${req.method} ${req.routeOptions.url ?? ''}`];
  if (named !== undefined) {
    if (principal.role !== 'worker') throw new MinkubeError('FORBIDDEN', `only a worker calls this route, and ${principal.id} is a ${principal.role}`);
    const id = named(req);
    // No id at all: the body's schema check that follows says what is missing (400), rather than a 403 naming undefined.
    if (id === undefined) return;
    if (id !== principal.id) throw new MinkubeError('FORBIDDEN', `worker ${principal.id} may speak only for itself, not for ${JSON.stringify(id)}`);
    return;
  }
  if (anyNode.has(`${req.method} ${req.routeOptions.url ?? ''}`)) return;
  if (principal.role !== 'manager') throw new MinkubeError('FORBIDDEN', `a ${principal.role}'s certificate does not reach this route`);
}
