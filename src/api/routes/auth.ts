// The token routes of every manager: create, list and revoke API tokens, and create join tokens for new nodes.
// Creations and revocations go through Raft, so a revocation holds on every manager once committed.
//
//   POST   /v1/auth/tokens            { name?, role, keyPrefix?, ttlS? } -> 201 { token, accessor, name, role, keyPrefix?,
//                                     createdAt, expiresAt | null }: the only time the secret is shown. Role manager or
//                                     worker: a join token instead, 201 { token, role, expiresAt } (ttlS default 24 h).
//   GET    /v1/auth/tokens            -> { items: [{ accessor, name, role, keyPrefix?, createdAt, expiresAt }], nextCursor: null }
//   DELETE /v1/auth/tokens/:accessor  -> 200 { accessor, revoked: true }; 404 TOKEN_NOT_FOUND
//
// A bad role, name, key prefix or ttl is 400 INVALID_BODY naming the field; the service's errors pass through.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { accessorPattern, KeyPrefix, TokenName } from '../../kv/auth-commands.js';
import { MinkubeError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import { isRoleName, roleNames } from '../../security/policy.js';
import type { AuthService, TokenRequest } from '../service.js';
import { requestContext } from './kv.js';

export interface AuthRoutesOptions {
  auth: AuthService;
}

const strict = { additionalProperties: false } as const;

const TokenBody = Type.Object(
  {
    name: Type.Optional(TokenName),
    role: Type.String({ minLength: 1, maxLength: 32 }),
    keyPrefix: Type.Optional(KeyPrefix),
    ttlS: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.tokenTtlSMax })),
  },
  strict,
);
type TokenBody = Static<typeof TokenBody>;

const AccessorParams = Type.Object({ accessor: Type.String({ pattern: accessorPattern }) });
type AccessorParams = Static<typeof AccessorParams>;

const Time = Type.String();
const TokenView = {
  accessor: Type.String(), name: Type.String(), role: Type.String(), keyPrefix: Type.Optional(Type.String()),
  createdAt: Time, expiresAt: Type.Union([Time, Type.Null()]),
};
// The replies list their fields, so nothing else a record might carry (a hash) can leave in a serialised answer.
const CreatedReply = Type.Union([
  Type.Object({ token: Type.String(), ...TokenView }),
  Type.Object({ token: Type.String(), role: Type.String(), expiresAt: Time }),
]);
const ListReply = Type.Object({ items: Type.Array(Type.Object(TokenView)), nextCursor: Type.Null() });
const RevokeReply = Type.Object({ accessor: Type.String(), revoked: Type.Literal(true) });

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { auth }) => {
  app.post<{ Body: TokenBody }>('/v1/auth/tokens', { schema: { body: TokenBody, response: { 201: CreatedReply } } }, async (req, reply) => {
    const { body } = req;
    const ctx = requestContext(req);
    const created = isJoinRole(body.role)
      ? await auth.createJoinToken(body.role, joinTtl(body), ctx)
      : await auth.createToken(tokenRequest(body), ctx);
    return reply.code(201).send(created);
  });

  app.get('/v1/auth/tokens', { schema: { response: { 200: ListReply } } }, async (req) => auth.listTokens(requestContext(req)));

  app.delete<{ Params: AccessorParams }>(
    '/v1/auth/tokens/:accessor',
    { schema: { params: AccessorParams, response: { 200: RevokeReply } } },
    async (req) => auth.revokeToken(req.params.accessor, requestContext(req)),
  );
};

function isJoinRole(role: string): role is 'manager' | 'worker' {
  return role === 'manager' || role === 'worker';
}

/** A join token names no one and reaches no keys: a name or key prefix is a mistake worth saying so. */
function joinTtl(body: TokenBody): number {
  for (const field of ['name', 'keyPrefix'] as const) {
    if (body[field] !== undefined) throw new MinkubeError('INVALID_BODY', `body.${field}: a ${body.role} join token has no ${field}`);
  }
  return body.ttlS ?? limits.joinTokenTtlSDefault;
}

function tokenRequest(body: TokenBody): TokenRequest {
  if (!isRoleName(body.role)) {
    const expected = [...roleNames, 'manager', 'worker'].join(', ');
    throw new MinkubeError('INVALID_BODY', `body.role: expected one of ${expected} (manager and worker make join tokens), got "${body.role}"`);
  }
  const req: { -readonly [K in keyof TokenRequest]: TokenRequest[K] } = { role: body.role };
  if (body.name !== undefined) req.name = body.name;
  if (body.keyPrefix !== undefined) req.keyPrefix = body.keyPrefix;
  if (body.ttlS !== undefined) req.ttlS = body.ttlS;
  return req;
}
