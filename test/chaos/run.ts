// One fault-test run: start a cluster behind link proxies, run clients and the nemesis for the duration, heal, then
// demand convergence and check the history. A failure names the seed and the command that replays the schedule.
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SeededRandom } from '../../src/lib/random.js';
import { checkLinearizable, checkLostWrites, checkOverlaps, parseRuns, type LinearizabilitySummary, type TaskRun } from './checks.js';
import { ChaosCluster } from './cluster.js';
import { checkTasks, convergence, type TaskView } from './final.js';
import { Nemesis, planFaults, type FaultKind } from './nemesis.js';
import { views, waitForAgreedLeader } from './probe.js';
import { sleep, Workload } from './workload.js';

export interface ChaosOptions {
  readonly durationS: number;
  readonly seed: number;
  readonly managers: number;
  readonly workers: number;
  /** Where the history goes on failure (always, when given). Default: the run directory. */
  readonly outDir?: string;
  readonly keys?: number;
  readonly clients?: number;
  /** Only these kinds of faults (all by default). */
  readonly kinds?: readonly FaultKind[];
  /** Clients read with consistency=stale: a self-test of the checks, which must then fail. */
  readonly staleReads?: boolean;
  /** `insecure: true` in the configs: no TLS, no tokens. By default the cluster is closed, as a real one is. */
  readonly insecure?: boolean;
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly ok: boolean;
  readonly seed: number;
  readonly replay: string;
  readonly failures: string[];
  readonly warnings: string[];
  readonly stats: Record<string, number>;
  readonly historyPath: string | null;
  readonly runDir: string;
}

/**
 * The config every node gets. A worker kill in the schedule lasts under a second, but the restarted process needs
 * several more to start on a loaded machine: workerTtlMs + lostGraceMs stays well above that, or the worker's tasks
 * would be handed to another worker while their first copies still run (by design, not a bug).
 */
const clusterExtra = {
  tasks: { workerTtlMs: 10_000, lostGraceMs: 5000, backoffBaseMs: 500, backoffCapMs: 4000, reconcileIntervalMs: 1000 },
};
const requestTimeoutMs = 3000;
/** Start-up (a leader, then every worker ready) is bounded, and so is everything after the fault phase; the whole
 * run also ends within the duration plus runSlackMs, inside the CI test's timeout of duration + 120 s. */
const startUpMsMax = 45_000;
const afterDurationMsMax = 110_000;
const runSlackMs = 115_000;

/**
 * Half the seeds take snapshots often, so lagging followers get them streamed (over the link proxies) and restarts
 * load them. The other half keep the default threshold (no snapshot in a short run), because an installed snapshot
 * carries the leader's address book, which replaces the node's own: afterwards it reaches the leader at its real
 * address and the others through the leader's proxies, so partitions leak. Those runs keep every partition exact.
 */
function snapshotThreshold(random: SeededRandom): number | null {
  const choices = [null, null, null, 100, 300, 1000] as const;
  return choices[random.int(choices.length)]!;
}

export function replayCommand(o: ChaosOptions): string {
  const extra = [
    o.managers !== 3 ? ` --managers ${o.managers}` : '',
    o.workers !== 2 ? ` --workers ${o.workers}` : '',
    o.clients === undefined ? '' : ` --clients ${o.clients}`,
    o.keys === undefined ? '' : ` --keys ${o.keys}`,
    o.kinds === undefined ? '' : ` --faults ${o.kinds.join(',')}`,
    o.staleReads === true ? ' --stale-reads' : '',
    o.insecure === true ? ' --insecure' : '',
  ].join('');
  return `npm run chaos -- --duration ${o.durationS} --seed ${o.seed}${extra}`;
}

