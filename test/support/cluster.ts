// Real manager (and worker) processes on loopback for end-to-end tests and benchmarks: write a config, spawn
// `bin/minkube.js manager`, SIGKILL / SIGSTOP / SIGCONT them, and talk to them over HTTP.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, fetch as undiciFetch } from 'undici';
import { join, resolve } from 'node:path';
import { eventually, freePort, freePortIn, sleep } from './wait.js';
import { nodeLaunchEnv, nodeLaunchFlags } from '../../src/daemon/launch.js';

export { eventually, freePort, sleep };

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const minkubeBin = join(repoRoot, 'bin', 'minkube.js');

export interface ProcNode {
  readonly id: string;
  readonly kind: 'manager' | 'worker';
  readonly apiUrl: string;
  readonly host: string;
  proc: ChildProcess | null;
  log: WriteStream | null;
  /** A second process of a worker (addWorkerCopy): the id it runs as, and its own copy of the config. */
  readonly runsAs?: string;
  readonly configPath?: string;
}

export interface ClusterOptions {
  managers?: number;
  workers?: number;
  workerRuntime?: 'docker' | 'process' | 'auto';
  raft?: { heartbeatIntervalMs?: number; electionTimeoutMs?: number };
  /** Extra top-level config keys (e.g. worker/task tuning added by later issues). */
  extra?: Record<string, unknown>;
  /** Each manager on its own loopback address (127.0.0.1, .2, .3 ...), as cluster.example.json does. */
  distinctHosts?: boolean;
  /** The loopback /24 the managers listen on, as `127.0.0.` (the default). */
  hostPrefix?: string;
  /** The loopback address the workers listen on (127.0.0.1 unless given). */
  workerHost?: string;
  /** Every port from this range (freePortIn) rather than the kernel's: a test that keeps to ports of its own. */
  ports?: { min: number; max: number };
  /** Extra node flags for every spawned node (e.g. --cpu-prof for a benchmark). */
  nodeArgs?: string[];
  /** The environment the launch adds unless already set (default nodeLaunchEnv; {}: none, as before it). */
  launchEnv?: Readonly<Record<string, string>>;
  /**
   * TLS and tokens on, as a cluster is by default. Off (`insecure: true` in the config) unless asked for: most
   * tests are about something else, and the security tests turn it on.
   */
  secure?: boolean;
}

