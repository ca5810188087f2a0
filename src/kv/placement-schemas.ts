// The JSON schemas (TypeBox) of placement's fields, shared by the task spec, the worker commands and the routes:
// worker labels and capacity, task constraints, priority and namespace, and quotas.
import { Type } from '@sinclair/typebox';
import { taskPriorities } from '../contracts/task-model.js';
import { labelKeyPattern, labelValuePattern, parseConstraint } from '../lib/constraints.js';
import { dnsLabelPattern } from '../lib/patterns.js';
import { limits } from '../lib/limits.js';

export const LabelsSchema = Type.Record(Type.String({ pattern: labelKeyPattern }), Type.String({ pattern: labelValuePattern }), {
  maxProperties: limits.workerLabelsMax,
  // Without it a key that misses the pattern would pass unchecked.
  additionalProperties: false,
});

export const CapacitySchema = Type.Object(
  { cpus: Type.Number({ minimum: 0, maximum: limits.resourceCpusMax }), memoryMb: Type.Number({ minimum: 0, maximum: limits.resourceMemoryMbMax }) },
  { additionalProperties: false },
);

/** Each one is checked by constraintsProblem (the syntax words better there than in a pattern). */
export const ConstraintsSchema = Type.Array(Type.String({ minLength: 1, maxLength: 160 }), { maxItems: limits.taskConstraintsMax });

export const PrioritySchema = Type.Union(taskPriorities.map((p) => Type.Literal(p)));

/** A namespace: lower-case letters, digits and '-', starting with a letter or digit (as a DNS label). */
export const namespacePattern = dnsLabelPattern;
export const NamespaceSchema = Type.String({ pattern: namespacePattern });
export const defaultNamespace = 'default';

/** The first bad constraint as `<prefix>constraints[i]: "text": problem`, or null. */
export function constraintsProblem(constraints: readonly string[] | undefined, prefix = ''): string | null {
  for (const [i, c] of (constraints ?? []).entries()) {
    const parsed = parseConstraint(c);
    if (typeof parsed === 'string') return `${prefix}constraints[${i}]: ${JSON.stringify(c)}: ${parsed}`;
  }
  return null;
}
