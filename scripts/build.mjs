#!/usr/bin/env node
// Builds src/ to dist/ (plain JavaScript, one file per source file, with source maps; any other file under src/, such
// as static assets, copied as it is) so `minkube` runs without a TypeScript loader. Run by `npm install` (the prepare script) and `npm run build`. esbuild strips the types file by
// file, which is exact here because the sources use verbatimModuleSyntax and isolatedModules; `npm run typecheck`
// is what checks the types. The stamp records the sources it was built from, so bin/minkube.js can tell a stale
// dist/ (a source changed since) and run the sources instead.
// Packages published as hundreds of small ES modules (TypeBox: 249 files, jose: 46) are bundled into dist/vendor/, one
// file for each path the sources import (their shared code in chunks beside them): node's ES module loader pays per
// file, and TypeBox alone cost a manager a tenth of a second to load. Everything else stays in node_modules.
// The command's front (src/cli/main.ts and what it imports, not the daemons it loads when asked) is one more bundle,
// dist/cli/main.js: `minkube status` loads one file instead of forty. lib/errors.js stays a module of its own, shared
// with the files loaded later, so an error they throw is still a MinkubeError to the front.
// `--if-possible` (npm install's prepare): a failed build leaves no dist/, says so, and lets the install go on
// (bin/minkube.js then runs the sources); `npm run build` fails instead.
import { cpSync, existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
// Built beside dist/ and swapped in whole: a node started while a build runs finds the old dist/ or the new one.
const final = join(root, 'dist');
const out = join(root, `dist.building-${process.pid}`);
const ifPossible = process.argv.includes('--if-possible');

/** Every file under src/. */
function sources() {
  return readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

const isCode = (f) => f.endsWith('.ts') && !f.endsWith('.d.ts');
const vendored = ['@sinclair/typebox', 'jose'];
const vendorDir = join(out, 'vendor');

/** '@sinclair/typebox/compiler' -> dist/vendor/@sinclair+typebox+compiler.js */
const vendorFileOf = (specifier) => join(vendorDir, `${specifier.replaceAll('/', '+')}.js`);

/**
 * Every import stays an import of the same file (one output per source, as a plain transform), except the vendored
 * packages', which point into dist/vendor/; the specifiers seen are collected for the vendor build.
 */
function rewriteImports(seen) {
  return {
    name: 'minkube-imports',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        const pkg = vendored.find((v) => args.path === v || args.path.startsWith(`${v}/`));
        if (pkg === undefined) return { path: args.path, external: true };
        seen.add(args.path);
        const from = dirname(join(out, relative(src, args.importer)));
        return { path: relative(from, vendorFileOf(args.path)).split(sep).join('/'), external: true };
      });
    },
  };
}
/** Modules the CLI bundle leaves to dist/ (relative to src/): shared with what the front loads later. */
const sharedWithLater = new Set(['lib/errors.ts']);

/** The CLI front as one file: its static imports inlined, except packages, sharedWithLater and dynamic imports. */
function cliFront(seen) {
  const from = join(out, 'cli');
  const rel = (file) => {
    const r = relative(from, file).split(sep).join('/');
    return r.startsWith('.') ? r : `./${r}`;
  };
  return {
    name: 'minkube-cli-front',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        if (!args.path.startsWith('.')) {
          if (!vendored.some((v) => args.path === v || args.path.startsWith(`${v}/`))) return { path: args.path, external: true };
          seen.add(args.path);
          return { path: rel(vendorFileOf(args.path)), external: true };
        }
        const file = resolve(args.resolveDir, args.path).replace(/\.js$/, '.ts');
        if (args.kind === 'dynamic-import' || sharedWithLater.has(relative(src, file).split(sep).join('/'))) {
          return { path: rel(join(out, relative(src, file)).replace(/\.ts$/, '.js')), external: true };
        }
        return { path: file };
      });
    },
  };
}

const files = sources();
const t0 = performance.now();
rmSync(out, { recursive: true, force: true });
try {
  const seen = new Set();
  await build({
    entryPoints: files.filter(isCode),
    outdir: out,
    outbase: src,
    bundle: true,
    plugins: [rewriteImports(seen)],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'silent',
  });
  await build({
    entryPoints: [join(src, 'cli', 'main.ts')],
    outfile: join(out, 'cli', 'main.js'),
    allowOverwrite: true,
    bundle: true,
    plugins: [cliFront(seen)],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'silent',
  });
  await build({
    entryPoints: Object.fromEntries([...seen].map((s) => [relative(vendorDir, vendorFileOf(s)).replace(/\.js$/, ''), s])),
    outdir: vendorDir,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
  });
  for (const f of files.filter((f) => !isCode(f))) cpSync(f, join(out, relative(src, f)));
  const newestSourceMtimeMs = Math.max(...files.map((f) => statSync(f).mtimeMs));
  writeFileSync(join(out, '.stamp.json'), JSON.stringify({ files: files.length, newestSourceMtimeMs }) + '\n');
  const old = `${final}.old-${process.pid}`;
  if (existsSync(final)) renameSync(final, old);
  renameSync(out, final);
  rmSync(old, { recursive: true, force: true });
} catch (err) {
  rmSync(out, { recursive: true, force: true });
  rmSync(final, { recursive: true, force: true });
  console.error(`build failed: ${String(err.message).split('\n').slice(0, 3).join(' ')}`);
  if (!ifPossible) process.exit(1);
  console.error('minkube will run from the TypeScript sources (slower to start); `npm run build` tries again');
  process.exit(0);
}
console.log(`built ${files.length} files into ${relative(root, final)}/ in ${Math.round(performance.now() - t0)} ms`);
