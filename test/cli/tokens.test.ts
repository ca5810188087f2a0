// `minkube token create|ls|revoke` as child processes against a manager app over a fake AuthService: the token alone
// on stdout (for $(...)), --json, the table, join tokens, --policy FILE, failures as "error: CODE: message" (exit 1),
// usage errors (exit 2) for a bad duration, neither or both of --role and --policy, or an unreadable policy file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type {
  ApiTokenView, AuthService, CreatedApiToken, CreatedJoinToken, JoinTokenView, TokenList, TokenLookup, TokenRequest,
} from '../../src/contracts/services.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { hashSecret, joinTokenAccessor } from '../../src/security/tokens.js';
import { FakeManagerService } from '../api/fake-service.js';
import { runCli, type CliResult } from '../support/cli.js';

class FakeAuthService implements AuthService {
  tokens: ApiTokenView[] = [];
  joinTokens: JoinTokenView[] = [];
  calls: { method: string; args: unknown[] }[] = [];

  async createToken(req: TokenRequest): Promise<CreatedApiToken> {
    this.calls.push({ method: 'createToken', args: [req] });
    const accessor = (this.tokens.length + 1).toString(16).padStart(16, '0');
    const view: ApiTokenView = {
      accessor, name: req.name ?? `${req.role}-${accessor}`, role: req.role, ...(req.keyPrefix === undefined ? {} : { keyPrefix: req.keyPrefix }),
      ...(req.policy === undefined ? {} : { policy: req.policy }), createdAt: '2030-01-01T00:00:00.000Z', expiresAt: req.ttlS === undefined ? null : new Date(Date.parse('2030-01-01') + req.ttlS * 1000).toISOString(),
    };
    this.tokens.push(view);
    return { token: `mk_${accessor}_${'s'.repeat(43)}`, ...view };
  }

  async listTokens(): Promise<TokenList> {
    return { items: this.tokens, joinTokens: this.joinTokens, nextCursor: null };
  }

  async revokeToken(ref: string): Promise<{ accessor: string; revoked: true }> {
    this.calls.push({ method: 'revokeToken', args: [ref] });
    // As the manager does: an accessor in any case is the accessor.
    const accessor = /^(join-)?[0-9a-f]{16}$/i.test(ref) ? ref.toLowerCase() : ref;
    const before = this.tokens.length + this.joinTokens.length;
    this.tokens = this.tokens.filter((t) => t.accessor !== accessor);
    this.joinTokens = this.joinTokens.filter((j) => j.accessor !== accessor);
    if (this.tokens.length + this.joinTokens.length === before) throw new MinkubeError('TOKEN_NOT_FOUND', `no token with accessor ${accessor}`);
    return { accessor, revoked: true };
  }

  async createJoinToken(role: 'manager' | 'worker', ttlS: number | undefined): Promise<CreatedJoinToken> {
    this.calls.push({ method: 'createJoinToken', args: [role, ttlS] });
    return { token: `MKTKN-1-${'d'.repeat(64)}-${'s'.repeat(43)}`, accessor: joinTokenAccessor(hashSecret('s'.repeat(43))), role, expiresAt: '2030-01-02T00:00:00.000Z' };
  }

  lookupToken(): TokenLookup | undefined {
    return undefined;
  }

  sessionKey(): Uint8Array | null {
    return null;
  }
}

const auth = new FakeAuthService();
const app: FastifyInstance = buildManagerApp({ service: new FakeManagerService(), auth });
let api: string;

function cli(args: string[]): Promise<CliResult> {
  return runCli(['--api', api, ...args]);
}

beforeAll(async () => {
  api = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => app.close());
const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'minkube-policy-'));
  tempDirs.push(d);
  return d;
}
beforeEach(() => {
  auth.tokens = [];
  auth.joinTokens = [];
  auth.calls = [];
});

