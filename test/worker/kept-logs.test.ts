// The output tails a worker keeps across restarts: one conformance suite for the file store and its in-memory twin,
// and what only files do (modes, damaged and foreign files).
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileKeptLogs, MemoryKeptLogs, type KeptLog, type KeptLogStore } from '../../src/worker/kept-logs.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'minkube-kept-logs-'));
  dirs.push(d);
  return d;
}

/** Every readable tail the store lists. */
async function loadAll(store: KeptLogStore): Promise<KeptLog[]> {
  const files = await Promise.all((await store.list()).map((id) => store.read(id)));
  return files.flatMap((f) => (f?.log == null ? [] : [f.log]));
}

const stores: [string, () => KeptLogStore][] = [
  ['FileKeptLogs', () => new FileKeptLogs(join(tempDir(), 'logs'))],
  ['MemoryKeptLogs', () => new MemoryKeptLogs()],
];

describe.each(stores)('%s', (_name, make) => {
  it('loads what was saved, the newest attempt of a task replacing its earlier one, and forgets what was removed', async () => {
    const store = make();
    expect(await loadAll(store)).toEqual([]);
    await store.save({ taskId: 't1', attempt: 1, finishedAtMs: 10, text: 'first\n' });
    await store.save({ taskId: 't2', attempt: 1, finishedAtMs: 20, text: 'other\n' });
    await store.save({ taskId: 't1', attempt: 2, finishedAtMs: 30, text: 'second\n' });
    const loaded = (await loadAll(store)).sort((a, b) => a.taskId.localeCompare(b.taskId));
    expect(loaded).toEqual([
      { taskId: 't1', attempt: 2, finishedAtMs: 30, text: 'second\n' },
      { taskId: 't2', attempt: 1, finishedAtMs: 20, text: 'other\n' },
    ]);
    await store.remove('t1');
    await store.remove('never-kept');
    expect((await loadAll(store)).map((l) => l.taskId)).toEqual(['t2']);
  });
});

describe('FileKeptLogs on disk', () => {
  it('writes files for the owner alone in a directory it makes 0700, and skips damaged, foreign and unsafe names', async () => {
    const dir = join(tempDir(), 'logs');
    const store = new FileKeptLogs(dir);
    await store.save({ taskId: 't1', attempt: 1, finishedAtMs: 1, text: 'secret output\n' });
    await store.save({ taskId: '../escape', attempt: 1, finishedAtMs: 1, text: 'x' });
    expect(readdirSync(dir)).toEqual(['t1.json']);
    expect(statSync(join(dir, 't1.json')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    writeFileSync(join(dir, 't2.json'), '{"taskId":"t2","attempt":1'); // cut short
    writeFileSync(join(dir, 't3.json'), JSON.stringify({ taskId: 't4', attempt: 1, finishedAtMs: 1, text: 'x' })); // another name
    writeFileSync(join(dir, 'notes.txt'), 'not a tail');
    expect((await loadAll(store)).map((l) => l.taskId)).toEqual(['t1']);
  });

  it('lists damaged tails and writes cut short as kept tails (with when they were written), never foreign files, and removes both', async () => {
    const dir = join(tempDir(), 'logs');
    const store = new FileKeptLogs(dir);
    await store.save({ taskId: 't1', attempt: 1, finishedAtMs: 1, text: 'x' });
    writeFileSync(join(dir, 't2.json'), '{"taskId":"t2"'); // cut short
    writeFileSync(join(dir, 't3.json.tmp'), '{"taskId":"t3","attempt":1,"fin'); // a write the crash cut before its rename
    for (const other of ['notes.txt', 'T4.json', 'a b.json', 'x.json.bak']) writeFileSync(join(dir, other), 'not a tail');
    utimesSync(join(dir, 't2.json'), 1_000, 1_000);
    expect((await store.list()).sort()).toEqual(['t1', 't2', 't3']);
    expect(await store.read('t2')).toEqual({ taskId: 't2', log: null, writtenAtMs: 1_000_000 });
    expect(await store.read('t3')).toMatchObject({ taskId: 't3', log: null });
    expect(await store.read('t1')).toMatchObject({ log: { taskId: 't1', finishedAtMs: 1 } });
    for (const id of ['t1', 't2', 't3']) await store.remove(id);
    expect(readdirSync(dir).sort()).toEqual(['T4.json', 'a b.json', 'notes.txt', 'x.json.bak']);
    expect(await store.read('t1')).toBeNull();
  });

  it('a directory that does not exist holds nothing', async () => {
    expect(await loadAll(new FileKeptLogs(join(tempDir(), 'none')))).toEqual([]);
  });
});
