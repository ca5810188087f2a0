// The auth half of the replicated state machine: API tokens by accessor, join tokens by secret hash, and the key that
// signs browser sessions. Every manager answers a token check from here without a round trip, and a revocation holds
// on a manager as soon as it has applied it. Deterministic: every time comes from the command; maps keep apply order.
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { Policy } from '../security/policy.js';
import {
  decodeTokenPolicy, wirePolicy, type AuthBootstrapCommand, type AuthCommand, type AuthJoinTokenCreateCommand, type AuthTokenCreateCommand,
  type JoinRole,
} from './auth-commands.js';

/** The time expiry is judged at when dropping: a day before the command's, unless room is needed. */
function dropTimeMs(atMs: number, full: boolean): number {
  return full ? atMs : atMs - limits.expiredTokenDropAfterMs;
}

export type AuthApplyErrorCode = 'TOKEN_NOT_FOUND' | 'TOKEN_EXISTS' | 'TOKEN_LIMIT_REACHED';

/** `id` is the accessor (API tokens) or secret hash (join tokens) the command was about; '' for a bootstrap no-op. */
export type AuthApplyResult =
  | { readonly ok: true; readonly id: string }
  | { readonly ok: false; readonly code: AuthApplyErrorCode; readonly message: string };

export interface ApiTokenRecord {
  readonly accessor: string;
  /** sha256 hex of the secret: the secret itself is never stored. */
  readonly secretHash: string;
  readonly name: string;
  readonly role: string;
  readonly keyPrefix: string | null;
  /** A custom policy, which decides instead of the role (then the policy's name). */
  readonly policy?: Policy;
  readonly createdAtMs: number;
  /** null: never expires. */
  readonly expiresAtMs: number | null;
}

export interface JoinTokenRecord {
  readonly secretHash: string;
  readonly role: JoinRole;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  /** The CA it was made under (sha256 of its DER, hex); absent on a token made before managers kept it. */
  readonly caDigest?: string;
}

export interface AuthStoreOptions {
  tokensMax?: number;
  joinTokensMax?: number;
}

/** What a snapshot holds: tokens in apply order, and the session key (base64) once bootstrapped. */
export interface AuthSnapshotContent {
  readonly tokens: readonly ApiTokenRecord[];
  readonly joinTokens: readonly JoinTokenRecord[];
  readonly sessionKey: string | null;
}

/** The bootstrap token's name and role: the operator's first admin, who creates every other token. */
export const bootstrapTokenName = 'bootstrap';
export const bootstrapTokenRole = 'admin';

export class AuthStore {
  private tokens = new Map<string, ApiTokenRecord>();
  /** name -> accessor: names are unique, so `token ls` reads unambiguously. */
  private names = new Map<string, string>();
  private joinTokens = new Map<string, JoinTokenRecord>();
  private sessionKeyBase64: string | null = null;
  private sessionKeyBytes: Uint8Array | null = null;
  private readonly tokensMax: number;
  private readonly joinTokensMax: number;

  constructor(o: AuthStoreOptions = {}) {
    this.tokensMax = o.tokensMax ?? limits.apiTokensMax;
    this.joinTokensMax = o.joinTokensMax ?? limits.joinTokensMax;
  }

  get tokenCount(): number {
    return this.tokens.size;
  }

  get joinTokenCount(): number {
    return this.joinTokens.size;
  }

  apply(cmd: AuthCommand): AuthApplyResult {
    switch (cmd.op) {
      case 'auth.bootstrap':
        return this.bootstrap(cmd);
      case 'auth.tokenCreate':
        return this.createToken(cmd);
      case 'auth.tokenRevoke':
        return this.revokeToken(cmd.accessor);
      case 'auth.joinTokenCreate':
        return this.createJoinToken(cmd);
      case 'auth.joinTokenRevoke':
        return this.joinTokens.delete(cmd.secretHash) ? { ok: true, id: cmd.secretHash } : notFound('no such join token');
    }
  }

