// Reading the audit log's files by lines in chunks: forwards and backwards give the same complete lines, however the
// chunks fall (long lines, multi-byte characters across a boundary), and a line still being written is left out.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linesBackward, linesForward } from '../../src/manager/audit-files.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-audit-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function readBoth(text: string): Promise<{ forward: string[]; backward: string[] }> {
  const path = join(dir, `f-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, text);
  const fh = await open(path, 'r');
  const size = Buffer.byteLength(text);
  const forward: string[] = [];
  const backward: string[] = [];
  for await (const l of linesForward(fh, size)) forward.push(l);
  for await (const l of linesBackward(fh, size)) backward.push(l);
  await fh.close();
  return { forward, backward };
}

describe('linesForward / linesBackward', () => {
  it('agree on every complete line across many chunks, with multi-byte characters and lines longer than a chunk', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `{"seq":${i},"target":"${'é€'.repeat(i % 50)}"}`);
    lines.splice(1500, 0, `{"long":"${'x'.repeat(200_000)}"}`);
    const { forward, backward } = await readBoth(`${lines.join('\n')}\n`);
    expect(forward).toEqual(lines);
    expect(backward).toEqual([...lines].reverse());
  });

  it('leave out a last line without its newline (still being written), and empty files', async () => {
    expect(await readBoth('{"a":1}\n{"b":2}\n{"c":')).toEqual({ forward: ['{"a":1}', '{"b":2}'], backward: ['{"b":2}', '{"a":1}'] });
    expect(await readBoth('')).toEqual({ forward: [], backward: [] });
    expect(await readBoth('no newline at all')).toEqual({ forward: [], backward: [] });
  });
});