describe('minkube token create', () => {
  it('prints the token alone; --json prints the whole answer; the flags reach the API', async () => {
    const plain = await cli(['token', 'create', '--role', 'developer', '--name', 'ci', '--ttl', '90m', '--key-prefix', 'apps/ci/']);
    expect(plain).toEqual({ code: 0, stdout: `mk_${'0'.repeat(15)}1_${'s'.repeat(43)}\n`, stderr: '' });
    expect(auth.calls[0]!.args).toEqual([{ name: 'ci', role: 'developer', keyPrefix: 'apps/ci/', ttlS: 5400 }]);
    const json = await cli(['--json', 'token', 'create', '--role', 'viewer']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ accessor: '0000000000000002', name: 'viewer-0000000000000002', role: 'viewer', expiresAt: null });
  });

  it('--role worker prints a join token (without --ttl none is sent: the service gives 24 h, or less to end with the token making it)', async () => {
    const [join, short] = await Promise.all([cli(['token', 'create', '--role', 'worker']), cli(['token', 'create', '--role', 'manager', '--ttl', '3600s'])]);
    expect(join.stdout).toMatch(/^MKTKN-1-d{64}-s{43}\n$/);
    expect(short.code).toBe(0);
    expect(auth.calls.map((c) => c.args).sort()).toEqual([['manager', 3600], ['worker', undefined]]);
  });

  it('a bad duration or a missing role is a usage error (exit 2) that says what is expected', async () => {
    const [badTtl, noRole] = await Promise.all([
      cli(['token', 'create', '--role', 'viewer', '--ttl', '5x']),
      cli(['token', 'create', '--name', 'x']),
    ]);
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr).toMatch(/--ttl.*expected a duration such as 3600s, 90m, 24h or 30d/);
    expect(noRole.code).toBe(2);
    expect(noRole.stderr).toContain('give exactly one of --role <role> and --policy <file>');
    expect(auth.calls).toEqual([]);
  });

  it('--name with a join token (--role manager|worker) is a usage error before any request, and help says --name is for API tokens (outside tester: the server refused it, exit 1)', async () => {
    const [worker, manager, help] = await Promise.all([
      cli(['token', 'create', '--role', 'worker', '--name', 'jw']),
      cli(['token', 'create', '--role', 'manager', '--name', 'jm']),
      cli(['token', 'create', '--help']),
    ]);
    expect(worker).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/^error: --name is for API tokens: a join token \(--role worker\) has no name; /) as string });
    expect(manager).toMatchObject({ code: 2, stderr: expect.stringContaining('a join token (--role manager) has no name') as string });
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('API tokens only: a join token (--role manager|worker) has none');
    expect(auth.calls).toEqual([]);
  });

  it('--policy FILE sends the policy instead of a role; ls shows its name in ROLE', async () => {
    const dir = tempDir();
    const policy = {
      name: 'team-a',
      rules: [
        { effect: 'allow', resource: 'tasks', verbs: ['read', 'write'] },
        { effect: 'deny', resource: 'kv', verbs: ['write'], keyPrefix: 'team-a/secret/' },
      ],
    };
    const file = join(dir, 'team-a.json');
    writeFileSync(file, JSON.stringify(policy));
    const r = await cli(['token', 'create', '--policy', file, '--name', 'ci-a']);
    expect(r).toEqual({ code: 0, stdout: `mk_${'0'.repeat(15)}1_${'s'.repeat(43)}\n`, stderr: '' });
    expect(auth.calls[0]!.args).toEqual([{ name: 'ci-a', role: 'team-a', policy }]);
    const ls = await cli(['token', 'ls']);
    expect(ls.stdout.trimEnd().split('\n')[1]).toMatch(/^0000000000000001\s+ci-a\s+team-a\s+2030-01-01T00:00:00\.000Z\s+never$/);
  });

  it('both --role and --policy, --key-prefix with --policy, or a policy file that is missing or not JSON are usage errors', async () => {
    const dir = tempDir();
    const good = join(dir, 'p.json');
    const notJson = join(dir, 'bad.json');
    writeFileSync(good, JSON.stringify({ name: 'p', rules: [{ effect: 'allow', resource: 'tasks', verbs: ['read'] }] }));
    writeFileSync(notJson, '{ name: p');
    const [both, withPrefix, missing, bad] = await Promise.all([
      cli(['token', 'create', '--role', 'viewer', '--policy', good]),
      cli(['token', 'create', '--policy', good, '--key-prefix', 'apps/']),
      cli(['token', 'create', '--policy', join(dir, 'nope.json')]),
      cli(['token', 'create', '--policy', notJson]),
    ]);
    expect(both).toMatchObject({ code: 2, stderr: expect.stringContaining('exactly one of --role <role> and --policy <file>') as string });
    expect(withPrefix).toMatchObject({ code: 2, stderr: expect.stringContaining('--key-prefix is not taken with --policy') as string });
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('cannot read') as string });
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('is not JSON') as string });
    expect(auth.calls).toEqual([]);
  });

  it("the server's refusal is printed as error: CODE: message (exit 1)", async () => {
    const r = await cli(['token', 'create', '--role', 'root']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: INVALID_BODY: body\.role: /);
  });
});

