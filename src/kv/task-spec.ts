// The task spec's schema (TypeBox), shared by POST /v1/tasks and the decoding of task commands, and its defaults.
// Strict: unknown fields are refused, so a typo such as "restart_policy" is a 400, not a silently ignored field.
import { hash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { imageReferenceProblem } from '../lib/image-reference.js';
import { limits } from '../lib/limits.js';
import { isEnvName, stopSignals, type HealthCheckSpec, type RestartPolicy, type TaskRecord, type TaskSpec } from '../contracts/task-model.js';
import { constraintsProblem, ConstraintsSchema, NamespaceSchema, PrioritySchema } from './placement-schemas.js';
import { httpPathPattern, portNamePattern } from '../lib/patterns.js';

const StringMap = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 64 * 1024 }), {
  maxProperties: limits.taskMapEntriesMax,
});

export { portNamePattern };
const PortSchema = Type.Object({ name: Type.String({ pattern: portNamePattern }) }, { additionalProperties: false });
export const HealthCheckSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('http'), Type.Literal('tcp'), Type.Literal('exec')]),
    port: Type.Optional(Type.String({ pattern: portNamePattern })),
    path: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, pattern: httpPathPattern })),
    command: Type.Optional(Type.Array(Type.String({ maxLength: 64 * 1024 }), { minItems: 1, maxItems: limits.taskCommandArgsMax })),
    intervalS: Type.Number({ minimum: limits.healthCheckIntervalSMin, maximum: limits.healthCheckIntervalSMax }),
    timeoutS: Type.Number({ minimum: limits.healthCheckTimeoutSMin, maximum: limits.healthCheckTimeoutSMax }),
    retries: Type.Integer({ minimum: 1, maximum: limits.healthCheckRetriesMax }),
    startPeriodS: Type.Number({ minimum: 0, maximum: limits.healthCheckStartPeriodSMax }),
  },
  { additionalProperties: false },
);

export const TaskSpecSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    image: Type.String({ minLength: 1, maxLength: 1024 }),
    command: Type.Optional(Type.Array(Type.String({ maxLength: 64 * 1024 }), { minItems: 1, maxItems: limits.taskCommandArgsMax })),
    env: Type.Optional(StringMap),
    secretEnv: Type.Optional(StringMap),
    restartPolicy: Type.Optional(Type.Union([Type.Literal('never'), Type.Literal('on-failure'), Type.Literal('always')])),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.taskAttemptsMax })),
    resources: Type.Optional(
      Type.Object(
        {
          cpus: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: limits.resourceCpusMax })),
          memoryMb: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: limits.resourceMemoryMbMax })),
        },
        { additionalProperties: false },
      ),
    ),
    labels: Type.Optional(StringMap),
    ports: Type.Optional(Type.Array(PortSchema, { minItems: 1, maxItems: limits.taskPortsMax })),
    healthCheck: Type.Optional(HealthCheckSchema),
    constraints: Type.Optional(ConstraintsSchema),
    priority: Type.Optional(PrioritySchema),
    namespace: Type.Optional(NamespaceSchema),
    stopSignal: Type.Optional(Type.Union(stopSignals.map((s) => Type.Literal(s)))),
    stopTimeoutS: Type.Optional(Type.Integer({ minimum: 0, maximum: limits.taskStopTimeoutSMax })),
  },
  { additionalProperties: false },
);
export type TaskSpecBody = Static<typeof TaskSpecSchema>;

/** What every answer shows in place of a secretEnv value. */
export const redactedValue = '<redacted>';

/** The parts of a spec the rules below look at (the managers' and the worker's schemas both give these). */
export interface SpecRuleFields {
  readonly name?: string | undefined;
  readonly image: string;
  readonly command?: readonly string[] | undefined;
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly secretEnv?: Readonly<Record<string, string>> | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly ports?: readonly { readonly name: string }[] | undefined;
  readonly healthCheck?: { readonly type: string; readonly port?: string | undefined; readonly path?: string | undefined; readonly command?: readonly string[] | undefined } | undefined;
  readonly constraints?: readonly string[] | undefined;
}

