// The auth commands of the replicated state machine and their wire form: API tokens, join tokens and the key that
// signs browser sessions. Only hashes of secrets ever enter the log, and every time comes in the command.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { accessorPattern, keyPrefixPattern, tokenNamePattern } from '../lib/patterns.js';
// The one pure schema module outside lib/ that kv reads: a stored policy must be exactly one authorize() understands,
// and deriving its wire form from PolicySchema keeps a new resource or verb from being refused here by mistake.
import { PolicyRuleSchema, PolicySchema, type Policy } from '../security/policy.js';

export type JoinRole = 'manager' | 'worker';

/**
 * The first admin token and the session key. Every manager given a bootstrap record may propose it; only the first
 * one committed counts, the others apply as no-ops.
 */
export interface AuthBootstrapCommand {
  readonly op: 'auth.bootstrap';
  readonly accessor: string;
  readonly secretHash: string;
  /** 32 random bytes, base64. */
  readonly sessionKey: string;
  readonly atMs: number;
}

/**
 * A new API token. The role is a policy role name (src/security/policy.ts): the API checks it before proposing, so
 * the state machine only checks its shape and never needs to know what a role allows. A token with a custom policy
 * carries its rules, and its role is the policy's name.
 */
export interface AuthTokenCreateCommand {
  readonly op: 'auth.tokenCreate';
  readonly accessor: string;
  readonly secretHash: string;
  readonly name: string;
  readonly role: string;
  /** Limits the token to keys under this prefix (built-in roles only: a policy says so in its rules). */
  readonly keyPrefix?: string;
  /** A custom policy, which then decides instead of the role (role === policy.name). */
  readonly policy?: Policy;
  readonly expiresAtMs: number | null;
  readonly atMs: number;
}

export interface AuthTokenRevokeCommand {
  readonly op: 'auth.tokenRevoke';
  readonly accessor: string;
}

export interface AuthJoinTokenCreateCommand {
  readonly op: 'auth.joinTokenCreate';
  readonly secretHash: string;
  readonly role: JoinRole;
  readonly expiresAtMs: number;
  readonly atMs: number;
  /** The digest of the CA the token was made under: a join under another CA (rotated since) is refused. */
  readonly caDigest?: string;
}

export interface AuthJoinTokenRevokeCommand {
  readonly op: 'auth.joinTokenRevoke';
  readonly secretHash: string;
}

export type AuthCommand =
  | AuthBootstrapCommand
  | AuthTokenCreateCommand
  | AuthTokenRevokeCommand
  | AuthJoinTokenCreateCommand
  | AuthJoinTokenRevokeCommand;
export type AuthOp = AuthCommand['op'];

const authOps: ReadonlySet<string> = new Set<AuthOp>(['auth.bootstrap', 'auth.tokenCreate', 'auth.tokenRevoke', 'auth.joinTokenCreate', 'auth.joinTokenRevoke']);

export function isAuthOp(op: unknown): op is AuthOp {
  return typeof op === 'string' && authOps.has(op);
}

// ---- wire form: known fields only, in one order, so equal commands give equal bytes ----

export function wireAuthCommand(cmd: AuthCommand): Record<string, unknown> {
  switch (cmd.op) {
    case 'auth.bootstrap':
      return { op: cmd.op, accessor: cmd.accessor, secretHash: cmd.secretHash, sessionKey: cmd.sessionKey, atMs: cmd.atMs };
    case 'auth.tokenCreate': {
      const w: Record<string, unknown> = { op: cmd.op, accessor: cmd.accessor, secretHash: cmd.secretHash, name: cmd.name, role: cmd.role };
      if (cmd.keyPrefix !== undefined) w.keyPrefix = cmd.keyPrefix;
      if (cmd.policy !== undefined) w.policy = wirePolicy(cmd.policy);
      w.expiresAtMs = cmd.expiresAtMs;
      w.atMs = cmd.atMs;
      return w;
    }
    case 'auth.tokenRevoke':
      return { op: cmd.op, accessor: cmd.accessor };
    case 'auth.joinTokenCreate':
      return { op: cmd.op, secretHash: cmd.secretHash, role: cmd.role, expiresAtMs: cmd.expiresAtMs, atMs: cmd.atMs, ...(cmd.caDigest === undefined ? {} : { caDigest: cmd.caDigest }) };
    case 'auth.joinTokenRevoke':
      return { op: cmd.op, secretHash: cmd.secretHash };
  }
}

