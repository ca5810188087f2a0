// Short-lived browser sessions: a JWT (HS256) naming the API token it was made from, so revoking the token ends
// its sessions too (the auth plugin looks the accessor up on every request).
import { errors, jwtVerify, SignJWT } from 'jose';
import { limits } from '../lib/limits.js';

const issuer = 'minkube';
const algorithm = 'HS256';
/** HS256 wants a key at least as long as its hash. */
export const sessionKeyBytesMin = 32;

export interface SessionClaims {
  accessor: string;
  role: string;
}

function assertKey(keyBytes: Uint8Array): void {
  if (keyBytes.byteLength < sessionKeyBytesMin) throw new RangeError(`a session key has at least ${sessionKeyBytesMin} bytes`);
}

export async function signSession(claims: SessionClaims, keyBytes: Uint8Array, ttlS: number = limits.sessionTtlSDefault, now: Date = new Date()): Promise<string> {
  assertKey(keyBytes);
  const nowS = Math.floor(now.getTime() / 1000);
  return new SignJWT({ role: claims.role })
    .setProtectedHeader({ alg: algorithm, typ: 'JWT' })
    .setIssuer(issuer)
    .setSubject(claims.accessor)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + ttlS)
    .sign(keyBytes);
}

/** The session's claims, or null when it is malformed, signed with another key, expired or not ours. */
export async function verifySession(
  jwt: string,
  keyBytes: Uint8Array,
  now: Date = new Date(),
): Promise<{ accessor: string; role: string; expMs: number } | null> {
  assertKey(keyBytes);
  try {
    const { payload } = await jwtVerify(jwt, keyBytes, { issuer, algorithms: [algorithm], currentDate: now, requiredClaims: ['exp', 'sub'] });
    if (typeof payload.sub !== 'string' || typeof payload.role !== 'string' || payload.exp === undefined) return null;
    return { accessor: payload.sub, role: payload.role, expMs: payload.exp * 1000 };
  } catch (err) {
    if (err instanceof errors.JOSEError) return null;
    throw err;
  }
}