  // ---- lookups: synchronous, one map read each ----

  /** The token, unless unknown, revoked or (given a time) expired. */
  tokenByAccessor(accessor: string, nowMs?: number): ApiTokenRecord | undefined {
    const t = this.tokens.get(accessor);
    if (t === undefined || (nowMs !== undefined && isExpired(t.expiresAtMs, nowMs))) return undefined;
    return t;
  }

  joinToken(secretHash: string, nowMs: number): JoinTokenRecord | undefined {
    const j = this.joinTokens.get(secretHash);
    return j === undefined || isExpired(j.expiresAtMs, nowMs) ? undefined : j;
  }

  /** A copy of the 32 bytes that sign browser sessions; null until bootstrapped. */
  sessionKey(): Uint8Array | null {
    return this.sessionKeyBytes === null ? null : new Uint8Array(this.sessionKeyBytes);
  }

  bootstrapped(): boolean {
    return this.sessionKeyBase64 !== null;
  }

  /** Every stored token (expired ones too, until a later create drops them: dropExpiredTokens), oldest first. */
  listTokens(): ApiTokenRecord[] {
    return [...this.tokens.values()];
  }

  /** Every stored join token (expired ones too, until a later join token create drops them), oldest first. */
  listJoinTokens(): JoinTokenRecord[] {
    return [...this.joinTokens.values()];
  }

  // ---- commands ----

  private bootstrap(cmd: AuthBootstrapCommand): AuthApplyResult {
    if (this.bootstrapped()) return { ok: true, id: '' };
    // The operator's configured admin token must work: it displaces a token that took its accessor or name.
    this.remove(cmd.accessor);
    const holder = this.names.get(bootstrapTokenName);
    if (holder !== undefined) this.remove(holder);
    this.insert({
      accessor: cmd.accessor, secretHash: cmd.secretHash, name: bootstrapTokenName, role: bootstrapTokenRole, keyPrefix: null,
      createdAtMs: cmd.atMs, expiresAtMs: null,
    });
    this.setSessionKey(cmd.sessionKey);
    return { ok: true, id: cmd.accessor };
  }

  private createToken(cmd: AuthTokenCreateCommand): AuthApplyResult {
    this.dropExpiredTokens(cmd.atMs);
    if (this.tokens.has(cmd.accessor)) return exists(`a token with accessor ${cmd.accessor} already exists`);
    const holder = this.names.get(cmd.name);
    if (holder !== undefined) {
      // Not taken over once expired by this command's clock: that is the proposing manager's, which may run ahead, and
      // the token live for every other manager (an outside tester's, two hours ahead, deleted one so).
      const expiresAtMs = this.tokens.get(holder)!.expiresAtMs;
      const expired = expiresAtMs !== null && isExpired(expiresAtMs, cmd.atMs) ? ` (expired at ${new Date(expiresAtMs).toISOString()}: revoke it to use its name now; it is dropped a day after its expiry)` : '';
      return exists(`a token named "${cmd.name}" already exists${expired}`);
    }
    if (this.tokens.size >= this.tokensMax) {
      return { ok: false, code: 'TOKEN_LIMIT_REACHED', message: `the cluster holds ${this.tokens.size} API tokens, the most it may; revoke some first` };
    }
    this.insert({
      accessor: cmd.accessor, secretHash: cmd.secretHash, name: cmd.name, role: cmd.role, keyPrefix: cmd.keyPrefix ?? null,
      ...(cmd.policy === undefined ? {} : { policy: wirePolicy(cmd.policy) }), createdAtMs: cmd.atMs, expiresAtMs: cmd.expiresAtMs,
    });
    return { ok: true, id: cmd.accessor };
  }

  private revokeToken(accessor: string): AuthApplyResult {
    return this.remove(accessor) ? { ok: true, id: accessor } : notFound(`no token with accessor ${accessor}`);
  }

