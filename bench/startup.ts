// Start-up cost: `minkube --help` and `minkube status` (wall, against a running secure 3-manager cluster) and the
// CPU a manager spends from exec until its GET /ready answers 200, each from the built JavaScript (dist/, what
// `npm install` builds) and from the TypeScript sources through tsx, in one run. `npx tsx bench/startup.ts [--runs 10]`
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcCluster, eventually, minkubeBin, repoRoot } from '../test/support/cluster.js';
import { median } from './summary.js';
import type { SummaryRow } from './summary.js';
import { arg, cpuMsOf, printResult, printTable, round } from './support.js';

type Mode = 'built' | 'source';
const modes: readonly Mode[] = ['built', 'source'];
const envOf = (mode: Mode): Record<string, string> => ({ MINKUBE_FROM_SOURCE: mode === 'built' ? '0' : '1' });

/** Wall ms of one `minkube ...` run (it must exit 0). */
function cliWallMs(args: readonly string[], env: Record<string, string>): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [minkubeBin, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`minkube ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

/** Each manager's CPU ms and wall ms from its start to its first 200 from /ready. */
async function managerStart(mode: Mode): Promise<{ cpuMs: number[]; wallMs: number[] }> {
  Object.assign(process.env, envOf(mode));
  const cluster = await ProcCluster.create({ managers: 3, workers: 0, secure: true });
  try {
    const t0 = performance.now();
    cluster.startAll();
    const samples = await Promise.all(
      cluster.managerIds.map((id) =>
        eventually(async () => {
          const r = await cluster.http(id, 'GET', '/ready', undefined, 1000).catch(() => null);
          if (r?.status !== 200) return undefined;
          return { cpuMs: cpuMsOf(cluster.node(id).proc?.pid), wallMs: performance.now() - t0 };
        }, 60_000, `${id} ready`),
      ),
    );
    return { cpuMs: samples.map((s) => s.cpuMs), wallMs: samples.map((s) => s.wallMs) };
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
    result[mode] = { managerCpuMs: median(m.cpuMs), managerReadyWallMs: median(m.wallMs) };
  }
  const cluster = await ProcCluster.create({ managers: 3, workers: 0, secure: true });
  try {
    cluster.startAll();
    await cluster.waitForLeader();
    const credentials = join(cluster.dir, '.minkube', 'credentials.json');
    if (!existsSync(credentials)) throw new Error(`no credentials file at ${credentials}`);
    for (const mode of modes) {
      const env = { ...envOf(mode), MINKUBE_CONFIG: credentials };
      const help: number[] = [];
      const status: number[] = [];
      cliWallMs(['status'], env); // the first run warms the page cache
      for (let i = 0; i < runs; i++) {
        help.push(cliWallMs(['--help'], env));
        status.push(cliWallMs(['status'], env));
      }
      Object.assign(result[mode]!, { helpWallMs: median(help), statusWallMs: median(status) });
    }
  } finally {
    await cluster.cleanup();
  }
  const baseline: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    baseline.push(performance.now() - t0);
  }
  const nodeMs = round(median(baseline), 0);
  for (const [what, key] of [['minkube --help, wall', 'helpWallMs'], ['minkube status, wall (3 managers, TLS)', 'statusWallMs'], ['manager: CPU from exec to ready', 'managerCpuMs'], ['manager: wall from exec to ready (3 starting)', 'managerReadyWallMs']] as const) {
    const b = result.built![key]!;
    const s = result.source![key]!;
    rows.push({ measure: what, 'built (dist/) ms': round(b, 0), 'sources (tsx) ms': round(s, 0), 'built / sources': round(b / s, 2) });
  }
  printTable(`Start-up, medians of ${runs} runs (node -e 0 alone: ${nodeMs} ms wall)`, rows);
  const summary: SummaryRow[] = [
    { metric: 'minkube status, wall (built)', unit: 'ms', value: round(result.built!.statusWallMs!, 0), better: 'lower', note: `sources: ${round(result.source!.statusWallMs!, 0)} ms; node -e 0: ${nodeMs} ms` },
    { metric: 'manager CPU to ready (built)', unit: 'ms', value: round(result.built!.managerCpuMs!, 0), better: 'lower', note: `sources: ${round(result.source!.managerCpuMs!, 0)} ms` },
  ];
  printResult('startup', { runs, nodeBaselineMs: nodeMs, ...result }, summary);
}

await main();
