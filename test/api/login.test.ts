// POST /v1/auth/login: a session made from an API token says when it ends, and never ends after its token.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { TokenRecord } from '../../src/api/auth.js';
import { buildBaseApp } from '../../src/api/http.js';
import { loginRoutes } from '../../src/api/routes/login.js';
import { verifySession } from '../../src/security/sessions.js';
import { newApiToken } from '../../src/security/tokens.js';

const tokens = new Map<string, TokenRecord>();
const sessionKey = randomBytes(32);
const nowMs = Date.parse('2030-01-01T00:00:00Z');
const app = buildBaseApp({});
void app.register(loginRoutes, { resolveToken: (a) => tokens.get(a) ?? null, sessionKey: () => sessionKey, nowMs: () => nowMs });
afterAll(() => app.close());

function mint(extra: Partial<TokenRecord> = {}): string {
  const { token, accessor, secretHash } = newApiToken();
  tokens.set(accessor, { role: 'viewer', secretHash, ...extra });
  return token;
}

async function login(token: string): Promise<{ session: string; expiresAt: string }> {
  const res = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { token } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ session: string; expiresAt: string }>();
}

describe('a session from POST /v1/auth/login', () => {
  it('lasts 15 minutes from a token that does not expire sooner', async () => {
    const { expiresAt } = await login(mint());
    expect(expiresAt).toBe('2030-01-01T00:15:00.000Z');
  });

  it('ends with its token when that expires sooner, and says so (it said 15 minutes: outside tester)', async () => {
    const tokenEndsMs = nowMs + 20_500;
    const { session, expiresAt } = await login(mint({ expiresAtMs: tokenEndsMs }));
    expect(expiresAt).toBe(new Date(tokenEndsMs).toISOString());
    // The JWT's own expiry is in whole seconds: the token's, rounded up.
    expect((await verifySession(session, sessionKey, new Date(nowMs)))?.expMs).toBe(nowMs + 21_000);
  });
});
