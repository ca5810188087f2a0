// A 3-member etcd cluster on loopback, for running Minkube's workloads against a known system in the same run.
// Used when an `etcd` binary is installed (Debian: etcd-server); writes go through etcd's HTTP JSON gateway. It runs
// with Minkube's default Raft timing (heartbeat 50 ms, election 300 ms), so failover compares implementations, not
// defaults (etcd's own are 100 ms / 1000 ms).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterConfigDefaults } from '../src/config/cluster.js';
import { freePort, sleep } from '../test/support/cluster.js';

export function etcdAvailable(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  proc: ChildProcess | null;
  args: string[];
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
  ) {}

  static async start(size = 3, timing = clusterConfigDefaults.raft): Promise<EtcdCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'minkube-etcd-'));
    const ports = [];
    for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initial = ports.map((p, i) => `e${i}=http://127.0.0.1:${p.peer}`).join(',');
    const members = ports.map((p, i) => ({
      name: `e${i}`,
      clientUrl: `http://127.0.0.1:${p.client}`,
      proc: null,
      args: [
        `--name=e${i}`, `--data-dir=${join(dir, `e${i}`)}`,
        `--listen-client-urls=http://127.0.0.1:${p.client}`, `--advertise-client-urls=http://127.0.0.1:${p.client}`,
        `--listen-peer-urls=http://127.0.0.1:${p.peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${p.peer}`,
        `--initial-cluster=${initial}`, '--initial-cluster-state=new', '--log-level=error',
        `--heartbeat-interval=${timing.heartbeatIntervalMs}`, `--election-timeout=${timing.electionTimeoutMs}`,
      ],
    }));
    const c = new EtcdCluster(dir, members);
    for (const m of members) c.startMember(m);
    await c.waitHealthy();
    return c;
  }

  startMember(m: EtcdMember): void {
    m.proc = spawn('etcd', m.args, { stdio: 'ignore' });
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ok = await Promise.all(this.members.filter((m) => m.proc).map((m) => fetch(`${m.clientUrl}/health`).then((r) => r.ok).catch(() => false)));
      if (ok.every(Boolean)) return;
      await sleep(100);
    }
    throw new Error('etcd did not become healthy');
  }

  /** The member that leads, by asking each for its status. */
  async leader(): Promise<EtcdMember> {
    for (const m of this.members) {
      if (m.proc === null) continue;
      const s = (await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' }).then((r) => r.json()).catch(() => null)) as { header?: { member_id?: string }; leader?: string } | null;
      if (s?.leader !== undefined && s.leader === s.header?.member_id) return m;
    }
    throw new Error('no etcd leader');
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
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The body of an etcd v3 gateway put of `key` = `value`. */
export function etcdPutBody(key: string, value: string): string {
  return JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') });
}
