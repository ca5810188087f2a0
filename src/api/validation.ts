// Request validation for every Minkube app: TypeBox schemas checked by TypeBox itself. No type coercion, so a
// number sent where a string belongs is a 400, not silently accepted; query strings are parsed by hand where needed.
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck, type ValueError } from '@sinclair/typebox/compiler';
import type { FastifySchemaCompiler } from 'fastify';
import { specRuleProblem, type SpecRuleFields } from '../kv/task-spec.js';
import { MinkubeError } from '../lib/errors.js';
import { describeSchemaProblem } from '../lib/schema-problems.js';

const compiled = new WeakMap<object, TypeCheck<TSchema>>();

/** A fastify validator compiler: a failure is INVALID_BODY (body) or INVALID_PARAM (params, query, headers), naming the field. */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const part = httpPart === 'body' ? 'body' : httpPart === 'querystring' ? 'query' : (httpPart ?? 'request');
  // Compiled with the route's first request, not at start-up (a manager has about a hundred schemas).
  let typeCheck: TypeCheck<TSchema> | undefined;
  return (data: unknown) => {
    typeCheck ??= checkOf(schema);
    if (typeCheck.Check(data)) return { value: data };
    return { error: new MinkubeError(part === 'body' ? 'INVALID_BODY' : 'INVALID_PARAM', schemaProblem(typeCheck, data, part)) };
  };
};

/**
 * How a value the schema refuses is said in a 400: `<field>: <problem>`, the field named under `part` ('body',
 * 'query', or an item of a batch judged alone: 'assignments[3]'), the problem worded by describeSchemaProblem.
 */
export function schemaProblem(typeCheck: TypeCheck<TSchema>, data: unknown, part: string): string {
  const first = firstProblem(typeCheck, data);
  if (first === undefined) return `${part}: invalid`;
  // A query parameter given twice arrives as an array: say that, rather than "expected string".
  const repeated = part === 'query' && Array.isArray(first.value) && first.path.split('/').length === 2;
  // Every property missing from that object, not only the first (a body without both addresses names both).
  if (first.message === requiredMissing) return missingBeside(typeCheck, data, first).map((path) => `${fieldName(part, path)}: missing`).join('; ');
  // `?=x` or `?&`: a parameter with no name, which `query.: unknown field` says badly.
  if (part === 'query' && first.path === '/') return 'query: a parameter with no name';
  return `${fieldName(part, first.path)}: ${repeated ? 'given more than once' : describeSchemaProblem(first.message, first.schema, 'unknown field')}`;
}

const requiredMissing = 'Expected required property';

/** The paths of the properties missing from the object `first` is missing from, `first`'s first, at most 8. */
function missingBeside(typeCheck: TypeCheck<TSchema>, data: unknown, first: ValueError): string[] {
  const parent = parentOf(first.path);
  const paths = [first.path];
  let looked = 0;
  for (const e of typeCheck.Errors(data)) {
    if (e.message === requiredMissing && e.path !== first.path && parentOf(e.path) === parent && !paths.includes(e.path)) paths.push(e.path);
    if (paths.length >= 8 || ++looked >= 32) break;
  }
  return paths;
}

/**
 * The error a 400 names. TypeBox lists an object's missing properties before its wrong ones: a wrong value beside
 * them in the same object is named instead ({ "type": "bogus" } says type is not one of http, tcp, exec, not that
 * intervalS is missing), since it is what was sent.
 */
function firstProblem(typeCheck: TypeCheck<TSchema>, data: unknown): ValueError | undefined {
  let first: ValueError | undefined;
  let looked = 0;
  for (const e of typeCheck.Errors(data)) {
    if (first === undefined) {
      first = e;
      if (e.message !== requiredMissing) return e;
    } else if (e.message !== requiredMissing && e.value !== undefined && parentOf(e.path) === parentOf(first.path)) {
      // (A missing property is also listed as the wrong type of its undefined value: not what was sent.)
      return e;
    }
    if (++looked >= 32) break;
  }
  return first;
}

function parentOf(pointer: string): string {
  return pointer.slice(0, pointer.lastIndexOf('/'));
}

function checkOf(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (check === undefined) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** ('body', '/a/0/b') -> 'body.a[0].b' */
function fieldName(part: string, pointer: string): string {
  let out = part;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^[0-9]+$/.test(seg) ? `[${seg}]` : `.${seg}`;
  }
  return out;
}

/**
 * Parses a non-negative integer query parameter (query strings carry text), within `range` when given; absent gives
 * undefined. The message says the range and shows at most 32 characters of what came.
 */
export function parseIntegerParam(name: string, text: string | undefined, range?: { readonly min: number; readonly max: number }): number | undefined {
  if (text === undefined) return undefined;
  const digits = /^(0|[1-9][0-9]*)$/.test(text);
  const n = digits ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || (range !== undefined && (n < range.min || n > range.max))) {
    const expected = range === undefined ? 'an integer >= 0' : `an integer from ${range.min} to ${range.max}`;
    throw new MinkubeError('INVALID_PARAM', `query.${name}: expected ${expected}, got ${JSON.stringify(text.length > 32 ? `${text.slice(0, 32)}...` : text)}`);
  }
  return n;
}

/**
 * After the schema: the spec rules a schema says badly (env names, NUL bytes; see specRuleProblem), as a 400
 * INVALID_TASK_SPEC naming the field under `prefix` ('spec.', 'tasks[3].').
 */
export function checkSpecRules(spec: SpecRuleFields, prefix: string): void {
  const problem = specRuleProblem(spec, prefix);
  if (problem !== null) throw new MinkubeError('INVALID_TASK_SPEC', problem);
}

/**
 * A preValidation hook for a POST that takes no body: none, null or {} pass; anything else is 400 INVALID_BODY rather
 * than silently ignored (a caller who sent fields expects them to count).
 */
export const noBodyMessage = 'body: this route takes no body (send none, or {})';

export async function takesNoBody(req: { readonly body?: unknown }): Promise<void> {
  const b = req.body;
  if (b === undefined || b === null) return;
  if (typeof b === 'object' && !Array.isArray(b) && Object.keys(b).length === 0) return;
  throw new MinkubeError('INVALID_BODY', noBodyMessage);
}
