// A data directory the system will not let a manager write (a full disk, a read-only one) is STORAGE_FAILED saying
// why, never INTERNAL (which is for Minkube's own faults). The real-disk cases fill a 1 MiB tmpfs, so they need root
// to mount it: CI runs as root, and fails rather than skips them otherwise.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { diskRefusal, storageFailed } from '../../src/storage/common.js';
import { CheckedStorage } from '../../src/storage/checked.js';
import { LevelRaftStorage } from '../../src/storage/level.js';
import { FileMarker, markerPathFor } from '../../src/storage/marker.js';
import { MemoryRaftStorage } from '../../src/storage/memory.js';
import { logIndex, term } from '../../src/lib/ids.js';
import type { Entry } from '../../src/raft/types.js';
import { runCli } from '../support/cli.js';
import { filesOf } from '../support/data-dir-files.js';
import { rejection } from '../support/errors.js';
import { freePort } from '../support/wait.js';

const errno = (code: string, message: string): NodeJS.ErrnoException => Object.assign(new Error(message), { code });

describe('storageFailed', () => {
  it.each([
    ['LevelDB out of space', new Error('IO error: /d/000005.log: No space left on device'), 'no space left on the device (free some space, then start this manager again)'],
    ['LevelDB read-only', new Error('IO error: /d/LOCK: Read-only file system'), 'the file system is read-only'],
    ['an errno ENOSPC', errno('ENOSPC', 'ENOSPC: no space left on device, write'), 'no space left on the device (free some space'],
    ['an errno EROFS', errno('EROFS', 'EROFS: read-only file system, open'), 'the file system is read-only'],
    ['anything else keeps its message', new Error('IO error: something odd'), 'IO error: something odd'],
  ])('%s', (_, err, words) => {
    const e = storageFailed('writing to the data directory /d failed', err);
    expect(e.code).toBe('STORAGE_FAILED');
    expect(e.status).toBe(500);
    expect(e.message.startsWith('writing to the data directory /d failed: ')).toBe(true);
    expect(e.message).toContain(words);
    expect(e.cause).toBe(err);
  });
});

describe('diskRefusal: a disk that refuses is never damage', () => {
  const level = (message: string): Error => Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause: Object.assign(new Error(message), { code: 'LEVEL_IO_ERROR' }) });
  it.each([
    ['LevelDB out of space, as the cause', level('IO error: /d/000001.dbtmp: No space left on device')],
    ['LevelDB over quota', level('IO error: /d/000005.log: Disk quota exceeded')],
    ['LevelDB read-only', level('IO error: /d/LOCK: Read-only file system')],
    ['LevelDB failing disk', level('IO error: /d/000005.ldb: Input/output error')],
    ['an errno EDQUOT', errno('EDQUOT', 'EDQUOT: disk quota exceeded, write')],
    ['an errno EIO', errno('EIO', 'EIO: i/o error, read')],
  ])('%s', (_, err) => {
    expect(diskRefusal(err)).not.toBeNull();
  });
  it.each([
    ['corruption', Object.assign(new Error('Corruption: 1 missing files; e.g.: /d/000005.ldb'), { code: 'LEVEL_CORRUPTION' })],
    ['a table cut short', level('IO error: /d/000005.ldb: Invalid argument')],
    ['a deleted manifest', level('IO error: /d/MANIFEST-000004: No such file or directory')],
  ])('%s is not a refusal', (_, err) => {
    expect(diskRefusal(err)).toBeNull();
  });
});

const canMount = typeof process.getuid === 'function' && process.getuid() === 0;
const inCi = process.env.CI !== undefined && process.env.CI !== '';
const onTmpfs = canMount ? describe : inCi ? describe : describe.skip;

function entriesOf(from: number, count: number, bytes: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({ term: term(1), index: logIndex(from + i), type: 'command', data: new Uint8Array(bytes).fill(i % 251) }));
}

