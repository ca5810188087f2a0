#!/usr/bin/env -S node --max-semi-space-size=8
// The `minkube` command. It runs the JavaScript that `npm install` built into dist/ (scripts/build.mjs), and falls
// back to the TypeScript sources through tsx (a development dependency) when dist/ is missing or older than a
// source file, so a checkout being edited always runs what it holds. MINKUBE_FROM_SOURCE=1 always runs the sources,
// =0 always runs dist/ (benchmarks compare the two).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

/** True when dist/ was built from src/ as it is: as many files, none newer than the newest at the build. */
function distIsFresh() {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(root, 'dist', '.stamp.json'), 'utf8'));
  } catch {
    return false;
  }
  const src = join(root, 'src');
  let count = 0;
  for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    count++;
    if (statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs > stamp.newestSourceMtimeMs) return false;
  }
  return count === stamp.files;
}

// msgpackr's native string reader answers slices of one long string, which keep all of it alive while any record
// holds one of them: a fifth of a manager's heap. Its JavaScript reader copies each string. Set before msgpackr loads.
process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ??= 'true';

const fromSource = process.env.MINKUBE_FROM_SOURCE;
if (fromSource === '0' || (fromSource !== '1' && distIsFresh())) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