/** A policy in one field order, known fields only: equal policies give equal bytes (commands and snapshots). */
export function wirePolicy(p: Policy): Policy {
  return {
    name: p.name,
    rules: p.rules.map((r) =>
      r.keyPrefix === undefined
        ? { effect: r.effect, resource: r.resource, verbs: [...r.verbs] as typeof r.verbs }
        : { effect: r.effect, resource: r.resource, verbs: [...r.verbs] as typeof r.verbs, keyPrefix: r.keyPrefix },
    ),
  };
}

// ---- decoding: every field checked by a compiled schema ----

/** The shapes src/security/tokens.ts produces: a 16-hex accessor (accessorPattern), a sha256 hex digest. */
const Accessor = Type.String({ pattern: accessorPattern });
const SecretHash = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** 32 bytes in standard base64 are 43 characters and one '='. */
const SessionKey = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$' });
export const TokenName = Type.String({ minLength: 1, maxLength: 64, pattern: tokenNamePattern });
/** A built-in role or a custom policy's name (isPolicyName in src/security/policy.ts). */
const RoleName = PolicySchema.properties.name;
/**
 * The characters of a KV key (src/contracts/keys.ts). That some key starts with it (no "." or ".." segment before its
 * last '/': keyPrefixProblem) is checked when a token is made, not here: an entry already in a log stays what it was.
 */
export const KeyPrefix = Type.String({ minLength: 1, maxLength: 512, pattern: keyPrefixPattern });

/** The most rules one token's policy may hold, and the most bytes its policy may take (as compact JSON). */
export const policyRulesMax = 64;
export const policyBytesMax = 8 * 1024;

/**
 * A custom policy as a token carries it: PolicySchema, narrowed. At least one rule (a token that may do nothing is a
 * mistake), at most policyRulesMax, and a rule's key prefix is made of key characters.
 */
