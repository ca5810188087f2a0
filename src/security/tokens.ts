// API tokens for clients (mk_<accessor>_<secret>) and join tokens for new nodes (MKTKN-1-<CA digest>-<secret>).
// Only a hash of a secret is ever stored; the accessor names a token in lists, logs and revocations (a join token's
// is derived from its secret's hash: join-<16 hex>).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { caDigest } from './ca.js';

const secretBytes = 32;
const apiTokenPattern = /^mk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const joinTokenPattern = /^MKTKN-1-([0-9a-f]{64})-([A-Za-z0-9_-]{43})$/;
const hashPattern = /^[0-9a-f]{64}$/;

function newSecret(): string {
  return randomBytes(secretBytes).toString('base64url');
}

/**
 * sha256 hex of a secret. A fast hash is right here: the secret is 256 random bits, so there is nothing to guess
 * and no dictionary to slow down (a password hash such as scrypt would only cost every request its time).
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * Secrets lately found to match their hash: a client sends its token with every request, and hashing it each time
 * was ~2.5% of a busy leader's time (bench/kv-go.ts, TLS). Only secrets that matched are kept, so a stranger's
 * guesses cannot fill it; a revoked token is refused before this is asked (its record is gone).
 */
const matchedSecrets = new Map<string, string>();
const matchedSecretsMax = 1024;

/** Compares in constant time, so the time a refusal takes says nothing about how much of the hash matched. */
export function secretMatches(secret: string, hash: string): boolean {
  if (matchedSecrets.get(secret) === hash) return true;
  if (!hashPattern.test(hash)) return false;
  const matches = timingSafeEqual(Buffer.from(hashSecret(secret), 'hex'), Buffer.from(hash, 'hex'));
  if (matches) {
    if (matchedSecrets.size >= matchedSecretsMax) matchedSecrets.clear();
    matchedSecrets.set(secret, hash);
  }
  return matches;
}

export function newApiToken(): { token: string; accessor: string; secretHash: string } {
  const accessor = randomBytes(8).toString('hex');
  const secret = newSecret();
  return { token: `mk_${accessor}_${secret}`, accessor, secretHash: hashSecret(secret) };
}

export function parseApiToken(s: string): { accessor: string; secret: string } | null {
  const m = apiTokenPattern.exec(s);
  return m === null ? null : { accessor: m[1]!, secret: m[2]! };
}

/** Like Swarm's SWMTKN-1-<digest>-<secret>: the digest lets a joining node pin the CA before it trusts the manager. */
export function newJoinToken(caCertPem: string): { token: string; secretHash: string; caDigest: string } {
  const secret = newSecret();
  const digest = caDigest(caCertPem);
  return { token: `MKTKN-1-${digest}-${secret}`, secretHash: hashSecret(secret), caDigest: digest };
}

export function parseJoinToken(s: string): { caDigest: string; secret: string } | null {
  const m = joinTokenPattern.exec(s);
  return m === null ? null : { caDigest: m[1]!, secret: m[2]! };
}


/**
 * What names a join token in lists, revocations and the audit trail: a hash of its secret's hash, so it tells nothing
 * of the secret or of the stored hash, and is the same on every manager (and for a client holding the whole token).
 */
export function joinTokenAccessor(secretHash: string): string {
  return `join-${createHash('sha256').update(`minkube join token accessor:${secretHash}`, 'utf8').digest('hex').slice(0, 16)}`;
}
