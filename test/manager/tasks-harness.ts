// An in-process cluster for task tests and the placement benchmark: real managers (startManagerFromConfig: LevelDB,
// TCP, HTTP on loopback) and workers built from the worker's parts over the in-memory runtime, so a test can choose
// what each container does, and stop or restart a worker without touching its "containers".
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import { buildWorkerApp } from '../../src/api/worker-app.js';
import { parseClusterConfig, type ClusterConfig } from '../../src/config/cluster.js';
import { startManagerFromConfig, type RunningManager } from '../../src/daemon/manager.js';
import { MemoryHost, MemoryRuntime, type MemoryRuntimeOptions } from '../../src/runtime/memory.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { WorkerLoops } from '../../src/worker/loops.js';
import { HttpManagerLink } from '../../src/worker/managers.js';
import { runCli, type CliResult } from '../support/cli.js';
import { httpJson } from '../support/cluster.js';
import { freePort, waitFor } from '../support/wait.js';

export interface MemoryWorker {
  readonly id: string;
  readonly apiUrl: string;
  readonly runtime: MemoryRuntime;
  readonly agent: WorkerAgent;
  /** Its loops' counters (heartbeatsSent, reconciliations) tell a test how much the worker has done. */
  readonly loops: WorkerLoops;
  stop(): Promise<void>;
}

export interface TaskClusterOptions {
  managers?: number;
  workers?: number;
  tasks?: Partial<ClusterConfig['tasks']>;
  /** What each container does (default: runs 50 ms and exits 0). */
  behave?: MemoryRuntimeOptions['behave'];
  logLevel?: string;
  /** Where every node's log lines go (default: stdout). */
  logStream?: DestinationStream;
  workerTasksMax?: number;
  finishedRetentionMs?: number;
}

export class TaskCluster {
  readonly managers = new Map<string, RunningManager>();
  readonly workers = new Map<string, MemoryWorker>();
  /** One "machine" per worker id: a restarted worker finds its containers again. */
  readonly hosts = new Map<string, MemoryHost>();

  private constructor(
    readonly dir: string,
    readonly config: ClusterConfig,
    readonly logger: Logger,
    private readonly o: TaskClusterOptions,
  ) {}

  static async create(o: TaskClusterOptions = {}): Promise<TaskCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'minkube-tasks-'));
    const managers = [];
    for (let i = 1; i <= (o.managers ?? 3); i++) {
      managers.push({ id: `m${i}`, raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: `m${i}` });
    }
    const workers = [];
    for (let i = 1; i <= (o.workers ?? 2); i++) workers.push({ id: `w${i}`, apiAddress: `127.0.0.1:${await freePort()}`, runtime: 'process' as const });
    const tasks = { workerHeartbeatIntervalMs: 100, workerTtlMs: 600, lostGraceMs: 300, reconcileIntervalMs: 300, backoffBaseMs: 50, backoffCapMs: 400, ...o.tasks };
    const config = parseClusterConfig({ insecure: true, managers, workers, tasks, raft: { heartbeatIntervalMs: 25, electionTimeoutMs: 200 } }, dir);
    const level = o.logLevel ?? process.env.MINKUBE_TEST_LOG ?? 'silent';
    const logger = o.logStream === undefined ? pino({ level }) : pino({ level }, o.logStream);
    return new TaskCluster(dir, config, logger, o);
  }

  async startAll(): Promise<void> {
    await Promise.all(this.config.managers.map((m) => this.startManager(m.id)));
    for (const w of this.config.workers) await this.startWorker(w.id);
  }

  async startManager(id: string): Promise<RunningManager> {
    const m = await startManagerFromConfig(this.config, id, this.logger);
    this.managers.set(id, m);
    return m;
  }

  async stopManager(id: string): Promise<void> {
    await this.managers.get(id)?.stop();
    this.managers.delete(id);
  }

  async startWorker(id: string): Promise<MemoryWorker> {
    const self = this.config.workers.find((w) => w.id === id)!;
    let host = this.hosts.get(id);
    if (host === undefined) this.hosts.set(id, (host = new MemoryHost()));
    const runtimeOpts: MemoryRuntimeOptions = { host, durationMsDefault: 50 };
    if (this.o.behave !== undefined) runtimeOpts.behave = this.o.behave;
    const runtime = new MemoryRuntime(runtimeOpts);
    const logger = this.logger.child({ worker: id });
    const agentOpts: ConstructorParameters<typeof WorkerAgent>[0] = { workerId: id, runtime, logger, stopTimeoutMs: 1000, assignWaitMs: 1000 };
    if (this.o.workerTasksMax !== undefined) agentOpts.tasksMax = this.o.workerTasksMax;
    if (this.o.finishedRetentionMs !== undefined) agentOpts.finishedRetentionMs = this.o.finishedRetentionMs;
    const agent = new WorkerAgent(agentOpts);
    await agent.adopt();
    const app = buildWorkerApp({ agent });
    const [host_, port] = self.apiAddress.split(':') as [string, string];
    await app.listen({ host: host_, port: Number(port) });
    const link = new HttpManagerLink({ managers: this.config.managers.map((m) => m.apiAddress), timeoutMs: 3000 });
    const loops = new WorkerLoops({
      agent, link, logger, registration: { id, apiAddress: self.apiAddress, runtime: 'memory' },
      heartbeatIntervalMs: this.config.tasks.workerHeartbeatIntervalMs, reconcileIntervalMs: this.config.tasks.reconcileIntervalMs,
    });
    loops.start();
    const worker: MemoryWorker = {
      id, apiUrl: `http://${self.apiAddress}`, runtime, agent, loops,
      stop: async () => {
        await loops.stop();
        await app.close();
        await agent.close();
        this.workers.delete(id);
      },
    };
    this.workers.set(id, worker);
    return worker;
  }

  url(id: string): string {
    const m = this.config.managers.find((x) => x.id === id);
    return m !== undefined ? `http://${m.apiAddress}` : this.workers.get(id)!.apiUrl;
  }

  /** A JSON call; the body comes back as the caller says it is (tests check what matters with expect). */
  async http<T = Record<string, unknown>>(id: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const r = await httpJson(this.url(id), method, path, body);
    return { status: r.status, body: r.body as T };
  }

  async leader(timeoutMs = 10_000): Promise<string> {
    return waitFor('a manager that says it leads', async () => {
      for (const id of this.managers.keys()) {
        const r = await this.http<{ role: string }>(id, 'GET', '/v1/cluster').catch(() => null);
        if (r?.status === 200 && r.body.role === 'leader') return id;
      }
      return undefined;
    }, timeoutMs, 25);
  }

  async close(): Promise<void> {
    for (const w of [...this.workers.values()]) await w.stop();
    await Promise.all([...this.managers.keys()].map((id) => this.stopManager(id)));
    for (const host of this.hosts.values()) for (const c of host.containers.values()) c.timer?.cancel();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A started TaskCluster (three managers, two workers) once both workers are ready, and `minkube --api <m2> ...` as a
 * child process against it: what the CLI tests run.
 */
export async function cliTaskCluster(behave: MemoryRuntimeOptions['behave']): Promise<{ c: TaskCluster; cli: (args: string[]) => Promise<CliResult> }> {
  const c = await TaskCluster.create({ behave });
  await c.startAll();
  const api = c.url('m2');
  await waitFor('two ready workers', async () => {
    const r = await c.http<{ items: { state: string }[] }>('m1', 'GET', '/v1/workers');
    return r.body.items.filter((w) => w.state === 'ready').length === 2;
  }, 10_000);
  return { c, cli: (args) => runCli(['--api', api, ...args]) };
}
