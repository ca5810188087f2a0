// The caller the auth plugin found (req.principal), in the two small forms that travel: inside a proposal to every
// manager (EntryPrincipal) and in an audit line (AuditPrincipal). Neither ever holds a secret.
import type { FastifyRequest } from 'fastify';
import type { EntryPrincipal } from '../kv/commands.js';
import type { Principal } from './auth.js';
import type { AuditPrincipal } from '../contracts/services.js';

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
