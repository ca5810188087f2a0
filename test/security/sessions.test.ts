// Browser sessions: accepted with their key until they expire, refused with any other key or when tampered with.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signSession, verifySession } from '../../src/security/sessions.js';

const key = randomBytes(32);
const claims = { accessor: '0123456789abcdef', role: 'viewer' };

describe('sessions', () => {
  it('verify with their key and give back the accessor, the role and the expiry', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const jwt = await signSession(claims, key, 900, now);
    expect(await verifySession(jwt, key, now)).toEqual({ ...claims, expMs: now.getTime() + 900_000 });
  });

  it('expire after their time to live', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const jwt = await signSession(claims, key, 60, now);
    expect(await verifySession(jwt, key, new Date(now.getTime() + 59_000))).not.toBeNull();
    expect(await verifySession(jwt, key, new Date(now.getTime() + 61_000))).toBeNull();
  });

  it('are refused with another key, when tampered with, or when they are not JWTs', async () => {
    const jwt = await signSession(claims, key);
    expect(await verifySession(jwt, randomBytes(32))).toBeNull();
    const [h, p, s] = jwt.split('.') as [string, string, string];
    const admin = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), role: 'admin' })).toString('base64url');
    expect(await verifySession(`${h}.${admin}.${s}`, key)).toBeNull();
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    expect(await verifySession(`${none}.${p}.`, key)).toBeNull();
    expect(await verifySession('mk_0123456789abcdef_x', key)).toBeNull();
  });

  it('need a key of at least 32 bytes', async () => {
    await expect(signSession(claims, randomBytes(16))).rejects.toThrow(/32 bytes/);
  });
});
