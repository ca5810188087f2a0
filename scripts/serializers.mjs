// Step of scripts/build.mjs: writes DIR/api/serializers.generated.cjs, the response serializers of every route of
// the manager's and the worker's apps as fast-json-stringify's standalone code, made now from the built files in
// DIR, so that a node's first answer of each route runs code made at build time instead of loading
// fast-json-stringify (and Ajv) and compiling the route's schema then: the same serializer fastify's default
// compiler would make (same package, same schema, same options), only made earlier. api/schema-compilers.ts looks a
// route up by its method, URL, status, content type and schema (a route not found, or a node run from the sources,
// compiles as before). The apps are built with stand-ins for their services (nothing is called: routes are only
// registered) and every optional route group on, and never listen.
// `node scripts/serializers.mjs DIR`
import { writeFileSync } from 'node:fs';
import { buildSync } from 'esbuild';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: node scripts/serializers.mjs DIR');
const load = (file) => import(pathToFileURL(join(dir, file)).href);

const { schemaController, serializerKey } = await load('api/schema-compilers.js');
const { buildManagerApp } = await load('api/manager-app.js');
const { buildWorkerApp } = await load('api/worker-app.js');

/** Answers anything asked of it with itself, called or not: a service nobody calls. */
const plain = { then: undefined, name: undefined, prefix: undefined, toJSON: undefined, toString: () => 'stub', valueOf: () => 0 };
const stub = new Proxy(function stand() {}, {
  get: (_t, key) => (typeof key === 'symbol' ? undefined : Object.hasOwn(plain, key) ? plain[key] : stub),
  apply: () => stub,
});

const seen = new Map();
schemaController.compilersFactory.buildSerializer = (externalSchemas, serializerOpts) => (route) => {
  const key = serializerKey(route, externalSchemas, serializerOpts);
  if (!seen.has(key)) seen.set(key, { route, externalSchemas, serializerOpts });
  return () => '';
};

const on = { endpoint: stub, observeRequest: () => undefined, workerMetrics: async () => '' };
const apps = [
  buildManagerApp({
    service: stub, tasks: stub, services: stub, placement: stub, membership: stub, auth: stub, raftPeer: stub,
    security: stub, join: stub, audit: stub, admin: stub, backup: stub, retention: stub, events: stub, status: stub,
    metrics: on, logger: false,
  }),
  buildWorkerApp({ agent: stub, metrics: on, logger: false }),
];
for (const app of apps) await app.ready();

// The package fastify's default serializer compiler would use (@fastify/fast-json-stringify-compiler's).
const requireFromCompiler = createRequire(createRequire(import.meta.url).resolve('@fastify/fast-json-stringify-compiler'));
const fastJsonStringify = requireFromCompiler('fast-json-stringify');

const entries = [];
for (const [key, { route, externalSchemas, serializerOpts }] of seen) {
  // As the default compiler does (@fastify/fast-json-stringify-compiler's responseSchemaCompiler).
  const fjsOpts = { ...serializerOpts, schema: externalSchemas, mode: 'standalone' };
  if (fjsOpts.schema && route.schema.$id && fjsOpts.schema[route.schema.$id]) {
    fjsOpts.schema = { ...fjsOpts.schema };
    delete fjsOpts.schema[route.schema.$id];
  }
  const code = fastJsonStringify(route.schema, fjsOpts);
  entries.push(`serializers.set(${JSON.stringify(key)}, () => {\n  const module = { exports: undefined };\n${code}\n  return module.exports;\n});`);
}
const out = join(dir, 'api', 'serializers.generated.cjs');
writeFileSync(
  out,
  `'use strict';\n// Made by scripts/serializers.mjs at build time: route key -> () => serializer (fast-json-stringify standalone).\nconst serializers = new Map();\n${entries.join('\n')}\nmodule.exports = serializers;\n`,
);
// Then made one file with what the serializers require (fast-json-stringify's serializer and validator, Ajv with its
// hundred files, each inlined as it is and run when first required): a node loads it through bin/minkube.js's cached
// loader with V8's code cache, instead of finding, reading and compiling Ajv file by file with the first answer of
// a route whose schema has an anyOf (about 100 ms of CPU).
buildSync({ entryPoints: [out], outfile: out, allowOverwrite: true, bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'silent' });
for (const app of apps) await app.close();
console.log(`${seen.size} route serializers`);
