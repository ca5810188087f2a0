// The Go load generator (bench/go/src/minkube-loadgen): built in GOPATH mode against Debian's golang-etcd-server-dev
// (Go modules cannot be fetched here), run with flags, its last line read as JSON. bench/kv-go.ts drives etcd and
// Minkube with it; bench/ab-go.ts drives two builds of Minkube.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/support/cluster.js';

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
const binary = join(repoRoot, '.tmp', 'minkube-loadgen');

/** Builds the load generator when missing or older than its source; null (and why) when Go or etcd's sources are missing. */
export function buildLoadgen(): string | null {
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return null;
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) return 'no Go toolchain (apt-get install golang-go)';
  if (!existsSync('/usr/share/gocode/src/go.etcd.io/etcd/clientv3')) return "no etcd client sources (apt-get install golang-etcd-server-dev)";
  mkdirSync(join(repoRoot, '.tmp'), { recursive: true });
  execFileSync('go', ['build', '-o', binary, 'minkube-loadgen'], {
    env: { ...process.env, GO111MODULE: 'off', GOPATH: `${goDir}:/usr/share/gocode`, GOFLAGS: '-mod=mod' },
    stdio: 'inherit',
  });
  return null;
}

export function loadgen(args: string[]): GoResult {
  const out = execFileSync(binary, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as GoResult;
}
