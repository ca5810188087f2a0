// DNS end to end: a secure cluster of 3 managers (each with a dnsAddress) and 2 process-runtime workers runs a
// service of 3 replicas of a Node one-liner on their allocated ports. Real resolvers (dig, node:dns) against every
// manager: SRV lists exactly the healthy replicas, each target resolves and answers HTTP, a killed replica leaves the
// answer (and its restarted attempt joins it), leader.minkube and _api._tcp.minkube follow the cluster.
import { Resolver } from 'node:dns/promises';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcCluster } from '../support/cluster.js';
import { eventually, freePort } from '../support/wait.js';
import { dig, digStatus, itDig, itDigUnbound, lines, unboundBinary } from './dig.js';

const tuning = {
  tasks: { workerHeartbeatIntervalMs: 200, workerTtlMs: 1500, lostGraceMs: 500, reconcileIntervalMs: 300, backoffBaseMs: 100, backoffCapMs: 1000 },
};

const server = `require('http').createServer((q,s)=>s.end(JSON.stringify({pid:process.pid}))).listen(Number(process.env.PORT))`;

interface Replica {
  taskId: string;
  state: string;
  desiredState: string;
  health: string | null;
  ports: { name: string; hostPort: number; address: string }[];
}

let c: ProcCluster;
const dns = new Map<string, { host: string; port: number }>();

