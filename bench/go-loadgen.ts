// The Go load generator (bench/go/src/minkube-loadgen): built in GOPATH mode against Debian's golang-etcd-server-dev
// (Go modules cannot be fetched here), run with flags, its last line read as JSON. bench/kv-go.ts drives etcd and
// Minkube with it (etcdSide, minkubeSide: a 3-member cluster of each, and the flags that reach its leader);
// bench/ab-go.ts drives two builds of Minkube; bench/cpu-split.ts measures where the CPU goes on each side.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcCluster, repoRoot } from '../test/support/cluster.js';
import { EtcdCluster } from './etcd.js';

export interface GoResult {
  target: string;
  op: string;
  clients: number;
  opsPerSec: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  firstError?: string;
}

const goDir = join(repoRoot, 'bench', 'go');
const source = join(goDir, 'src', 'minkube-loadgen', 'main.go');
/** Where the built load generator is (buildLoadgen makes it). */
export const loadgenBinary = join(repoRoot, '.tmp', 'minkube-loadgen');

/** Builds the load generator when missing or older than its source; null (and why) when Go or etcd's sources are missing. */
export function buildLoadgen(): string | null {
  if (existsSync(loadgenBinary) && statSync(loadgenBinary).mtimeMs >= statSync(source).mtimeMs) return null;
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) return 'no Go toolchain (apt-get install golang-go)';
  if (!existsSync('/usr/share/gocode/src/go.etcd.io/etcd/clientv3')) return "no etcd client sources (apt-get install golang-etcd-server-dev)";
  mkdirSync(join(repoRoot, '.tmp'), { recursive: true });
  execFileSync('go', ['build', '-o', loadgenBinary, 'minkube-loadgen'], {
    env: { ...process.env, GO111MODULE: 'off', GOPATH: `${goDir}:/usr/share/gocode`, GOFLAGS: '-mod=mod' },
    stdio: 'inherit',
  });
  return null;
}

export function loadgen(args: string[]): GoResult {
  const out = execFileSync(loadgenBinary, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as GoResult;
}

export type Security = 'insecure' | 'secure';

export interface Side {
  /** The load generator's flags that reach the leader (and authenticate). */
  args: string[];
  /** The servers' process ids, and the leader's (when the cluster started). */
  pids: () => number[];
  leaderPid: number;
  cleanup: () => Promise<void>;
}

export async function etcdSide(security: Security, dir: string): Promise<Side> {
  const etcd = await EtcdCluster.start(3, undefined, security === 'secure');
  const leader = await etcd.leader();
  const args = ['-target', 'etcd', '-endpoints', leader.clientUrl];
  if (etcd.tls !== null) {
    const file = (name: string, pem: string): string => (writeFileSync(join(dir, name), pem), join(dir, name));
    args.push('-cacert', file('etcd-ca.crt', etcd.tls.caCertPem), '-cert', file('etcd-client.crt', etcd.tls.clientCertPem), '-key', file('etcd-client.key', etcd.tls.clientKeyPem));
  }
  return { args, pids: () => etcd.members.flatMap((m) => (m.proc?.pid === undefined ? [] : [m.proc.pid])), leaderPid: leader.proc!.pid!, cleanup: () => etcd.stop() };
}

/**
 * A 3-manager cluster and the load generator's flags for its leader. bin: another checkout's bin/minkube.js (an A/B
 * of two builds); nodeArgs: node flags; extra: merged into the cluster config.
 */
export async function minkubeSide(security: Security, o: { bin?: string; nodeArgs?: string[]; extra?: Record<string, unknown> } = {}): Promise<Side> {
  // The admin token's rate limit is lifted: the load generator is one principal sending far more than any operator.
  const unlimited = { requestsPerS: 1_000_000, burst: 1_000_000 };
  const extra = { api: { rateLimits: { admin: unlimited } }, ...o.extra };
  const cluster = await ProcCluster.create({ managers: 3, workers: 0, secure: security === 'secure', extra, ...(o.nodeArgs === undefined ? {} : { nodeArgs: o.nodeArgs }) });
  try {
    for (const id of cluster.managerIds) cluster.start(id, [], o.bin === undefined ? {} : { bin: o.bin });
    const leader = await cluster.waitForLeader({ timeoutMs: 60_000 });
    const args = ['-target', 'minkube', '-endpoints', cluster.url(leader)];
    if (security === 'secure') args.push('-cacert', join(cluster.dir, '.minkube', 'ca.crt'), '-token', cluster.adminToken());
    const pids = (): number[] => cluster.managerIds.flatMap((id) => { const pid = cluster.node(id).proc?.pid; return pid === undefined ? [] : [pid]; });
    return { args, pids, leaderPid: cluster.node(leader).proc!.pid!, cleanup: () => cluster.cleanup() };
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
}
