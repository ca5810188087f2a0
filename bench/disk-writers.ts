// What a synced write costs when several processes sync at once, as the three managers of a local cluster do on one
// disk: `--writers` processes (3) each make `--writes` (1,500) one-entry writes in turn, for each way of writing:
//   checked   - what a manager does: CheckedStorage over LevelRaftStorage (a synced LevelDB batch, then the
//               acknowledged-state marker's O_DSYNC write)
//   wal+marker - a write-ahead log of our own: an O_DSYNC overwrite in a preallocated file, then the marker's write
//   wal       - that overwrite alone (one synced write per save: what etcd's WAL does)
// Per way: the mean and p99 of a write, over every writer. `npx tsx bench/disk-writers.ts [--writers 3] [--writes 1500]`
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { logIndex, term } from '../src/lib/ids.js';
import { CheckedStorage } from '../src/storage/checked.js';
import { LevelRaftStorage } from '../src/storage/level.js';
import { FileMarker } from '../src/storage/marker.js';
import { arg, percentile, printResult, printTable, round } from './support.js';

const ways = ['checked', 'wal+marker', 'wal'] as const;
type Way = (typeof ways)[number];
const entryBytes = 300;
const walSlotBytes = 512;

/** One writer: `writes` writes the given way in `dir`; sends back each write's latency in ms. */
async function writer(way: Way, dir: string, writes: number): Promise<number[]> {
  const data = new Uint8Array(entryBytes).fill(7);
  let write: (i: number) => Promise<void>;
  let close: () => Promise<void>;
  if (way === 'checked') {
    const storage = new CheckedStorage(await LevelRaftStorage.open(join(dir, 'data')), new FileMarker(join(dir, 'data.marker')));
    await storage.loadChecked();
    write = (i) => storage.save({ term: term(1), vote: null, commit: logIndex(i) }, [{ index: logIndex(i + 1), term: term(1), type: 'command', data }]);
    close = () => storage.close();
  } else {
    const wal = await open(join(dir, 'wal'), constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC, 0o600);
    // Preallocated with written zeros, not fallocate: an overwrite of written blocks changes no metadata.
    await wal.write(Buffer.alloc(writes * walSlotBytes));
    await wal.sync();
    const marker = way === 'wal+marker' ? new FileMarker(join(dir, 'wal.marker')) : null;
    write = async (i) => {
      await wal.write(data, 0, entryBytes, i * walSlotBytes);
      await marker?.write({ ackedIndex: i + 1, ackedTerm: 1, term: 1, vote: null });
    };
    close = async () => {
      await wal.close();
      await marker?.close();
    };
  }
  const latencies: number[] = [];
  for (let i = 0; i < writes; i++) {
    const start = performance.now();
    await write(i);
    latencies.push(performance.now() - start);
  }
  await close();
  return latencies;
}

async function main(): Promise<void> {
  const writers = Number(arg('writers', '3'));
  const writes = Number(arg('writes', '1500'));
  const root = await mkdtemp(join(tmpdir(), 'minkube-disk-writers-'));
  try {
    const rows = [];
    for (const way of ways) {
      const children = Array.from({ length: writers }, (_, i) =>
        fork(fileURLToPath(import.meta.url), ['--child', way, join(root, `${way}-${i}`), String(writes)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
      );
      const results = await Promise.all(children.map(async (c) => ((await once(c, 'message')) as [number[]])[0]));
      const all = results.flat().sort((a, b) => a - b);
      const meanMs = all.reduce((a, b) => a + b, 0) / all.length;
      rows.push({ way, writers, 'writes each': writes, 'mean us': round(meanMs * 1000, 0), 'p50 us': round(percentile(all, 50) * 1000, 0), 'p99 us': round(percentile(all, 99) * 1000, 0) });
    }
    printTable(`Synced one-entry writes, ${writers} processes writing at once (${entryBytes}-byte entries)`, rows);
    const summary = rows.map((r) => ({ metric: `synced one-entry write, ${r.way}, ${writers} writers at once`, unit: 'us', value: r['mean us'], better: 'lower' as const, note: `p99 ${r['p99 us']} us` }));
    printResult('disk-writers', { writers, writes, rows }, summary);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  const [way, dir, writes] = process.argv.slice(3) as [Way, string, string];
  await mkdir(dir, { recursive: true });
  process.send?.(await writer(way, dir, Number(writes)));
  process.disconnect?.();
} else {
  await main();
}
