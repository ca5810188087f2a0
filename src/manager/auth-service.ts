// API tokens and join tokens for the managers' API: creations and revocations become proposals; checks read this
// manager's applied auth state, so a token is checked without a round trip and a revocation holds on a manager as
// soon as it has applied it. Also bootstraps the cluster's first admin token when this manager first leads, and
// adds the admin token made with a new CA (a CA rotation keeps the replicated state) when it leads after one.
// No escalation (see AuthService): a caller creates or revokes only tokens whose permissions it holds itself, and
// creates none that outlives its own token.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type {
  ApiTokenView, AuthService, CreatedApiToken, CreatedJoinToken, JoinTokenView, RequestContext, TokenList, TokenLookup, TokenRequest,
} from '../contracts/services.js';
import { keyPrefixProblem } from '../contracts/keys.js';
import { policyProblem, wirePolicy, type AuthCommand, type JoinRole } from '../kv/auth-commands.js';
import { bootstrapTokenName, type ApiTokenRecord, type AuthStore, type JoinTokenRecord } from '../kv/auth-store.js';
import type { Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { accessorPattern, joinTokenAccessorPattern } from '../lib/patterns.js';
import type { Role } from '../raft/types.js';
import { escalation, isPolicyName, isRoleName, type Policy, type Principal } from '../security/policy.js';
import { joinTokenAccessor, newApiToken, newJoinToken } from '../security/tokens.js';
import type { Proposer } from './task-service.js';

/** The operator's first admin token (only the secret's hash) and the session key, from the manager's options. */
export interface BootstrapRecord {
  readonly accessor: string;
  readonly secretHash: string;
  /**
   * 32 random bytes, base64. Absent: this manager makes one when it proposes. Only the first bootstrap committed
   * counts, so managers need not agree on it beforehand: every one reads the winner's from the replicated state.
   */
  readonly sessionKey?: string;
}

/**
 * The cluster folder's mark on its admin token (the bootstrap record's): pending while the token, made with a new CA,
 * has not been seen in the replicated state. Only a manager started from the cluster folder has one: the token comes
 * from the folder that holds the CA key, never from a request.
 */
export interface AdminTokenMark {
  /** Read afresh each time: another manager may have cleared it. */
  pending(): Promise<boolean>;
  /** The replicated state has held the token: it is never added again, even once revoked. */
  clear(): Promise<void>;
}

export interface AuthServiceOptions {
  store: AuthStore;
  raft: Proposer;
  clock: Clock;
  logger: Logger;
  /** The cluster CA's certificate, whose digest a join token carries; null for an insecure cluster (no join tokens). */
  caCertPem: string | null;
  /** Proposed when this manager leads a cluster not yet bootstrapped; null or absent: never. */
  bootstrap?: BootstrapRecord | null;
  /** With bootstrap: when pending, a leader of a bootstrapped cluster adds the bootstrap record's token as an admin. */
  adminTokenMark?: AdminTokenMark | null;
  /** How long one bootstrap attempt may take (default limits.requestTimeoutMsDefault). */
  proposalTimeoutMs?: number;
}

const accessorRegex = new RegExp(accessorPattern);
const joinAccessorRegex = new RegExp(joinTokenAccessorPattern);
/** The name addPendingAdminToken gives an admin token after a CA rotation, in any case (as the other shapes are). */
const bootstrapNameRegex = new RegExp(`^${bootstrapTokenName}-${accessorPattern.slice(1)}`, 'i');

/** What a join token grants, compared as a role: a manager gets the CA key, a worker its tasks' secretEnv values. */
const joinTokenGrant: Principal = { role: 'admin' };
const joinTokenGives: Readonly<Record<JoinRole, string>> = { manager: 'the CA key', worker: "its tasks' secretEnv values" };

export class AuthServiceImpl implements AuthService {
  /** The term of the last leadership that tried to bootstrap: one attempt per leadership. */
  private bootstrapTerm: number | null = null;

  constructor(private readonly o: AuthServiceOptions) {}

  async createToken(req: TokenRequest, ctx: RequestContext): Promise<CreatedApiToken> {
    if (req.name !== undefined) checkTokenName(req.name);
    if (req.keyPrefix !== undefined) checkKeyPrefix(req.keyPrefix, 'body.keyPrefix');
    const policy = req.policy === undefined ? undefined : checkPolicy(req);
    if (policy === undefined && !isRoleName(req.role)) throw new MinkubeError('INVALID_BODY', `body.role: "${req.role}" is not a role`);
    // Refused here, before proposing, and not when applied: tokens stored with one before stay admins (builtinRules).
    if (req.role === 'admin' && req.keyPrefix !== undefined) {
      throw new MinkubeError(
        'INVALID_BODY',
        'body.keyPrefix: an admin token cannot be kept to a key prefix (an admin makes tokens and join tokens and reads snapshots of every key): ' +
          'give the prefix to an operator, developer or viewer token, or use a policy',
      );
    }
    if (req.ttlS !== undefined) checkTtl(req.ttlS);
    const granted = permissionsOf({ role: req.role, keyPrefix: req.keyPrefix ?? null, ...(policy === undefined ? {} : { policy }) });
    this.refuseEscalation(ctx, granted, `the new token (role ${req.role}) would have: a token may grant only permissions it holds`);
    const now = this.o.clock.nowMs();
    const expiresAtMs = this.expiryWithinCaller(ctx, now, req.ttlS, null, `the new token (role ${req.role})`);
    const { token, accessor, secretHash } = newApiToken();
    // Unnamed, a token is named after its role and accessor: unique, and readable in `token ls`.
    const name = req.name ?? `${req.role}-${accessor}`;
    const cmd: AuthCommand = {
      op: 'auth.tokenCreate', accessor, secretHash, name, role: req.role,
      ...(req.keyPrefix === undefined ? {} : { keyPrefix: req.keyPrefix }), ...(policy === undefined ? {} : { policy }), expiresAtMs, atMs: now,
    };
    await this.proposeOk(cmd, ctx);
    const view = tokenView({
      accessor, secretHash, name, role: req.role, keyPrefix: req.keyPrefix ?? null, ...(policy === undefined ? {} : { policy }), createdAtMs: now, expiresAtMs,
    });
    return { token, ...view };
  }

  async listTokens(ctx: RequestContext): Promise<TokenList> {
    await this.o.raft.barrier(ctx.deadlineMs);
    // At most limits.apiTokensMax: one page; at most limits.joinTokensMax join tokens beside it.
    return { items: this.o.store.listTokens().map(tokenView), joinTokens: this.o.store.listJoinTokens().map(joinTokenView), nextCursor: null };
  }

  /**
   * Read linearizably: the target's permissions decide whether this caller may revoke it. A ref shaped as an accessor
   * (16 hex digits, join-<16 hex>, in any case) is an accessor first, and a name only when no token has that accessor:
   * names of those shapes are refused since (checkTokenName), but a token stored with one before can still be named.
   */
  async revokeToken(ref: string, ctx: RequestContext): Promise<{ readonly accessor: string; readonly revoked: true }> {
    await this.o.raft.barrier(ctx.deadlineMs);
    // Accessors are lower-case hex; one copied in upper case (A39CDCD3AB9D0567) means the same token.
    const folded = ref.toLowerCase();
    const joinShaped = joinAccessorRegex.test(folded);
    const join = joinShaped ? this.o.store.listJoinTokens().find((j) => joinTokenAccessor(j.secretHash) === folded) : undefined;
    if (join !== undefined) return this.revokeJoinToken(folded, join, ctx);
    const accessorShaped = accessorRegex.test(folded);
    const target = (accessorShaped ? this.o.store.tokenByAccessor(folded) : undefined) ?? this.o.store.listTokens().find((t) => t.name === ref);
    if (target === undefined) {
      if (joinShaped) throw new MinkubeError('TOKEN_NOT_FOUND', `no join token with accessor ${ref} (GET /v1/auth/tokens lists them)`);
      const which = accessorShaped ? `with accessor ${ref}` : `named "${ref}"`;
      throw new MinkubeError('TOKEN_NOT_FOUND', `no token ${which} (GET /v1/auth/tokens lists names and accessors)`);
    }
    this.refuseEscalation(ctx, permissionsOf(target), `token "${target.name}" (role ${target.role}) has: a token may revoke only tokens whose permissions it holds`);
    await this.proposeOk({ op: 'auth.tokenRevoke', accessor: target.accessor }, ctx);
    return { accessor: target.accessor, revoked: true };
  }

  private async revokeJoinToken(accessor: string, target: JoinTokenRecord, ctx: RequestContext): Promise<{ readonly accessor: string; readonly revoked: true }> {
    this.refuseJoinEscalation(target.role, ctx);
    await this.proposeOk({ op: 'auth.joinTokenRevoke', secretHash: target.secretHash }, ctx);
    return { accessor, revoked: true };
  }

  async createJoinToken(role: JoinRole, ttlS: number | undefined, ctx: RequestContext): Promise<CreatedJoinToken> {
    const pem = this.o.caCertPem;
    if (pem === null) {
      throw new MinkubeError('INVALID_BODY', `body.role: this cluster is insecure and has no CA, so it issues no ${role} join tokens`);
    }
    if (ttlS !== undefined) checkTtl(ttlS);
    this.refuseJoinEscalation(role, ctx);
    const now = this.o.clock.nowMs();
    // Never null: a join token always has a default life.
    const expiresAtMs = this.expiryWithinCaller(ctx, now, ttlS, limits.joinTokenTtlSDefault, `a ${role} join token`)!;
    const { token, secretHash, caDigest } = newJoinToken(pem);
    await this.proposeOk({ op: 'auth.joinTokenCreate', secretHash, role, expiresAtMs, atMs: now, caDigest }, ctx);
    return { token, accessor: joinTokenAccessor(secretHash), role, expiresAt: new Date(expiresAtMs).toISOString() };
  }

  lookupToken(accessor: string): TokenLookup | undefined {
    const t = this.o.store.tokenByAccessor(accessor, this.o.clock.nowMs());
    if (t === undefined) return undefined;
    const { name, role, secretHash, expiresAtMs } = t;
    return {
      accessor, name, role, secretHash, expiresAtMs,
      ...(t.keyPrefix === null ? {} : { keyPrefix: t.keyPrefix }), ...(t.policy === undefined ? {} : { policy: t.policy }),
    };
  }

  sessionKey(): Uint8Array | null {
    return this.o.store.sessionKey();
  }

  /** Wire to RaftNodeDriver's onRoleChange: a new leadership tries the bootstrap once if it is still needed. */
  onRoleChange(role: Role, term: number): void {
    if (role !== 'leader' || this.o.bootstrap == null || this.bootstrapTerm === term) return;
    this.bootstrapTerm = term;
    void this.maybeBootstrap(term);
  }

  /**
   * Proposes auth.bootstrap unless the applied state is bootstrapped already, then adds the folder's admin token if
   * it is still marked pending (addPendingAdminToken), and answers whether the state is bootstrapped. Never throws: a
   * failure is logged, and the next leadership tries again. Any manager may propose it; the state machine counts only
   * the first, so two leaders of successive terms cannot both bootstrap.
   */
  async maybeBootstrap(term: number): Promise<boolean> {
    const { bootstrap, store, raft, clock, logger } = this.o;
    if (bootstrap == null) return store.bootstrapped();
    const deadlineMs = clock.monoMs() + (this.o.proposalTimeoutMs ?? limits.requestTimeoutMsDefault);
    try {
      // Catch up first: a cluster bootstrapped by an earlier leader needs no entry.
      await raft.barrier(deadlineMs);
      if (!store.bootstrapped()) {
        const r = await raft.proposeCommand({ op: 'auth.bootstrap', ...pickBootstrap(bootstrap), atMs: clock.nowMs() }, deadlineMs, `auth-bootstrap-${term}`);
        if (!r.ok) throw new MinkubeError(r.code, r.message);
        logger.info({ term, accessor: store.bootstrapped() ? bootstrap.accessor : null }, 'cluster auth bootstrapped');
      }
      const added = store.bootstrapped() && (await this.addPendingAdminToken(bootstrap, term, deadlineMs));
      logger.info({ term, accessor: bootstrap.accessor, added }, "the cluster folder's admin token checked");
      return store.bootstrapped();
    } catch (err) {
      logger.warn({ err, term }, 'auth bootstrap failed; the next leadership tries again');
      return false;
    }
  }

  /**
   * After a CA rotation the state is bootstrapped, but knows only the old tokens: the folder's new admin token,
   * marked pending since it was made with the new CA, is added as an admin token (only its hash), and the mark
   * cleared. Run by a leader after a barrier, so it sees what earlier leaders added; a token the state holds (the
   * bootstrap token of a new cluster, or one added before) only clears the mark. Answers whether it proposed.
   */
  private async addPendingAdminToken(b: BootstrapRecord, term: number, deadlineMs: number): Promise<boolean> {
    const { adminTokenMark: mark, store, raft, clock } = this.o;
    if (mark == null || !(await mark.pending())) return false;
    const held = (): boolean => store.tokenByAccessor(b.accessor)?.secretHash === b.secretHash;
    let proposed = false;
    if (!held()) {
      const cmd: AuthCommand = {
        op: 'auth.tokenCreate', accessor: b.accessor, secretHash: b.secretHash, name: `${bootstrapTokenName}-${b.accessor}`, role: 'admin',
        expiresAtMs: null, atMs: clock.nowMs(),
      };
      const r = await raft.proposeCommand(cmd, deadlineMs, `auth-admin-token-${term}`);
      // Added now, or by another leader just before: either way the state has held it.
      if (!r.ok && !held()) throw new MinkubeError(r.code, r.message);
      proposed = r.ok;
    }
    await mark.clear();
    return proposed;
  }

  /**
   * What the caller may do, from the live record of the token it came with (the auth plugin has just checked it);
   * null when it may do everything: a manager's certificate (managers hold the CA key), or no principal at all (an
   * insecure cluster, where there are no tokens to escalate to).
   */
  private callerOf(ctx: RequestContext): Principal | null {
    const p = ctx.principal;
    if (p === undefined) return null;
    if (!('a' in p)) return p.r === 'manager' ? null : { role: p.r };
    const t = this.o.store.tokenByAccessor(p.a, this.o.clock.nowMs());
    if (t === undefined) throw new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token');
    return permissionsOf(t);
  }

  /**
   * When a token the caller makes now expires (expiryWithin): never after the caller's own token. Read from the same
   * live record as its permissions (callerOf); a manager's certificate, or no principal, has no end to respect.
   */
  private expiryWithinCaller(ctx: RequestContext, nowMs: number, ttlS: number | undefined, defaultTtlS: number | null, made: string): number | null {
    const p = ctx.principal;
    const t = p !== undefined && 'a' in p ? this.o.store.tokenByAccessor(p.a, nowMs) : undefined;
    const creator = t === undefined ? null : { role: t.role, expiresAtMs: t.expiresAtMs };
    return expiryWithin(nowMs, ttlS, defaultTtlS, creator, made);
  }

  /** FORBIDDEN naming the first permission `granted` has that the caller lacks; `which` ends the sentence. */
  private refuseEscalation(ctx: RequestContext, granted: Principal, which: string): void {
    const caller = this.callerOf(ctx);
    const missing = caller === null ? null : escalation(caller, granted);
    if (missing !== null) throw new MinkubeError('FORBIDDEN', `this token (role ${caller!.role}) lacks ${missing}, which ${which}`);
  }

  private refuseJoinEscalation(role: JoinRole, ctx: RequestContext): void {
    this.refuseEscalation(ctx, joinTokenGrant, `a ${role} join token grants (a ${role} gets ${joinTokenGives[role]}): only a token with every permission may make or revoke one`);
  }

  /** Proposes and throws the state machine's refusal. */
  private async proposeOk(cmd: AuthCommand, ctx: RequestContext): Promise<void> {
    const r = await this.o.raft.proposeCommand(cmd, ctx.deadlineMs, ctx.requestId, ctx.principal);
    if (!r.ok) throw new MinkubeError(r.code, r.message);
  }
}

/**
 * When a token made at nowMs expires: ttlS from then, or without one defaultTtlS (null: never). Made by a token that
 * expires (`creator`), it never outlives it, as Vault caps a child token's TTL at its parent's: without a ttl it
 * ends with its creator at the latest, and a ttl that would end later is refused (403 FORBIDDEN, saying how long
 * the creator has left) rather than quietly shortened. Decided here, from the proposing manager's clock, as the
 * expiry itself always was: the command carries the result, so applying it reads no clock.
 */
export function expiryWithin(
  nowMs: number, ttlS: number | undefined, defaultTtlS: number | null, creator: { readonly role: string; readonly expiresAtMs: number | null } | null, made: string,
): number | null {
  const endMs = creator?.expiresAtMs ?? null;
  if (ttlS === undefined) {
    const byDefault = defaultTtlS === null ? null : nowMs + defaultTtlS * 1000;
    return endMs === null ? byDefault : byDefault === null ? endMs : Math.min(byDefault, endMs);
  }
  const askedMs = nowMs + ttlS * 1000;
  if (endMs !== null && askedMs > endMs) {
    const leftS = Math.floor((endMs - nowMs) / 1000);
    const instead = leftS >= 1 ? `ask for at most ${leftS} s, or for none to end with it` : 'ask for none to end with it';
    throw new MinkubeError(
      'FORBIDDEN',
      `this token (role ${creator!.role}) expires at ${new Date(endMs).toISOString()}, and ${made} may not outlive it: ttlS ${ttlS} would end at ${new Date(askedMs).toISOString()}; ${instead}`,
    );
  }
  return askedMs;
}

function tokenView(t: ApiTokenRecord): ApiTokenView {
  return {
    accessor: t.accessor, name: t.name, role: t.role, ...(t.keyPrefix === null ? {} : { keyPrefix: t.keyPrefix }),
    ...(t.policy === undefined ? {} : { policy: t.policy }), createdAt: new Date(t.createdAtMs).toISOString(), expiresAt: t.expiresAtMs === null ? null : new Date(t.expiresAtMs).toISOString(),
  };
}

/** What a token (stored or about to be) may do, in the form authorize and escalation take. */
function permissionsOf(t: Pick<ApiTokenRecord, 'role' | 'keyPrefix' | 'policy'>): Principal {
  return { role: t.role, ...(t.keyPrefix === null ? {} : { keyPrefix: t.keyPrefix }), ...(t.policy === undefined ? {} : { policy: t.policy }) };
}

function joinTokenView(j: JoinTokenRecord): JoinTokenView {
  return { accessor: joinTokenAccessor(j.secretHash), role: j.role, createdAt: new Date(j.createdAtMs).toISOString(), expiresAt: new Date(j.expiresAtMs).toISOString() };
}

/** Only the three fields go on the wire, whatever else the caller's record carries. */
function pickBootstrap(b: BootstrapRecord): Required<BootstrapRecord> {
  return { accessor: b.accessor, secretHash: b.secretHash, sessionKey: b.sessionKey ?? randomBytes(32).toString('base64') };
}

/**
 * A custom policy: named per isPolicyName but never like a built-in role or a join token's role (its name is the
 * token's role), the token's role is its name, no key prefix beside it, and within the bounds. The checked copy.
 */
function checkPolicy(req: TokenRequest): Policy {
  const p = req.policy!;
  if (!isPolicyName(p.name)) throw new MinkubeError('INVALID_BODY', `body.policy.name: expected lower-case letters, digits and '-', starting with a letter (at most 63), got ${JSON.stringify(p.name)}`);
  if (isRoleName(p.name) || p.name === 'manager' || p.name === 'worker') {
    throw new MinkubeError('INVALID_BODY', `body.policy.name: "${p.name}" is a built-in role; name the policy something else`);
  }
  if (req.role !== p.name) throw new MinkubeError('INVALID_BODY', `body.role: a token with a policy has the policy's name as its role`);
  if (req.keyPrefix !== undefined) throw new MinkubeError('INVALID_BODY', 'body.keyPrefix: not taken with a policy; its kv rules name the keys');
  const problem = policyProblem(p, 'body.policy');
  if (problem !== null) throw new MinkubeError('INVALID_BODY', problem);
  for (const [i, r] of p.rules.entries()) if (r.keyPrefix !== undefined) checkKeyPrefix(r.keyPrefix, `body.policy.rules[${i}].keyPrefix`);
  return wirePolicy(p);
}

/**
 * A key prefix that some key starts with. Checked here, before proposing, and not when applied: a token stored with
 * another before this check keeps it (it matches no key, so it allows nothing there and denies nothing).
 */
function checkKeyPrefix(prefix: string, at: string): void {
  const problem = keyPrefixProblem(prefix);
  if (problem !== null) throw new MinkubeError('INVALID_BODY', `${at}: ${problem}`);
}

/**
 * A token name that nothing could take for another reference: DELETE /v1/auth/tokens/:ref and `minkube token revoke`
 * take an accessor (16 hex digits), a join token's accessor (join-<16 hex>) or a whole token (mk_..., MKTKN-...) as
 * well as a name, so a name of one of those shapes (in any case) could revoke another token, or none. Checked here,
 * before proposing, and not when applied: a token stored with such a name before keeps it (revokeToken says how it
 * is found).
 */
export function tokenNameProblem(name: string): string | null {
  if (/^[0-9a-f]{16}$/i.test(name)) return "16 hex digits is the shape of a token's accessor";
  const lower = name.toLowerCase();
  if (lower.startsWith('join-')) return "a name starting with join- has the shape of a join token's accessor";
  if (lower.startsWith('mktkn-')) return 'a name starting with MKTKN- has the shape of a join token';
  if (lower.startsWith('mk_')) return 'a name starting with mk_ has the shape of an API token';
  // A CA rotation adds the cluster folder's new admin token as `${bootstrapTokenName}-${accessor}`: one taken before
  // would pass for it, or keep it from being added (TOKEN_EXISTS).
  if (bootstrapNameRegex.test(name)) return "bootstrap-<16 hex digits> is the name a CA rotation gives the cluster folder's new admin token";
  return null;
}

function checkTokenName(name: string): void {
  const problem = tokenNameProblem(name);
  if (problem !== null) {
    throw new MinkubeError(
      'INVALID_BODY',
      `body.name: "${name}" could be taken for another token: ${problem}, and minkube token revoke and DELETE /v1/auth/tokens/:ref take those too; choose another name`,
    );
  }
}

function checkTtl(ttlS: number): void {
  if (!Number.isSafeInteger(ttlS) || ttlS < 1 || ttlS > limits.tokenTtlSMax) {
    throw new MinkubeError('INVALID_BODY', `body.ttlS: expected whole seconds from 1 to ${limits.tokenTtlSMax}, got ${ttlS}`);
  }
}
