#!/usr/bin/env node
// Builds src/ to dist/ (plain JavaScript, one file per source file, with source maps; any other file under src/, such
// as static assets, copied as it is) so `minkube` runs without a TypeScript loader. Run by `npm install` (the prepare script) and `npm run build`. esbuild strips the types file by
// file, which is exact here because the sources use verbatimModuleSyntax and isolatedModules; `npm run typecheck`
// is what checks the types. The stamp records the sources it was built from, so bin/minkube.js can tell a stale
// dist/ (a source changed since) and run the sources instead.
// Packages published as hundreds of small ES modules (TypeBox: 249 files, jose: 46) are bundled into dist/vendor/, one
// file for each path the sources import (their shared code in chunks beside them): node's ES module loader pays per
// file, and TypeBox alone cost a manager a tenth of a second to load. @peculiar/x509 (with asn1js, tslib, tsyringe:
// about a hundred CommonJS files), which a node loads only to make a certificate, is bundled there too.
// The command's front (src/cli/main.ts and what it imports, not the daemons it loads when asked) is one more bundle,
// dist/cli/main.js (commander inlined): `minkube status` loads one file instead of forty; the same again as CommonJS,
// dist/cli/main.cjs, is what bin/minkube.js runs, with V8's code cache (see commonJsText). The manager and the worker
// (dist/daemon/manager.js, worker.js) are bundled the same way with fastify, pino and the other packages they load to
// start: a manager read about 600 files before it answered. lib/errors.js stays a module of its own, shared with the
// files loaded later, so an error they throw is still a MinkubeError to the front.
// `--if-possible` (npm install's prepare): a failed build leaves no dist/, says so, and lets the install go on
// (bin/minkube.js then runs the sources); `npm run build` fails instead.
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
// Built beside dist/ and swapped in whole: a node started while a build runs finds the old dist/ or the new one.
const final = join(root, 'dist');
const out = join(root, `dist.building-${process.pid}`);
const ifPossible = process.argv.includes('--if-possible');
const nodeRequire = createRequire(import.meta.url);

