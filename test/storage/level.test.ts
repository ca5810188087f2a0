// LevelRaftStorage passes the shared RaftStorage suite, and refuses to load a data directory that was damaged on disk.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { logIndex, nodeId, term } from '../../src/lib/ids.js';
import { LevelRaftStorage } from '../../src/storage/level.js';
import { entryKey, hardStateKey } from '../../src/storage/records.js';
import { makeEntries, runRaftStorageConformance } from './conformance.js';

const tempDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'minkube-storage-'));

runRaftStorageConformance('classic-level', async () => {
  const dir = await tempDir();
  let current = await LevelRaftStorage.open(join(dir, 'nested', 'data'));
  return {
    storage: current,
    reopen: async () => {
      await current.close();
      current = await LevelRaftStorage.open(current.dir);
      return current;
    },
    cleanup: async () => {
      await current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('LevelRaftStorage on a damaged data directory', () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await tempDir();
    dir = join(root, 'data');
    const s = await LevelRaftStorage.open(dir);
    await s.save({ term: term(2), vote: nodeId('n1'), commit: logIndex(3) }, makeEntries(1, 10, 2));
    await s.close();
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Changes the database the way a bad disk or a stray tool would, behind the storage's back. */
  async function tamper(fn: (db: ClassicLevel<Buffer, Buffer>) => Promise<void>): Promise<void> {
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    await fn(db);
    await db.close();
  }

  async function loadError(): Promise<MinkubeError> {
    const s = await LevelRaftStorage.open(dir);
    try {
      await s.load();
    } catch (err) {
      return err as MinkubeError;
    } finally {
      await s.close();
    }
    throw new Error('load() succeeded on a damaged directory');
  }

  async function expectCorrupt(...words: string[]): Promise<void> {
    const err = await loadError();
    expect(err).toBeInstanceOf(MinkubeError);
    expect(err.code).toBe('STORAGE_CORRUPT');
    expect(err.message).toContain(dir);
    for (const w of words) expect(err.message).toContain(w);
  }

  it('fails on a flipped byte in an entry', async () => {
    await tamper(async (db) => {
      const value = (await db.get(entryKey(5)))!;
      value[value.length - 1]! ^= 0xff;
      await db.put(entryKey(5), value);
    });
    await expectCorrupt('index 5', 'checksum');
  });

  it('fails on a truncated entry', async () => {
    await tamper((db) => db.put(entryKey(7), Buffer.from([1, 2, 3])));
    await expectCorrupt('index 7', 'truncated');
  });

  it('fails on an entry copied under another index', async () => {
    await tamper(async (db) => db.put(entryKey(4), (await db.get(entryKey(3)))!));
    await expectCorrupt('index 4');
  });

  it('fails on a gap in the log', async () => {
    await tamper((db) => db.del(entryKey(6)));
    await expectCorrupt('entry 6 is missing');
  });

  it('fails on a damaged hard state', async () => {
    await tamper(async (db) => {
      const value = (await db.get(hardStateKey))!;
      value[8]! ^= 0x01;
      await db.put(hardStateKey, value);
    });
    await expectCorrupt('hard state');
  });

  it('fails when the hard state commits beyond the end of the log', async () => {
    await tamper(async (db) => {
      for (let i = 3; i <= 10; i++) await db.del(entryKey(i));
    });
    await expectCorrupt('index 3');
  });

  it('reports a corrupt entry from getRange too', async () => {
    await tamper((db) => db.put(entryKey(2), Buffer.alloc(20)));
    const s = await LevelRaftStorage.open(dir);
    const err = await s.getRange(logIndex(1), logIndex(4)).catch((e: unknown) => e as MinkubeError);
    await s.close();
    expect(err).toMatchObject({ code: 'STORAGE_CORRUPT' });
    expect((err as MinkubeError).message).toContain('index 2');
  });

  it('refuses a second open of the same directory, naming it', async () => {
    const s = await LevelRaftStorage.open(dir);
    const err = await LevelRaftStorage.open(dir).catch((e: unknown) => e as MinkubeError);
    await s.close();
    expect(err).toBeInstanceOf(MinkubeError);
    expect((err as MinkubeError).message).toContain(dir);
  });
});
