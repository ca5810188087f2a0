// A worker's instance id: made on the first start of its data directory, the same on every start after, and a
// damaged file is said as such rather than replaced (a new instance would leave the old one's containers behind).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { workerInstance, workerInstanceFile } from '../../src/worker/instance.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-instance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('is made once per data directory and kept', async () => {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  for (const d of [a, b]) mkdirSync(d);
  const first = await workerInstance(a);
  expect(first).toMatch(/^[0-9a-f]{12}$/);
  expect(await workerInstance(a)).toBe(first);
  expect(readFileSync(join(a, workerInstanceFile), 'utf8')).toBe(`${first}\n`);
  expect(await workerInstance(b)).not.toBe(first);
});

it('a damaged file is STORAGE_CORRUPT naming it', async () => {
  const d = mkdtempSync(join(dir, 'damaged-'));
  writeFileSync(join(d, workerInstanceFile), 'not an id\n');
  await expect(workerInstance(d)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining(join(d, workerInstanceFile)) });
});
