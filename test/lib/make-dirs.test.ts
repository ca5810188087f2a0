// makeDirs is `mkdir -p` that ends: what fs.mkdir({ recursive: true }) answers, and an error at once where that call
// spun forever (mkdir answering ENOENT in a directory that exists, as in /proc).
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { makeDirs } from '../../src/lib/make-dirs.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-make-dirs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('makes a directory and its missing parents with the mode, answering the first it made; none when all were there', async () => {
  const path = join(dir, 'a', 'b', 'c');
  expect(await makeDirs(path, 0o700)).toBe(join(dir, 'a'));
  for (const made of [join(dir, 'a'), join(dir, 'a', 'b'), path]) expect(statSync(made).mode & 0o777, made).toBe(0o700);
  expect(await makeDirs(path, 0o700)).toBeUndefined();
  expect(await makeDirs(join(dir, 'a', 'b', 'c', '..', 'd/'))).toBe(join(dir, 'a', 'b', 'd'));
});

it('a file in the way is EEXIST, and a file among the parents ENOTDIR, as mkdir says them', async () => {
  const file = join(dir, 'file');
  writeFileSync(file, '');
  await expect(makeDirs(file)).rejects.toMatchObject({ code: 'EEXIST' });
  await expect(makeDirs(join(file, 'sub', 'deeper'))).rejects.toMatchObject({ code: 'ENOTDIR', path: join(file, 'sub') });
});

it.runIf(existsSync('/proc/self'))('in /proc, where mkdir answers ENOENT though /proc exists: an error at once naming both, not an endless loop', async () => {
  for (const path of ['/proc/minkube-data', '/proc/minkube-data/sub']) {
    await expect(makeDirs(path)).rejects.toThrow('no directory can be made in /proc: its file system answers ENOENT to mkdir /proc/minkube-data although /proc exists');
  }
}, 5000);
