// One wording for schema errors, in 400s and config errors: label keys and values said by their rule, not a regex, and
// a union by what it takes rather than TypeBox's "Expected union value".
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import { LabelsSchema } from '../../src/kv/placement-schemas.js';
import { describeSchemaProblem } from '../../src/lib/schema-problems.js';
import { dnsLabelPattern, httpPathPattern, portNamePattern } from '../../src/lib/patterns.js';

function problemOf(schema: Parameters<typeof TypeCompiler.Compile>[0], value: unknown): string {
  const e = TypeCompiler.Compile(schema).Errors(value).First()!;
  return `${e.path}: ${describeSchemaProblem(e.message, e.schema, 'unknown field')}`;
}

describe('describeSchemaProblem', () => {
  it('names a bad label key and value by their rule', () => {
    expect(problemOf(LabelsSchema, { 'bad key': 'x' })).toBe("/bad key: not a valid label key (a letter or digit, then letters, digits, '.', '_', '/' or '-'; at most 63 characters)");
    expect(problemOf(LabelsSchema, { zone: 'a b' })).toBe("/zone: not a valid label value (letters, digits, '.', '_' or '-'; at most 63 characters)");
  });

  it('names a DNS label, a port name and a health check path by their rule, in a union too', () => {
    expect(problemOf(Type.Object({ name: Type.String({ pattern: dnsLabelPattern }) }), { name: '-x' })).toBe("/name: not a DNS label (1 to 63 lower-case letters, digits or '-', not starting or ending with '-')");
    expect(problemOf(Type.String({ pattern: portNamePattern }), '1http')).toBe(": not a valid port name (a lower-case letter, then up to 14 lower-case letters, digits or '-')");
    expect(problemOf(Type.String({ pattern: httpPathPattern }), 'healthz')).toBe(": not a valid path ('/' then printable ASCII characters, no spaces)");
    expect(problemOf(Type.Union([Type.String({ pattern: dnsLabelPattern }), Type.Null()]), 'A')).toBe(": expected a DNS label (1 to 63 lower-case letters, digits or '-', not starting or ending with '-') or null");
  });

  it('keeps the plain wording elsewhere', () => {
    const o = Type.Object({ a: Type.String({ pattern: '^x+$' }), b: Type.Union([Type.Literal('p'), Type.Literal('q')]) }, { additionalProperties: false });
    expect(problemOf(o, { a: 'x', b: 'p', c: 1 })).toBe('/c: unknown field');
    expect(problemOf(o, { b: 'p' })).toBe('/a: missing');
    expect(problemOf(o, { a: 'y', b: 'p' })).toBe("/a: expected string to match '^x+$'");
    expect(problemOf(o, { a: 'x', b: 'r' })).toBe('/b: expected one of "p", "q"');
    const r = Type.Record(Type.String({ pattern: '^[a-z]+$' }), Type.String(), { additionalProperties: false });
    expect(problemOf(r, { A: 'x' })).toBe("/A: not a valid key (expected one to match '^[a-z]+$')");
  });

  it('says what a union takes: its description, else its variants in order', () => {
    const verbs = Type.Union([Type.Tuple([Type.Literal('*')]), Type.Array(Type.Union([Type.Literal('read'), Type.Literal('write')]), { minItems: 1 })]);
    expect(problemOf(verbs, ['fly'])).toBe(': expected ["*"] or a list of "read", "write"');
    expect(problemOf(Type.Object({ n: Type.Union([Type.Integer(), Type.Null()]) }), { n: 'x' })).toBe('/n: expected an integer or null');
    expect(problemOf(Type.Union([Type.String({ pattern: '^[0-9]+$' }), Type.Array(Type.String())]), 'x')).toBe(": expected a string matching '^[0-9]+$' or a list of strings");
    const ref = Type.Union([Type.String({ pattern: '^[0-9a-f]{16}$' }), Type.String({ pattern: '^[a-z]+$' })], { description: 'an accessor or a name' });
    expect(problemOf(ref, '..')).toBe(': expected an accessor or a name');
    expect(problemOf(Type.Object({ o: Type.Union([Type.Object({ a: Type.String() }), Type.Null()]) }), { o: 3 })).toBe('/o: expected an object or null');
  });

  it('says which fields an object that must have some takes, not "at least 1 properties"', () => {
    const patch = Type.Object({ replicas: Type.Optional(Type.Integer()), task: Type.Optional(Type.String()) }, { additionalProperties: false, minProperties: 1 });
    expect(problemOf(patch, {})).toBe(': expected at least one of replicas, task');
    expect(problemOf(Type.Record(Type.String(), Type.String(), { minProperties: 2 }), { a: 'x' })).toBe(': expected at least 2 fields');
  });
});
