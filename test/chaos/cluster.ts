// The fault test's cluster: real manager and worker processes, one config file per manager in which every other
// manager's raft and api addresses are the proxies of that directed link, so any link can be cut, held or delayed.
// Closed by default (TLS and tokens): every config file lies in one directory, so all nodes share its .minkube (the CA
// the first manager makes, and the admin token); the proxies pass TLS through untouched.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Random } from '../../src/lib/random.js';
import { minkubeBin } from '../support/cluster.js';
import { send, type Access, type Outcome, type RequestOptions } from './http.js';
import { ChaosNetwork, FaultProxy } from './proxy.js';

export type NodeKind = 'manager' | 'worker';

export interface ChaosNode {
  readonly id: string;
  readonly kind: NodeKind;
  /** host:port where it really listens (clients and workers use it). */
  readonly apiAddress: string;
  readonly configPath: string;
  readonly logPath: string;
  proc: ChildProcess | null;
  paused: boolean;
  /** Set while we are killing it, so its exit is not reported as a crash. */
  expectingExit: boolean;
  starts: number;
}

/** A process that exited without being told to: a crash worth reporting. */
export interface UnexpectedExit {
  readonly id: string;
  readonly atMs: number;
  readonly code: number | null;
  readonly signal: string | null;
}

export interface ChaosClusterOptions {
  readonly dir: string;
  readonly managers: number;
  readonly workers: number;
  /** Picks ports; seeded so a run's layout is repeatable. */
  readonly random: Random;
  /** Extra top-level config sections (raft, api, tasks). */
  readonly extra?: Record<string, unknown>;
  readonly nowMs: () => number;
  /** `insecure: true` in every config: no TLS, no tokens (the old mode). Default false. */
  readonly insecure?: boolean;
}

const host = '127.0.0.1';

export class ChaosCluster {
  readonly nodes = new Map<string, ChaosNode>();
  readonly network = new ChaosNetwork();
  readonly unexpectedExits: UnexpectedExit[] = [];
  private credentials: Access | null = null;

  private constructor(private readonly o: ChaosClusterOptions) {}

  static async create(o: ChaosClusterOptions): Promise<ChaosCluster> {
    const c = new ChaosCluster(o);
    try {
      await c.layout();
    } catch (err) {
      await c.network.close();
      throw err;
    }
    return c;
  }

  /** Picks the ports, starts the proxies and writes every node's config file. */
  private async layout(): Promise<void> {
    const o = this.o;
    mkdirSync(join(o.dir, 'data'), { recursive: true });
    const taken = new Set<number>();
    const managers: { id: string; raft: number; api: number }[] = [];
    for (let i = 1; i <= o.managers; i++) managers.push({ id: `m${i}`, raft: await stablePort(o.random, taken), api: await stablePort(o.random, taken) });
    const workers: { id: string; apiAddress: string; runtime: 'process'; dataDir: string }[] = [];
    for (let i = 1; i <= o.workers; i++) {
      workers.push({ id: `w${i}`, apiAddress: `${host}:${await stablePort(o.random, taken)}`, runtime: 'process', dataDir: `data/w${i}` });
    }
    const real = (m: { id: string; raft: number; api: number }) => ({ id: m.id, raftAddress: `${host}:${m.raft}`, apiAddress: `${host}:${m.api}`, dataDir: `data/${m.id}` });
    for (const self of managers) {
      const list = [];
      for (const other of managers) {
        if (other === self) {
          list.push(real(self));
          continue;
        }
        // What self dials for `other`: the proxies of the link self -> other.
        const raft = await this.proxy(self.id, other.id, other.raft);
        const api = await this.proxy(self.id, other.id, other.api);
        list.push({ ...real(other), raftAddress: `${host}:${raft}`, apiAddress: `${host}:${api}` });
      }
      const configPath = join(o.dir, `${self.id}.json`);
      writeFileSync(configPath, JSON.stringify({ ...this.openness(), managers: list, workers, ...o.extra }, null, 2));
      this.addNode(self.id, 'manager', `${host}:${self.api}`, configPath);
    }
    // Workers (and the runner's clients) see the managers' real addresses.
    const workerConfig = join(o.dir, 'cluster.json');
    writeFileSync(workerConfig, JSON.stringify({ ...this.openness(), managers: managers.map(real), workers, ...o.extra }, null, 2));
    for (const w of workers) this.addNode(w.id, 'worker', w.apiAddress, workerConfig);
  }

  private openness(): { insecure?: true } {
    return this.insecure ? { insecure: true } : {};
  }

  get insecure(): boolean {
    return this.o.insecure === true;
  }

  /** Where the first manager puts the CA and the admin token: .minkube beside the config files, shared by all. */
  get clusterDir(): string {
    return join(this.o.dir, '.minkube');
  }

