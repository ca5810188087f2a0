#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=8 --expose-gc
// The `minkube` command. It runs the JavaScript that `npm install` built into dist/ (scripts/build.mjs), and falls
// back to the TypeScript sources through tsx (a development dependency) when dist/ is missing or older than a
// source file, so a checkout being edited always runs what it holds. MINKUBE_FROM_SOURCE=1 always runs the sources,
// =0 always runs dist/ (benchmarks compare the two).
// The first line launches node as src/daemon/launch.ts does for `minkube up`: 8 MiB semi-spaces, gc exposed, glibc's mmap
// threshold fixed at 32 KiB (nodeLaunchEnv says why; env sets it even when the caller's environment has another value).
// node's built-ins without import: its loader would build an ES module facade of each (every command pays for it).
const { closeSync, fstatSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');
const { URL } = process.getBuiltinModule('node:url');
const { setTimeout } = process.getBuiltinModule('node:timers');

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
 * Runs a CommonJS bundle of dist/ (scripts/build.mjs: the command's front, dist/cli/main.cjs, and the daemons it
 * loads, dist/daemon/manager.cjs and worker.cjs) compiled with V8's code cache, and answers its exports, or null when
 * the build has no such file (made by an older build script). About a tenth of a command's CPU, and of a daemon's
 * start, is compiling its bundle, and node 20 keeps no cache itself. The cache is made by the first run of this build
 * under these node flags (its own or NODE_OPTIONS': V8 refuses a cache made under others), written beside it whole
 * (temp file, rename) when the process ends; it is named after the file's inode, mtime and size, so a rebuilt file
 * never meets the cache of an old one. A cache that cannot be written (a read-only install) is only not kept. The
 * bundle's import() and import.meta.url are the loader's (`__minkubeImport`, `__minkubeUrl`: the URL its ES module
 * twin, the .js beside it, would have).
 */
function runCached(file) {
  const vm = process.getBuiltinModule('node:vm');
  const { createRequire } = process.getBuiltinModule('node:module');
  const { pathToFileURL } = process.getBuiltinModule('node:url');
  let fd;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
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
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __minkubeImport, __minkubeUrl) {${source}\n})`, { filename: file, cachedData });
  if (cachedData === undefined || script.cachedDataRejected === true) {
    let kept = false;
    const keep = () => {
      if (kept) return;
      kept = true;
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
      } catch {
        // not kept: the next run compiles again
      }
    };
    // A command when it ends; a daemon (seldom ending by itself) a few seconds after its start, which by then
    // compiled what starting needs.
    process.once('exit', keep);
    setTimeout(keep, 3000).unref();
  }
  const url = pathToFileURL(file.replace(/\.cjs$/, '.js'));
  const module = { exports: {} };
  const load = (specifier) => import(specifier.startsWith('.') ? new URL(specifier, url).href : specifier);
  script.runInThisContext()(module.exports, createRequire(file), module, file, join(file, '..'), load, url.href);
  return module.exports;
}

const fromSource = process.env.MINKUBE_FROM_SOURCE;
if (fromSource === '0' || (fromSource !== '1' && distIsFresh())) {
  // Offered only when dist/ runs: from the sources, a daemon must run the sources too, not an older build of it.
  /** A daemon's bundle for src/cli/daemons.ts (by name: manager, worker), cached the same way; null without one. */
  globalThis[Symbol.for('minkube.loadDaemon')] = (name) => runCached(join(root, 'dist', 'daemon', `${name}.cjs`));
  /** Any other CommonJS file of dist/ (the route serializers, api/schema-compilers.ts), cached the same way. */
  globalThis[Symbol.for('minkube.requireCached')] = (file) => runCached(file);
  if (runCached(join(root, 'dist', 'cli', 'main.cjs')) === null) await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