  private createJoinToken(cmd: AuthJoinTokenCreateCommand): AuthApplyResult {
    const full = this.joinTokens.size >= this.joinTokensMax;
    for (const [hash, j] of this.joinTokens) if (isExpired(j.expiresAtMs, dropTimeMs(cmd.atMs, full))) this.joinTokens.delete(hash);
    if (this.joinTokens.has(cmd.secretHash)) return exists('this join token already exists');
    if (this.joinTokens.size >= this.joinTokensMax) {
      return { ok: false, code: 'TOKEN_LIMIT_REACHED', message: `the cluster holds ${this.joinTokens.size} join tokens, the most it may; let some expire first` };
    }
    const record = { secretHash: cmd.secretHash, role: cmd.role, createdAtMs: cmd.atMs, expiresAtMs: cmd.expiresAtMs };
    this.joinTokens.set(cmd.secretHash, cmd.caDigest === undefined ? record : { ...record, caDigest: cmd.caDigest });
    return { ok: true, id: cmd.secretHash };
  }

  // ---- records ----

  /**
   * Expired tokens are dropped only here, at a time the command carries, so every manager drops the same ones. That
   * time is the proposing manager's clock: one whose clock ran two hours ahead dropped, on every manager, a token
   * with an hour left to live. So a token is dropped once it expired limits.expiredTokenDropAfterMs before that time
   * (no clock is off by a day), or, when the cluster holds as many as it may, once it expired at all (room is needed).
   */
  private dropExpiredTokens(atMs: number): void {
    const full = this.tokens.size >= this.tokensMax;
    for (const t of this.tokens.values()) if (isExpired(t.expiresAtMs, dropTimeMs(atMs, full))) this.remove(t.accessor);
  }

  private insert(t: ApiTokenRecord): void {
    this.tokens.set(t.accessor, t);
    this.names.set(t.name, t.accessor);
  }

  private remove(accessor: string): boolean {
    const t = this.tokens.get(accessor);
    if (t === undefined) return false;
    this.tokens.delete(accessor);
    this.names.delete(t.name);
    return true;
  }

  private setSessionKey(base64: string | null): void {
    this.sessionKeyBase64 = base64;
    this.sessionKeyBytes = base64 === null ? null : new Uint8Array(Buffer.from(base64, 'base64'));
  }

  // ---- snapshots ----

  /** The records are never changed in place, so this view stays as it is while the store moves on. */
  snapshotContent(): AuthSnapshotContent {
    return { tokens: [...this.tokens.values()], joinTokens: [...this.joinTokens.values()], sessionKey: this.sessionKeyBase64 };
  }

  /** Replaces the whole state (decodeAuthSnapshot has checked it). */
  load(c: AuthSnapshotContent): void {
    this.tokens = new Map();
    this.names = new Map();
    this.joinTokens = new Map();
    for (const t of c.tokens) this.insert(t);
    for (const j of c.joinTokens) this.joinTokens.set(j.secretHash, j);
    this.setSessionKey(c.sessionKey);
  }
}

export const emptyAuthSnapshot: AuthSnapshotContent = { tokens: [], joinTokens: [], sessionKey: null };

/**
 * Rows in a fixed field order, so equal stores give equal bytes. A token with a policy has an eighth field; one
 * without keeps the seven of older snapshots, so a manager that knows no policies still reads a cluster that has none.
 */
export function encodeAuthSnapshot(c: AuthSnapshotContent): unknown[] {
  return [
    c.tokens.map((t) => {
      const row: unknown[] = [t.accessor, t.secretHash, t.name, t.role, t.keyPrefix, t.createdAtMs, t.expiresAtMs];
      if (t.policy !== undefined) row.push(wirePolicy(t.policy));
      return row;
    }),
    c.joinTokens.map((j) => (j.caDigest === undefined ? [j.secretHash, j.role, j.createdAtMs, j.expiresAtMs] : [j.secretHash, j.role, j.createdAtMs, j.expiresAtMs, j.caDigest])),
    c.sessionKey,
  ];
}

