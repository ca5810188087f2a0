// How a secure manager's API knows its callers: tokens checked against this manager's applied auth state, sessions
// signed with the replicated session key, node certificates of this cluster only.
import type { AuthPluginOptions } from '../api/auth.js';
import type { AuthService } from '../contracts/services.js';
import { MinkubeError } from '../lib/errors.js';
import { peerCertificateIssuedAtMs } from '../security/ca.js';
import type { NodeSecurity } from './security.js';

/**
 * `removedRefusal`: why a manager's certificate issued at a moment may no longer speak for it (it was removed from the
 * cluster since: RemovedMembers.refusal), or null. `catchUp`: a linearizable barrier (bounded in time), asked before
 * a token this manager does not know is refused. `storageRecovering`: whether its storage is being repaired (a NOT_READY
 * then says so).
 */
export function managerAppSecurity(
  security: NodeSecurity,
  auth: AuthService,
  removedRefusal: (id: string, issuedAtMs: number) => string | null,
  catchUp: () => Promise<void>,
  storageRecovering: () => boolean,
): AuthPluginOptions {
  return {
    // A token this manager does not know may have just been made through another one: 401 only once this manager has
    // applied what the cluster had committed (the API and the login both ask here).
    resolveToken: async (accessor) => {
      const known = auth.lookupToken(accessor);
      if (known !== undefined || auth.sessionKey() === null) return known ?? null;
      try {
        await catchUp();
      } catch (err) {
        const why = err instanceof MinkubeError ? `${err.code}: ${err.message}` : String(err);
        throw new MinkubeError('NOT_READY', `this manager does not know the token and cannot check that it has the cluster's latest tokens (${why}): retry, or ask another manager`);
      }
      return auth.lookupToken(accessor) ?? null;
    },
    sessionKey: () => auth.sessionKey(),
    // The session key is made by the auth bootstrap, with the first admin token.
    authReady: () => auth.sessionKey() !== null,
    storageRecovering,
    nodeAuth: {
      peerIdentity: (cert) => {
        const identity = security.peerIdentity(cert);
        return identity === null || identity.role !== 'manager' ? identity : { ...identity, issuedAtMs: peerCertificateIssuedAtMs(cert) };
      },
      refusal: (identity) => (identity.issuedAtMs === undefined ? null : removedRefusal(identity.id, identity.issuedAtMs)),
    },
  };
}
