// A node's data directory is made when missing; a path that cannot be one is CONFIG_INVALID saying why.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureDataDir } from '../../src/lib/data-dir.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-data-dir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('makes a missing directory and its parents, and leaves an existing one be', async () => {
  const path = join(dir, 'a', 'b');
  await ensureDataDir(path);
  await ensureDataDir(path);
  expect(statSync(path).isDirectory()).toBe(true);
});

it("is the node's user's alone: made 0700, and an existing directory set so", async () => {
  const made = join(dir, 'made');
  await ensureDataDir(made);
  expect(statSync(made).mode & 0o777).toBe(0o700);
  const open = join(dir, 'open');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  await ensureDataDir(open);
  expect(statSync(open).mode & 0o777).toBe(0o700);
});

it('a file in the way, or among the parents, is CONFIG_INVALID naming the path, the key and why', async () => {
  const file = join(dir, 'file');
  writeFileSync(file, '');
  await expect(ensureDataDir(file)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: `dataDir ${file} cannot be used as a directory: a file of that name is in the way` });
  await expect(ensureDataDir(join(file, 'sub'), '--data-dir')).rejects.toMatchObject({
    code: 'CONFIG_INVALID',
    message: `--data-dir ${join(file, 'sub')} cannot be used as a directory: a file stands where one of its parent directories should be`,
  });
});

it.runIf(existsSync('/proc/self'))('where no directory can be made (in /proc): CONFIG_INVALID at once, naming the path and why', async () => {
  await expect(ensureDataDir('/proc/p1')).rejects.toMatchObject({
    code: 'CONFIG_INVALID',
    message: 'dataDir /proc/p1 cannot be used as a directory: no directory can be made in /proc: its file system answers ENOENT to mkdir /proc/p1 although /proc exists',
  });
}, 5000);
