// Fastify's schema compilers, made lazy: each route's serializer is compiled with its first answer, not while the
// app is built. A manager has about a hundred response schemas, and compiling them all (fast-json-stringify, which
// loads Ajv besides) was most of its start-up CPU; a route answers exactly as before, its first answer a little later.
// Validation is TypeBox's (validation.ts), so fastify's own Ajv compiler is never loaded either.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyServerOptions } from 'fastify';
import { typeboxValidatorCompiler } from './validation.js';

type SchemaControllerOptions = NonNullable<FastifyServerOptions['schemaController']>;
type SerializerFactory = NonNullable<NonNullable<SchemaControllerOptions['compilersFactory']>['buildSerializer']>;

const require = createRequire(import.meta.url);

/** fastify's default serializer factory (fast-json-stringify), loaded with the first answer that has a schema. */
let defaultFactory: SerializerFactory | undefined;

function loadDefaultFactory(): SerializerFactory {
  return (defaultFactory ??= (require('@fastify/fast-json-stringify-compiler') as { SerializerSelector: () => SerializerFactory }).SerializerSelector());
}

type RouteSchema = Parameters<ReturnType<SerializerFactory>>[0];
type Serializer = (data: unknown) => string;

/** What identifies a route's serializer: its route, status and content type, its schema and the options. */
export function serializerKey(route: RouteSchema, externalSchemas: unknown, serializerOptions: unknown): string {
  const r = route as RouteSchema & { method?: string; url?: string; httpStatus?: string; contentType?: string };
  return JSON.stringify([r.method, r.url, r.httpStatus, r.contentType ?? null, r.schema, externalSchemas ?? null, serializerOptions ?? null]);
}

/**
 * The serializers the build made (scripts/serializers.mjs: fast-json-stringify's standalone code for every route,
 * made from the same schemas with the same package): none when run from the sources, or if the file is missing.
 */
let generated: Map<string, () => Serializer> | null | undefined;

function buildTimeSerializer(key: string): Serializer | undefined {
  if (generated === undefined) {
    try {
      // Through bin/minkube.js's loader when a node runs from it (V8's code cache: the file inlines Ajv), else require.
      const requireCached = (globalThis as Record<symbol, unknown>)[Symbol.for('minkube.requireCached')] as ((file: string) => unknown) | undefined;
      const cached = requireCached?.(fileURLToPath(new URL('./serializers.generated.cjs', import.meta.url)));
      generated = (cached ?? require('./serializers.generated.cjs')) as Map<string, () => Serializer>;
    } catch {
      generated = null;
    }
  }
  return generated?.get(key)?.();
}

const lazySerializerFactory: SerializerFactory = (externalSchemas, serializerOptions) => {
  let compiler: ReturnType<SerializerFactory> | undefined;
  return (route) => {
    let serialize: Serializer | undefined;
    return (data: unknown) => {
      if (serialize === undefined) {
        serialize = buildTimeSerializer(serializerKey(route, externalSchemas, serializerOptions));
        if (serialize === undefined) {
          compiler ??= loadDefaultFactory()(externalSchemas, serializerOptions);
          serialize = compiler(route);
        }
      }
      return serialize(data);
    };
  };
};

type ValidatorFactory = NonNullable<NonNullable<SchemaControllerOptions['compilersFactory']>['buildValidator']>;

/** The `schemaController` option of every Minkube app. */
export const schemaController: SchemaControllerOptions = {
  compilersFactory: {
    // fastify types this factory by Ajv's validate function; it takes any compiler of FastifySchemaCompiler's shape.
    buildValidator: (() => typeboxValidatorCompiler) as unknown as ValidatorFactory,
    buildSerializer: lazySerializerFactory,
  },
};
