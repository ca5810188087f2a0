// Token formats, and that only the secret a token was made with matches its stored hash.
import { describe, expect, it } from 'vitest';
import { joinTokenAccessorPattern } from '../../src/lib/patterns.js';
import { caDigest, createClusterCa } from '../../src/security/ca.js';
import { hashSecret, joinTokenAccessor, newApiToken, newJoinToken, parseApiToken, parseJoinToken, secretMatches } from '../../src/security/tokens.js';

describe('API tokens', () => {
  it('look like mk_<16 hex>_<43 base64url> and parse back to their accessor and a secret matching their hash', () => {
    const { token, accessor, secretHash } = newApiToken();
    expect(token).toMatch(/^mk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const parsed = parseApiToken(token)!;
    expect(parsed.accessor).toBe(accessor);
    expect(secretHash).toBe(hashSecret(parsed.secret));
    expect(secretMatches(parsed.secret, secretHash)).toBe(true);
  });

  it('are all different, and one token\'s secret does not match another\'s hash', () => {
    const tokens = Array.from({ length: 200 }, () => newApiToken());
    expect(new Set(tokens.map((t) => t.accessor)).size).toBe(200);
    expect(new Set(tokens.map((t) => t.token)).size).toBe(200);
    expect(secretMatches(parseApiToken(tokens[0]!.token)!.secret, tokens[1]!.secretHash)).toBe(false);
  });

  it('a secret that matched once still matches only its own hash (the cache of matched secrets is keyed by both)', () => {
    const [a, b] = [newApiToken(), newApiToken()];
    const secretA = parseApiToken(a.token)!.secret;
    expect(secretMatches(secretA, a.secretHash)).toBe(true);
    expect(secretMatches(secretA, a.secretHash)).toBe(true);
    expect(secretMatches(secretA, b.secretHash)).toBe(false);
    expect(secretMatches(secretA, 'not a hash')).toBe(false);
    // Past the cache's bound it starts again, and still answers the same.
    for (let i = 0; i < 1100; i++) {
      const t = newApiToken();
      expect(secretMatches(parseApiToken(t.token)!.secret, t.secretHash)).toBe(true);
    }
    expect(secretMatches(secretA, a.secretHash)).toBe(true);
    expect(secretMatches(parseApiToken(b.token)!.secret, a.secretHash)).toBe(false);
  });

  it('parse a secret that contains _ or - (base64url) at any place', () => {
    const token = `mk_0123456789abcdef_${'_-'.repeat(21)}A`;
    expect(parseApiToken(token)).toEqual({ accessor: '0123456789abcdef', secret: `${'_-'.repeat(21)}A` });
  });

  it.each([
    ['', 'empty'],
    ['mk_0123456789ABCDEF_' + 'a'.repeat(43), 'upper-case accessor'],
    ['mk_0123456789abcde_' + 'a'.repeat(43), 'short accessor'],
    ['mk_0123456789abcdef_' + 'a'.repeat(42), 'short secret'],
    ['mk_0123456789abcdef_' + 'a'.repeat(44), 'long secret'],
    ['mk_0123456789abcdef_' + 'a'.repeat(42) + '=', 'padding'],
    ['Bearer mk_0123456789abcdef_' + 'a'.repeat(43), 'with a scheme'],
    ['mk_0123456789abcdef_' + 'a'.repeat(43) + '\n', 'trailing newline'],
  ])('refuse %j (%s)', (s) => {
    expect(parseApiToken(s)).toBeNull();
  });

  it('refuse a malformed stored hash instead of throwing', () => {
    expect(secretMatches('x', 'not-a-hash')).toBe(false);
    expect(secretMatches('x', hashSecret('x').toUpperCase())).toBe(false);
  });
});

describe('join tokens', () => {
  it('carry the CA digest and a secret whose hash is returned', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { token, secretHash } = newJoinToken(ca.certPem);
    expect(token).toMatch(/^MKTKN-1-[0-9a-f]{64}-[A-Za-z0-9_-]{43}$/);
    const parsed = parseJoinToken(token)!;
    expect(parsed.caDigest).toBe(caDigest(ca.certPem));
    expect(secretMatches(parsed.secret, secretHash)).toBe(true);
    expect(parseJoinToken(token.replace('MKTKN-1', 'MKTKN-2'))).toBeNull();
    expect(parseJoinToken(newApiToken().token)).toBeNull();
  });
});

describe('join token accessors', () => {
  it('are join-<16 hex>, the same for the same hash, different for different ones, and hold no part of the hash', () => {
    const hashes = Array.from({ length: 200 }, (_, i) => hashSecret(`secret-${i}`));
    const accessors = hashes.map(joinTokenAccessor);
    for (const a of accessors) expect(a).toMatch(new RegExp(joinTokenAccessorPattern));
    expect(new Set(accessors).size).toBe(200);
    expect(joinTokenAccessor(hashes[0]!)).toBe(accessors[0]);
    accessors.forEach((a, i) => expect(hashes[i]).not.toContain(a.slice('join-'.length)));
  });
});