export const TokenPolicy = Type.Object(
  {
    name: PolicySchema.properties.name,
    rules: Type.Array(
      Type.Object(
        {
          effect: PolicyRuleSchema.properties.effect, resource: PolicyRuleSchema.properties.resource,
          verbs: PolicyRuleSchema.properties.verbs, keyPrefix: Type.Optional(KeyPrefix),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: policyRulesMax },
    ),
  },
  { additionalProperties: false },
);

/**
 * What the schema cannot say about a token's policy: a key prefix only on a kv rule (elsewhere it would deny all or
 * allow nothing), and the size bound; the rule count again, for callers that have not run the schema. `at` names
 * the field ('body.policy'). Null when it is fine.
 */
export function policyProblem(p: Policy, at: string): string | null {
  if (p.rules.length < 1 || p.rules.length > policyRulesMax) return `${at}.rules: expected 1 to ${policyRulesMax} rules, got ${p.rules.length}`;
  for (const [i, r] of p.rules.entries()) {
    if (r.keyPrefix !== undefined && r.resource !== 'kv') return `${at}.rules[${i}].keyPrefix: only a kv rule has a key prefix`;
  }
  const bytes = Buffer.byteLength(JSON.stringify(wirePolicy(p)));
  if (bytes > policyBytesMax) return `${at}: the policy takes ${bytes} bytes, more than ${policyBytesMax}`;
  return null;
}

const Ms = Type.Number({ minimum: 0, maximum: 8.64e15 });
const strict = { additionalProperties: false } as const;

const schemas = {
  'auth.bootstrap': Type.Object(
    { op: Type.Literal('auth.bootstrap'), accessor: Accessor, secretHash: SecretHash, sessionKey: SessionKey, atMs: Ms },
    strict,
  ),
  'auth.tokenCreate': Type.Object(
    {
      op: Type.Literal('auth.tokenCreate'), accessor: Accessor, secretHash: SecretHash, name: TokenName, role: RoleName,
      keyPrefix: Type.Optional(KeyPrefix), policy: Type.Optional(TokenPolicy), expiresAtMs: Type.Union([Ms, Type.Null()]), atMs: Ms,
    },
    strict,
  ),
  'auth.tokenRevoke': Type.Object({ op: Type.Literal('auth.tokenRevoke'), accessor: Accessor }, strict),
  'auth.joinTokenCreate': Type.Object(
    {
      op: Type.Literal('auth.joinTokenCreate'), secretHash: SecretHash,
      role: Type.Union([Type.Literal('manager'), Type.Literal('worker')]), expiresAtMs: Ms, atMs: Ms,
      caDigest: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
    },
    strict,
  ),
  'auth.joinTokenRevoke': Type.Object({ op: Type.Literal('auth.joinTokenRevoke'), secretHash: SecretHash }, strict),
} satisfies Record<AuthOp, TSchema>;

type Checkers = { [K in AuthOp]: ReturnType<typeof TypeCompiler.Compile<(typeof schemas)[K]>> };
let checkers: Checkers | null = null;

/** Compiled on first use, as the task commands' are. */
function checkerFor<K extends AuthOp>(op: K): Checkers[K] {
  checkers ??= Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, TypeCompiler.Compile(s)])) as unknown as Checkers;
  return checkers[op];
}

export type DecodedAuthCommand = { readonly ok: true; readonly cmd: AuthCommand } | { readonly ok: false; readonly problem: string };

export function decodeAuthCommand(raw: Record<string, unknown>): DecodedAuthCommand {
  const op = raw.op as AuthOp;
  const check = checkerFor(op);
  if (!check.Check(raw)) {
    const first = check.Errors(raw).First();
    return { ok: false, problem: `${op}: ${first === undefined ? 'invalid' : `${first.path || '/'} ${first.message}`}` };
  }
  const cmd = raw as Static<(typeof schemas)[typeof op]> as AuthCommand;
  const problem = cmd.op === 'auth.tokenCreate' ? tokenPolicyProblem(cmd) : null;
  return problem === null ? { ok: true, cmd } : { ok: false, problem: `${op}: ${problem}` };
}

let policyChecker: ReturnType<typeof TypeCompiler.Compile<typeof TokenPolicy>> | null = null;

/** A token's policy from a snapshot row: the same checks as the command that created it. */
export function decodeTokenPolicy(raw: unknown): { readonly ok: true; readonly policy: Policy } | { readonly ok: false; readonly problem: string } {
  policyChecker ??= TypeCompiler.Compile(TokenPolicy);
  if (!policyChecker.Check(raw)) {
    const first = policyChecker.Errors(raw).First();
    return { ok: false, problem: first === undefined ? 'invalid policy' : `policy${first.path} ${first.message}` };
  }
  const problem = policyProblem(raw, 'policy');
  return problem === null ? { ok: true, policy: raw } : { ok: false, problem };
}

/** A token with a policy is named by it, and takes no key prefix of its own (the rules say which keys). */
function tokenPolicyProblem(cmd: AuthTokenCreateCommand): string | null {
  if (cmd.policy === undefined) return null;
  if (cmd.role !== cmd.policy.name) return `/role must be the policy's name "${cmd.policy.name}"`;
  if (cmd.keyPrefix !== undefined) return '/keyPrefix is not taken with a policy (its rules name the keys)';
  return policyProblem(cmd.policy, '/policy');
}