/** Every file under src/. */
function sources() {
  return readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

const isCode = (f) => f.endsWith('.ts') && !f.endsWith('.d.ts');
const vendored = ['@sinclair/typebox', 'jose', '@peculiar/x509'];
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
/** Loaded with import() yet inlined (evaluated when first imported): the CLI's HTTP pool, which every command loads. */
const inlinedWhenLoaded = new Set(['client/node-pool.ts']);

/** Modules the bundles leave to dist/ (relative to src/): shared with what a bundle loads later. */
const sharedWithLater = new Set(['lib/errors.ts']);

/**
 * One file for `entry` (relative to src/), written over its own file in dist/: its static imports inlined, and the
 * packages of `inline` (CommonJS ones included) with them, except sharedWithLater, dynamic imports (each stays the
 * dist/ file or package it names, so what is loaded later is loaded once) and other packages (TypeBox and jose
 * point into dist/vendor/). A source that reads import.meta.url reads its own dist/ file's URL, as unbundled.
 */
function oneFile(seen, entry, inline = [], builtinsDirect = false, commonJs = false) {
  const from = dirname(join(out, entry));
  const rel = (file) => {
    const r = relative(from, file).split(sep).join('/');
    return r.startsWith('.') ? r : `./${r}`;
  };
  const inlined = (path) => inline.some((p) => path === p || path.startsWith(`${p}/`));
  return {
    name: 'minkube-one-file',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        const r = resolveOne(args);
        // CommonJS run by bin/minkube.js: its import() is the loader's (see commonJsText).
        return commonJs && args.kind === 'dynamic-import' && r?.external === true ? { ...r, path: `${dynamicImportMarker}${r.path}` } : r;
      });
      const resolveOne = (args) => {
        if (args.kind === 'entry-point') return undefined;
        if (builtinsDirect && args.path.startsWith('node:') && args.kind === 'import-statement') return { path: args.path, namespace: 'minkube-builtin' };
        if (builtinsDirect && lazyBuiltins.includes(args.path) && args.kind === 'require-call') return { path: args.path, namespace: 'minkube-lazy-builtin' };
        // node:assert costs a daemon about 30 ms of CPU to load (with its error printer), and the packages inlined
        // (fastify, find-my-way, sonic-boom) only check arguments with it: they get an assert that loads it to fail.
        if (/^(node:)?assert$/.test(args.path) && args.importer.includes(`${sep}node_modules${sep}`)) return { path: 'assert', namespace: 'minkube-lazy-assert' };
        if (!args.path.startsWith('.')) {
          // Inside an inlined package: its own files and dependencies are inlined too (node's built-ins are not).
          const inPackage = args.importer.includes(`${sep}node_modules${sep}`);
          if (args.path.startsWith('node:') || (!inlined(args.path) && !inPackage) || (inPackage && (args.kind === 'dynamic-import' || notInlined.some((p) => args.path === p || args.path.startsWith(`${p}/`))))) {
            if (!vendored.some((v) => args.path === v || args.path.startsWith(`${v}/`))) return { path: args.path, external: true };
            seen.add(args.path);
            return { path: rel(vendorFileOf(args.path)), external: true };
          }
          return undefined;
        }
        if (args.importer.includes(`${sep}node_modules${sep}`)) return undefined;
        const file = resolve(args.resolveDir, args.path).replace(/\.js$/, '.ts');
        const relFile = relative(src, file).split(sep).join('/');
        if ((args.kind === 'dynamic-import' && !inlinedWhenLoaded.has(relFile)) || sharedWithLater.has(relFile)) {
          return { path: rel(join(out, relative(src, file)).replace(/\.ts$/, '.js')), external: true };
        }
        return { path: file };
      };
      b.onLoad({ filter: /.*/, namespace: 'minkube-lazy-assert' }, () => ({ contents: lazyAssert, loader: 'js' }));
      b.onLoad({ filter: /.*/, namespace: 'minkube-builtin' }, (args) => ({ contents: builtinModule(args.path), loader: 'js' }));
      b.onLoad({ filter: /.*/, namespace: 'minkube-lazy-builtin' }, (args) => ({ contents: lazyBuiltin(args.path), loader: 'js' }));
      b.onLoad({ filter: /[\\/]fastify[\\/]lib[\\/]server\.js$/ }, (args) => {
        // fastify requires node:http2 to start any server, and uses it only for an http2 one (never here): loading
        // it cost a manager about 25 ms of CPU. Required when first used instead (the file as it is if it changed).
        const text = readFileSync(args.path, 'utf8');
        const eager = "const http2 = require('node:http2')";
        if (!text.includes(eager)) return undefined;
        const lazy = "const http2 = { createSecureServer: (...a) => require('node:http2').createSecureServer(...a), createServer: (...a) => require('node:http2').createServer(...a) }";
        return { contents: text.replace(eager, lazy), loader: 'js' };
      });
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        if (!args.path.startsWith(src + sep)) return undefined;
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const own = rel(join(out, relative(src, args.path)).replace(/\.ts$/, '.js'));
        return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`), loader: 'ts' };
      });
    },
  };
}

/** node:assert for inlined packages: a passing assert(value, message) or assert.ok loads nothing; the rest is node's. */
const lazyAssert = `
const real = () => require('node:assert');
function assert(value, message) { if (!value) real()(value, message); }
module.exports = new Proxy(assert, { get: (t, k) => (k === 'ok' ? assert : k in t ? t[k] : real()[k]) });
`;

/** CommonJS inlined in an ES module: its require() of node's built-ins needs a require. */
const requireBanner = "import { createRequire as __minkubeCreateRequire } from 'node:module'; const require = __minkubeCreateRequire(import.meta.url);";
/**
 * The command's front is built a second time as CommonJS (dist/cli/main.cjs), which bin/minkube.js compiles with V8's
 * code cache (node 20 has none for ES modules): about a tenth of the command's CPU goes to compiling it. Its dynamic
 * imports are marked, then made calls of the loader's __minkubeImport (an import() compiled in a vm.Script needs an
 * experimental flag).
 */
const dynamicImportMarker = 'minkube-dynamic-import:';
function commonJsText(text) {
  const marked = `import("${dynamicImportMarker}`;
  if (!text.includes(marked)) throw new Error('the CommonJS command has no marked import(): the build changed, see commonJsText');
  return text.replaceAll(marked, '__minkubeImport("');
}

/** The same without an import (see builtinModule). */
const requireBannerDirect = "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);";

/**
 * A built-in imported by the sources, as an ES module inside the bundle: process.getBuiltinModule, and each export a
 * const (the unused ones dropped). Node's loader would make an ES module facade of every built-in imported, copying
 * all of its exports: a few milliseconds of a command's start. Evaluated where the importing module is (a module
 * loaded with import() and inlined, such as the HTTP pool, loads its built-ins only then).
 */
function builtinModule(specifier) {
  const names = Object.keys(nodeRequire(specifier)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default');
  return [`const m = process.getBuiltinModule(${JSON.stringify(specifier)});`, 'export default m;', ...names.map((k) => `export const ${k} = /* @__PURE__ */ (() => m.${k})();`)].join('\n');
}

/**
 * Built-ins that inlined packages require at load and seldom use: loaded on first use. commander requires
 * node:child_process (3 ms) for executable subcommands, which Minkube has none of.
 */
const lazyBuiltins = ['node:child_process'];
const lazyBuiltin = (specifier) => `const real = () => process.getBuiltinModule(${JSON.stringify(specifier)});\nmodule.exports = new Proxy({}, { get: (_, k) => real()[k], has: (_, k) => k in real() });`;

/**
 * The packages a daemon loads to start, inlined into its bundle: hundreds of small CommonJS files (fastify and pino
 * with their dependencies) that node would find, read and wrap one by one. Packages with native code (classic-level,
 * msgpackr's extract, dockerode's ssh2), those that find their own files on disk (@fastify/static and swagger-ui)
 * and those loaded only when used (undici, OpenTelemetry's SDK, @peculiar/x509) stay in node_modules.
 */
const daemonPackages = ['fastify', 'pino', '@fastify/rate-limit', 'prom-client', 'dns-packet', '@opentelemetry/api'];

/**
 * What inlined packages require that stays in node_modules all the same: fastify's default compilers (Minkube
 * gives its own: api/schema-compilers.ts loads the serializer's from node_modules for a route the build made none for),
 * and its inject() (tests only). OpenTelemetry's API is inlined (65 CommonJS files): the SDK, loaded from
 * node_modules when tracing is on, finds what the bundle's copy registered, as the API keeps it on globalThis.
 */
const notInlined = ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'];

/** The bundles: the command's front, and the daemons it loads (each with the packages that load at its start). */
const bundles = [
  // The command's front reaches node's built-ins without import (builtinModule): every command pays for its start.
  { entry: 'cli/main.ts', inline: ['commander'], builtinsDirect: true, commonJs: true },
  { entry: 'daemon/manager.ts', inline: daemonPackages, commonJs: true },
  { entry: 'daemon/worker.ts', inline: daemonPackages, commonJs: true },
];

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
  for (const { entry, inline, builtinsDirect = false, commonJs = false } of bundles) {
    await build({
      entryPoints: [join(src, entry)],
      outfile: join(out, entry.replace(/\.ts$/, '.js')),
      allowOverwrite: true,
      bundle: true,
      plugins: [oneFile(seen, entry, inline, builtinsDirect)],
      platform: 'node',
      format: 'esm',
      target: 'node20',
      ...(inline.length > 0 ? { banner: { js: builtinsDirect ? requireBannerDirect : requireBanner } } : {}),
      sourcemap: 'linked',
      logLevel: 'silent',
    });
    if (!commonJs) continue;
    const made = await build({
      entryPoints: [join(src, entry)],
      outfile: join(out, entry.replace(/\.ts$/, '.cjs')),
      bundle: true,
      write: false,
      plugins: [oneFile(seen, entry, inline, builtinsDirect, true)],
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      // The loader gives the URL of the ES module twin (bin/minkube.js runCached): relative URLs resolve alike.
      define: { 'import.meta.url': '__minkubeUrl' },
      logLevel: 'silent',
    });
    for (const f of made.outputFiles) writeFileSync(f.path, commonJsText(f.text));
  }
  await build({
    entryPoints: Object.fromEntries([...seen].map((s) => [relative(vendorDir, vendorFileOf(s)).replace(/\.js$/, ''), s])),
    outdir: vendorDir,
    bundle: true,
    splitting: true,
    // A package's ES module build where it names one (@peculiar/x509's "module"): its exports stay named.
    mainFields: ['module', 'main'],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
  });
  for (const f of files.filter((f) => !isCode(f))) cpSync(f, join(out, relative(src, f)));
  // The routes' response serializers, made now rather than with each route's first answer (scripts/serializers.mjs).
  // Without them a node works as well, only compiles each serializer when first needed.
  const made = spawnSync(process.execPath, [join(root, 'scripts', 'serializers.mjs'), out], { encoding: 'utf8' });
  if (made.status !== 0) console.error(`route serializers not made (each is compiled with its route's first answer): ${made.stderr.trim().split('\n').slice(-3).join(' ')}`);
  const newestSourceMtimeMs = Math.max(...files.map((f) => statSync(f).mtimeMs));
  // The commit built, when this is a git checkout with git at hand (src/lib/build-info.ts reads it; else none is said).
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  if (rev.status === 0 && /^[0-9a-f]{4,40}$/.test(rev.stdout.trim())) writeFileSync(join(out, 'build-info.json'), JSON.stringify({ commit: rev.stdout.trim() }) + '\n');
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
