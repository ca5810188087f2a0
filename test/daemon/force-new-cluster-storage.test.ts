// `minkube manager --force-new-cluster` (without --accept-data-loss) on a manager whose storage is damaged is refused
// with its data directory's records and its marker left exactly as they were: the damage is judged before anything
// runs that could change them (the salvage's deletes, RepairDB, a marker written). An outside re-test found a refusal
// that had already deleted the intact entries after a gap, run RepairDB, or rewritten the marker.
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { startManagerFromConfig, type RunningManager } from '../../src/daemon/manager.js';
import { logIndex, term } from '../../src/lib/ids.js';
import type { Entry } from '../../src/raft/types.js';
import { CheckedStorage } from '../../src/storage/checked.js';
import { LevelRaftStorage } from '../../src/storage/level.js';
import { FileMarker, markerPathFor } from '../../src/storage/marker.js';
import { entryKey, entryKeyEnd, indexOfEntryKey } from '../../src/storage/records.js';
import { filesOf } from '../support/data-dir-files.js';
import { rejection } from '../support/errors.js';
import { freePorts } from '../support/wait.js';

const HOST = '127.0.55.1';
let root = '';
const running: RunningManager[] = [];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'minkube-force-check-'));
});
afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  rmSync(root, { recursive: true, force: true });
});

const data = (): string => join(root, 'm1');
const silent = pino({ level: 'silent' });

async function configOf(): Promise<ReturnType<typeof parseClusterConfig>> {
  const [raft, api] = await freePorts(2, HOST);
  return parseClusterConfig({ insecure: true, managers: [{ id: 'm1', raftAddress: `${HOST}:${raft}`, apiAddress: `${HOST}:${api}`, dataDir: data() }] }, root);
}

const entries = (from: number, to: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ term: term(2), index: logIndex(from + i), type: 'command' as const, data: new Uint8Array(200).fill((from + i) & 0xff) }));

/** Entries acknowledged in rounds of these sizes, `perSave` at a time (the marker follows); reopened plainly after each round when `toTables` (LevelDB then writes its log into a table). */
async function acknowledged(sizes: readonly number[], perSave: number, toTables: boolean): Promise<void> {
  let last = 0;
  for (const size of sizes) {
    const s = new CheckedStorage(await LevelRaftStorage.open(data(), { salvage: true }), new FileMarker(markerPathFor(data())));
    expect((await s.loadChecked()).recovery).toBeNull();
    for (let i = last + 1; i <= last + size; i += perSave) await s.save({ term: term(2), vote: null, commit: logIndex(i - 1) }, entries(i, Math.min(last + size, i + perSave - 1)));
    await s.close();
    if (toTables) await (await LevelRaftStorage.open(data())).close();
    last += size;
  }
}

/** The indexes of the entries LevelDB holds (opened raw, as the salvage would not). */
async function entryIndexes(): Promise<number[]> {
  const db = new ClassicLevel<Buffer, Buffer>(data(), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    return (await db.keys({ gte: entryKey(0), lt: entryKeyEnd }).all()).map(indexOfEntryKey);
  } finally {
    await db.close();
  }
}

const markerBytes = (): Buffer => readFileSync(markerPathFor(data()));

async function refusal(): Promise<{ code?: string; message: string }> {
  const err = await rejection(startManagerFromConfig(await configOf(), 'm1', silent, { forceNewCluster: true }));
  expect(err).toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringMatching(/^--force-new-cluster refused: the storage of m1 is damaged \(/) as string });
  return err as { code?: string; message: string };
}

describe('--force-new-cluster refused on damaged storage changes nothing', () => {
  it('bytes flipped in the LevelDB log: the intact entries after the gap stay, and the marker is not written', async () => {
    await acknowledged([600], 5, false);
    const log = readdirSync(data()).find((n) => n.endsWith('.log'))!;
    const fd = openSync(join(data(), log), 'r+');
    writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, Math.floor(statSync(join(data(), log)).size / 2));
    closeSync(fd);
    const marker = markerBytes();
    const files = filesOf(data());
    const err = await refusal();
    expect(err.message).toMatch(/entry \d+ is missing/);
    expect(err.message).not.toContain('.force-check');
    // Judged on a copy: LevelDB's own open of the data directory would have turned its damaged write-ahead log into a
    // table without the records after the damage (an outside re-test lost 18 acknowledged writes so), and the salvage
    // deleted every entry after the gap as well. Every file is as it was, the log too, and no copy is left.
    expect(filesOf(data())).toEqual(files);
    expect(markerBytes().equals(marker)).toBe(true);
    expect(readdirSync(root).filter((n) => n.includes('force-check'))).toEqual([]);
    // Refused again, with the same reason: nothing was changed by the first.
    expect((await refusal()).message).toBe(err.message);
    expect(filesOf(data())).toEqual(files);
  });

  it('the newest LevelDB table deleted: no RepairDB (no lost/, no new table), and the message claims no repair', async () => {
    await acknowledged([400, 400], 200, true);
    const tables = readdirSync(data()).filter((n) => n.endsWith('.ldb')).sort();
    expect(tables.length).toBeGreaterThanOrEqual(2);
    rmSync(join(data(), tables.at(-1)!));
    const files = filesOf(data());
    const marker = markerBytes();
    const err = await refusal();
    expect(err.message).toContain('LevelDB reported the data directory');
    expect(err.message).toContain('not repaired');
    expect(err.message).not.toContain('RepairDB');
    expect(filesOf(data())).toEqual(files);
    expect(markerBytes().equals(marker)).toBe(true);
    // --accept-data-loss goes on as before: repaired, and started alone.
    const m = await startManagerFromConfig(await configOf(), 'm1', silent, { forceNewCluster: 'accept-data-loss' });
    running.push(m);
    expect(readdirSync(data())).toContain('lost');
  });

  it.each([
    ['random bytes', Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 131 + 7) & 0xff))],
    ['0 bytes', Buffer.alloc(0)],
  ])('a marker of %s is left as it was, and a second refusal says the same', async (_, bytes) => {
    await acknowledged([50], 10, false);
    const fd = openSync(markerPathFor(data()), 'w');
    writeSync(fd, bytes);
    closeSync(fd);
    const err = await refusal();
    expect(err.message).toContain(`the marker ${markerPathFor(data())} holds no intact copy (${bytes.length} bytes)`);
    expect(markerBytes().equals(bytes)).toBe(true);
    expect((await refusal()).message).toBe(err.message);
    expect(markerBytes().equals(bytes)).toBe(true);
    expect(await entryIndexes()).toHaveLength(50);
  });

  it('intact storage: forced as before (the marker follows the new entry)', async () => {
    await acknowledged([50], 10, false);
    const m = await startManagerFromConfig(await configOf(), 'm1', silent, { forceNewCluster: true });
    await m.stop();
    const read = await new FileMarker(markerPathFor(data())).read();
    expect(read).toMatchObject({ kind: 'ok', marker: { ackedIndex: 51 } });
    expect(await entryIndexes()).toHaveLength(51);
  });
});
