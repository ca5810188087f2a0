// Start-up cost: `minkube --help` and `minkube status` (wall and CPU, against a running secure 3-manager cluster)
// and the CPU a manager spends from exec until its GET /ready answers 200, at its first start (it makes the cluster
// CA, its key and certificate) and when restarted with them, each from the built JavaScript (dist/, what
// `npm install` builds) and from the TypeScript sources through tsx, in one run; node's own start (`node -e 0`) is
// the floor. `npx tsx bench/startup.ts [--runs 10]`
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ProcCluster, eventually, minkubeBin, repoRoot } from '../test/support/cluster.js';
import { median } from './summary.js';
import type { SummaryRow } from './summary.js';
import { arg, cpuMsOf, printResult, printTable, round } from './support.js';

/** Issue 13's aims: `minkube status` under 150 ms wall, a manager ready in under 0.5 s of CPU. */
const aimStatusWallMs = 150;
const aimManagerCpuMs = 500;

type Mode = 'built' | 'source';
const modes: readonly Mode[] = ['built', 'source'];
const envOf = (mode: Mode): Record<string, string> => ({ MINKUBE_FROM_SOURCE: mode === 'built' ? '0' : '1' });

/** Wall and CPU ms (user + system of the finished child) of one run of a command (it must exit 0). */
function runMs(argv: readonly string[], env: Record<string, string> = {}): { wallMs: number; cpuMs: number } {
  const before = childrenCpuMs();
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, encoding: 'utf8' });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  // spawnSync has reaped the child: its times are now in this process's children's times.
  return { wallMs, cpuMs: childrenCpuMs() - before };
}

/** CPU ms of every reaped child of this process so far (from /proc: node's resourceUsage counts only itself). */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

const cli = (args: readonly string[], env: Record<string, string>): { wallMs: number; cpuMs: number } => runMs([process.execPath, minkubeBin, ...args], env);

