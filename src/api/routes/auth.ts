// The token routes of every manager: create, list and revoke API tokens, and create join tokens for new nodes.
// Creations and revocations go through Raft, so a revocation holds on every manager once committed.
//
//   POST   /v1/auth/tokens            { name?, role, keyPrefix?, ttlS? } -> 201 { token, accessor, name, role, keyPrefix?,
//                                     createdAt, expiresAt | null }: the only time the secret is shown. Role manager or
//                                     worker: a join token instead, 201 { token, accessor, role, expiresAt } (ttlS
//                                     default 24 h; accessor: join-<16 hex>).
//                                     Or { name?, policy: { name, rules: [{ effect, resource, verbs, keyPrefix? }] },
//                                     ttlS? }: a custom policy instead of a role; the answer's role is the policy's name
//                                     and it shows the policy (rules are not secret).
//   GET    /v1/auth/tokens            -> { items: [{ accessor, name, role, keyPrefix?, policy?, createdAt, expiresAt }],
//                                     joinTokens: [{ accessor, role, createdAt, expiresAt }], nextCursor: null }
//   DELETE /v1/auth/tokens/:ref       (an accessor, the token's name, or a join token's accessor; never a whole token, as
//                                     URLs end up in logs) -> 200 { accessor, revoked: true }; 404 TOKEN_NOT_FOUND. A ref
//                                     of an accessor's shape is an accessor first, a name only when none has it (names of
//                                     those shapes are refused at creation: tokenNameProblem in the service).
//   An insecure cluster has no tokens: all three answer 400 INVALID_BODY saying so (a join token: that it has no CA).
//
// The service refuses with 403 FORBIDDEN a creation or revocation that would reach past the caller's own permissions,
// and a creation whose ttlS would outlive the caller's token (without ttlS, the new token ends with it at the latest).
// A bad role, policy, name, key prefix or ttl, or both or neither of role and policy, is 400 INVALID_BODY naming the
// field, as is a key prefix on an admin (the service says why); the service's errors pass through.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { KeyPrefix, TokenName, TokenPolicy } from '../../kv/auth-commands.js';
import { MinkubeError } from '../../lib/errors.js';
import { NoQuery } from '../schemas.js';
import { limits } from '../../lib/limits.js';
import { accessorPattern, joinTokenAccessorPattern } from '../../lib/patterns.js';
import { isRoleName, roleNames } from '../../security/policy.js';
import { parseApiToken, parseJoinToken } from '../../security/tokens.js';
import type { AuthService, TokenRequest } from '../../contracts/services.js';
import { requestContext } from './kv.js';

export interface AuthRoutesOptions {
  auth: AuthService;
  /** An insecure cluster: no route asks for a token, so it makes none (a join token needs a CA it lacks too). */
  insecure?: boolean;
}

const strict = { additionalProperties: false } as const;

const TokenBody = Type.Object(
  {
    name: Type.Optional(TokenName),
    role: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    policy: Type.Optional(TokenPolicy),
    keyPrefix: Type.Optional(KeyPrefix),
    ttlS: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.tokenTtlSMax })),
  },
  strict,
);
type TokenBody = Static<typeof TokenBody>;

/** A token by its accessor (16 hex digits), its name, or a join token's accessor (join-<16 hex>). */
const TokenRefParams = Type.Object({
  ref: Type.Union([Type.String({ pattern: accessorPattern }), Type.String({ pattern: joinTokenAccessorPattern }), TokenName], {
    // What a 400 says the route takes (describeSchema), and the parameter's description in the OpenAPI document.
    description: "an API token's accessor (16 hex digits) or name, or a join token's accessor (join-<16 hex>)",
  }),
});
type TokenRefParams = Static<typeof TokenRefParams>;

const Time = Type.String();
const PolicyView = Type.Object({
  name: Type.String(),
  rules: Type.Array(
    Type.Object({ effect: Type.String(), resource: Type.String(), verbs: Type.Array(Type.String()), keyPrefix: Type.Optional(Type.String()) }),
  ),
});
const TokenView = {
  accessor: Type.String(), name: Type.String(), role: Type.String(), keyPrefix: Type.Optional(Type.String()), policy: Type.Optional(PolicyView),
  createdAt: Time, expiresAt: Type.Union([Time, Type.Null()]),
};
// The replies list their fields, so nothing else a record might carry (a hash) can leave in a serialised answer.
const CreatedReply = Type.Union([
  Type.Object({ token: Type.String(), ...TokenView }),
  Type.Object({ token: Type.String(), accessor: Type.String(), role: Type.String(), expiresAt: Time }),
]);
const JoinTokenView = Type.Object({ accessor: Type.String(), role: Type.String(), createdAt: Time, expiresAt: Time });
const ListReply = Type.Object({ items: Type.Array(Type.Object(TokenView)), joinTokens: Type.Array(JoinTokenView), nextCursor: Type.Null() });
const RevokeReply = Type.Object({ accessor: Type.String(), revoked: Type.Literal(true) });

