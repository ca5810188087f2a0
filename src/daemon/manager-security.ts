// How a secure manager's API knows its callers: tokens checked against this manager's applied auth state, sessions
// signed with the replicated session key, node certificates of this cluster only.
import type { AuthPluginOptions } from '../api/auth.js';
import type { AuthService } from '../contracts/services.js';
import { peerCertificateIssuedAtMs } from '../security/ca.js';
import type { NodeSecurity } from './security.js';

/**
 * `removedRefusal`: why a manager's certificate issued at a moment may no longer speak for it (it was removed from the
 * cluster since: RemovedMembers.refusal), or null.
 */
export function managerAppSecurity(security: NodeSecurity, auth: AuthService, removedRefusal: (id: string, issuedAtMs: number) => string | null): AuthPluginOptions {
  return {
    resolveToken: (accessor) => auth.lookupToken(accessor) ?? null,
    sessionKey: () => auth.sessionKey(),
    // The session key is made by the auth bootstrap, with the first admin token.
    authReady: () => auth.sessionKey() !== null,
    nodeAuth: {
      peerIdentity: (cert) => {
        const identity = security.peerIdentity(cert);
        return identity === null || identity.role !== 'manager' ? identity : { ...identity, issuedAtMs: peerCertificateIssuedAtMs(cert) };
      },
      refusal: (identity) => (identity.issuedAtMs === undefined ? null : removedRefusal(identity.id, identity.issuedAtMs)),
    },
  };
}