/** The last lines of a log file, or a note that there is none. */
function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export class ProcCluster {
  readonly nodes = new Map<string, ProcNode>();
  /** The loopback /24 of the managers (ClusterOptions.hostPrefix), for those added later (addManagerNode). */
  private hostPrefix = '127.0.0.';

  private constructor(
    readonly dir: string,
    readonly configPath: string,
    readonly config: Record<string, unknown>,
    private readonly nodeArgs: readonly string[] = [],
    private readonly launchEnv: Readonly<Record<string, string>> = nodeLaunchEnv,
    private readonly ports?: { min: number; max: number },
  ) {}

  static async create(options: ClusterOptions = {}): Promise<ProcCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'minkube-test-'));
    const managers = [];
    const nodes: ProcNode[] = [];
    const scheme = options.secure === true ? 'https' : 'http';
    const range = options.ports;
    const portOn = (host: string): Promise<number> => (range === undefined ? freePort(host) : freePortIn(host, range.min, range.max));
    for (let i = 1; i <= (options.managers ?? 3); i++) {
      const prefix = options.hostPrefix ?? '127.0.0.';
      const host = options.distinctHosts === false ? `${prefix}1` : `${prefix}${i}`;
      const [raftPort, apiPort] = [await portOn(host), await portOn(host)];
      managers.push({ id: `m${i}`, raftAddress: `${host}:${raftPort}`, apiAddress: `${host}:${apiPort}`, dataDir: `m${i}` });
      nodes.push({ id: `m${i}`, kind: 'manager', apiUrl: `${scheme}://${host}:${apiPort}`, host, proc: null, log: null });
    }
    const workers = [];
    const workerHost = options.workerHost ?? '127.0.0.1';
    for (let i = 1; i <= (options.workers ?? 0); i++) {
      const port = await portOn(workerHost);
      workers.push({ id: `w${i}`, apiAddress: `${workerHost}:${port}`, runtime: options.workerRuntime ?? 'process', dataDir: `w${i}` });
      nodes.push({ id: `w${i}`, kind: 'worker', apiUrl: `${scheme}://${workerHost}:${port}`, host: workerHost, proc: null, log: null });
    }
    const config: Record<string, unknown> = { ...(options.secure === true ? {} : { insecure: true }), managers, workers, ...(options.raft ? { raft: options.raft } : {}), ...options.extra };
    const configPath = join(dir, 'cluster.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const c = new ProcCluster(dir, configPath, config, options.nodeArgs, options.launchEnv, range);
    c.hostPrefix = options.hostPrefix ?? c.hostPrefix;
    for (const n of nodes) c.nodes.set(n.id, n);
    return c;
  }

  /**
   * A second process of worker `workerId`, named `name` here: it runs as that id from its own copy of the config,
   * whose entry for the worker names another address (on `host`) and data directory (`<dir>/<name>`), as a config
   * copied to another host would. Start it with start(name).
   */
  async addWorkerCopy(name: string, workerId: string, host = '127.0.0.1'): Promise<ProcNode> {
    const workers = this.config.workers as { id: string; apiAddress: string; dataDir: string }[];
    const port = this.ports === undefined ? await freePort(host) : await freePortIn(host, this.ports.min, this.ports.max);
    const copy = { ...this.config, workers: workers.map((w) => (w.id === workerId ? { ...w, apiAddress: `${host}:${port}`, dataDir: name } : w)) };
    const configPath = join(this.dir, `cluster-${name}.json`);
    writeFileSync(configPath, JSON.stringify(copy, null, 2));
    const scheme = this.secure ? 'https' : 'http';
    const node: ProcNode = { id: name, kind: 'worker', apiUrl: `${scheme}://${host}:${port}`, host, proc: null, log: null, runsAs: workerId, configPath };
    this.nodes.set(name, node);
    return node;
  }

  get managerIds(): string[] {
    return [...this.nodes.values()].filter((n) => n.kind === 'manager').map((n) => n.id);
  }

  node(id: string): ProcNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  url(id: string): string {
    return this.node(id).apiUrl;
  }

  /**
   * A manager the config does not list (added at runtime with --join): its addresses on <hostPrefix><hostIndex>
   * (127.0.0.<hostIndex> unless the cluster was made with another hostPrefix), its ports from the cluster's range if
   * it has one, and its data directory. Start it with start(id, joinArgs(...)).
   */
  async addManagerNode(id: string, hostIndex: number): Promise<{ raftAddress: string; apiAddress: string; dataDir: string }> {
    const host = `${this.hostPrefix}${hostIndex}`;
    const portOn = (): Promise<number> => (this.ports === undefined ? freePort(host) : freePortIn(host, this.ports.min, this.ports.max));
    const [raftPort, apiPort] = [await portOn(), await portOn()];
    this.nodes.set(id, { id, kind: 'manager', apiUrl: `${this.secure ? 'https' : 'http'}://${host}:${apiPort}`, host, proc: null, log: null });
    return { raftAddress: `${host}:${raftPort}`, apiAddress: `${host}:${apiPort}`, dataDir: join(this.dir, id) };
  }

  /** Deletes a node's data directory (it must be stopped). */
  wipe(id: string): void {
    if (this.node(id).proc !== null) throw new Error(`${id} is running`);
    rmSync(join(this.dir, id), { recursive: true, force: true });
  }

  /**
   * withConfig false: the node gets no --config (a node that joins with a token, say). bin: another checkout's
   * bin/minkube.js (a benchmark comparing two builds on one cluster).
   */
  start(id: string, extraArgs: readonly string[] = [], o: { withConfig?: boolean; bin?: string } = {}): void {
    const n = this.node(id);
    if (n.proc !== null) throw new Error(`${id} is already running`);
    n.log ??= createWriteStream(join(this.dir, `${id}.log`), { flags: 'a' });
    const config = o.withConfig === false ? [] : ['--config', n.configPath ?? this.configPath];
    const proc = spawn(process.execPath, [...nodeLaunchFlags, ...this.nodeArgs, o.bin ?? minkubeBin, n.kind, ...config, '--id', n.runsAs ?? id, ...extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...this.launchEnv, ...process.env, MINKUBE_LOG_LEVEL: process.env.MINKUBE_LOG_LEVEL ?? 'info' },
    });
    proc.stdout.pipe(n.log, { end: false });
    proc.stderr.pipe(n.log, { end: false });
    proc.once('exit', () => {
      if (n.proc === proc) n.proc = null;
    });
    n.proc = proc;
  }

  startAll(): void {
    for (const id of this.nodes.keys()) this.start(id);
  }

  /** Sends a signal; for SIGKILL and SIGTERM waits until the process is gone. */
  async signal(id: string, sig: NodeJS.Signals): Promise<void> {
    const n = this.node(id);
    const proc = n.proc;
    if (proc === null) return;
    if (sig === 'SIGKILL' || sig === 'SIGTERM') {
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill(sig);
      await gone;
      n.proc = null;
    } else {
      proc.kill(sig);
    }
  }

  async cleanup(): Promise<void> {
    for (const n of this.nodes.values()) {
      n.proc?.kill('SIGCONT');
      await this.signal(n.id, 'SIGKILL');
      n.log?.end();
    }
    killProcessTasks(this.dir);
    if (process.env.MINKUBE_KEEP_TEST_DIRS !== '1') rmSync(this.dir, { recursive: true, force: true });
  }

  get secure(): boolean {
    return this.config.insecure !== true;
  }

  /** The cluster's CA (PEM), made by the first manager that started: secure clusters only. */
  caCertPem(): string {
    return readFileSync(join(this.dir, '.minkube', 'ca.crt'), 'utf8');
  }

  /** The admin token the first manager made beside the config (secure clusters only). */
  adminToken(): string {
    return readFileSync(join(this.dir, '.minkube', 'admin.token'), 'utf8').trim();
  }

  /**
   * GET/PUT/DELETE json against a node; never throws for HTTP errors, only returns the status and body. In a secure
   * cluster it trusts the cluster CA and carries the admin token, unless `as` says otherwise (null: no token).
   */
  async http(id: string, method: string, path: string, body?: unknown, timeoutMs = 5000, as?: { token?: string | null; cert?: string; key?: string }): Promise<HttpReply> {
    if (!this.secure) return httpJson(this.url(id), method, path, body, timeoutMs);
    const token = as?.token === undefined ? this.adminToken() : as.token;
    const tls = { ca: this.caCertPem(), ...(as?.cert === undefined ? {} : { cert: as.cert, key: as.key }) };
    return httpJson(this.url(id), method, path, body, timeoutMs, { tls, ...(token === null ? {} : { token }) });
  }

  /** Waits until `manager` (m1 by default) lists `count` workers as ready. */
  async waitForReadyWorkers(count: number, opts: { manager?: string; timeoutMs?: number } = {}): Promise<void> {
    await eventually(async () => {
      const w = await this.http(opts.manager ?? 'm1', 'GET', '/v1/workers');
      return w.status === 200 && (w.body.items as { state: string }[]).filter((x) => x.state === 'ready').length === count ? true : undefined;
    }, opts.timeoutMs ?? 120_000, `${count} ready workers`);
  }

  /** Waits until every listed manager that is up agrees on one leader; returns its id. */
  async waitForLeader(opts: { among?: string[]; timeoutMs?: number; excluding?: string } = {}): Promise<string> {
    const among = opts.among ?? this.managerIds.filter((id) => this.node(id).proc !== null);
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      const views = await Promise.all(among.map((id) => this.http(id, 'GET', '/v1/cluster', undefined, 1000).catch(() => null)));
      const leaders = new Set(views.map((v) => (v?.status === 200 ? (v.body.leaderId as string | null) : null)));
      const [only] = [...leaders];
      // Agreement alone is not enough: followers keep naming a dead leader until they time out, so the named
      // leader must itself be among the asked and say it leads.
      if (leaders.size === 1 && typeof only === 'string' && only !== opts.excluding && views[among.indexOf(only)]?.body?.role === 'leader') {
        return only;
      }
      await sleep(50);
    }
    // A node that exited meanwhile (a port taken by another test between freePort and its start, say) is named,
    // with the end of its log, so that such a failure says why.
    const exited = among.filter((id) => this.node(id).proc === null);
    const tails = exited.map((id) => `${id} exited; its log ends:\n${logTail(join(this.dir, `${id}.log`))}`).join('\n');
    throw new Error(`no agreed leader among ${among.join(', ')} within ${opts.timeoutMs ?? 30_000} ms (logs in ${this.dir})${tails === '' ? '' : `\n${tails}`}`);
  }
}