/**
 * The rules a JSON schema says badly, checked after it by every route that takes a spec and by the leader before a
 * submission enters the log: env names a shell and exec accept, and no NUL byte anywhere (exec and Docker cut a
 * string there, so the task would run something other than what was stored); an image is a reference Docker accepts
 * (process workers ignore it, but a spec must run the same on any worker). secretEnv follows env's rules, and a
 * name is in one of them only (which value would win is nobody's guess). Answers `<prefix><field>: <problem>`
 * for the first broken rule, or null.
 */
export function specRuleProblem(spec: SpecRuleFields, prefix = ''): string | null {
  const nul = (field: string): string => `${prefix}${field}: contains a NUL byte`;
  if (spec.name?.includes('\u0000') === true) return nul('name');
  if (spec.image.includes('\u0000')) return nul('image');
  const imageProblem = imageReferenceProblem(spec.image);
  if (imageProblem !== null) return `${prefix}image: ${JSON.stringify(shortened(spec.image))} is ${imageProblem}`;
  const argument = spec.command?.findIndex((a) => a.includes('\u0000')) ?? -1;
  if (argument >= 0) return nul(`command[${argument}]`);
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    if (!isEnvName(k)) return `${prefix}env.${printable(k)}: not a valid variable name`;
    if (v.includes('\u0000')) return nul(`env.${k}`);
  }
  for (const [k, v] of Object.entries(spec.secretEnv ?? {})) {
    const field = `${prefix}secretEnv.${printable(k)}`;
    if (!isEnvName(k)) return `${field}: not a valid variable name`;
    if (v.includes('\u0000')) return nul(`secretEnv.${k}`);
    if (spec.env !== undefined && Object.hasOwn(spec.env, k)) return `${field}: also in env; a variable goes in env or in secretEnv, not both`;
    // A spec copied from an answer carries the placeholder: running it would hand the task the placeholder.
    if (v === redactedValue) return `${field}: ${JSON.stringify(redactedValue)} is how answers show a secret, not a value`;
  }
  for (const [k, v] of Object.entries(spec.labels ?? {})) {
    if (k.includes('\u0000') || v.includes('\u0000')) return nul(`labels.${printable(k)}`);
  }
  return constraintsProblem(spec.constraints, prefix) ?? portsProblem(spec, prefix);
}

/** Port names are unique; a health check's port names a declared port; http and tcp need one, exec a command. */
function portsProblem(spec: SpecRuleFields, prefix: string): string | null {
  const names = new Set<string>();
  for (const [i, p] of (spec.ports ?? []).entries()) {
    if (names.has(p.name)) return `${prefix}ports[${i}].name: ${JSON.stringify(p.name)} is declared twice`;
    names.add(p.name);
  }
  const h = spec.healthCheck;
  if (h === undefined) return null;
  // A field its type does not use (after what it lacks) would be stored and shown, and mean nothing: refused, as a
  // typo is.
  const unused = (field: string, what: string): string => `${prefix}healthCheck.${field}: only ${what} (this one is ${h.type})`;
  if (h.type === 'exec') {
    if (h.command === undefined) return `${prefix}healthCheck.command: missing (an exec check runs it)`;
    if (h.command.some((a) => a.includes('\u0000'))) return `${prefix}healthCheck.command: contains a NUL byte`;
    return h.path === undefined ? null : unused('path', 'an http check asks for a path');
  }
  if (h.command !== undefined) return unused('command', 'an exec check runs a command');
  if (h.port === undefined) return `${prefix}healthCheck.port: missing (${h.type === 'http' ? 'an http' : 'a tcp'} check needs a declared port's name)`;
  if (!names.has(h.port)) return `${prefix}healthCheck.port: ${JSON.stringify(h.port)} is not a declared port`;
  return h.path === undefined || h.type === 'http' ? null : unused('path', 'an http check asks for a path');
}

