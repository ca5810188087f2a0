// The CLI while the first manager of its list is frozen (SIGSTOP): the kernel still completes TCP connects to its port,
// and nobody answers. Over TLS nothing of a request leaves before the handshake ends, so a write whose handshake never
// finished was never sent: it goes to the next manager, as a read does. Over plain HTTP the request's bytes are in the
// frozen process's socket and run when it resumes: a write's outcome is unknown there, and it goes nowhere else.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createPlainServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClusterCa, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-frozen-'));
const credentialsPath = join(dir, 'credentials.json');
const token = 'mk_0123456789abcdef_secret';
const seen: string[] = [];
const servers: (Server | ReturnType<typeof createPlainServer>)[] = [];
let frozen: ChildProcess | undefined;
let frozenAddress = '';
let caPem = '';

/** A process listening on a port of its own, then stopped: connects complete in the kernel, nothing answers. */
async function frozenListener(): Promise<string> {
  const child = spawn(process.execPath, ['-e', "const s = require('net').createServer(); s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));"], { stdio: ['ignore', 'pipe', 'inherit'] });
  frozen = child;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  child.kill('SIGSTOP');
  return `127.0.0.1:${port}`;
}

/** A manager's answers to the routes the commands below use; every request it gets is noted in `seen`. */
function answer(apiAddress: () => string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    const m2 = { id: 'm2', raftAddress: '127.0.0.1:1', apiAddress: apiAddress(), voter: true, reachable: true, storage: null };
    const bodies: Record<string, unknown> = {
      'PUT /v1/kv/x': { key: 'x', version: 7 },
      'GET /v1/kv/x': { key: 'x', value: '1', version: 7 },
      'DELETE /v1/cluster/members/m1': { leaderId: 'm2', members: [m2] },
      'POST /v1/cluster/leader': { leaderId: 'm2', term: 3 },
      'POST /v1/auth/tokens': { token: 'mk_fedcba9876543210_new', accessor: 'fedcba9876543210', name: 'ops', role: 'operator', createdAt: '2026-01-01T00:00:00.000Z', expiresAt: null },
    };
    const body = bodies[`${req.method} ${req.url}`];
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? { error: { code: 'NOT_FOUND', message: 'no such route' } }));
  };
}

async function listen(server: Server | ReturnType<typeof createPlainServer>): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let secureAddress = '';
let plainAddress = '';
beforeAll(async () => {
  const ca = await createClusterCa({ clusterId: 'c1' });
  caPem = ca.certPem;
  const node = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm2', role: 'manager', clusterId: 'c1', sans: { ips: ['127.0.0.1'], dns: [] } });
  secureAddress = await listen(createServer({ key: node.keyPem, cert: node.certPem }, answer(() => secureAddress)));
  plainAddress = await listen(createPlainServer(answer(() => plainAddress)));
  frozenAddress = await frozenListener();
}, 30_000);
afterAll(async () => {
  frozen?.kill('SIGKILL');
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  seen.length = 0;
});

describe('a secure cluster whose first manager is frozen', () => {
  // member remove rewrites the file's list from its answer: each command starts from the frozen manager first.
  beforeEach(() => {
    writeFileSync(credentialsPath, JSON.stringify({ clusterId: 'c1', apis: [`https://${frozenAddress}`, `https://${secureAddress}`], ca: caPem, token }));
  });

  it.each([
    [['kv', 'put', 'x', '1'], 'PUT /v1/kv/x', 'x: version 7'],
    [['member', 'remove', 'm1'], 'DELETE /v1/cluster/members/m1', 'removed m1'],
    [['leader', 'transfer', 'm2'], 'POST /v1/cluster/leader', 'leader is now m2 (term 3)'],
    [['token', 'create', '--role', 'operator', '--name', 'ops'], 'POST /v1/auth/tokens', 'mk_fedcba9876543210_new'],
  ])('%j: the write never left for the frozen one (its TLS handshake never finished), so it is sent to the next', async (args, request, printed) => {
    const r = await runCli(args, { MINKUBE_CONFIG: credentialsPath });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(printed);
    expect(r.stderr).not.toMatch(/outcome is unknown|TIMEOUT/);
    expect(seen).toEqual([request]);
  }, 60_000);
});

describe('an insecure cluster whose first manager is frozen', () => {
  beforeEach(() => {
    writeFileSync(credentialsPath, JSON.stringify({ clusterId: 'insecure', apis: [`http://${frozenAddress}`, `http://${plainAddress}`], insecure: true }));
  });

  it('a read times out on the frozen one and is answered by the next', async () => {
    const r = await runCli(['kv', 'get', 'x'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('1');
    expect(seen).toEqual(['GET /v1/kv/x']);
  }, 60_000);

  it("a write's bytes sit in the frozen one's socket: its outcome is unknown, and it is not sent to another", async () => {
    const r = await runCli(['kv', 'put', 'x', '1'], { MINKUBE_CONFIG: credentialsPath });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`TIMEOUT: PUT http://${frozenAddress}/v1/kv/x: no answer within \\d+ ms; the outcome is unknown`));
    expect(seen).toEqual([]);
  }, 60_000);
});
