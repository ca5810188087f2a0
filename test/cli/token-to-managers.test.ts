// The CLI hands its token only to a server whose certificate names a manager: the cluster's CA also signs workers'
// certificates (a worker join token buys one, with addresses of its holder's choosing), so "signed by our CA for this
// host" would let a server holding a worker's key collect the admin token. And never over plain HTTP, where anyone
// listening at the address, or on the path, would read it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { runCli } from '../support/cli.js';
import { freePortIn } from '../support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-token-to-'));
const token = 'mk_0123456789abcdef_secret';
const servers: Server[] = [];
const seen: (string | undefined)[] = [];
let credentialsPath = '';

async function serverAs(id: string, role: 'manager' | 'worker', ca: { certPem: string; keyPem: string }): Promise<string> {
  const node = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role, clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: [] } });
  const server = createServer({ key: node.keyPem, cert: node.certPem }, (req, res) => {
    seen.push(req.headers.authorization);
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ key: 'a', value: 'from the server', version: 1, createdIndex: 1, modifiedIndex: 1 }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let managerUrl = '';
let workerUrl = '';
beforeAll(async () => {
  const ca = await createClusterCa({ clusterId: 'c1' });
  managerUrl = await serverAs('m1', 'manager', ca);
  workerUrl = await serverAs('w9', 'worker', ca);
  credentialsPath = join(dir, 'credentials.json');
  writeFileSync(credentialsPath, JSON.stringify({ clusterId: 'c1', apis: [managerUrl], ca: ca.certPem, token }));
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('the CLI and the servers it sends its token to', () => {
  it("refuses a server whose certificate is a worker's, before it sends anything", async () => {
    const r = await runCli(['--api', workerUrl, 'kv', 'get', 'a'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/UNREACHABLE: .*the server's certificate is refused: it is worker w9's, and the CLI sends its token only to managers/);
    expect(seen).toEqual([]);
  });

  it('moves on down an --api list past such a server, a write included (nothing was sent to it)', async () => {
    const r = await runCli(['--api', `${workerUrl},${managerUrl}`, 'kv', 'put', 'a', 'b'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual([`Bearer ${token}`]);
    seen.length = 0;
  });

  it("sends the token to a manager's", async () => {
    const r = await runCli(['--api', managerUrl, 'kv', 'get', 'a'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual([`Bearer ${token}`]);
  });
});

describe('the CLI and plain HTTP (outside tester: the token went out in clear to an http:// --api, three times)', () => {
  const host = '127.0.62.5';
  // A plain TCP listener: whatever the CLI would send, to an insecure manager or to anyone on the path, arrives here.
  const received: string[] = [];
  const listener = createNetServer((socket) => {
    socket.on('data', (d: Buffer) => received.push(d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.end();
  });
  let plainUrl = '';
  beforeAll(async () => {
    const port = await freePortIn(host, 20000, 29999);
    await new Promise<void>((r) => listener.listen(port, host, r));
    plainUrl = `http://${host}:${port}`;
  });
  afterAll(async () => {
    await new Promise((r) => listener.close(r));
  });

  const refusal = (url: string, from: string, bare: boolean): string => {
    const hostPort = new URL(url).host;
    const insecure = from === 'MINKUBE_TOKEN' ? 'unset MINKUBE_TOKEN' : 'point MINKUBE_CONFIG at its credentials file, or at none';
    return `error: HTTPS_REQUIRED: ${url} is plain HTTP, and the CLI sends its token (${from}) only over TLS: nothing was sent. For a secure cluster's manager give https://${hostPort}${bare ? ` (or ${hostPort}, which the CLI takes as https with the credentials file's CA)` : ''}; an insecure cluster takes no token: ${insecure}\n`;
  };

  it("holding the credentials file's token, an http:// --api (or MINKUBE_API) is refused before anything is sent: exit 1, naming the URL", async () => {
    const file = `the credentials file ${credentialsPath}`;
    const viaFlag = await runCli(['--api', plainUrl, 'kv', 'get', 'team-a/x'], { MINKUBE_CONFIG: credentialsPath });
    expect(viaFlag).toEqual({ code: 1, stdout: '', stderr: refusal(plainUrl, file, true) });
    const viaEnv = await runCli(['kv', 'put', 'team-a/x', 'v'], { MINKUBE_CONFIG: credentialsPath, MINKUBE_API: plainUrl.replace('http:', 'HTTP:') });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toContain('error: HTTPS_REQUIRED: ');
    expect(received).toEqual([]);
  });

  it('anywhere in a list, the list is refused whole: not even the https manager before it is asked', async () => {
    const before = seen.length;
    const r = await runCli(['--api', `${managerUrl},${plainUrl}`, 'task', 'ls'], { MINKUBE_CONFIG: credentialsPath });
    expect(r).toEqual({ code: 1, stdout: '', stderr: refusal(plainUrl, `the credentials file ${credentialsPath}`, true) });
    // A credentials file whose own list names an http:// manager (written by hand) is no different.
    const handWritten = join(dir, 'http-apis.json');
    const { ca } = JSON.parse(readFileSync(credentialsPath, 'utf8')) as { ca: string };
    writeFileSync(handWritten, JSON.stringify({ clusterId: 'c1', apis: [managerUrl, plainUrl], ca, token }));
    const fromFile = await runCli(['status'], { MINKUBE_CONFIG: handWritten });
    expect(fromFile).toEqual({ code: 1, stdout: '', stderr: refusal(plainUrl, `the credentials file ${handWritten}`, true) });
    expect(seen.length).toBe(before);
    expect(received).toEqual([]);
  });

  it('MINKUBE_TOKEN without a credentials file: a bare HOST:PORT is plain HTTP then, and refused the same', async () => {
    const r = await runCli(['--api', plainUrl.replace('http://', ''), 'kv', 'get', 'team-a/x'], { MINKUBE_TOKEN: token });
    expect(r).toEqual({ code: 1, stdout: '', stderr: refusal(plainUrl, 'MINKUBE_TOKEN', false) });
    expect(received).toEqual([]);
  });

  it("without a token (an insecure cluster's credentials file, or none) plain HTTP is used as before, with no authorization header", async () => {
    received.length = 0;
    const insecureFile = join(dir, 'insecure.json');
    writeFileSync(insecureFile, JSON.stringify({ clusterId: 'insecure', apis: [plainUrl], insecure: true }));
    const r = await runCli(['kv', 'get', 'team-a/x'], { MINKUBE_CONFIG: insecureFile });
    // The listener answers nothing: what matters is what reached it.
    expect(r.stderr).toContain(`error: UNREACHABLE: cannot reach ${plainUrl}/v1/kv/team-a/x`);
    expect(received.join('')).toMatch(/^GET \/v1\/kv\/team-a\/x HTTP\/1\.1\r\n/);
    expect(received.join('')).not.toMatch(/authorization|mk_/i);
  });
});
