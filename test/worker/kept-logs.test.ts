// The output tails a worker keeps across restarts: one conformance suite for the file store and its in-memory twin,
// and what only files do (modes, damaged and foreign files).
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileKeptLogs, MemoryKeptLogs, type KeptLogStore } from '../../src/worker/kept-logs.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'minkube-kept-logs-'));
  dirs.push(d);
  return d;
}

const stores: [string, () => KeptLogStore][] = [
  ['FileKeptLogs', () => new FileKeptLogs(join(tempDir(), 'logs'))],
  ['MemoryKeptLogs', () => new MemoryKeptLogs()],
];

describe.each(stores)('%s', (_name, make) => {
  it('loads what was saved, the newest attempt of a task replacing its earlier one, and forgets what was removed', async () => {
    const store = make();
    expect(await store.load()).toEqual([]);
    await store.save({ taskId: 't1', attempt: 1, finishedAtMs: 10, text: 'first\n' });
    await store.save({ taskId: 't2', attempt: 1, finishedAtMs: 20, text: 'other\n' });
    await store.save({ taskId: 't1', attempt: 2, finishedAtMs: 30, text: 'second\n' });
    const loaded = (await store.load()).sort((a, b) => a.taskId.localeCompare(b.taskId));
    expect(loaded).toEqual([
      { taskId: 't1', attempt: 2, finishedAtMs: 30, text: 'second\n' },
      { taskId: 't2', attempt: 1, finishedAtMs: 20, text: 'other\n' },
    ]);
    await store.remove('t1');
    await store.remove('never-kept');
    expect((await store.load()).map((l) => l.taskId)).toEqual(['t2']);
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
    expect((await store.load()).map((l) => l.taskId)).toEqual(['t1']);
  });

  it('a directory that does not exist holds nothing', async () => {
    expect(await new FileKeptLogs(join(tempDir(), 'none')).load()).toEqual([]);
  });
});
