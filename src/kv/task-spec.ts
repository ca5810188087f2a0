// The task spec's schema (TypeBox), shared by POST /v1/tasks and the decoding of task commands, and its defaults.
// Strict: unknown fields are refused, so a typo such as "restart_policy" is a 400, not a silently ignored field.
import { Type, type Static } from '@sinclair/typebox';
import { limits } from '../lib/limits.js';
import type { RestartPolicy, TaskSpec } from './task-model.js';

const StringMap = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 64 * 1024 }), {
  maxProperties: limits.taskMapEntriesMax,
});

export const TaskSpecSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    image: Type.String({ minLength: 1, maxLength: 1024 }),
    command: Type.Optional(Type.Array(Type.String({ maxLength: 64 * 1024 }), { minItems: 1, maxItems: limits.taskCommandArgsMax })),
    env: Type.Optional(StringMap),
    restartPolicy: Type.Optional(Type.Union([Type.Literal('never'), Type.Literal('on-failure'), Type.Literal('always')])),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.taskAttemptsMax })),
    resources: Type.Optional(
      Type.Object(
        {
          cpus: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1024 })),
          memoryMb: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 16 * 1024 * 1024 })),
        },
        { additionalProperties: false },
      ),
    ),
    labels: Type.Optional(StringMap),
  },
  { additionalProperties: false },
);
export type TaskSpecBody = Static<typeof TaskSpecSchema>;

export const taskSpecDefaults = { restartPolicy: 'never' as RestartPolicy, maxAttempts: 3 } as const;

/**
 * A validated spec with its defaults filled in and its fields in one order: the stored spec says what will happen
 * (restartPolicy and maxAttempts are explicit), and equal specs encode to equal bytes.
 */
export function normaliseSpec(spec: TaskSpec): TaskSpec {
  const out: { -readonly [K in keyof TaskSpec]: TaskSpec[K] } = { image: spec.image };
  if (spec.name !== undefined) out.name = spec.name;
  if (spec.command !== undefined) out.command = [...spec.command];
  if (spec.env !== undefined) out.env = sortedMap(spec.env);
  out.restartPolicy = spec.restartPolicy ?? taskSpecDefaults.restartPolicy;
  out.maxAttempts = spec.maxAttempts ?? taskSpecDefaults.maxAttempts;
  if (spec.resources !== undefined) {
    const r: { cpus?: number; memoryMb?: number } = {};
    if (spec.resources.cpus !== undefined) r.cpus = spec.resources.cpus;
    if (spec.resources.memoryMb !== undefined) r.memoryMb = spec.resources.memoryMb;
    out.resources = r;
  }
  if (spec.labels !== undefined) out.labels = sortedMap(spec.labels);
  return out;
}

function sortedMap(m: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  // defineProperty: a key named "__proto__" stays a plain key instead of replacing the prototype.
  for (const k of Object.keys(m).sort()) Object.defineProperty(out, k, { value: m[k], enumerable: true, writable: true, configurable: true });
  return out;
}

export function maxAttemptsOf(spec: TaskSpec): number {
  return spec.maxAttempts ?? taskSpecDefaults.maxAttempts;
}

export function restartPolicyOf(spec: TaskSpec): RestartPolicy {
  return spec.restartPolicy ?? taskSpecDefaults.restartPolicy;
}