onTmpfs('on a full disk (a 1 MiB tmpfs)', () => {
  let dir = '';
  beforeEach(async () => {
    if (!canMount) throw new Error('CI is set but these tests do not run as root: they mount a tmpfs');
    dir = await mkdtemp(join(tmpdir(), 'minkube-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  });
  afterEach(async () => {
    if (dir === '') return;
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });

  it('a LevelDB write that finds no space is STORAGE_FAILED, and so is every write after it', async () => {
    const storage = await LevelRaftStorage.open(join(dir, 'data'));
    try {
      let index = 1;
      let failure: Error | null = null;
      for (let i = 0; i < 100 && failure === null; i++) {
        await storage.save({ term: term(1), vote: null, commit: logIndex(0) }, entriesOf(index, 4, 64 * 1024)).then(
          () => (index += 4),
          (err: unknown) => (failure = err as Error),
        );
      }
      expect(failure).not.toBeNull();
      const first = await rejection(Promise.reject(failure!));
      expect(first.code).toBe('STORAGE_FAILED');
      expect(first.message).toMatch(/^writing to the data directory .*minkube-full-.* failed: no space left on the device \(free some space/);
      const next = await rejection(storage.save(null, entriesOf(index, 1, 10)));
      expect(next).toBe(first);
    } finally {
      await storage.close().catch(() => undefined);
    }
  });

  it('a manager whose first start finds its disk full says STORAGE_FAILED, not INTERNAL', async () => {
    const configDir = await mkdtemp(join(tmpdir(), 'minkube-full-config-'));
    try {
      await writeFile(join(dir, 'filler'), new Uint8Array(1024 * 1024)).catch(() => undefined);
      const config = join(configDir, 'cluster.json');
      await writeFile(config, JSON.stringify({ managers: [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: join(dir, 'm1') }] }));
      const r = await runCli(['manager', '--config', config, '--id', 'm1'], { MINKUBE_LOG_LEVEL: 'silent' });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^error: STORAGE_FAILED: starting on the data directory \S+m1 failed \(writing .*\): no space left on the device \(free some space, then start this manager again\)$/m);
    } finally {
      await rm(configDir, { recursive: true, force: true });
    }
  });

  it('a marker write that finds no space is STORAGE_FAILED naming the marker', async () => {
    // Fill the disk first: the marker's first write creates its file.
    await writeFile(join(dir, 'filler'), new Uint8Array(1024 * 1024)).catch(() => undefined);
    const marker = new FileMarker(join(dir, 'data.marker'));
    const storage = new CheckedStorage(new MemoryRaftStorage(), marker);
    const err = await rejection(storage.save({ term: term(1), vote: null, commit: logIndex(0) }, entriesOf(1, 1, 10)));
    expect(err.code).toBe('STORAGE_FAILED');
    expect(err.message).toContain(`writing the marker ${join(dir, 'data.marker')} failed: no space left on the device`);
    await marker.close().catch(() => undefined);
  });
});

onTmpfs('a damaged LevelDB on a full disk (a 4 MiB tmpfs)', () => {
  // The outside tester's steps: a manager killed, its newest table deleted, its disk filled, then started. The
  // repair used to move its intact write-ahead log into lost/ before the disk refused, and the whole database was
  // set aside; after the disk had room again it started from an empty log, saying nothing of where it had gone.
  let dir = '';
  beforeEach(async () => {
    if (!canMount) throw new Error('CI is set but these tests do not run as root: they mount a tmpfs');
    dir = await mkdtemp(join(tmpdir(), 'minkube-full-repair-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
  });
  afterEach(async () => {
    if (dir === '') return;
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });

  const data = (): string => join(dir, 'm1');
  const openAsManager = async (): Promise<CheckedStorage> =>
    new CheckedStorage(await LevelRaftStorage.open(data(), { salvage: true }), new FileMarker(markerPathFor(data())));
  /** Writes `entries` through a manager's storage (the marker follows), then closes it. */
  async function acknowledge(from: number, count: number, flush: boolean): Promise<void> {
    const s = await openAsManager();
    expect((await s.loadChecked()).recovery).toBeNull();
    await s.save({ term: term(2), vote: null, commit: logIndex(from + count - 1) }, entriesOf(from, count, 200).map((e) => ({ ...e, term: term(2) })));
    await s.close();
    // A plain open turns the write-ahead log into a table.
    if (flush) await (await LevelRaftStorage.open(data())).close();
  }
  function fillDisk(): void {
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      // dd stops with ENOSPC: the disk is full.
    }
  }

  it('a missing table and a full disk: STORAGE_FAILED, nothing moved or set aside; with room, repaired and nothing else lost', async () => {
    await acknowledge(1, 500, true);
    await acknowledge(501, 500, true);
    await acknowledge(1001, 500, false);
    const tables = readdirSync(data()).filter((n) => n.endsWith('.ldb')).sort();
    expect(tables).toHaveLength(2);
    rmSync(join(data(), tables[1]!));
    const before = filesOf(data());
    fillDisk();
    for (let start = 0; start < 2; start++) {
      const err = await rejection(openAsManager());
      expect(err.code).toBe('STORAGE_FAILED');
      expect(err.message).toContain(`cannot repair the damaged data directory ${data()}, left as it was`);
      expect(err.message).toContain('missing files');
      expect(err.message).toMatch(/: no space left on the device \(free some space, then start this manager again\)$/);
      expect(filesOf(data())).toEqual(before);
    }
    rmSync(join(dir, 'filler'));
    const s = await openAsManager();
    const { recovery, state } = await s.loadChecked();
    expect(recovery?.reason).toContain('RepairDB repaired it');
    expect(recovery?.reason).not.toContain('set aside');
    expect(recovery?.target).toEqual({ index: 1500, term: 2 });
    // Only the deleted table's entries (501..1000) are gone: the log keeps 1..500, up to the gap.
    expect(state.entries.at(-1)?.index).toBe(500);
    await s.close();
    expect(readdirSync(data()).filter((n) => n.startsWith('damaged-'))).toEqual([]);
  });
});
