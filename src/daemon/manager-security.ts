// How a secure manager's API knows its callers: tokens checked against this manager's applied auth state, sessions
// signed with the replicated session key, node certificates of this cluster only.
import type { AuthPluginOptions } from '../api/auth.js';
import type { AuthService } from '../contracts/services.js';
import type { NodeSecurity } from './security.js';

export function managerAppSecurity(security: NodeSecurity, auth: AuthService): AuthPluginOptions {
  return {
    resolveToken: (accessor) => auth.lookupToken(accessor) ?? null,
    sessionKey: () => auth.sessionKey(),
    // The session key is made by the auth bootstrap, with the first admin token.
    authReady: () => auth.sessionKey() !== null,
    nodeAuth: { peerIdentity: (cert) => security.peerIdentity(cert) },
  };
}
