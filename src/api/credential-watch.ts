// A long answer (an event stream, a followed log) outlives the check its request passed in onRequest: a token revoked
// or expired while it runs, or given another role, would go on reading. The answer asks, every
// limits.longAnswerCredentialCheckMs, whether the credential still holds (req.credentialHolds, set by the auth plugin),
// and is cut when it does not: its client's next request gets the 401 (or 403) as any other would.
import type { FastifyRequest } from 'fastify';
import { limits } from '../lib/limits.js';

/**
 * Calls `cut` once the credential that let `req` in no longer holds. Answers the function that stops watching (call it
 * when the answer ends). A request without a token (a node's, an insecure cluster's) is never cut.
 */
export function watchCredential(req: FastifyRequest, cut: () => void, intervalMs: number = limits.longAnswerCredentialCheckMs): () => void {
  const holds = (req.credentialHolds as FastifyRequest['credentialHolds'] | undefined) ?? null;
  if (holds === null) return () => undefined;
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    holds.call(req).then(
      (ok) => {
        checking = false;
        if (ok) return;
        clearInterval(timer);
        req.log.info('the token or session of a long answer no longer holds (revoked, expired or changed): cutting it');
        cut();
      },
      () => {
        checking = false;
      },
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
