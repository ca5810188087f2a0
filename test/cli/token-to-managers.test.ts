// The CLI hands its token only to a server whose certificate names a manager: the cluster's CA also signs workers'
// certificates (a worker join token buys one, with addresses of its holder's choosing), so "signed by our CA for this
// host" would let a server holding a worker's key collect the admin token.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { runCli } from '../support/cli.js';

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