beforeAll(async () => {
  c = await ProcCluster.create({ managers: 3, workers: 2, workerRuntime: 'process', secure: true, extra: tuning });
  for (const m of c.config.managers as Record<string, unknown>[]) {
    const host = (m.apiAddress as string).split(':')[0]!;
    const port = await freePort(host);
    m.dnsAddress = `${host}:${port}`;
    dns.set(m.id as string, { host, port });
  }
  writeFileSync(c.configPath, JSON.stringify(c.config, null, 2));
  c.startAll();
  await c.waitForLeader({ timeoutMs: 150_000 });
  await c.waitForReadyWorkers(2);
  const created = await c.http('m1', 'POST', '/v1/services', {
    name: 'web', task: { image: 'node', command: [process.execPath, '-e', server] }, replicas: 3, ports: [{ name: 'http' }],
    healthCheck: { type: 'http', port: 'http', path: '/', intervalS: 0.3, timeoutS: 1, retries: 2, startPeriodS: 0 },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
}, 300_000);

afterAll(async () => {
  await c?.cleanup();
}, 60_000);

const healthy = async (): Promise<Replica[]> => {
  const r = await c.http('m1', 'GET', '/v1/services/web');
  return (r.body.tasks as Replica[]).filter((t) => t.desiredState === 'run' && t.state === 'running' && t.health === 'healthy');
};

/** The SRV answer as `port target` lines, sorted. */
const srvLines = async (manager: string): Promise<string[]> => {
  const d = dns.get(manager)!;
  return lines(await dig(d.host, d.port, ['+short', '_http._tcp.web.service.minkube', 'SRV'])).map((l) => l.split(' ').slice(2).join(' '));
};
const expected = (rs: Replica[]): string[] => rs.map((r) => `${r.ports[0]!.hostPort} ${r.taskId}.task.minkube.`).sort();

/** SRV on every manager equals the healthy replicas (3 of them): answers once all have applied the same state. */
const agreed = (): Promise<Replica[]> =>
  eventually(async () => {
    const rs = await healthy();
    if (rs.length !== 3) return undefined;
    for (const m of dns.keys()) if (JSON.stringify(await srvLines(m)) !== JSON.stringify(expected(rs))) return undefined;
    return rs;
  }, 90_000, 'every manager to answer SRV with the 3 healthy replicas');

describe('dns on a running cluster', () => {
  itDig('SRV lists exactly the healthy replicas on every manager; each target resolves and answers HTTP', async () => {
    const rs = await agreed();
    const d = dns.get('m2')!;
    for (const r of rs) {
      const [ip] = lines(await dig(d.host, d.port, ['+short', `${r.taskId}.task.minkube`, 'A']));
      expect(ip).toBe('127.0.0.1');
      const res = await fetch(`http://${ip}:${r.ports[0]!.hostPort}/`);
      expect(res.status).toBe(200);
    }
    expect(lines(await dig(d.host, d.port, ['+short', 'web.service.minkube', 'A']))).toEqual(['127.0.0.1']);
    const ttl = lines(await dig(d.host, d.port, ['+noall', '+answer', '_http._tcp.web.service.minkube', 'SRV']));
    for (const l of ttl) expect(Number(l.split(/\s+/)[1])).toBeLessThanOrEqual(5);
    expect(digStatus(await dig(d.host, d.port, ['nope.service.minkube', 'A']))).toBe('NXDOMAIN');
    expect(digStatus(await dig(d.host, d.port, ['web.service.minkube', 'MX']))).toBe('NOERROR');
    expect(digStatus(await dig(d.host, d.port, ['example.org', 'A']))).toBe('REFUSED');
  }, 150_000);

  itDig('a killed replica leaves the SRV answer and its restarted attempt joins it', async () => {
    const before = await agreed();
    const victim = before[0]!;
    const attemptBefore = (await c.http('m1', 'GET', `/v1/tasks/${victim.taskId}`)).body.attempt as number;
    const { pid } = (await (await fetch(`http://${victim.ports[0]!.address}/`)).json()) as { pid: number };
    const killedAt = performance.now();
    process.kill(pid, 'SIGKILL');
    const gone = `${victim.ports[0]!.hostPort} ${victim.taskId}.task.minkube.`;
    await eventually(async () => ((await srvLines('m1')).includes(gone) ? undefined : true), 60_000, 'the killed replica to leave the SRV answer');
    const leftMs = performance.now() - killedAt;
    // The replica is restarted (a new attempt on a new port) and the answer holds 3 healthy replicas again.
    await agreed();
    expect((await c.http('m1', 'GET', `/v1/tasks/${victim.taskId}`)).body.attempt).toBeGreaterThan(attemptBefore);
    process.stdout.write(`dns: the killed replica left SRV after ${Math.round(leftMs)} ms\n`);
  }, 150_000);

  itDig('leader.minkube and _api._tcp.minkube describe the managers', async () => {
    const leader = await c.waitForLeader();
    const leaderHost = c.node(leader).host;
    for (const [m, d] of dns) {
      expect(lines(await dig(d.host, d.port, ['+short', 'leader.minkube'])), m).toEqual([leaderHost]);
      const api = lines(await dig(d.host, d.port, ['+short', '_api._tcp.minkube', 'SRV']));
      const apiPorts = c.managerIds.map((id) => `0 1 ${new URL(c.url(id)).port} ${id}.manager.minkube.`).sort();
      expect(api, m).toEqual(apiPorts);
    }
  }, 60_000);

  itDigUnbound('through a real resolver, unbound with a stub zone (0x20 case, EDNS): SRV, A, NXDOMAIN', async () => {
    const rs = await agreed();
    const dir = mkdtempSync(join(tmpdir(), 'minkube-unbound-'));
    const port = await freePort('127.0.0.1');
    // What README suggests: a stub zone for minkube. at every manager's DNS address, not primed (an NS record has no port).
    const conf = [
      'server:', `  interface: 127.0.0.1@${port}`, '  do-daemonize: no', '  username: ""', '  chroot: ""', `  directory: "${dir}"`,
      `  pidfile: "${join(dir, 'unbound.pid')}"`, '  use-syslog: no', '  logfile: ""', '  do-not-query-localhost: no', '  domain-insecure: "minkube"',
      '  use-caps-for-id: yes', '  module-config: "iterator"', '  access-control: 127.0.0.0/8 allow',
      'stub-zone:', '  name: "minkube"', ...[...dns.values()].map((d) => `  stub-addr: ${d.host}@${d.port}`), '  stub-prime: no',
    ].join('\n');
    writeFileSync(join(dir, 'unbound.conf'), `${conf}\n`);
    const unbound = spawn(unboundBinary!, ['-c', join(dir, 'unbound.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    unbound.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    try {
      const srv = await eventually(async () => {
        // Until unbound listens, dig's own complaints come on stdout too: only SRV lines count.
        const out = lines(await dig('127.0.0.1', port, ['+short', '_http._tcp.web.service.minkube', 'SRV']).catch(() => '')).filter((l) => /^\d+ \d+ \d+ \S+$/.test(l));
        return out.length === 3 ? out : undefined;
      }, 30_000, `unbound to answer (its stderr: ${stderr})`);
      expect(srv.map((l) => l.split(' ').slice(2).join(' '))).toEqual(expected(rs));
      expect(lines(await dig('127.0.0.1', port, ['+short', `${rs[0]!.taskId}.task.minkube`]))).toEqual(['127.0.0.1']);
      expect(digStatus(await dig('127.0.0.1', port, ['nope.service.minkube']))).toBe('NXDOMAIN');
    } finally {
      unbound.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("node's dns.promises.Resolver over every manager: SRV, A of each target, ENOTFOUND", async () => {
    const rs = await agreed();
    for (const d of dns.values()) {
      const r = new Resolver({ timeout: 3000, tries: 2 });
      r.setServers([`${d.host}:${d.port}`]);
      const srv = await r.resolveSrv('_http._tcp.web.service.minkube');
      expect(srv.map((s) => `${s.port} ${s.name}.`).sort()).toEqual(expected(rs));
      for (const s of srv) expect(await r.resolve4(s.name)).toEqual(['127.0.0.1']);
      await expect(r.resolve4('nope.service.minkube')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    }
  }, 150_000);
});
