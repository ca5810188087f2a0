#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=8
// The `minkube` command. It runs the JavaScript that `npm install` built into dist/ (scripts/build.mjs), and falls
// back to the TypeScript sources through tsx (a development dependency) when dist/ is missing or older than a
// source file, so a checkout being edited always runs what it holds. MINKUBE_FROM_SOURCE=1 always runs the sources,
// =0 always runs dist/ (benchmarks compare the two).
// The first line launches node as src/daemon/launch.ts does for `minkube up`: 8 MiB semi-spaces, and glibc's mmap
// threshold fixed at 32 KiB (nodeLaunchEnv says why; env sets it even when the caller's environment has another value).
// node's built-ins without import: its loader would build an ES module facade of each (every command pays for it).
const { closeSync, fstatSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');
const { URL } = process.getBuiltinModule('node:url');

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

/** A short stable name for a string (FNV-1a): which node flags a code cache was made under. */
function fnv(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(36);
}

/**
 * Runs dist/cli/main.cjs (the command's front as CommonJS, scripts/build.mjs) compiled with V8's code cache: about a
 * tenth of a command's CPU is compiling it, and node 20 keeps no cache itself. The cache is made by the first run of
 * this build under these node flags (its own or NODE_OPTIONS': V8 refuses a cache made under others), written beside
 * it whole (temp file, rename) when the command ends; it is named after the file's inode, mtime and size, so a rebuilt
 * file never meets the cache of an old one. A cache that cannot be written (a read-only install) is only not kept. False when the build has no
 * main.cjs (made by an older build script).
 */
function runBuilt() {
  const vm = process.getBuiltinModule('node:vm');
  const { createRequire } = process.getBuiltinModule('node:module');
  const file = join(root, 'dist', 'cli', 'main.cjs');
  let fd;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  let source;
  let cacheFile;
  try {
    const st = fstatSync(fd);
    source = readFileSync(fd, 'utf8');
    cacheFile = `${file}.${st.ino}-${st.mtimeMs}-${st.size}-${fnv(`${process.version} ${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`)}.v8cache`;
  } finally {
    closeSync(fd);
  }
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __minkubeImport) {${source}\n})`, { filename: file, cachedData });
  if (cachedData === undefined || script.cachedDataRejected === true) {
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
      } catch {
        // not kept: the next run compiles again
      }
    });
  }
  const base = new URL('../dist/cli/', import.meta.url);
  const module = { exports: {} };
  const load = (specifier) => import(specifier.startsWith('.') ? new URL(specifier, base).href : specifier);
  script.runInThisContext()(module.exports, createRequire(file), module, file, join(root, 'dist', 'cli'), load);
  return true;
}

const fromSource = process.env.MINKUBE_FROM_SOURCE;
if (fromSource === '0' || (fromSource !== '1' && distIsFresh())) {
  if (!runBuilt()) await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
