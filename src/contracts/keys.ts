// Which keys the kv API accepts. Keys travel unescaped in URL paths (/v1/kv/tasks/t1), so the alphabet is the URL's
// unreserved characters plus '/', and '.' or '..' segments are refused because URL clients would collapse them.
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';

const keyAlphabet = /^[A-Za-z0-9._~/-]+$/;
const isDotSegment = (s: string): boolean => s === '.' || s === '..';

/** The problem with a key, or null if it is valid. */
export function keyProblem(key: string): string | null {
  if (key.length === 0) return 'the key is empty';
  // The alphabet is ASCII, so after this check length in characters is length in bytes.
  if (!keyAlphabet.test(key)) return `the key ${JSON.stringify(key)} has characters outside [A-Za-z0-9._~/-]`;
  if (key.length > limits.kvKeyBytesMax) return `the key is ${key.length} bytes; at most ${limits.kvKeyBytesMax} are allowed`;
  if (key.split('/').some(isDotSegment)) return `the key ${JSON.stringify(key)} has a "." or ".." segment`;
  return null;
}

/**
 * The problem with a key prefix (a token's, a policy rule's), or null when some valid key starts with it: key
 * characters, and no "." or ".." segment before its last '/'. Its last segment may still grow: "." begins ".env".
 */
export function keyPrefixProblem(prefix: string): string | null {
  if (prefix.length === 0) return 'the key prefix is empty';
  if (!keyAlphabet.test(prefix)) return `the key prefix ${JSON.stringify(prefix)} has characters outside [A-Za-z0-9._~/-]`;
  if (prefix.length > limits.kvKeyBytesMax) return `the key prefix is ${prefix.length} bytes; a key has at most ${limits.kvKeyBytesMax}`;
  if (prefix.split('/').slice(0, -1).some(isDotSegment)) {
    return `the key prefix ${JSON.stringify(prefix)} has a "." or ".." segment, which no key has: no key starts with it`;
  }
  return null;
}

export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== null) throw new MinkubeError('INVALID_KEY', problem);
}

/** The URL path of a key: each segment percent-encoded, so even an invalid key reaches the kv route (and its 400). */
export function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