/** Each manager's CPU ms and wall ms from its start to its first 200 from /ready: first start, then a restart. */
async function managerStart(mode: Mode): Promise<{ cpuMs: number[]; wallMs: number[]; restartCpuMs: number[] }> {
  Object.assign(process.env, envOf(mode));
  const cluster = await ProcCluster.create({ managers: 3, workers: 0, secure: true });
  const ready = async (): Promise<{ cpuMs: number; wallMs: number }[]> => {
    const t0 = performance.now();
    cluster.startAll();
    return Promise.all(
      cluster.managerIds.map((id) =>
        eventually(async () => {
          const r = await cluster.http(id, 'GET', '/ready', undefined, 1000).catch(() => null);
          if (r?.status !== 200) return undefined;
          return { cpuMs: cpuMsOf(cluster.node(id).proc?.pid), wallMs: performance.now() - t0 };
        }, 60_000, `${id} ready`),
      ),
    );
  };
  try {
    const first = await ready();
    for (const id of cluster.managerIds) await cluster.signal(id, 'SIGTERM');
    const again = await ready();
    return { cpuMs: first.map((s) => s.cpuMs), wallMs: first.map((s) => s.wallMs), restartCpuMs: again.map((s) => s.cpuMs) };
  } finally {
    await cluster.cleanup();
    delete process.env.MINKUBE_FROM_SOURCE;
  }
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '10'));
  execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  const rows: Record<string, string | number>[] = [];
  const result: Record<string, Record<string, number>> = {};
  for (const mode of modes) {
    const m = await managerStart(mode);
    result[mode] = { managerCpuMs: median(m.cpuMs), managerRestartCpuMs: median(m.restartCpuMs), managerReadyWallMs: median(m.wallMs) };
  }
  const cluster = await ProcCluster.create({ managers: 3, workers: 0, secure: true });
  try {
    // The cluster the commands talk to runs the built files, whatever the commands run.
    Object.assign(process.env, envOf('built'));
    cluster.startAll();
    delete process.env.MINKUBE_FROM_SOURCE;
    await cluster.waitForLeader({ timeoutMs: 120_000 });
    const credentials = join(cluster.dir, '.minkube', 'credentials.json');
    if (!existsSync(credentials)) throw new Error(`no credentials file at ${credentials}`);
    for (const mode of modes) {
      const env = { ...envOf(mode), MINKUBE_CONFIG: credentials };
      const help: { wallMs: number; cpuMs: number }[] = [];
      const status: { wallMs: number; cpuMs: number }[] = [];
      cli(['status'], env); // the first run warms the page cache
      for (let i = 0; i < runs; i++) {
        help.push(cli(['--help'], env));
        status.push(cli(['status'], env));
      }
      Object.assign(result[mode]!, {
        helpWallMs: median(help.map((r) => r.wallMs)),
        statusWallMs: median(status.map((r) => r.wallMs)),
        statusCpuMs: median(status.map((r) => r.cpuMs)),
      });
    }
  } finally {
    await cluster.cleanup();
  }
  const baseline: { wallMs: number; cpuMs: number }[] = [];
  for (let i = 0; i < runs; i++) baseline.push(runMs([process.execPath, '-e', '0']));
  const nodeMs = round(median(baseline.map((r) => r.wallMs)), 0);
  const nodeCpuMs = round(median(baseline.map((r) => r.cpuMs)), 0);
  const measures = [
    ['minkube --help, wall', 'helpWallMs'],
    ['minkube status, wall (3 managers, TLS)', 'statusWallMs'],
    ['minkube status, CPU', 'statusCpuMs'],
    ['manager: CPU from exec to ready, first start (makes CA, key, certificate)', 'managerCpuMs'],
    ['manager: CPU from exec to ready, restart', 'managerRestartCpuMs'],
    ['manager: wall from exec to ready (3 starting)', 'managerReadyWallMs'],
  ] as const;
  for (const [what, key] of measures) {
    const b = result.built![key]!;
    const s = result.source![key]!;
    rows.push({ measure: what, 'built (dist/) ms': round(b, 0), 'sources (tsx) ms': round(s, 0), 'built / sources': round(b / s, 2) });
  }
  printTable(`Start-up, medians of ${runs} runs (node -e 0 alone: ${nodeMs} ms wall, ${nodeCpuMs} ms CPU)`, rows);
  // Issue 13's aims, for what `npm install` builds: wall time is only meaningful on a quiet machine (the load
  // average is printed beside it); CPU time is the steadier figure.
  const load = loadavg().map((l) => l.toFixed(1)).join(' ');
  const aims = [
    { measure: 'minkube status, wall', key: 'statusWallMs', aimMs: aimStatusWallMs },
    { measure: 'manager CPU to ready, restart', key: 'managerRestartCpuMs', aimMs: aimManagerCpuMs },
    { measure: 'manager CPU to ready, first start', key: 'managerCpuMs', aimMs: aimManagerCpuMs },
  ] as const;
  printTable(
    `Aims (built), load average ${load}`,
    aims.map((a) => ({ measure: a.measure, 'median ms': round(result.built![a.key]!, 0), 'aim ms': `< ${a.aimMs}`, met: result.built![a.key]! < a.aimMs ? 'yes' : 'no' })),
  );
  const aimNote = (key: (typeof aims)[number]['key'], aimMs: number): string => `aim < ${aimMs} ms: ${result.built![key]! < aimMs ? 'met' : 'not met'}`;
  const summary: SummaryRow[] = [
    { metric: 'minkube status, wall (built)', unit: 'ms', value: round(result.built!.statusWallMs!, 0), better: 'lower', note: `${aimNote('statusWallMs', aimStatusWallMs)} (load ${load}); CPU ${round(result.built!.statusCpuMs!, 0)} ms; node -e 0: ${nodeMs} ms wall, ${nodeCpuMs} ms CPU` },
    { metric: 'manager CPU to ready, restart (built)', unit: 'ms', value: round(result.built!.managerRestartCpuMs!, 0), better: 'lower', note: aimNote('managerRestartCpuMs', aimManagerCpuMs) },
    { metric: 'manager CPU to ready, first start (built)', unit: 'ms', value: round(result.built!.managerCpuMs!, 0), better: 'lower', note: `${aimNote('managerCpuMs', aimManagerCpuMs)}; it makes the CA, its key and certificate; sources: ${round(result.source!.managerCpuMs!, 0)} ms` },
  ];
  printResult('startup', { runs, loadAverage: loadavg(), nodeBaselineMs: nodeMs, nodeBaselineCpuMs: nodeCpuMs, aims: { statusWallMs: aimStatusWallMs, managerCpuMs: aimManagerCpuMs }, ...result }, summary);
}

await main();