/** What every token route of an insecure cluster answers (but a join token's creation, which says it has no CA). */
function noTokens(): MinkubeError {
  return new MinkubeError('INVALID_BODY', 'this cluster is insecure and has no tokens: every route answers without one');
}

export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (app, { auth, insecure = false }) => {
  // Listing or revoking said so only by an empty list and TOKEN_NOT_FOUND, as if tokens could exist: said as create
  // says it, before the ref is looked at.
  const refuseInsecure = async (): Promise<void> => {
    if (insecure) throw noTokens();
  };
  app.post<{ Body: TokenBody }>('/v1/auth/tokens', { schema: { body: TokenBody, response: { 201: CreatedReply } } }, async (req, reply) => {
    const { body } = req;
    const ctx = requestContext(req);
    const role = roleOrPolicy(body);
    if (insecure && !isJoinRole(role)) throw noTokens();
    const created = isJoinRole(role)
      ? await auth.createJoinToken(role, joinTtl(body, role), ctx)
      : await auth.createToken(tokenRequest(body, role), ctx);
    return reply.code(201).send(created);
  });

  app.get('/v1/auth/tokens', { schema: { querystring: NoQuery, response: { 200: ListReply } }, preValidation: refuseInsecure }, async (req) => auth.listTokens(requestContext(req)));

  app.delete<{ Params: TokenRefParams }>(
    '/v1/auth/tokens/:ref',
    { schema: { params: TokenRefParams, response: { 200: RevokeReply } }, preValidation: [refuseInsecure, refuseWholeToken] },
    async (req) => auth.revokeToken(req.params.ref, requestContext(req)),
  );
};

/** Before the schema, which would not say why (or take an API token for a name): never echo it. */
async function refuseWholeToken(req: FastifyRequest): Promise<void> {
  const { ref } = req.params as { ref?: unknown };
  // A token's shape with a part cut or typed wrong (mk_<accessor>_..., MKTKN-...) holds a secret all the same.
  if (typeof ref === 'string' && (parseApiToken(ref) !== null || parseJoinToken(ref) !== null || /^mk_[^_]+_./.test(ref) || ref.startsWith('MKTKN-'))) {
    throw new MinkubeError('INVALID_PARAM', 'params.ref: a whole token, secret included, is never taken here (URLs end up in logs); give its accessor, or let minkube token revoke TOKEN derive it');
  }
}

function isJoinRole(role: string): role is 'manager' | 'worker' {
  return role === 'manager' || role === 'worker';
}

/** Exactly one of role and policy: the token's role, which for a policy is its name (never a built-in one). */
function roleOrPolicy(body: TokenBody): string {
  if (body.role !== undefined && body.policy !== undefined) {
    throw new MinkubeError('INVALID_BODY', 'body.role: give a role or a policy, not both');
  }
  if (body.role === undefined && body.policy === undefined) {
    throw new MinkubeError('INVALID_BODY', `body.role: missing; give a role (${[...roleNames, 'manager', 'worker'].join(', ')}) or a policy`);
  }
  if (body.role !== undefined) return body.role;
  const { name } = body.policy!;
  // Checked before a join role could send it down the join token path.
  if (isRoleName(name) || isJoinRole(name)) {
    throw new MinkubeError('INVALID_BODY', `body.policy.name: "${name}" is a built-in role; name the policy something else`);
  }
  return name;
}

/**
 * A join token names no one and reaches no keys: a name or key prefix is a mistake worth saying so. Its ttl as asked
 * (undefined: the service's default, 24 h, or less to end with the token making it).
 */
function joinTtl(body: TokenBody, role: string): number | undefined {
  for (const field of ['name', 'keyPrefix'] as const) {
    if (body[field] !== undefined) throw new MinkubeError('INVALID_BODY', `body.${field}: a ${role} join token has no ${field}`);
  }
  return body.ttlS;
}

function tokenRequest(body: TokenBody, role: string): TokenRequest {
  if (body.policy === undefined && !isRoleName(role)) {
    const expected = [...roleNames, 'manager', 'worker'].join(', ');
    throw new MinkubeError('INVALID_BODY', `body.role: expected one of ${expected} (manager and worker make join tokens), got "${role}"`);
  }
  const req: { -readonly [K in keyof TokenRequest]: TokenRequest[K] } = { role };
  if (body.policy !== undefined) req.policy = body.policy;
  if (body.name !== undefined) req.name = body.name;
  if (body.keyPrefix !== undefined) req.keyPrefix = body.keyPrefix;
  if (body.ttlS !== undefined) req.ttlS = body.ttlS;
  return req;
}