/** A key as it can be shown in a message: NUL and other control characters escaped, cut to the name limit. */
export function printable(key: string): string {
  return JSON.stringify(shortened(key)).slice(1, -1);
}

function shortened(text: string): string {
  return text.length > limits.taskEnvNameCharsMax ? `${text.slice(0, 32)}...` : text;
}

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
  if (spec.secretEnv !== undefined) out.secretEnv = sortedMap(spec.secretEnv);
  out.restartPolicy = spec.restartPolicy ?? taskSpecDefaults.restartPolicy;
  out.maxAttempts = spec.maxAttempts ?? taskSpecDefaults.maxAttempts;
  if (spec.resources !== undefined) {
    const r: { cpus?: number; memoryMb?: number } = {};
    if (spec.resources.cpus !== undefined) r.cpus = spec.resources.cpus;
    if (spec.resources.memoryMb !== undefined) r.memoryMb = spec.resources.memoryMb;
    out.resources = r;
  }
  if (spec.labels !== undefined) out.labels = sortedMap(spec.labels);
  if (spec.ports !== undefined) out.ports = spec.ports.map((p) => ({ name: p.name }));
  if (spec.healthCheck !== undefined) out.healthCheck = normaliseHealthCheck(spec.healthCheck);
  if (spec.constraints !== undefined) out.constraints = [...spec.constraints];
  if (spec.priority !== undefined) out.priority = spec.priority;
  if (spec.namespace !== undefined) out.namespace = spec.namespace;
  if (spec.stopSignal !== undefined) out.stopSignal = spec.stopSignal;
  if (spec.stopTimeoutS !== undefined) out.stopTimeoutS = spec.stopTimeoutS;
  return out;
}

function normaliseHealthCheck(h: HealthCheckSpec): HealthCheckSpec {
  const out: { -readonly [K in keyof HealthCheckSpec]: HealthCheckSpec[K] } = { type: h.type, intervalS: h.intervalS, timeoutS: h.timeoutS, retries: h.retries, startPeriodS: h.startPeriodS };
  if (h.port !== undefined) out.port = h.port;
  if (h.path !== undefined) out.path = h.path;
  if (h.command !== undefined) out.command = [...h.command];
  return out;
}

/**
 * The spec as any answer, CLI output or log line may show it: secretEnv keeps its names, each value replaced by
 * "<redacted>". The one redaction every view goes through; a spec without secretEnv comes back as it is.
 */
export function specView(spec: TaskSpec): TaskSpec {
  if (spec.secretEnv === undefined) return spec;
  const secretEnv: Record<string, string> = {};
  for (const k of Object.keys(spec.secretEnv)) Object.defineProperty(secretEnv, k, { value: redactedValue, enumerable: true, writable: true, configurable: true });
  return { ...spec, secretEnv };
}

/** A task record as answers show it: its spec through specView. */
export function taskView(t: TaskRecord): TaskRecord {
  // A running attempt has no exit code or error of its own yet. The record keeps the previous attempt's (a service's
  // rollout judges a replica by how its last attempt ended), which would read as this one's: the answer shows none
  // (the history says why the task was retried).
  const previous = t.state === 'running' && (t.exitCode !== null || t.error !== null);
  if (t.spec.secretEnv === undefined && !previous) return t;
  return { ...t, ...(t.spec.secretEnv === undefined ? {} : { spec: specView(t.spec) }), ...(previous ? { exitCode: null, error: null } : {}) };
}

/**
 * What an Idempotency-Key remembers of the spec it submitted: a hash of the normalised spec (equal specs, defaults
 * written or not, give equal fingerprints). Computed at apply from the entry alone, so every manager agrees. It covers
 * secretEnv too (another secret is another request); the hash is never shown.
 */
export function specFingerprint(normalised: TaskSpec): string {
  // crypto.hash: the one-shot form of createHash().update().digest(), the same bytes without a Hash object.
  return hash('sha256', JSON.stringify(normalised), 'base64url').slice(0, 22);
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
