// Storage: latency of one synced save of one entry (the follower's common case), and throughput of 256-entry
// batches (a busy leader's Ready), on LevelRaftStorage in a temp dir; and the one-entry save as a manager makes it,
// through CheckedStorage with its acknowledged-state marker (a second synced write).
// `npx tsx bench/storage.ts [--saves 500] [--batches 200]`
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { logIndex, nodeId, term } from '../src/lib/ids.js';
import type { Entry } from '../src/raft/types.js';
import { CheckedStorage } from '../src/storage/checked.js';
import { LevelRaftStorage } from '../src/storage/level.js';
import { FileMarker } from '../src/storage/marker.js';
import type { RaftStorage } from '../src/storage/types.js';
import { arg, percentile, printResult, printTable, round } from './support.js';

const makeEntries = (from: number, count: number, bytes: number): Entry[] =>
  Array.from({ length: count }, (_, i) => ({ term: term(1), index: logIndex(from + i), type: 'command', data: new Uint8Array(bytes).fill(i & 0xff) }));

async function singleSaves(s: RaftStorage, saves: number, bytes: number, from: number): Promise<Record<string, number>> {
  const latencies: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < saves; i++) {
    const t = performance.now();
    await s.save({ term: term(1), vote: nodeId('n1'), commit: logIndex(from + i - 1) }, makeEntries(from + i, 1, bytes));
    latencies.push(performance.now() - t);
  }
  const totalMs = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  return { marker: 0, entriesPerSave: 1, entryBytes: bytes, saves, savesPerSec: round((saves / totalMs) * 1000, 0), entriesPerSec: round((saves / totalMs) * 1000, 0), MBPerSec: round((saves * bytes) / totalMs / 1000), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)) };
}

async function batchSaves(s: LevelRaftStorage, batches: number, bytes: number, from: number): Promise<Record<string, number>> {
  const size = 256;
  const prepared = Array.from({ length: batches }, (_, b) => makeEntries(from + b * size, size, bytes));
  const latencies: number[] = [];
  const t0 = performance.now();
  for (const batch of prepared) {
    const t = performance.now();
    await s.save(null, batch);
    latencies.push(performance.now() - t);
  }
  const totalMs = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const entries = batches * size;
  return { marker: 0, entriesPerSave: size, entryBytes: bytes, saves: batches, savesPerSec: round((batches / totalMs) * 1000, 0), entriesPerSec: round((entries / totalMs) * 1000, 0), MBPerSec: round((entries * bytes) / totalMs / 1000), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)) };
}

async function main(): Promise<void> {
  const saves = Number(arg('saves', '500'));
  const batches = Number(arg('batches', '200'));
  const root = await mkdtemp(join(tmpdir(), 'minkube-bench-storage-'));
  const s = await LevelRaftStorage.open(join(root, 'data'));
  const rows: Record<string, number>[] = [];
  try {
    let next = 1;
    for (const bytes of [100, 1024]) {
      rows.push(await singleSaves(s, saves, bytes, next));
      next += saves;
    }
    for (const bytes of [100, 1024]) {
      rows.push(await batchSaves(s, batches, bytes, next));
      next += batches * 256;
    }
    // As a manager saves: the same one-entry save, then the marker's O_DSYNC write (CheckedStorage).
    const checkedInner = await LevelRaftStorage.open(join(root, 'checked'));
    const checked = new CheckedStorage(checkedInner, new FileMarker(join(root, 'checked.marker')));
    await checked.loadChecked();
    rows.push({ ...(await singleSaves(checked, saves, 100, 1)), marker: 1 });
    await checked.close();
    const loadStart = performance.now();
    const loaded = await s.load();
    const loadMs = round(performance.now() - loadStart);
    printTable('LevelRaftStorage: synced saves', rows);
    console.log(`\nload(): ${loaded.entries.length} entries in ${loadMs} ms`);
    // The machine may be shared: the load average says how much of it this run had.
    console.log(`load average: ${loadavg()[0]!.toFixed(1)}`);
    const summary = rows.map((r) => ({
      metric: `synced save, ${r.entriesPerSave} x ${r.entryBytes} B entries${r.marker === 1 ? ', with the marker' : ''}`,
      unit: 'entries/s',
      value: r.entriesPerSec ?? null,
      better: 'higher' as const,
      note: `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`,
    }));
    printResult('storage', { loadAverage: round(loadavg()[0]!, 1), rows, load: { entries: loaded.entries.length, ms: loadMs } }, summary);
  } finally {
    await s.close();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
