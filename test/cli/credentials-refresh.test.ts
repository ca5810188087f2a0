// `minkube member ls` (and status, member add|remove) bring the credentials file's list of managers up to date with
// the members a leader names, when the command used that list: a manager that joined is added, a removed one goes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-creds-'));
let server: Server;
let self = '';
let leaderId: string | null = 'm1';
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    const members = [
      { id: 'm1', raftAddress: '127.0.0.1:1', apiAddress: self, voter: true, reachable: true },
      { id: 'm4', raftAddress: '127.0.0.4:1', apiAddress: '127.0.0.4:8004', voter: false, reachable: true },
    ];
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ leaderId, members }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function credentials(name: string, apis: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ clusterId: 'insecure', apis, insecure: true }));
  return path;
}
const apisIn = (path: string): string[] => (JSON.parse(readFileSync(path, 'utf8')) as { apis: string[] }).apis;

describe('the credentials file follows the members', () => {
  it('member ls adds a manager that joined and drops one that is gone, keeping the order of the rest', async () => {
    const path = credentials('a.json', [`http://${self}`, 'http://127.0.0.2:8002']);
    const r = await runCli(['member', 'ls'], { MINKUBE_CONFIG: path });
    expect(r.code, r.stderr).toBe(0);
    expect(apisIn(path)).toEqual([`http://${self}`, 'http://127.0.0.4:8004']);
    expect(r.stderr).toContain(`the credentials file ${path} now names the managers http://${self}, http://127.0.0.4:8004`);
    // Up to date: nothing more is written or said.
    const again = await runCli(['member', 'ls'], { MINKUBE_CONFIG: path });
    expect(again.stderr).toBe('');
  });

  it('leaves the file alone when --api names the manager, or when no leader is known', async () => {
    const path = credentials('b.json', [`http://${self}`, 'http://127.0.0.2:8002']);
    expect((await runCli(['--api', `http://${self}`, 'member', 'ls'], { MINKUBE_CONFIG: path })).code).toBe(0);
    expect(apisIn(path)).toEqual([`http://${self}`, 'http://127.0.0.2:8002']);
    leaderId = null;
    try {
      expect((await runCli(['member', 'ls'], { MINKUBE_CONFIG: path })).code).toBe(0);
    } finally {
      leaderId = 'm1';
    }
    expect(apisIn(path)).toEqual([`http://${self}`, 'http://127.0.0.2:8002']);
  });
});