describe('minkube token ls and revoke', () => {
  it('lists a table, --json the answer; revoke removes one and names it; an unknown accessor is TOKEN_NOT_FOUND', async () => {
    await auth.createToken({ name: 'ci', role: 'developer', keyPrefix: 'apps/' });
    await auth.createToken({ name: 'admin', role: 'admin', ttlS: 86_400 });
    // As a cluster may still hold one made before admins were refused a prefix: an admin for all that.
    await auth.createToken({ name: 'old', role: 'admin', keyPrefix: 'team-a/' });
    const [plain, json] = await Promise.all([cli(['token', 'ls']), cli(['--json', 'token', 'list'])]);
    expect(plain.code).toBe(0);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ACCESSOR\s+NAME\s+ROLE\s+CREATED\s+EXPIRES$/);
    expect(lines[1]).toMatch(/^0000000000000001\s+ci\s+developer \(apps\/\)\s+2030-01-01T00:00:00\.000Z\s+never$/);
    expect(lines[2]).toMatch(/^0000000000000002\s+admin\s+admin\s+2030-01-01T00:00:00\.000Z\s+2030-01-02T00:00:00\.000Z$/);
    expect(lines[3]).toMatch(/^0000000000000003\s+old\s+admin \(team-a\/ ignored\)\s+2030-01-01T00:00:00\.000Z\s+never$/);
    expect(JSON.parse(json.stdout)).toEqual({ items: auth.tokens, joinTokens: [], nextCursor: null });

    const revoked = await cli(['token', 'revoke', '0000000000000001']);
    expect(revoked).toEqual({ code: 0, stdout: 'revoked 0000000000000001\n', stderr: '' });
    expect(auth.tokens.map((t) => t.name)).toEqual(['admin', 'old']);
    const again = await cli(['token', 'revoke', '0000000000000001']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('error: TOKEN_NOT_FOUND: no token with accessor 0000000000000001\n');
  });

  it('revoke also takes a token\'s name, or the whole token (whose secret is not sent); an unknown name is TOKEN_NOT_FOUND', async () => {
    const byName = await auth.createToken({ name: 'ci-deploy', role: 'developer' });
    const whole = await auth.createToken({ role: 'viewer' });
    expect(await cli(['token', 'revoke', 'ci-deploy'])).toEqual({ code: 0, stdout: `revoked ${byName.accessor}\n`, stderr: '' });
    expect(await cli(['token', 'revoke', whole.token])).toEqual({ code: 0, stdout: `revoked ${whole.accessor}\n`, stderr: '' });
    expect(auth.tokens.map((t) => t.accessor)).not.toContain(byName.accessor);
    expect(auth.tokens.map((t) => t.accessor)).not.toContain(whole.accessor);
    const unknown = await cli(['token', 'revoke', 'no-such-name']);
    expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'error: TOKEN_NOT_FOUND: no token named "no-such-name" (give its name or accessor: minkube token ls shows both)\n' });
  });

  it('ls marks a token, API or join, whose expiry has passed (expired) (outside tester: nothing marked it)', async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    auth.tokens = [
      { accessor: '0000000000000001', name: 'gone', role: 'viewer', createdAt: '2020-01-01T00:00:00.000Z', expiresAt: past },
      { accessor: '0000000000000002', name: 'live', role: 'viewer', createdAt: '2020-01-01T00:00:00.000Z', expiresAt: '2999-01-01T00:00:00.000Z' },
    ];
    auth.joinTokens = [{ accessor: 'join-00000000000000aa', role: 'worker', createdAt: '2020-01-01T00:00:00.000Z', expiresAt: past }];
    const lines = (await cli(['token', 'ls'])).stdout.trimEnd().split('\n');
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^0000000000000001\\s+gone\\s+viewer\\s+\\S+\\s+${past.replaceAll('.', '\\.')} \\(expired\\)$`)),
      expect.stringMatching(/^0000000000000002\s+live\s+viewer\s+\S+\s+2999-01-01T00:00:00\.000Z$/),
      expect.stringMatching(/^join-00000000000000aa\s+-\s+worker\s+\S+\s+\S+ \(expired\)$/),
    ]);
  });

  it('ls lists join tokens after the API tokens (no name, role manager or worker); revoke takes a join accessor or the whole join token, sending only the accessor', async () => {
    const secret = 'j'.repeat(43);
    const accessor = joinTokenAccessor(hashSecret(secret));
    await auth.createToken({ name: 'ci', role: 'viewer' });
    auth.joinTokens = [
      { accessor, role: 'manager', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-01T00:10:00.000Z' },
      { accessor: 'join-00000000000000aa', role: 'worker', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-02T00:00:00.000Z' },
    ];
    const lines = (await cli(['token', 'ls'])).stdout.trimEnd().split('\n');
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^0000000000000001\s+ci\s+viewer\s/),
      expect.stringMatching(new RegExp(`^${accessor}\\s+-\\s+manager\\s+2030-01-01T00:00:00\\.000Z\\s+2030-01-01T00:10:00\\.000Z$`)),
      expect.stringMatching(/^join-00000000000000aa\s+-\s+worker\s/),
    ]);
    expect(lines.join('\n')).not.toContain(secret);

    expect(await cli(['token', 'revoke', `MKTKN-1-${'d'.repeat(64)}-${secret}`])).toEqual({ code: 0, stdout: `revoked ${accessor}\n`, stderr: '' });
    expect(await cli(['token', 'revoke', 'join-00000000000000aa'])).toEqual({ code: 0, stdout: 'revoked join-00000000000000aa\n', stderr: '' });
    expect(auth.calls.filter((c) => c.method === 'revokeToken').map((c) => c.args)).toEqual([[accessor], ['join-00000000000000aa']]);
    expect(auth.joinTokens).toEqual([]);
  });

  it('revoke takes an accessor in upper case as an accessor (accessors are lower-case hex), not as a name', async () => {
    auth.tokens = [{ accessor: 'a39cdcd3ab9d0567', name: 'ci', role: 'viewer', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: null }];
    auth.joinTokens = [{ accessor: 'join-00000000000000ab', role: 'worker', createdAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-02T00:00:00.000Z' }];
    expect(await cli(['token', 'revoke', 'A39CDCD3AB9D0567'])).toEqual({ code: 0, stdout: 'revoked a39cdcd3ab9d0567\n', stderr: '' });
    expect(await cli(['token', 'revoke', 'JOIN-00000000000000AB'])).toEqual({ code: 0, stdout: 'revoked join-00000000000000ab\n', stderr: '' });
    expect(auth.tokens).toEqual([]);
    expect(auth.joinTokens).toEqual([]);
  });

  it('revoke refuses a cut or mistyped whole token (exit 1, INVALID_PARAM saying its shape, echoing none of it), sending nothing', async () => {
    await auth.createToken({ name: 'ci', role: 'viewer' });
    const cases: [string, string][] = [
      ['MKTKN-1-abc-def', 'not a whole join token (MKTKN-1-<64 hex digest>-<secret>)'],
      [`MKTKN-1-${'d'.repeat(64)}`, 'not a whole join token (MKTKN-1-<64 hex digest>-<secret>)'],
      ['mk_0123_hunter2hunter2', 'not a whole API token (mk_<16 hex accessor>_<secret>)'],
    ];
    for (const [ref, says] of cases) {
      const res = await cli(['token', 'revoke', ref]);
      expect(res.code, ref).toBe(1);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(new RegExp(`^error: INVALID_PARAM: ${says.replace(/[()<>]/g, '\\$&')}: `));
      expect(res.stderr).not.toContain(ref.slice(-5));
    }
    expect(auth.calls.filter((c) => c.method === 'revokeToken')).toEqual([]);
    expect(auth.tokens.map((t) => t.name)).toEqual(['ci']);
  });
});

describe('minkube token on an insecure cluster (outside tester: revoke said TOKEN_NOT_FOUND)', () => {
  it('create, ls and revoke (by accessor, by name) all say the cluster is insecure and has no tokens, exit 1', async () => {
    const insecure = buildManagerApp({ service: new FakeManagerService(), auth, insecure: true });
    try {
      const url = await insecure.listen({ host: '127.0.0.1', port: 0 });
      const runs = await Promise.all([
        ['token', 'create', '--role', 'viewer'], ['token', 'ls'], ['token', 'revoke', 'abc'], ['token', 'revoke', '0123456789abcdef'],
      ].map((args) => runCli(['--api', url, ...args])));
      for (const r of runs) {
        expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: INVALID_BODY: this cluster is insecure and has no tokens: every route answers without one\n' });
      }
      expect(auth.calls).toEqual([]);
    } finally {
      await insecure.close();
    }
  });
});
