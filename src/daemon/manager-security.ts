// How a secure manager's API knows its callers: tokens checked against this manager's applied auth state, sessions
// signed with the replicated session key, node certificates of this cluster only.
import type { AuthPluginOptions } from '../api/auth.js';
import type { AuthService } from '../contracts/services.js';
import { MinkubeError } from '../lib/errors.js';
import { peerCertificateIssuedAtMs } from '../security/ca.js';
import type { NodeSecurity } from './security.js';

/** When each kind of node was removed from the cluster, as this manager has applied it. */
export interface RemovedNodes {
  /** Why a manager's certificate issued at a moment may no longer speak for it (RemovedMembers.refusal), or null. */
  managerRefusal(id: string, issuedAtMs: number): string | null;
  /** When worker `id` was last removed (`worker rm`: TaskStore.workerRemovedAtMs), or undefined. */
  workerRemovedAtMs(id: string): number | undefined;
}

/**
 * Why a worker's certificate issued at `issuedAtMs` may no longer speak for it (null: it may): it was issued at or
 * before the worker's removal (`worker rm`), so only a certificate issued since (a new start or join) lets the id back.
 */
export function removedWorkerRefusal(id: string, removedAtMs: number | undefined, issuedAtMs: number): string | null {
  if (removedAtMs === undefined || issuedAtMs > removedAtMs) return null;
  return `its certificate was issued before worker ${id} was removed from the cluster (${new Date(removedAtMs).toISOString()}): a removed worker comes back only ` +
    'with a new certificate: empty its <dataDir>/tls and start it again (a worker the cluster config lists gets a new certificate from the CA beside ' +
    `the config at start; one that joined with a token joins again: minkube worker --id ${id} --join URL --token T ..., a token from minkube token create --role worker)`;
}

/**
 * `removed`: the managers and workers removed from the cluster since, whose certificates issued before are refused.
 * `catchUp`: a linearizable barrier (bounded in time), asked before
 * a token this manager does not know is refused. `storageRecovering`: whether its storage is being repaired (a NOT_READY
 * then says so).
 */
export function managerAppSecurity(
  security: NodeSecurity,
  auth: AuthService,
  removed: RemovedNodes,
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
        return identity === null ? null : { ...identity, issuedAtMs: peerCertificateIssuedAtMs(cert) };
      },
      refusal: (identity) => {
        const { id, issuedAtMs } = identity;
        if (issuedAtMs === undefined) return null;
        return identity.role === 'manager' ? removed.managerRefusal(id, issuedAtMs) : removedWorkerRefusal(id, removed.workerRemovedAtMs(id), issuedAtMs);
      },
    },
  };
}
