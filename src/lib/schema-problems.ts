// How a TypeBox error reads in a 400 or a config error: one wording for the API's request checks and the config
// file's, with the rules a pattern stands for said in words (a label key, a DNS label) rather than as the regular
// expression.
import { labelKeyPattern, labelKeyRule, labelValuePattern, labelValueRule } from './constraints.js';
import * as patterns from './patterns.js';

/**
 * What a string of each pattern is, and its rule in words: `not <what> (<rule>)`, or `<what> (<rule>)` in a union.
 * Every pattern a request or the config is checked against is here (test/api/openapi.test.ts and
 * test/lib/schema-problems.test.ts walk the schemas): a 400 never shows a regular expression.
 */
const patternWords = new Map<string, { readonly what: string; readonly rule: string }>([
  [labelKeyPattern, { what: 'a valid label key', rule: labelKeyRule }],
  [labelValuePattern, { what: 'a valid label value', rule: labelValueRule }],
  [patterns.dnsLabelPattern, { what: 'a DNS label', rule: patterns.dnsLabelRule }],
  [patterns.portNamePattern, { what: 'a valid port name', rule: patterns.portNameRule }],
  [patterns.httpPathPattern, { what: 'a valid path', rule: patterns.httpPathRule }],
  [patterns.idPattern, { what: 'a valid id', rule: patterns.idRule }],
  [patterns.cursorPattern, { what: 'a valid cursor', rule: patterns.cursorRule }],
  [patterns.hostPortPattern, { what: 'a host:port address', rule: patterns.hostPortRule }],
  [patterns.instancePattern, { what: 'a valid instance', rule: patterns.instanceRule }],
  [patterns.tokenNamePattern, { what: 'a valid token name', rule: patterns.tokenNameRule }],
  [patterns.policyNamePattern, { what: 'a valid role or policy name', rule: patterns.policyNameRule }],
  [patterns.keyPrefixPattern, { what: 'a valid key prefix', rule: patterns.keyPrefixRule }],
  [patterns.accessorPattern, { what: "a token's accessor", rule: patterns.accessorRule }],
  [patterns.joinTokenAccessorPattern, { what: "a join token's accessor", rule: patterns.joinTokenAccessorRule }],
  [patterns.idempotencyKeyPattern, { what: 'a valid Idempotency-Key', rule: patterns.idempotencyKeyRule }],
  [patterns.engineIdentityPattern, { what: "a container engine's identity", rule: patterns.engineIdentityRule }],
]);
const patternRules = new Map([...patternWords].map(([pattern, w]) => [pattern, `not ${w.what} (${w.rule})`]));

/** TypeBox's key pattern of a record keyed by any string: it refuses no key, so it needs no words. */
const anyKeyPattern = '^(.*)$';

/** Whether a 400 says this pattern's rule in words (or never refuses by it). */
export function patternInWords(pattern: string): boolean {
  return patternWords.has(pattern) || pattern === anyKeyPattern;
}

/**
 * The problem of one TypeBox error, as `<field>: <problem>` ends: `unknownWord` ('unknown field', 'unknown key') for
 * a property the schema does not name, except under a record whose keys follow a pattern, where the key is invalid.
 */
export function describeSchemaProblem(message: string, schema: unknown, unknownWord: string): string {
  if (message === 'Expected required property') return 'missing';
  if (message === 'Unexpected property') {
    const keyPatterns = Object.keys((schema as { patternProperties?: object }).patternProperties ?? {});
    const keyPattern = keyPatterns.length === 1 ? keyPatterns[0]! : null;
    if (keyPattern === null) return unknownWord;
    return patternRules.get(keyPattern) ?? `not a valid key (expected one to match '${keyPattern}')`;
  }
  const pattern = (schema as { pattern?: unknown }).pattern;
  if (typeof pattern === 'string' && message.startsWith('Expected string to match')) return patternRules.get(pattern) ?? message.replace(/^Expected/, 'expected');
  // "Expected object to have at least 1 properties": say which fields it takes instead.
  if (message.startsWith('Expected object to have at least')) return atLeastProblem(schema as SchemaShape);
  // TypeBox says only "Expected union value": say what the union takes instead.
  if (Array.isArray((schema as SchemaShape).anyOf)) return `expected ${describeSchema(schema as SchemaShape)}`;
  return message.replace(/^Expected/, 'expected');
}

/** An object with fewer properties than its minProperties: which it takes ('expected at least one of replicas, task'). */
function atLeastProblem(s: SchemaShape): string {
  const count = typeof s.minProperties === 'number' ? s.minProperties : 1;
  const names = Object.keys(s.properties ?? {});
  if (names.length === 0) return `expected at least ${count} ${count === 1 ? 'field' : 'fields'}`;
  return `expected at least ${count === 1 ? 'one' : count} of ${names.join(', ')}`;
}

/** The parts of a JSON schema (as TypeBox makes them) that describeSchema reads. */
interface SchemaShape {
  readonly anyOf?: readonly SchemaShape[];
  readonly const?: unknown;
  readonly type?: unknown;
  readonly items?: SchemaShape | readonly SchemaShape[];
  readonly pattern?: unknown;
  readonly description?: unknown;
  readonly minProperties?: unknown;
  readonly properties?: Readonly<Record<string, unknown>>;
}

const typeWords: Readonly<Record<string, readonly [one: string, many: string]>> = {
  string: ['a string', 'strings'], integer: ['an integer', 'integers'], number: ['a number', 'numbers'], boolean: ['true or false', 'booleans'],
  null: ['null', 'nulls'], object: ['an object', 'objects'], array: ['a list', 'lists'],
};

/**
 * What a schema takes, in words, for a message that begins "expected": a union by its description when it has one
 * (what its variants mean: "a token's accessor or name"), else by its variants ('["*"] or a list of "read", "write"');
 * a literal as JSON, a tuple by its items, anything else by its type.
 */
export function describeSchema(s: SchemaShape): string {
  if (s.anyOf !== undefined) {
    if (typeof s.description === 'string') return s.description;
    if (s.anyOf.every((v) => v.const !== undefined)) return `one of ${literals(s.anyOf)}`;
    return s.anyOf.map(describeSchema).join(' or ');
  }
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'array' && Array.isArray(s.items)) return `[${s.items.map(describeSchema).join(', ')}]`;
  if (s.type === 'array' && s.items !== undefined && !Array.isArray(s.items)) return `a list of ${describeItems(s.items as SchemaShape)}`;
  if (s.type === 'string' && typeof s.pattern === 'string') {
    const words = patternWords.get(s.pattern);
    return words === undefined ? `a string matching '${s.pattern}'` : `${words.what} (${words.rule})`;
  }
  return typeof s.type === 'string' ? (typeWords[s.type]?.[0] ?? s.type) : 'a value of another shape';
}

/** A list's items, as "a list of" ends: its literals, or its items' type in the plural. */
function describeItems(items: SchemaShape): string {
  if (items.anyOf?.every((v) => v.const !== undefined) === true) return literals(items.anyOf);
  const many = typeof items.type === 'string' && items.pattern === undefined ? typeWords[items.type]?.[1] : undefined;
  return many ?? `items each ${describeSchema(items)}`;
}

function literals(variants: readonly SchemaShape[]): string {
  return variants.map((v) => JSON.stringify(v.const)).join(', ');
}
