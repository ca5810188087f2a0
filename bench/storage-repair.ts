// Storage repair (issue 19): a follower whose newest LevelDB file was cut to 60% while it was down, restarted ->
// a voter again holding every committed entry, with no operator step; next to the same follower wiped and re-added by
// hand (member remove, empty data directory, --join) -> a voter holding every committed entry. 3 managers on
// loopback, insecure; sizes in entries (one KV write each), with the log alone or with snapshots (every 20,000).
// `npx tsx bench/storage-repair.ts [--sizes 10000,100000] [--quick]`
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcCluster, eventually } from '../test/support/cluster.js';
import { clusterView, cutTo, newestStorageFile, waitAllApplied, writeKeys } from '../test/storage-faults/support.js';
import type { SummaryRow } from './summary.js';
import { arg, flag, printResult, printTable, round } from './support.js';

interface Case {
  readonly entries: number;
  /** Snapshot threshold: above `entries` means the log alone. */
  readonly snapshotThresholdEntries: number;
}

interface CaseResult extends Case {
  readonly label: string;
  /** Restart of the damaged follower -> storage ok, a voter, applied everything the leader had committed. */
  readonly repairMs: number;
  /** member remove -> wiped -> started with --join -> a voter that applied everything committed. */
  readonly wipeRejoinMs: number;
  /**
   * The same two, counted from the restarted process's "raft state loaded" line (its storage checked and loaded):
   * without the process's boot, which on a loaded machine is most of the total.
   */
  readonly repairAfterLoadMs: number | null;
  readonly rejoinAfterLoadMs: number | null;
  readonly targetIndex: number;
  /** How the repair got there: the follower's log said "snapshot installed", or only entries came. */
  readonly repairBySnapshot: boolean;
}

const NO_SNAPSHOT = 10_000_000;

/** When the manager's log last said "raft state loaded" (epoch ms), or null. */
function lastLoadedAtMs(c: ProcCluster, id: string): number | null {
  const lines = readFileSync(join(c.dir, `${id}.log`), 'utf8').split('\n').filter((l) => l.includes('"raft state loaded"'));
  const line = lines.at(-1);
  if (line === undefined) return null;
  const { time } = JSON.parse(line) as { time?: string };
  return time === undefined ? null : Date.parse(time);
}

async function voterWithAll(c: ProcCluster, id: string, leader: string, target: number, timeoutMs: number): Promise<void> {
  await eventually(async () => {
    const [self, lead] = await Promise.all([clusterView(c, id), clusterView(c, leader)]);
    const m = lead?.members.find((x) => x.id === id);
    return self?.storage === 'ok' && self.appliedIndex >= target && m?.voter === true && m.storage === 'ok' ? true : undefined;
  }, timeoutMs, `${id} to be a voter with every entry up to ${target}`);
}

async function runCase(k: Case): Promise<CaseResult> {
  const label = `${k.entries.toLocaleString('en')} entries, ${k.snapshotThresholdEntries >= NO_SNAPSHOT ? 'log only' : `snapshot every ${k.snapshotThresholdEntries.toLocaleString('en')}`}`;
  const c = await ProcCluster.create({ managers: 3, extra: { raft: { snapshotThresholdEntries: k.snapshotThresholdEntries } } });
  try {
    c.startAll();
    const leader = await c.waitForLeader({ timeoutMs: 120_000 });
    const victim = leader === 'm3' ? 'm2' : 'm3';
    await writeKeys(c, leader, 0, k.entries, 64);
    await waitAllApplied(c, ['m1', 'm2', 'm3'], leader, 300_000);
    const target = (await clusterView(c, leader))!.commitIndex;
    const timeoutMs = 600_000;

    // Repair: cut, restart, wait.
    await c.signal(victim, 'SIGKILL');
    cutTo(newestStorageFile(join(c.dir, victim)), 0.6);
    const t0 = performance.now();
    c.start(victim);
    await voterWithAll(c, victim, leader, target, timeoutMs);
    const repairMs = performance.now() - t0;
    const repairedAt = Date.now();
    const repairLoadedAt = lastLoadedAtMs(c, victim);
    const log = readFileSync(join(c.dir, `${victim}.log`), 'utf8');
    const repairBySnapshot = log.includes('snapshot installed');

    // Wipe and rejoin by hand, as an operator did before: remove, empty, --join.
    await c.signal(victim, 'SIGKILL');
    const t1 = performance.now();
    const removed = await c.http(leader, 'DELETE', `/v1/cluster/members/${victim}`, undefined, 30_000);
    if (removed.status !== 200) throw new Error(`member remove ${victim}: ${removed.status} ${JSON.stringify(removed.body)}`);
    c.wipe(victim);
    c.start(victim, ['--join', c.url(leader)]);
    const target2 = (await clusterView(c, leader))!.commitIndex;
    await voterWithAll(c, victim, leader, target2, timeoutMs);
    const wipeRejoinMs = performance.now() - t1;
    const rejoinLoadedAt = lastLoadedAtMs(c, victim);
    const rejoinAfterLoadMs = rejoinLoadedAt === null ? null : Date.now() - rejoinLoadedAt;
    const repairAfterLoadMs = repairLoadedAt === null ? null : repairedAt - repairLoadedAt;
    return { ...k, label, repairMs: round(repairMs, 0), wipeRejoinMs: round(wipeRejoinMs, 0), repairAfterLoadMs, rejoinAfterLoadMs, targetIndex: target, repairBySnapshot };
  } finally {
    await c.cleanup();
  }
}

async function main(): Promise<void> {
  const quick = flag('quick');
  const sizes = arg('sizes', quick ? '2000,10000' : '10000,100000')
    .split(',')
    .map(Number);
  const big = sizes.at(-1)!;
  const cases: Case[] = [
    ...sizes.map((entries) => ({ entries, snapshotThresholdEntries: NO_SNAPSHOT })),
    { entries: big, snapshotThresholdEntries: Math.max(1000, Math.floor(big / 5)) },
  ];
  const results: CaseResult[] = [];
  for (const k of cases) results.push(await runCase(k));
  printTable(
    'storage repair: a follower with its newest LevelDB file cut to 60% (restart -> voter with all data), next to wipe + member remove + --join',
    results.map((r) => ({
      case: r.label,
      'repair, s': round(r.repairMs / 1000, 2),
      'by snapshot': r.repairBySnapshot ? 'yes' : 'no',
      'wipe + rejoin, s': round(r.wipeRejoinMs / 1000, 2),
      'repair / rejoin': round(r.repairMs / r.wipeRejoinMs, 2),
      'repair after load, s': r.repairAfterLoadMs === null ? '-' : round(r.repairAfterLoadMs / 1000, 2),
      'rejoin after load, s': r.rejoinAfterLoadMs === null ? '-' : round(r.rejoinAfterLoadMs / 1000, 2),
    })),
  );
  const summary: SummaryRow[] = results.map((r) => ({
    metric: `storage repair to voter, ${r.label}`,
    unit: 's',
    value: round(r.repairMs / 1000, 2),
    better: 'lower',
    note: `wipe + member remove + --join: ${round(r.wipeRejoinMs / 1000, 2)} s`,
  }));
  printResult('storage-repair', { quick, results }, summary);
}

await main();