/** A JSON answer; bodies are loosely typed because tests assert on their shape. */
export interface HttpReply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export interface HttpAs {
  tls?: { ca: string; cert?: string; key?: string };
  token?: string;
}

export async function httpJson(baseUrl: string, method: string, path: string, body?: unknown, timeoutMs = 5000, as: HttpAs = {}): Promise<HttpReply> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (as.token !== undefined) headers.authorization = `Bearer ${as.token}`;
  const dispatcher = as.tls === undefined ? undefined : new Agent({ connect: { ...as.tls } });
  let status: number;
  let text: string;
  try {
    const res = await undiciFetch(baseUrl + path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
      ...(dispatcher === undefined ? {} : { dispatcher }),
    });
    status = res.status;
    text = await res.text();
  } finally {
    void dispatcher?.destroy();
  }
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status, body: parsed };
}

/**
 * Process-runtime tasks outlive their worker (as they must: a restarted worker adopts them), so a test's cluster
 * ends them itself: every record under `<dir>/<node>/processes/` names the process group its wrapper leads.
 */
function killProcessTasks(dir: string): void {
  let nodes: string[];
  try {
    nodes = readdirSync(dir);
  } catch {
    return;
  }
  for (const node of nodes) {
    let records: string[];
    try {
      records = readdirSync(join(dir, node, 'processes')).filter((f) => f.endsWith('.json'));
    } catch {
      continue;
    }
    for (const file of records) {
      try {
        const r = JSON.parse(readFileSync(join(dir, node, 'processes', file), 'utf8')) as { pid?: unknown; pidStartTicks?: unknown; state?: unknown };
        if (r.state !== 'running' || typeof r.pid !== 'number' || r.pid <= 1) continue;
        // The same process, not a later one that reused the pid: /proc/<pid>/stat's start time (field 22).
        const stat = readFileSync(`/proc/${r.pid}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] !== r.pidStartTicks) continue;
        process.kill(-r.pid, 'SIGKILL');
      } catch {
        // Gone already, or a record cut short: nothing to end.
      }
    }
  }
}
