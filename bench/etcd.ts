// A 3-member etcd cluster on loopback, for running Minkube's workloads against a known system in the same run.
// Used when an `etcd` binary is installed (Debian: etcd-server); writes go through etcd's HTTP JSON gateway. It runs
// with Minkube's default Raft timing (heartbeat 50 ms, election 300 ms), so failover compares implementations, not
// defaults (etcd's own are 100 ms / 1000 ms). With `tls`, clients and peers speak TLS with client certificates
// (--client-cert-auth, --peer-client-cert-auth), ECDSA P-256 from Minkube's own CA code, like a closed Minkube.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { clusterConfigDefaults } from '../src/config/cluster.js';
import { createClusterCa, issueNodeKeyAndCert } from '../src/security/ca.js';
import { freePort, waitFor } from '../test/support/wait.js';

export function etcdAvailable(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  proc: ChildProcess | null;
  args: string[];
}

/** PEM material of an etcd cluster with TLS: its CA, and the one client certificate the load generator presents. */
export interface EtcdSecurity {
  readonly caCertPem: string;
  readonly clientCertPem: string;
  readonly clientKeyPem: string;
}

/** A CA, one certificate every member serves and dials its peers with (IP SAN 127.0.0.1), and a client's. */
async function makeEtcdTls(dir: string): Promise<{ security: EtcdSecurity; flags: string[] }> {
  const clusterId = 'etcd-bench';
  const ca = await createClusterCa({ clusterId });
  const issue = (id: string): Promise<{ keyPem: string; certPem: string }> =>
    issueNodeKeyAndCert({ id, role: 'manager', clusterId, caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { ips: ['127.0.0.1'], dns: ['localhost'] } });
  const [member, client] = [await issue('etcd'), await issue('client')];
  const file = (name: string, pem: string): string => {
    const path = join(dir, name);
    writeFileSync(path, pem, { mode: 0o600 });
    return path;
  };
  const [caFile, certFile, keyFile] = [file('ca.crt', ca.certPem), file('member.crt', member.certPem), file('member.key', member.keyPem)];
  const flags = [
    `--cert-file=${certFile}`, `--key-file=${keyFile}`, '--client-cert-auth', `--trusted-ca-file=${caFile}`,
    `--peer-cert-file=${certFile}`, `--peer-key-file=${keyFile}`, '--peer-client-cert-auth', `--peer-trusted-ca-file=${caFile}`,
  ];
  return { security: { caCertPem: ca.certPem, clientCertPem: client.certPem, clientKeyPem: client.keyPem }, flags };
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
    /** Null for plain HTTP. */
    readonly tls: EtcdSecurity | null,
  ) {}

  static async start(size = 3, timing = clusterConfigDefaults.raft, tls = false): Promise<EtcdCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'minkube-etcd-'));
    const secured = tls ? await makeEtcdTls(dir) : null;
    const scheme = tls ? 'https' : 'http';
    const ports = [];
    for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initial = ports.map((p, i) => `e${i}=${scheme}://127.0.0.1:${p.peer}`).join(',');
    const members = ports.map((p, i) => ({
      name: `e${i}`,
      clientUrl: `${scheme}://127.0.0.1:${p.client}`,
      proc: null,
      args: [
        `--name=e${i}`, `--data-dir=${join(dir, `e${i}`)}`,
        `--listen-client-urls=${scheme}://127.0.0.1:${p.client}`, `--advertise-client-urls=${scheme}://127.0.0.1:${p.client}`,
        `--listen-peer-urls=${scheme}://127.0.0.1:${p.peer}`, `--initial-advertise-peer-urls=${scheme}://127.0.0.1:${p.peer}`,
        `--initial-cluster=${initial}`, '--initial-cluster-state=new', '--log-level=error',
        `--heartbeat-interval=${timing.heartbeatIntervalMs}`, `--election-timeout=${timing.electionTimeoutMs}`,
        ...(secured?.flags ?? []),
      ],
    }));
    const c = new EtcdCluster(dir, members, secured?.security ?? null);
    for (const m of members) c.startMember(m);
    await c.waitHealthy();
    return c;
  }

  startMember(m: EtcdMember): void {
    m.proc = spawn('etcd', m.args, { stdio: 'ignore' });
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await waitFor('every etcd member healthy', async () => {
      const ok = await Promise.all(this.members.filter((m) => m.proc).map((m) => this.fetch(`${m.clientUrl}/health`).then((r) => r.ok).catch(() => false)));
      return ok.every(Boolean);
    }, timeoutMs, 100);
  }

  /** The member that leads, by asking each for its status. */
  async leader(): Promise<EtcdMember> {
    for (const m of this.members) {
      if (m.proc === null) continue;
      const s = (await this.fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' }).then((r) => r.json()).catch(() => null)) as { header?: { member_id?: string }; leader?: string } | null;
      if (s?.leader !== undefined && s.leader === s.header?.member_id) return m;
    }
    throw new Error('no etcd leader');
  }

  private dispatcher: Agent | null = null;

  /** fetch, presenting the client certificate when the cluster speaks TLS. */
  private fetch(url: string, init: { method?: string; body?: string } = {}): Promise<Awaited<ReturnType<typeof undiciFetch>>> {
    if (this.tls !== null) this.dispatcher ??= new Agent({ connect: { ca: this.tls.caCertPem, cert: this.tls.clientCertPem, key: this.tls.clientKeyPem } });
    return undiciFetch(url, { ...init, ...(this.dispatcher === null ? {} : { dispatcher: this.dispatcher }) });
  }

  /** SIGKILL one member and wait until it is gone. */
  async kill(m: EtcdMember): Promise<void> {
    const p = m.proc;
    if (p === null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    m.proc = null;
  }

  async stop(): Promise<void> {
    for (const m of this.members) await this.kill(m);
    await this.dispatcher?.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The body of an etcd v3 gateway put of `key` = `value`. */
export function etcdPutBody(key: string, value: string): string {
  return JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') });
}
