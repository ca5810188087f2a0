// The caller the auth plugin found (req.principal), in the two small forms that travel: inside a proposal to every
// manager (EntryPrincipal) and in an audit line (AuditPrincipal). Neither ever holds a secret.
import type { FastifyRequest } from 'fastify';
import { entryPrincipalFrom, type EntryPrincipal } from '../kv/commands.js';
import type { Principal } from './auth.js';
import { forwardedPrincipalHeader, type AuditPrincipal } from '../contracts/services.js';

/** Without the auth plugin (insecure: true) requests carry no principal; the decoration may not even exist. */
export function principalOf(req: FastifyRequest): Principal | null {
  return (req.principal as Principal | null | undefined) ?? null;
}

export function entryPrincipal(p: Principal | null): EntryPrincipal | undefined {
  if (p === null) return undefined;
  return p.kind === 'token' ? { a: p.accessor, r: p.role } : { n: p.id, r: p.role };
}

export function auditPrincipal(p: Principal | null): AuditPrincipal | null {
  if (p === null) return null;
  return p.kind === 'token' ? { token: p.accessor, role: p.role } : { node: p.id, role: p.role };
}

/**
 * Who a request speaks for, as proposals and audit lines name them: the caller, or the client a manager forwarded
 * the request for (forwardedPrincipalHeader). Only a manager's certificate is believed: managers hold the CA key and
 * make any change they like anyway, and a token or a worker naming someone else speaks for itself.
 */
export function requestPrincipal(req: FastifyRequest): EntryPrincipal | undefined {
  const caller = principalOf(req);
  if (caller?.kind !== 'node' || caller.role !== 'manager') return entryPrincipal(caller);
  const header = req.headers[forwardedPrincipalHeader];
  return (typeof header === 'string' ? forwardedPrincipal(header) : null) ?? entryPrincipal(caller);
}

function forwardedPrincipal(header: string): EntryPrincipal | null {
  try {
    return entryPrincipalFrom(JSON.parse(header));
  } catch {
    return null;
  }
}

export function auditPrincipalOfEntry(p: EntryPrincipal | undefined): AuditPrincipal | null {
  if (p === undefined) return null;
  return 'a' in p ? { token: p.a, role: p.r } : { node: p.n, role: p.r };
}
