// The `minkube` command run as a child process against fake managers (manager apps over a fake service).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { insecureCredentials, writeCredentials } from '../../src/client/credentials.js';
import { createClusterCa } from '../../src/security/ca.js';
import { limits } from '../../src/lib/limits.js';
import { commandVersion } from '../../src/contracts/command-version.js';
import { defaultView, FakeManagerService } from '../api/fake-service.js';
import { freePort, minkubeBin } from '../support/cluster.js';
import { runCli, type CliResult } from '../support/cli.js';

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, env);
}

/** No stack trace, and exactly one "error: CODE: message" line. */
function expectCleanError(r: CliResult, code: string, message: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).toMatch(new RegExp(`^error: ${code}: `));
  expect(r.stderr).toMatch(message);
}

const m1 = new FakeManagerService();
const m2 = new FakeManagerService();
const apps: FastifyInstance[] = [buildManagerApp({ service: m1 }), buildManagerApp({ service: m2 })];
let api: string;
let downPort: number;
let dir: string;

beforeAll(async () => {
  const urls = await Promise.all(apps.map((a) => a.listen({ host: '127.0.0.1', port: 0 })));
  api = urls[0]!;
  downPort = await freePort();
  const members = [
    { id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: urls[0]!.replace('http://', ''), voter: true, reachable: true },
    { id: 'm2', raftAddress: '127.0.0.1:7002', apiAddress: urls[1]!.replace('http://', ''), voter: true, reachable: true },
    { id: 'm3', raftAddress: '127.0.0.1:7003', apiAddress: `127.0.0.1:${downPort}`, voter: true, reachable: false },
  ];
  m1.view = defaultView({ id: 'm1', role: 'leader', term: 4, leaderId: 'm1', commitIndex: 12, appliedIndex: 12, members, storage: 'ok' });
  m2.view = defaultView({ id: 'm2', role: 'follower', term: 4, leaderId: 'm1', commitIndex: 12, appliedIndex: 11, members, storage: 'ok' });
  dir = mkdtempSync(join(tmpdir(), 'minkube-cli-'));
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe.concurrent('minkube status', () => {
  it("asks the members through --api, whatever another cluster's credentials file names; a secure one's token never goes to an http:// --api", async () => {
    // A secure cluster's credentials (CA, token) in MINKUBE_CONFIG; --api names this insecure one over http: its token
    // would cross the wire in clear, so nothing is sent.
    const ca = await createClusterCa({ clusterId: 'other' });
    const credentials = join(dir, 'other-credentials.json');
    await writeCredentials({ clusterId: 'other', apis: ['https://127.0.0.1:1'], ca: ca.certPem, token: 'mk_0123456789abcdef_secret' }, credentials);
    const refused = await cli(['--api', api, '--json', 'status'], { MINKUBE_CONFIG: credentials });
    expectCleanError(refused, 'HTTPS_REQUIRED', new RegExp(`^error: HTTPS_REQUIRED: ${api} is plain HTTP, and the CLI sends its token \\(the credentials file ${credentials}\\) only over TLS: nothing was sent\\.`));
    // Another insecure cluster's file (no token): --api is asked, not the managers the file names.
    const insecure = join(dir, 'other-insecure-credentials.json');
    await writeCredentials(insecureCredentials(['http://127.0.0.1:1']), insecure);
    const r = await cli(['--api', api, '--json', 'status'], { MINKUBE_CONFIG: insecure });
    expect(r.stderr).toBe('');
    const members = (JSON.parse(r.stdout) as { members: { id: string; reachable: boolean }[] }).members;
    expect(members.map((m) => [m.id, m.reachable])).toEqual([['m1', true], ['m2', true], ['m3', false]]);
  });

  it('prints a row per member, the leader marked, an unanswering member as down', async () => {
    const r = await cli(['--api', api, 'status']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\s+ID\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\s+STORAGE\s+REACHABLE\s+API$/);
    expect(lines[1]).toMatch(/^\*\s+m1\s+leader\s+4\s+12\s+12\s+ok\s+yes\s+127\.0\.0\.1:\d+$/);
    expect(lines[2]).toMatch(/^\s+m2\s+follower\s+4\s+12\s+11\s+ok\s+yes\s/);
    expect(lines[3]).toMatch(new RegExp(`^\\s+m3\\s+down\\s+-\\s+-\\s+-\\s+-\\s+no\\s+127\\.0\\.0\\.1:${downPort}$`));
    expect(lines[4]).toBe('leader: m1 (term 4)');
  });

  it('--json prints the same as data', async () => {
    const r = await cli(['--json', '--api', api, 'status']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { leaderId: string; members: { id: string; reachable: boolean; role: string | null }[] };
    expect(out.leaderId).toBe('m1');
    expect(out.members.map((m) => [m.id, m.reachable, m.role])).toEqual([
      ['m1', true, 'leader'],
      ['m2', true, 'follower'],
      ['m3', false, null],
    ]);
  });
});

describe('minkube status with a manager recovering its storage', () => {
  it('shows its progress towards what it had acknowledged, and why', async () => {
    const saved = m2.view;
    m2.view = { ...saved, commitIndex: 11, storage: 'recovering', storageReason: 'its log ends at index 7 (term 4), before index 20 (term 4) it had acknowledged', storageTargetIndex: 20 };
    try {
      const r = await cli(['--api', api, 'status']);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[2]).toMatch(/^\s+m2\s+follower\s+4\s+11\s+11\s+recovering 11\/20\s+yes\s/);
      expect(r.stdout).toContain('m2 is recovering its storage: its log ends at index 7 (term 4), before index 20 (term 4) it had acknowledged');
      const json = JSON.parse((await cli(['--json', '--api', api, 'status'])).stdout) as { members: { id: string; storage: string; storageTargetIndex: number }[] };
      expect(json.members.find((m) => m.id === 'm2')).toMatchObject({ storage: 'recovering', storageTargetIndex: 20 });
      // The keys are there for every member, null unless it is recovering.
      expect(json.members.find((m) => m.id !== 'm2' && m.storage === 'ok')).toMatchObject({ storageReason: null, storageTargetIndex: null });
    } finally {
      m2.view = saved;
    }
  });
});

describe('minkube status with a learner', () => {
  it('shows a learner as such', async () => {
    const saved = m1.view;
    const members = saved.members.map((m) => (m.id === 'm2' ? { ...m, voter: false } : m));
    m1.view = { ...saved, members };
    try {
      const r = await cli(['--json', '--api', api, 'status']);
      const out = JSON.parse(r.stdout) as { members: { id: string; voter: boolean; role: string | null }[] };
      expect(out.members.find((m) => m.id === 'm2')).toMatchObject({ voter: false, role: 'learner' });
    } finally {
      m1.view = saved;
    }
  });
});

describe('minkube kv', () => {
  it('put, get (plain and --json, --stale), del with --if-version', async () => {
    const put = await cli(['--api', api, 'kv', 'put', 'config/greeting', 'hello world']);
    expect(put).toEqual({ code: 0, stdout: 'config/greeting: version 1\n', stderr: '' });
    const [get, getJson] = await Promise.all([
      cli(['--api', api, 'kv', 'get', 'config/greeting']),
      cli(['--api', api, '--json', 'kv', 'get', '--stale', 'config/greeting']),
    ]);
    expect(get).toEqual({ code: 0, stdout: 'hello world', stderr: '' });
    expect(JSON.parse(getJson.stdout)).toEqual({ key: 'config/greeting', value: 'hello world', version: 1 });
    expect(m1.calls.filter((c) => c.method === 'kvGet').map((c) => c.args[1]).sort()).toEqual(['linearizable', 'stale']);
    const del = await cli(['--api', api, 'kv', 'del', 'config/greeting', '--if-version', '1']);
    expect(del).toEqual({ code: 0, stdout: 'config/greeting: deleted at version 2\n', stderr: '' });
    expect(m1.calls.at(-1)!.args).toEqual(['config/greeting', 1]);
  });

  it('put without a VALUE takes standard input as it is; past the largest body, PAYLOAD_TOO_LARGE before any request', async () => {
    const put = await runCli(['--api', api, 'kv', 'put', 'config/file'], {}, undefined, 'line 1\nline 2\n');
    expect(put).toMatchObject({ code: 0, stdout: expect.stringMatching(/^config\/file: version \d+\n$/), stderr: '' });
    expect(m1.data.get('config/file')?.value).toBe('line 1\nline 2\n');
    const calls = m1.calls.length;
    const big = await runCli(['--api', api, 'kv', 'put', 'config/big'], {}, undefined, 'x'.repeat(1024 * 1024 + 1));
    expectCleanError(big, 'PAYLOAD_TOO_LARGE', /the value on standard input is over 1048576 bytes, more than a request body may carry .*; nothing was sent/);
    // Bytes that are not UTF-8 would be stored as U+FFFD: refused, nothing sent.
    const binary = await runCli(['--api', api, 'kv', 'put', 'config/bin'], {}, undefined, Buffer.from([0xff, 0xfe, 0x41]));
    expectCleanError(binary, 'INVALID_PARAM', /the value on standard input is not UTF-8 text/);
    expect(m1.calls.length).toBe(calls);
  });

  it('measures the request body as sent: the JSON envelope and escapes count, a body of exactly 1 MiB is sent', async () => {
    const limit = 1024 * 1024;
    const envelope = '{"value":""}'.length;
    const fits = await runCli(['--api', api, 'kv', 'put', 'config/fits'], {}, undefined, 'x'.repeat(limit - envelope));
    expect(fits).toMatchObject({ code: 0, stderr: '' });
    expect(m1.data.get('config/fits')?.value).toHaveLength(limit - envelope);
    const calls = m1.calls.length;
    // The tester's case: 1,048,576 bytes pass the read, but their request does not fit.
    const exact = await runCli(['--api', api, 'kv', 'put', 'config/exact'], {}, undefined, 'x'.repeat(limit));
    expectCleanError(exact, 'PAYLOAD_TOO_LARGE', new RegExp(`the request body for this value would be ${limit + envelope} bytes of JSON \\(escapes included\\), over ${limit}.*; nothing was sent`));
    // A quote is two bytes once escaped: half a MiB of them is over.
    const quotes = await runCli(['--api', api, 'kv', 'put', 'config/quotes'], {}, undefined, '"'.repeat(limit / 2));
    expectCleanError(quotes, 'PAYLOAD_TOO_LARGE', new RegExp(`would be ${limit + envelope} bytes`));
    // --if-version is in the body too.
    const versioned = await runCli(['--api', api, 'kv', 'put', 'config/fits', '--if-version', '1'], {}, undefined, 'x'.repeat(limit - envelope));
    expectCleanError(versioned, 'PAYLOAD_TOO_LARGE', new RegExp(`would be ${limit + '{"value":"","ifVersion":1}'.length - envelope} bytes`));
    expect(m1.calls.length).toBe(calls);
  });

  it("a cluster with a lower api.bodyLimitBytes answers 413 itself, said as the cluster's limit", async () => {
    const small = buildManagerApp({ service: new FakeManagerService(), bodyLimitBytes: 1024 });
    try {
      const url = await small.listen({ host: '127.0.0.1', port: 0 });
      const r = await runCli(['--api', url, 'kv', 'put', 'config/big'], {}, undefined, 'x'.repeat(600_000));
      expectCleanError(r, 'PAYLOAD_TOO_LARGE', /the cluster refused the value: the request body is larger than 1024 bytes, its api\.bodyLimitBytes \(this request body was 600012 bytes of JSON\)/);
    } finally {
      await small.close();
    }
  });

  it('get > f gives back the bytes put < f took, final newline included, however many times the round trip is made', async () => {
    let value = 'x\n';
    for (let i = 0; i < 3; i++) {
      expect(await runCli(['--api', api, 'kv', 'put', 'raw/roundtrip'], {}, undefined, value)).toMatchObject({ code: 0, stderr: '' });
      const got = await cli(['--api', api, 'kv', 'get', 'raw/roundtrip']);
      expect(got).toEqual({ code: 0, stdout: 'x\n', stderr: '' });
      value = got.stdout;
    }
    expect(m1.data.get('raw/roundtrip')?.value).toBe('x\n');
  });

  it('get writes the value exactly as stored to a pipe: CRs, ESC, bidi marks and a literal backslash escape kept apart', async () => {
    const value = 'line 1\r\nline 2\r\n\u001b[31mred\u202e and a\\u000db literal\r\n';
    const put = await runCli(['--api', api, 'kv', 'put', 'raw/crlf'], {}, undefined, value);
    expect(put).toMatchObject({ code: 0, stderr: '' });
    expect(m1.data.get('raw/crlf')?.value).toBe(value);
    expect(await cli(['--api', api, 'kv', 'get', 'raw/crlf'])).toEqual({ code: 0, stdout: value, stderr: '' });
    expect(JSON.parse((await cli(['--api', api, '--json', 'kv', 'get', 'raw/crlf'])).stdout)).toMatchObject({ value });
  });

  it('reads MINKUBE_API when there is no --api', async () => {
    m2.data.set('k', { value: 'from m2', version: 7 });
    const r = await cli(['kv', 'get', 'k'], { MINKUBE_API: apps[1]!.listeningOrigin });
    expect(r).toEqual({ code: 0, stdout: 'from m2', stderr: '' });
  });
});

describe('minkube with several managers to choose from', () => {
  it("moves on from a manager that is down: the credentials file's others, or a list in --api", async () => {
    m2.data.set('k2', { value: 'via m2', version: 8 });
    const credentials = join(dir, 'first-down-credentials.json');
    const down = `http://127.0.0.1:${downPort}`;
    // An insecure cluster's file: plain HTTP, no token (a token is never sent over http://).
    await writeCredentials(insecureCredentials([down, apps[1]!.listeningOrigin]), credentials);
    expect(await cli(['kv', 'get', 'k2'], { MINKUBE_CONFIG: credentials })).toEqual({ code: 0, stdout: 'via m2', stderr: '' });
    const status = await cli(['--json', 'status'], { MINKUBE_CONFIG: credentials });
    // status brings the file's list in step with the members the leader names.
    expect(status.stderr).toMatch(new RegExp(`^the credentials file ${credentials} now names the managers (http://\\S+, )*${apps[1]!.listeningOrigin}`));
    expect((JSON.parse(status.stdout) as { leaderId: string }).leaderId).toBe('m1');
    expect(await cli(['--api', `${down}, ${apps[1]!.listeningOrigin}`, 'kv', 'get', 'k2'])).toEqual({ code: 0, stdout: 'via m2', stderr: '' });
    // One manager named alone is that manager: no other is tried.
    expectCleanError(await cli(['--api', down, 'kv', 'get', 'k2'], { MINKUBE_CONFIG: credentials }), 'UNREACHABLE', /ECONNREFUSED\) \(3 tries over [0-9.]+ s\)$/m);
    const empty = await cli(['--api', ' , ', 'kv', 'get', 'k2']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--api: no manager URL/);
  });
});

describe.concurrent('minkube errors', () => {
  it('an unreachable --api: UNREACHABLE naming the URL, exit 1', async () => {
    const r = await cli(['--api', `http://127.0.0.1:${downPort}`, 'kv', 'get', 'a']);
    expectCleanError(r, 'UNREACHABLE', new RegExp(`cannot reach http://127\\.0\\.0\\.1:${downPort}/v1/kv/a \\(ECONNREFUSED\\)`));
  });

  it('a credentials file whose ca is PEM armour around no certificate: CONFIG_INVALID naming the file and the field, not INTERNAL', async () => {
    const credentials = join(dir, 'broken-ca.json');
    const ca = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    writeFileSync(credentials, JSON.stringify({ clusterId: 'c1', apis: [api], ca, token: 'mk_0123456789abcdef_secret' }));
    const r = await cli(['kv', 'get', 'k1'], { MINKUBE_CONFIG: credentials });
    expectCleanError(r, 'CONFIG_INVALID', new RegExp(`^error: CONFIG_INVALID: the credentials file ${credentials} is invalid: ca: the certificate cannot be read \\(`));
  });

  it('a missing key: KV_KEY_NOT_FOUND, exit 1', async () => {
    expectCleanError(await cli(['--api', api, 'kv', 'get', 'missing']), 'KV_KEY_NOT_FOUND', /no key "missing"/);
  });

  it('a version conflict: KV_VERSION_MISMATCH, exit 1', async () => {
    m1.data.set('cas', { value: 'v', version: 3 });
    expectCleanError(await cli(['--api', api, 'kv', 'put', 'cas', 'w', '--if-version', '0']), 'KV_VERSION_MISMATCH', /version 3/);
  });

  it('an invalid key: INVALID_KEY, exit 1', async () => {
    expectCleanError(await cli(['--api', api, 'kv', 'put', 'a b', 'v']), 'INVALID_KEY', /outside/);
  });

  it('ends quietly, exit 0, when the reader of its output has gone (| head), not with an EPIPE stack trace', async () => {
    const child = spawn(process.execPath, [minkubeBin, '--api', api, 'status'], { env: { ...process.env, MINKUBE_CONFIG: join(dir, 'none.json') }, stdio: ['ignore', 'pipe', 'pipe'] });
    // Closed before the command writes anything: its first write fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('--version prints the package version, the build\'s commit when it knows it, and the command version, exit 0', async () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^${version.replaceAll('.', '\\.')}( \\(commit [0-9a-f]{4,40}\\))?, command version ${commandVersion}\\n$`));
  });

  it('help names a command, its group\'s too; an unknown one is a usage error that says so (outside tester: `help nosuch` printed the whole help, exit 2, no word why)', async () => {
    const [top, group, sub, unknown, unknownSub] = await Promise.all([cli(['help']), cli(['help', 'task']), cli(['task', 'help', 'list']), cli(['help', 'nosuch']), cli(['task', 'help', 'nosuch'])]);
    expect(top).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: minkube \[options\] \[command\][^]*\n {2}help \[command\] +display help for command\n$/) as string });
    expect(group).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: minkube task \[options\] \[command\]/) as string });
    expect(sub).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: minkube task ls\|list \[options\]/) as string });
    expect(unknown).toEqual({ code: 2, stdout: '', stderr: "error: unknown command 'nosuch' (minkube --help lists them)\n(run with --help for usage)\n" });
    expect(unknownSub).toEqual({ code: 2, stdout: '', stderr: "error: unknown command 'nosuch' (minkube task --help lists them)\n(run with --help for usage)\n" });
  });

  it('usage errors exit 2', async () => {
    const [missing, badVersion, unknown] = await Promise.all([
      cli(['kv', 'get']),
      cli(['kv', 'del', 'a', '--if-version', '-1']),
      cli(['frobnicate']),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument 'key'/);
    expect(badVersion.code).toBe(2);
    expect(badVersion.stderr).toMatch(/--if-version/);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    // --api that is not an http(s) URL or host:port, in any entry of its list.
    for (const bad of ['ftp://x', ',', `${api},gopher://y`]) {
      const r = await cli(['--api', bad, 'kv', 'get', 'k']);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/^error: option '--api <url>' argument '.*' is invalid\. (not an http\(s\) URL|--api: no manager URL)/);
    }
    // An empty required argument is bad usage too, said before any request leaves.
    for (const args of [['worker', 'drain', ''], ['task', 'get', ''], ['kv', 'del', '']]) {
      const r = await cli(['--api', api, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: <(id|key)> must not be empty/);
    }
    // MINKUBE_API stands for --api: the same usage error.
    const fromEnv = await cli(['kv', 'get', 'k'], { MINKUBE_API: 'ftp://x' });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/^error: MINKUBE_API=ftp:\/\/x: not an http\(s\) URL: ftp:\/\/x \(expected http:\/\/HOST:PORT, https:\/\/HOST:PORT or HOST:PORT\)\./);
    // An argument a command checks itself (not commander's parsers) is said too, not a silent exit 2.
    const badReplicas = await cli(['--api', api, 'service', 'scale', 'web', 'abc']);
    expect(badReplicas).toEqual({ code: 2, stdout: '', stderr: 'error: <replicas>: expected an integer from 0 to 10000, got "abc".\n(run with --help for usage)\n' });
    // A reservation past what the API takes is refused here, as the service flags are (the bounds of lib/limits.ts).
    const bigCpus = await cli(['--api', api, 'task', 'run', 'img', '--cpus', '2048', '--', 'true']);
    expect(bigCpus.code).toBe(2);
    expect(bigCpus.stderr).toContain(`option '--cpus <c>' argument '2048' is invalid. expected a number > 0 and <= ${limits.resourceCpusMax}, got "2048".`);
    const zeroMemory = await cli(['--api', api, 'task', 'run', 'img', '--memory-mb', '0', '--', 'true']);
    expect(zeroMemory.code).toBe(2);
    expect(zeroMemory.stderr).toContain(`option '--memory-mb <m>' argument '0' is invalid. expected a number > 0 and <= ${limits.resourceMemoryMbMax}`);
    // --tail 0 is allowed (with --follow: only what comes next); a negative one is not; --follow goes without --wait.
    const badTail = await cli(['--api', api, 'task', 'logs', 't1', '--tail', '-1']);
    expect(badTail.code).toBe(2);
    expect(badTail.stderr).toContain("option '--tail <n>' argument '-1' is invalid. expected an integer >= 0.");
    // A count past what the flag takes names the bound (outside tester: `expected an integer >= 1` for 1000000000).
    const bigLimit = await cli(['--api', api, 'task', 'ls', '--limit', '1000000000']);
    expect(bigLimit.code).toBe(2);
    expect(bigLimit.stderr).toContain("option '--limit <n>' argument '1000000000' is invalid. expected an integer from 1 to 999999999.");
    const followWait = await cli(['--api', api, 'task', 'run', 'img', '--follow', '--wait', '--', 'true']);
    expect(followWait).toMatchObject({ code: 2, stderr: expect.stringContaining('--follow follows one task') as string });
  });

  it('an --api or MINKUBE_API that is no http(s) URL nor host:port is the same usage error at once (outside tester: not-a-url was tried until UNREACHABLE)', async () => {
    m1.data.set('hostport', { value: 'reached', version: 1 });
    const bad = ['not-a-url', 'localhost:0', 'h:65536', `${api},127.0.0.1`];
    const [hostPort, fromEnv, ...runs] = await Promise.all([
      // host:port without a scheme is an address all the same.
      cli(['--api', api.replace('http://', ''), 'kv', 'get', 'hostport']),
      cli(['kv', 'get', 'k'], { MINKUBE_API: 'not-a-url' }),
      ...bad.map((b) => cli(['--api', b, 'kv', 'get', 'k'])),
    ]);
    expect(hostPort).toEqual({ code: 0, stdout: 'reached', stderr: '' });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/^error: MINKUBE_API=not-a-url: not an http\(s\) URL nor a host:port: "not-a-url" \(expected http:\/\/HOST:PORT, https:\/\/HOST:PORT or HOST:PORT\)\./);
    runs.forEach((r, i) => {
      expect(r.code, bad[i]).toBe(2);
      expect(r.stderr).toMatch(/^error: option '--api <url>' argument '.*' is invalid\. not an http\(s\) URL nor a host:port: "(not-a-url|localhost:0|h:65536|127\.0\.0\.1)"/);
    });
  });

  it('service flags the managers would refuse are usage errors (exit 2) before any request, with the bounds the API checks', async () => {
    // The fake managers answer no service route: a request sent would end in exit 1, not 2.
    const create = ['--api', api, 'service', 'create', 'web', 'img', '--replicas', '1'];
    const cases: [string[], string][] = [
      [['--health-interval', '0'], "option '--health-interval <s>' argument '0' is invalid. expected a number from 0.1 to 3600, got \"0\"."],
      [['--health-timeout', '0.05'], "option '--health-timeout <s>' argument '0.05' is invalid. expected a number from 0.1 to 3600"],
      [['--health-retries', '0'], "option '--health-retries <n>' argument '0' is invalid. expected an integer from 1 to 100"],
      [['--health-start-period', '3601'], "option '--health-start-period <s>' argument '3601' is invalid. expected a number from 0 to 3600"],
      [['--parallelism', '0'], "option '--parallelism <n>' argument '0' is invalid. expected an integer from 1 to 10000"],
      [['--update-delay', ''], "option '--update-delay <s>' argument '' is invalid. expected a number from 0 to 86400"],
      [['--monitor', '-1'], "option '--monitor <s>' argument '-1' is invalid. expected a number from 0 to 86400"],
      [['--failure-action', 'retry'], "option '--failure-action <action>' argument 'retry' is invalid. expected one of rollback, pause."],
      [['--order', 'sideways'], "option '--order <order>' argument 'sideways' is invalid. expected one of stop-first, start-first."],
      [['--priority', 'urgent'], "option '--priority <p>' argument 'urgent' is invalid. expected one of high, normal, low."],
      [['--replicas', '10001'], "option '--replicas <n>' argument '10001' is invalid. expected an integer from 0 to 10000"],
    ];
    for (const [flags, message] of cases) {
      const r = await cli([...create, ...flags]);
      expect([r.code, r.stdout], flags.join(' ')).toEqual([2, '']);
      expect(r.stderr).toContain(`error: ${message}`);
    }
    expect((await cli(['--api', api, 'service', 'update', 'web', '--parallelism', '0'])).code).toBe(2);
    // What is missing is named, arguments and the required option at once.
    const bare = await cli(['--api', api, 'service', 'create']);
    expect(bare).toMatchObject({ code: 2, stdout: '' });
    expect(bare.stderr).toMatch(/^error: missing required arguments 'name' and 'image', and option '--replicas <n>'\n/);
    const noImage = await cli(['--api', api, 'service', 'create', 'web', '--replicas', '1']);
    expect(noImage).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error: missing required argument 'image'\n/) as string });
    const noReplicas = await cli(['--api', api, 'service', 'create', 'web', 'img']);
    expect(noReplicas).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error: missing required option '--replicas <n>'\n/) as string });
    expect((await cli(['service', 'create', '--help'])).stdout).toMatch(/^Usage: minkube service create \[options\] <name> <image> \[command\.\.\.\]\n/);
  });

  it('up with an invalid config prints every problem and exits 1', async () => {
    const path = join(dir, 'bad.json');
    writeFileSync(
      path,
      JSON.stringify({
        managers: [
          { id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:70000', dataDir: 'd1' },
          { id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8002' },
        ],
        raft: { heartbeatIntervalMs: 100, electionTimeoutMs: 200 },
        colour: 'blue',
      }),
    );
    const r = await cli(['up', '--config', path]);
    expectCleanError(r, 'CONFIG_INVALID', /\(6 problems\)/);
    for (const problem of [
      'colour: unknown key',
      'managers[1].dataDir: missing',
      'managers[0].apiAddress: port must be 1..65535',
      'managers[1].id: duplicate id "m1"',
      'managers[1].raftAddress: duplicate address "127.0.0.1:7001"',
      'raft.electionTimeoutMs: must be more than 2 × heartbeatIntervalMs',
    ]) {
      expect(r.stderr).toContain(problem);
    }
  });

  it('up with a missing config file says so and exits 1', async () => {
    expectCleanError(await cli(['up', '--config', join(dir, 'none.json')]), 'CONFIG_INVALID', /no such file/);
  });
});
