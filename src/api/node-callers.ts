// What a cluster node may do once its certificate has named it (the auth plugin set req.principal): a worker may
// register, heartbeat and fetch assignments as itself only; everything else a node certificate reaches is a
// manager's (forwarded membership changes, snapshot chunks). The role is checked before the body is read, the id
// once it is parsed (registration names its id in the body).
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

/**
 * Before the body is read (preParsing): a node certificate reaches only its role's routes, so a worker's never makes
 * a manager read a body it may not send (a snapshot chunk of up to a MiB, say).
 */
export function checkNodeRole(req: FastifyRequest): void {
  const principal = req.principal;
  if (principal?.kind !== 'node') return;
  const route = `${req.method} ${req.routeOptions.url ?? ''}`;
  if (workerRoutes[route] !== undefined) {
    if (principal.role !== 'worker') throw new MinkubeError('FORBIDDEN', `only a worker calls this route, and ${principal.id} is a ${principal.role}`);
    return;
  }
  if (anyNode.has(route)) return;
  if (principal.role !== 'manager') throw new MinkubeError('FORBIDDEN', `a ${principal.role}'s certificate does not reach this route`);
}

/** Once the body is parsed (preValidation; registration names its id there): a worker speaks only for itself. */
export function checkNodeCaller(req: FastifyRequest): void {
  const principal = req.principal;
  if (principal?.kind !== 'node' || principal.role !== 'worker') return;
  const named = workerRoutes[`${req.method} ${req.routeOptions.url ?? ''}`];
  if (named === undefined) return;
  const id = named(req);
  // No id at all: the body's schema check that follows says what is missing (400), rather than a 403 naming undefined.
  if (id === undefined) return;
  if (id !== principal.id) throw new MinkubeError('FORBIDDEN', `worker ${principal.id} may speak only for itself, not for ${JSON.stringify(id)}`);
}