/** Checks every field: a restored store must be exactly one we wrote. Throws STORAGE_CORRUPT. */
export function decodeAuthSnapshot(raw: unknown): AuthSnapshotContent {
  if (!Array.isArray(raw) || raw.length !== 3) throw corrupt('bad header');
  const [tokens, joinTokens, sessionKey] = raw as unknown[];
  if (!Array.isArray(tokens) || !Array.isArray(joinTokens)) throw corrupt('bad header');
  if (sessionKey !== null && !(typeof sessionKey === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(sessionKey))) throw corrupt('bad session key');
  const out = { tokens: tokens.map(decodeToken), joinTokens: joinTokens.map(decodeJoinToken), sessionKey };
  if (new Set(out.tokens.map((t) => t.accessor)).size !== out.tokens.length) throw corrupt('duplicate accessor');
  if (new Set(out.tokens.map((t) => t.name)).size !== out.tokens.length) throw corrupt('duplicate token name');
  if (new Set(out.joinTokens.map((j) => j.secretHash)).size !== out.joinTokens.length) throw corrupt('duplicate join token');
  return out;
}

function decodeToken(row: unknown, i: number): ApiTokenRecord {
  if (!Array.isArray(row) || (row.length !== 7 && row.length !== 8)) throw corrupt(`bad token ${i}`);
  const [accessor, secretHash, name, role, keyPrefix, createdAtMs, expiresAtMs] = row as unknown[];
  const ok =
    isString(accessor) && isString(secretHash) && isString(name) && isString(role) && (keyPrefix === null || isString(keyPrefix)) &&
    isMs(createdAtMs) && (expiresAtMs === null || isMs(expiresAtMs));
  if (!ok) throw corrupt(`bad token ${i}`);
  const t = { accessor, secretHash, name, role, keyPrefix, createdAtMs, expiresAtMs };
  if (row.length === 7) return t;
  const decoded = decodeTokenPolicy(row[7]);
  if (!decoded.ok) throw corrupt(`bad token ${i}: ${decoded.problem}`);
  if (decoded.policy.name !== role) throw corrupt(`bad token ${i}: its role is not its policy's name`);
  if (keyPrefix !== null) throw corrupt(`bad token ${i}: a key prefix beside a policy`);
  return { ...t, policy: decoded.policy };
}

function decodeJoinToken(row: unknown, i: number): JoinTokenRecord {
  if (!Array.isArray(row) || (row.length !== 4 && row.length !== 5)) throw corrupt(`bad join token ${i}`);
  const [secretHash, role, createdAtMs, expiresAtMs, caDigest] = row as unknown[];
  if (!isString(secretHash) || (role !== 'manager' && role !== 'worker') || !isMs(createdAtMs) || !isMs(expiresAtMs)) {
    throw corrupt(`bad join token ${i}`);
  }
  if (row.length === 4) return { secretHash, role, createdAtMs, expiresAtMs };
  if (!isString(caDigest)) throw corrupt(`bad join token ${i}`);
  return { secretHash, role, createdAtMs, expiresAtMs, caDigest };
}

function isExpired(expiresAtMs: number | null, nowMs: number): boolean {
  return expiresAtMs !== null && nowMs >= expiresAtMs;
}

function notFound(message: string): AuthApplyResult {
  return { ok: false, code: 'TOKEN_NOT_FOUND', message };
}

function exists(message: string): AuthApplyResult {
  return { ok: false, code: 'TOKEN_EXISTS', message };
}

function corrupt(problem: string): MinkubeError {
  return new MinkubeError('STORAGE_CORRUPT', `kv snapshot: auth: ${problem}`);
}

function isString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

function isMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}
