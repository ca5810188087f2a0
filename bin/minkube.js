#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=8
// The `minkube` command. It runs the JavaScript that `npm install` built into dist/ (scripts/build.mjs), and falls
// back to the TypeScript sources through tsx (a development dependency) when dist/ is missing or older than a
// source file, so a checkout being edited always runs what it holds. MINKUBE_FROM_SOURCE=1 always runs the sources,
// =0 always runs dist/ (benchmarks compare the two).
// The first line launches node as src/daemon/launch.ts does for `minkube up`: 8 MiB semi-spaces, and glibc's mmap
// threshold fixed at 32 KiB (nodeLaunchEnv says why; env sets it even when the caller's environment has another value).
// node's built-ins without import: its loader would build an ES module facade of each (every command pays for it).
const { readdirSync, readFileSync, statSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');

const root = join(import.meta.dirname, '..');

/**
 * True when dist/ was built from src/ as it is: as many files, none newer than the newest at the build. Walked by
 * hand with plain string paths: half the CPU of a recursive readdir and path.join (this runs before every command).
 */
function distIsFresh() {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(root, 'dist', '.stamp.json'), 'utf8'));
  } catch {
    return false;
  }
  let count = 0;
  const fresh = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory()) {
        if (!fresh(path)) return false;
      } else if (e.isFile()) {
        count++;
        if (statSync(path).mtimeMs > stamp.newestSourceMtimeMs) return false;
      }
    }
    return true;
  };
  return fresh(join(root, 'src')) && count === stamp.files;
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