export function randomSeed(): number {
  return randomInt(0x7fffffff);
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? ((line: string) => console.log(line));
  const t0 = performance.now();
  const nowMs = (): number => performance.now() - t0;
  const random = new SeededRandom(o.seed);
  const dir = mkdtempSync(join(tmpdir(), 'minkube-chaos-'));
  const runFile = join(dir, 'runs.log');
  writeFileSync(runFile, '');
  const snapshotEntries = snapshotThreshold(random);
  const extra = snapshotEntries === null ? clusterExtra : { ...clusterExtra, raft: { snapshotThresholdEntries: snapshotEntries } };
  const cluster = await ChaosCluster.create({ dir, managers: o.managers, workers: o.workers, random: random.fork(), extra, nowMs, insecure: o.insecure === true });
  const guard = (): void => cluster.killAllNow();
  process.once('exit', guard);
  const run = new Run(o, log, nowMs, cluster, runFile, random);
  const snapshots = snapshotEntries === null ? 'default snapshot threshold' : `a snapshot every ${snapshotEntries} entries`;
  const security = o.insecure === true ? 'insecure (no TLS, no tokens)' : 'TLS and tokens on';
  log(`chaos: seed ${o.seed}, ${o.managers} managers, ${o.workers} workers, ${o.durationS} s, ${snapshots}, ${security}; run dir ${dir}`);
  try {
    await run.execute();
  } catch (err) {
    run.failures.push(`the run itself failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    await run.abort();
    await cluster.close();
    killLeftoverRuns(runFile);
    process.removeListener('exit', guard);
  }
  return run.finish(dir);
}

/** The state of one run as it goes: what it recorded, and what it found. */
class Run {
  readonly failures: string[] = [];
  readonly warnings: string[] = [];
  private readonly keys: string[];
  private workload: Workload | null = null;
  private nemesis: Nemesis | null = null;
  private taskViews: TaskView[] = [];
  private runs: TaskRun[] = [];
  private linearizability: LinearizabilitySummary | null = null;
  private readonly plan;
  private readonly startedMs = performance.now();

  constructor(
    private readonly o: ChaosOptions,
    private readonly log: (line: string) => void,
    private readonly nowMs: () => number,
    private readonly cluster: ChaosCluster,
    private readonly runFile: string,
    private readonly random: SeededRandom,
  ) {
    this.keys = Array.from({ length: o.keys ?? 5 }, (_, i) => `chaos/k${i}`);
    const kinds = o.kinds === undefined ? {} : { kinds: o.kinds };
    this.plan = planFaults(random.fork(), { managers: o.managers, workers: o.workers, durationMs: o.durationS * 1000, ...kinds });
  }

  async execute(): Promise<void> {
    if (!(await this.startUp())) return;
    const managers = new Map(this.cluster.managerIds.map((id) => [id, this.cluster.node(id).apiAddress]));
    const workload = (this.workload = new Workload({
      managers, keys: this.keys, kvClients: this.o.clients ?? 6, random: this.random.fork(), timeoutMs: requestTimeoutMs,
      nowMs: this.nowMs, runFile: this.runFile, seed: this.o.seed, taskIntervalMs: 1500, staleReads: this.o.staleReads === true,
      access: this.cluster.access(),
    }));
    const nemesis = (this.nemesis = new Nemesis(this.cluster, this.plan, this.nowMs, this.log));
    workload.start();
    const faults = nemesis.run();
    await sleep(this.o.durationS * 1000);
    const deadline = Math.min(performance.now() + afterDurationMsMax, this.startedMs + this.o.durationS * 1000 + runSlackMs);
    nemesis.stop();
    await faults;
    await workload.stop();
    this.log(`chaos: fault phase over at ${(this.nowMs() / 1000).toFixed(1)} s: ${nemesis.records.length} faults, ${workload.kv.length} kv operations, ${workload.tasks.length} task submissions; healing`);
    await nemesis.healAll();
    await this.finalPhase(workload, deadline);
  }

  /** Stops the clients and the nemesis if a failure left them running (no-ops after a normal end). */
  async abort(): Promise<void> {
    this.nemesis?.stop();
    await this.workload?.stop();
  }

  /**
   * Managers, a leader, then workers registered and ready. In a closed cluster "a leader" means an authenticated
   * GET /v1/cluster answering 200 on every manager: the admin token works only once the first leader has
   * committed its bootstrap, and the 401s before that mean "not ready yet".
   */
  private async startUp(): Promise<boolean> {
    const deadline = performance.now() + startUpMsMax;
    for (const id of this.cluster.managerIds) this.cluster.start(id);
    if ((await waitForAgreedLeader(this.cluster, startUpMsMax)) === null) {
      const why = !this.cluster.insecure && this.cluster.access() === null ? ` (no CA and admin token in ${this.cluster.clusterDir})` : '';
      this.failures.push(`no leader was elected (or none answered an authenticated GET /v1/cluster) within ${startUpMsMax / 1000} s of the start${why}`);
      return false;
    }
    while ((await views(this.cluster)).some((v) => v === null)) {
      if (performance.now() > deadline) {
        this.failures.push(`not every manager answered GET /v1/cluster with 200 within ${startUpMsMax / 1000} s of the start`);
        return false;
      }
      await sleep(100);
    }
    for (const id of this.cluster.workerIds) this.cluster.start(id);
    const first = this.cluster.managerIds[0]!;
    while (performance.now() < deadline) {
      const o = await this.cluster.send(first, 'GET', '/v1/workers', { timeoutMs: 2000 });
      const items = o.kind === 'answer' && o.status === 200 && Array.isArray(o.body.items) ? (o.body.items as { state?: string }[]) : [];
      if (items.filter((w) => w.state === 'ready').length === this.cluster.workerIds.length) return true;
      await sleep(200);
    }
    this.failures.push(`the workers were not all ready within ${startUpMsMax / 1000} s of the start`);
    return false;
  }

  /** Every wait is bounded by its own cap and by what is left before the deadline, less 20 s for the checks. */
  private async finalPhase(workload: Workload, deadline: number): Promise<void> {
    const left = (capMs: number): number => Math.max(1000, Math.min(capMs, deadline - 20_000 - performance.now()));
    const leader = await waitForAgreedLeader(this.cluster, left(45_000));
    if (leader === null) this.failures.push('the managers did not agree on a leader after the heal');
    await this.finalReads(workload, left(30_000));
    const tasks = await checkTasks(this.cluster, workload.tasks, left(45_000), this.log);
    this.taskViews = tasks.views;
    this.failures.push(...tasks.failures);
    for (const id of this.cluster.workerIds) await this.cluster.kill(id);
    const converged = await convergence(this.cluster, this.keys, left(45_000));
    if (converged.failure !== null) this.failures.push(converged.failure);
    else this.log(`chaos: converged at applied index ${converged.index}`);
    await this.checkRuns();
    this.checkHistory(workload);
    for (const e of this.cluster.unexpectedExits) {
      this.failures.push(`${e.id} exited by itself at ${(e.atMs / 1000).toFixed(1)} s (code ${e.code}, signal ${e.signal}); see its log`);
    }
  }

  /** A linearizable read of every key, retried through random managers until one answers. */
  private async finalReads(workload: Workload, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const ids = this.cluster.managerIds;
    for (const key of this.keys) {
      while (performance.now() < deadline) {
        const r = await workload.kvOp('final', ids[this.random.int(ids.length)]!, key, 'read');
        if (r.status === 'ok') break;
        await sleep(200);
      }
    }
  }

  /** Waits briefly for runs still going to end, then looks for overlaps. */
  private async checkRuns(): Promise<void> {
    const deadline = performance.now() + 5000;
    for (;;) {
      this.runs = parseRuns(readFileSync(this.runFile, 'utf8'));
      if (!this.runs.some((r) => r.endMs === null && alive(r.pid)) || performance.now() > deadline) break;
      await sleep(250);
    }
    const byMarker = new Map(this.taskViews.map((t) => [t.marker, t]));
    const describe = (marker: string): string => {
      const v = byMarker.get(marker);
      return v === undefined ? 'task record unknown' : `task ${v.taskId}: ${v.state}, history ${JSON.stringify(v.history)}`;
    };
    const found = checkOverlaps(this.runs, alive, Date.now(), describe);
    this.failures.push(...found.failures);
    this.warnings.push(...found.warnings);
    const ran = new Set(this.runs.filter((r) => r.endMs !== null && !r.stopped).map((r) => r.marker));
    for (const t of this.taskViews) {
      if (t.state === 'succeeded' && !ran.has(t.marker)) this.failures.push(`task ${t.taskId} (${t.marker}) succeeded but its command never ran to its end`);
    }
  }

  private checkHistory(workload: Workload): void {
    const lin = (this.linearizability = checkLinearizable(workload.kv, { stepsMax: 3_000_000, timeMs: 10_000 }));
    this.failures.push(...lin.failures);
    this.warnings.push(...lin.warnings);
    this.failures.push(...checkLostWrites(workload.kv, this.keys));
  }

  stats(): Record<string, number> {
    const kv = this.workload?.kv ?? [];
    const count = (f: (r: (typeof kv)[number]) => boolean): number => kv.filter(f).length;
    const tasks = this.workload?.tasks ?? [];
    return {
      kvOps: kv.length,
      kvOk: count((r) => r.status === 'ok'),
      kvFailed: count((r) => r.status === 'fail'),
      kvUnknown: count((r) => r.status === 'unknown'),
      writesAcked: count((r) => r.kind !== 'read' && r.status === 'ok'),
      casRefused: count((r) => r.output?.kind === 'mismatch'),
      tasksSubmitted: tasks.length,
      tasksAcked: tasks.filter((t) => t.status === 'ok').length,
      taskRuns: this.runs.length,
      faults: this.nemesis?.records.length ?? 0,
      managerRestarts: this.cluster.managerIds.reduce((s, id) => s + this.cluster.node(id).starts - 1, 0),
      linSteps: Object.values(this.linearizability?.results ?? {}).reduce((s, r) => s + r.steps, 0),
      seconds: Math.round(this.nowMs() / 1000),
    };
  }

  finish(dir: string): ChaosResult {
    const ok = this.failures.length === 0;
    const replay = replayCommand(this.o);
    const stats = this.stats();
    let historyPath: string | null = null;
    if (!ok || this.o.outDir !== undefined) historyPath = this.writeHistory(resolve(this.o.outDir ?? dir), replay, stats);
    if (ok) {
      this.log(`chaos: passed (seed ${this.o.seed}): ${JSON.stringify(stats)}`);
      for (const w of this.warnings) this.log(`chaos: warning: ${w}`);
      if (process.env.MINKUBE_KEEP_TEST_DIRS !== '1' && this.o.outDir === undefined) rmSync(dir, { recursive: true, force: true });
    } else {
      this.reportFailure(dir, replay, historyPath, stats);
    }
    return { ok, seed: this.o.seed, replay, failures: this.failures, warnings: this.warnings, stats, historyPath, runDir: dir };
  }

  private writeHistory(outDir: string, replay: string, stats: Record<string, number>): string {
    mkdirSync(outDir, { recursive: true });
    const path = join(outDir, `chaos-${this.o.seed}-history.json`);
    const history = {
      seed: this.o.seed, replay, options: { ...this.o, log: undefined }, stats, failures: this.failures, warnings: this.warnings,
      plan: this.plan, faults: this.nemesis?.records ?? [], unexpectedExits: this.cluster.unexpectedExits,
      linearizability: this.linearizability?.results ?? null, kv: this.workload?.kv ?? [], tasks: this.workload?.tasks ?? [],
      taskRecords: this.taskViews, runs: this.runs,
    };
    writeFileSync(path, JSON.stringify(history, null, 1));
    return path;
  }

  private reportFailure(dir: string, replay: string, historyPath: string | null, stats: Record<string, number>): void {
    this.log(`chaos: FAILED (seed ${this.o.seed}): ${this.failures.length} problem(s); ${JSON.stringify(stats)}`);
    for (const f of this.failures) this.log(`chaos: failure: ${f}`);
    for (const w of this.warnings) this.log(`chaos: warning: ${w}`);
    for (const id of this.cluster.nodes.keys()) {
      this.log(`chaos: --- last lines of ${id}.log ---`);
      for (const line of this.cluster.logTail(id, 25)) this.log(`  ${line}`);
    }
    this.log(`chaos: logs in ${dir}`);
    if (historyPath !== null) this.log(`chaos: history written to ${historyPath}`);
    this.log(`chaos: replay with: ${replay}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Task processes outlive their workers: stop any still running (each leads its own process group). */
function killLeftoverRuns(runFile: string): void {
  if (!existsSync(runFile)) return;
  for (const r of parseRuns(readFileSync(runFile, 'utf8'))) {
    if (r.endMs !== null || !alive(r.pid)) continue;
    try {
      process.kill(-r.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
