// POST /v1/auth/login { token } -> 200 { session, expiresAt }: a short-lived session (a JWT signed with the key in the
// replicated state) for a browser, made from an API token or from a session that has not expired yet (refresh). The
// session carries only the token's accessor: every request re-reads the token's role, so a revocation ends it.
// An insecure cluster has no tokens and answers 400 INVALID_BODY saying so.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { signSession, verifySession } from '../../security/sessions.js';
import { parseApiToken, secretMatches } from '../../security/tokens.js';
import type { TokenRecord } from '../auth.js';

const LoginBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false });
type LoginBody = Static<typeof LoginBody>;
/** For the OpenAPI document (documentedResponse). */
const LoginReply = Type.Object({ session: Type.String(), expiresAt: Type.String({ description: 'ISO 8601' }), role: Type.String() }, { description: 'a session for Authorization: Bearer' });

export interface LoginRoutesOptions {
  resolveToken(accessor: string): TokenRecord | null | Promise<TokenRecord | null>;
  sessionKey(): Uint8Array | null;
  nowMs?: () => number;
}

export const loginRoutes: FastifyPluginAsync<LoginRoutesOptions> = async (app, o) => {
  const nowMs = o.nowMs ?? Date.now;
  app.post<{ Body: LoginBody }>('/v1/auth/login', { schema: { body: LoginBody, documentedResponse: { 200: LoginReply }, errorCodes: ['UNAUTHENTICATED', 'NOT_READY'] } }, async (req) => {
    const key = o.sessionKey();
    if (key === null) throw new MinkubeError('NOT_READY', 'the cluster has no session key yet (no leader has bootstrapped it)');
    const now = nowMs();
    const accessor = await accessorOf(req.body.token, key, now);
    const record = await o.resolveToken(accessor);
    if (record === null || (record.expiresAtMs != null && record.expiresAtMs <= now)) throw new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token');
    const parsed = parseApiToken(req.body.token);
    if (parsed !== null && !secretMatches(parsed.secret, record.secretHash)) throw new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token');
    // Never past its token's expiry (every request re-reads the token, so it would be refused then anyway): the
    // session says when it ends as it will, a JWT's whole seconds rounded up.
    const untilMs = Math.min(now + limits.sessionTtlSDefault * 1000, record.expiresAtMs ?? Infinity);
    const ttlS = Math.max(1, Math.ceil((untilMs - now) / 1000));
    const session = await signSession({ accessor, role: record.role }, key, ttlS, new Date(now));
    return { session, expiresAt: new Date(untilMs).toISOString(), role: record.role };
  });
};

/** What an insecure cluster answers instead: it has no tokens to log in with, and needs none. */
export const insecureLoginRoutes: FastifyPluginAsync = async (app) => {
  // The document lists no success for it: there is none.
  app.post('/v1/auth/login', { schema: { summary: 'always 400 INVALID_BODY: an insecure cluster has no tokens' } }, async () => {
    throw new MinkubeError('INVALID_BODY', 'this cluster is insecure and has no tokens, so there is nothing to log in with: every route answers without one');
  });
};

async function accessorOf(credential: string, key: Uint8Array, now: number): Promise<string> {
  const parsed = parseApiToken(credential);
  if (parsed !== null) return parsed.accessor;
  const session = await verifySession(credential, key, new Date(now));
  if (session === null) throw new MinkubeError('UNAUTHENTICATED', 'neither an API token (mk_...) nor a live session');
  return session.accessor;
}
