// What a route answers, said for the OpenAPI document only (openapi.ts). fastify serializes a route's answers with
// its `schema.response` (fast-json-stringify drops every property a schema does not name, and the build precompiles
// those serializers), so a route that has no response schema today, or does not answer JSON, declares its answers
// here instead and goes on answering exactly what it does.
import type { TSchema } from '@sinclair/typebox';
import type { ErrorCode } from '../lib/errors.js';

/** A body of another media type than JSON (or of several), or none at all (a redirect), with its headers. */
export interface OtherAnswer {
  readonly description: string;
  /** Media type -> the body's schema. Absent with `type: 'null'`: the answer has no body. */
  readonly content?: Readonly<Record<string, { readonly schema: object }>>;
  readonly type?: 'null';
  readonly headers?: Readonly<Record<string, { readonly type: 'string'; readonly description: string }>>;
}

/** A JSON answer (its TypeBox schema, @fastify/swagger shows it as application/json), or another kind. */
export type DocumentedAnswer = TSchema | OtherAnswer;

declare module 'fastify' {
  interface FastifySchema {
    /**
     * The answers (by status) that `response` does not give, for the OpenAPI document only: fastify never serializes
     * with them, so declaring one changes nothing the route answers.
     */
    documentedResponse?: Readonly<Record<number, DocumentedAnswer>>;
    /** The error codes this route can answer beyond those every route shares (errorStatusesOf in openapi.ts). */
    errorCodes?: readonly ErrorCode[];
    /**
     * Request headers the handler reads itself, for the OpenAPI document only (as `headers` there): fastify never
     * validates with them, so the handler's own checks and messages stay what they are.
     */
    documentedHeaders?: TSchema;
    /** The body may be left out (the route takes none as `{}`): the OpenAPI document says it is not required. */
    bodyOptional?: boolean;
  }
}

export const textSchema = { type: 'string' } as const;
export const bytesSchema = { type: 'string', format: 'binary' } as const;

/** A body of the given media types: 'text/plain' -> textSchema, say. */
export function bodyAnswer(description: string, content: Readonly<Record<string, object>>, headers?: OtherAnswer['headers']): OtherAnswer {
  const media = Object.fromEntries(Object.entries(content).map(([type, schema]) => [type, { schema }]));
  return headers === undefined ? { description, content: media } : { description, content: media, headers };
}

/** A redirect: no body, the target in Location. */
export function redirectAnswer(description: string): OtherAnswer {
  return { description, type: 'null', headers: { location: { type: 'string', description: 'where to go instead' } } };
}