  /**
   * The CA to trust and the admin token, once the first manager has written them (null until then, and always in
   * an insecure cluster). The token is good only after the first leader has committed its bootstrap: until then
   * requests with it answer 401.
   */
  access(): Access | null {
    if (this.insecure || this.credentials !== null) return this.credentials;
    const [caPath, tokenPath] = [join(this.clusterDir, 'ca.crt'), join(this.clusterDir, 'admin.token')];
    if (!existsSync(caPath) || !existsSync(tokenPath)) return null;
    const caCertPem = readFileSync(caPath, 'utf8');
    // The token file is written in one go but may be caught half-way: a whole token ends with a newline.
    const text = readFileSync(tokenPath, 'utf8');
    if (!caCertPem.includes('-----END CERTIFICATE-----') || !text.endsWith('\n')) return null;
    this.credentials = { caCertPem, token: text.trim() };
    return this.credentials;
  }

  /** One request to a node's real API address, with the cluster's credentials when it is closed. */
  async send(id: string, method: string, path: string, o: Omit<RequestOptions, 'access'>): Promise<Outcome> {
    const access = this.access();
    if (!this.insecure && access === null) return { kind: 'refused', error: 'no CA and admin token yet' };
    return send(this.node(id).apiAddress, method, path, { ...o, access });
  }

  private async proxy(from: string, to: string, targetPort: number): Promise<number> {
    const p = await FaultProxy.start({ target: { host, port: targetPort } });
    this.network.add(from, to, p);
    return p.port;
  }

  private addNode(id: string, kind: NodeKind, apiAddress: string, configPath: string): void {
    const logPath = join(this.o.dir, `${id}.log`);
    this.nodes.set(id, { id, kind, apiAddress, configPath, logPath, proc: null, paused: false, expectingExit: false, starts: 0 });
  }

  get managerIds(): string[] {
    return [...this.nodes.values()].filter((n) => n.kind === 'manager').map((n) => n.id);
  }

  get workerIds(): string[] {
    return [...this.nodes.values()].filter((n) => n.kind === 'worker').map((n) => n.id);
  }

  node(id: string): ChaosNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  isUp(id: string): boolean {
    return this.node(id).proc !== null;
  }

  /** Up and not paused: it can answer. */
  isServing(id: string): boolean {
    const n = this.node(id);
    return n.proc !== null && !n.paused;
  }

  start(id: string): void {
    const n = this.node(id);
    if (n.proc !== null) return;
    const log = openSync(n.logPath, 'a');
    try {
      const proc = spawn(process.execPath, [minkubeBin, n.kind, '--config', n.configPath, '--id', id], {
        stdio: ['ignore', log, log],
        env: { ...process.env, MINKUBE_LOG_LEVEL: process.env.MINKUBE_LOG_LEVEL ?? 'info' },
      });
      n.proc = proc;
      n.paused = false;
      n.starts++;
      proc.once('exit', (code, signal) => {
        if (n.proc === proc) n.proc = null;
        if (!n.expectingExit) this.unexpectedExits.push({ id, atMs: this.o.nowMs(), code, signal });
      });
    } finally {
      closeSync(log);
    }
  }

  /** SIGKILL (after SIGCONT if paused) and wait until it is gone. */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    const proc = n.proc;
    if (proc === null) return;
    n.expectingExit = true;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
    await gone;
    n.proc = null;
    n.paused = false;
    n.expectingExit = false;
  }

  pause(id: string): void {
    const n = this.node(id);
    if (n.proc === null || n.paused) return;
    n.proc.kill('SIGSTOP');
    n.paused = true;
  }

  resume(id: string): void {
    const n = this.node(id);
    if (n.proc === null || !n.paused) return;
    n.proc.kill('SIGCONT');
    n.paused = false;
  }

  /** The last lines of a node's log. */
  logTail(id: string, lines: number): string[] {
    const path = this.node(id).logPath;
    if (!existsSync(path)) return [];
    const text = readFileSync(path, 'utf8');
    return text.split('\n').filter((l) => l.length > 0).slice(-lines);
  }

  async close(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.kill(id)));
    await this.network.close();
  }

  /** Synchronous last resort (process exit): no child outlives the runner. */
  killAllNow(): void {
    for (const n of this.nodes.values()) {
      n.expectingExit = true;
      n.proc?.kill('SIGCONT');
      n.proc?.kill('SIGKILL');
    }
  }
}

/**
 * A free port below the kernel's ephemeral range: a killed manager restarts on the same port, and a port from the
 * ephemeral range could meanwhile be taken as the source port of some outgoing connection.
 */
async function stablePort(random: Random, taken: Set<number>): Promise<number> {
  const [min, max] = [15_000, ephemeralLow() - 1];
  for (let i = 0; i < 200; i++) {
    const port = min + random.int(max - min);
    if (taken.has(port)) continue;
    if (await canListen(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range');
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 16_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}
