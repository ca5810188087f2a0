// The cluster config file: which managers and workers exist, where they listen, and the timing knobs.
// Validation reports every problem at once, each with its path, in one CONFIG_INVALID error.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { MinkubeError } from '../lib/errors.js';
import { labelKeyPattern, labelKeyRule, labelValuePattern } from '../lib/constraints.js';
import { describeSchemaProblem } from '../lib/schema-problems.js';
import { endpointKey } from '../lib/address.js';
import { limits } from '../lib/limits.js';
import { idPattern, policyNamePattern } from '../lib/patterns.js';

const labelKeyRe = new RegExp(labelKeyPattern);

const Id = Type.String({ minLength: 1, maxLength: 64, pattern: idPattern });
/** 'host:port'; the host and port are checked by checkAddress, which words the problem better than a regex. */
const Address = Type.String({ minLength: 1 });
const Dir = Type.String({ minLength: 1 });

const ManagerSchema = Type.Object(
  {
    id: Id,
    raftAddress: Address,
    apiAddress: Address,
    dataDir: Dir,
    /** host:port where this manager answers DNS (UDP and TCP) for the minkube. zone; none without it. */
    dnsAddress: Type.Optional(Address),
  },
  { additionalProperties: false },
);

const WorkerSchema = Type.Object(
  {
    id: Id,
    apiAddress: Address,
    runtime: Type.Union([Type.Literal('docker'), Type.Literal('process'), Type.Literal('auto')]),
    dataDir: Type.Optional(Dir),
    /** A finished task's container is removed this long after it ended (sooner once its record is gone). */
    containerRetentionS: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86_400 })),
    /** Matched by task constraints ("zone==a", "disk!=hdd", "gpu"). */
    labels: Type.Optional(Type.Record(Type.String({ pattern: labelKeyPattern }), Type.String({ pattern: labelValuePattern }), { maxProperties: limits.workerLabelsMax, additionalProperties: false })),
    /** Host ports handed to tasks' named ports (default 20000-32000). */
    portRange: Type.Optional(
      Type.Object({ min: Type.Integer({ minimum: 1, maximum: 65535 }), max: Type.Integer({ minimum: 1, maximum: 65535 }) }, { additionalProperties: false }),
    ),
    /** What tasks' resources may reserve here; absent (or a field of it): the host's CPU cores and memory. */
    capacity: Type.Optional(
      Type.Object(
        { cpus: Type.Optional(Type.Number({ minimum: 0, maximum: limits.resourceCpusMax })), memoryMb: Type.Optional(Type.Number({ minimum: 0, maximum: limits.resourceMemoryMbMax })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const SchedulerSchema = Type.Object(
  {
    /** A high-priority task with no room stops the fewest low-priority tasks that make room (they go back to pending). */
    preemption: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const RaftSchema = Type.Object(
  {
    heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    electionTimeoutMs: Type.Optional(Type.Integer({ minimum: 2, maximum: 60_000 })),
    /** A snapshot is taken when the log holds this many entries after the last one... */
    snapshotThresholdEntries: Type.Optional(Type.Integer({ minimum: 10, maximum: 100_000_000 })),
    /** ...or this many bytes of entry data. */
    snapshotThresholdBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 ** 4 })),
  },
  { additionalProperties: false },
);

const RateLimitSchema = Type.Object(
  {
    requestsPerS: Type.Integer({ minimum: 1, maximum: limits.rateLimitRequestsPerSMax }),
    burst: Type.Integer({ minimum: 1, maximum: limits.rateLimitBurstMax }),
  },
  { additionalProperties: false },
);
/** A role's name: built-in or a custom policy's (policy names follow the same pattern). */
const RoleName = Type.String({ pattern: policyNamePattern });

const ApiSchema = Type.Object(
  {
    bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.httpBodyBytesDefault })),
    requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
    /** The managers' HTTPS certificate and key (PEM files) when the operator supplies one; else one from the cluster CA. */
    tlsCertFile: Type.Optional(Dir),
    tlsKeyFile: Type.Optional(Dir),
    /**
     * The CA certificate(s) (a PEM file) that signed tlsCertFile when the cluster CA did not: every client of the
     * managers' API that reads this file trusts it beside the cluster CA (managers, workers; the CLI through the
     * credentials file, which copies it).
     */
    tlsCaFile: Type.Optional(Dir),
    /** Per API token, by its role; each role named replaces that role's default, the others keep theirs. */
    rateLimits: Type.Optional(Type.Record(RoleName, RateLimitSchema, { additionalProperties: false })),
    /** Per client address, for requests without a token (login, join). */
    rateLimitAnonymous: Type.Optional(RateLimitSchema),
  },
  { additionalProperties: false },
);

const LogSchema = Type.Object(
  {
    /** pino's levels; MINKUBE_LOG_LEVEL applies when the file names none (then info). Live: SIGHUP or POST /v1/admin/reload. */
    level: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)))),
  },
  { additionalProperties: false },
);

const TlsSchema = Type.Object(
  {
    /** How long a node certificate is valid from its issue (Swarm's --cert-expiry); it renews at two thirds of it. */
    // At least a minute (renewal checks run every tenth of it); at most the CA's own ten years.
    certLifetimeS: Type.Optional(Type.Integer({ minimum: 60, maximum: limits.caLifetimeDaysDefault * 86_400 })),
  },
  { additionalProperties: false },
);

const Ms = (maximum: number) => Type.Optional(Type.Integer({ minimum: 1, maximum }));
const TasksSchema = Type.Object(
  {
    workerHeartbeatIntervalMs: Ms(60_000),
    /** A worker silent this long is marked unreachable... */
    workerTtlMs: Ms(600_000),
    /** ...and after this much longer its running tasks become lost and are placed elsewhere. */
    lostGraceMs: Ms(600_000),
    reconcileIntervalMs: Ms(600_000),
    backoffBaseMs: Ms(600_000),
    backoffCapMs: Ms(3_600_000),
    assignTimeoutMs: Ms(600_000),
    stopTimeoutMs: Ms(600_000),
    /** Finished task records (succeeded, failed, stopped) past either bound are removed, oldest first. */
    retention: Type.Optional(
      Type.Object(
        {
          finishedMax: Type.Optional(Type.Integer({ minimum: 0, maximum: limits.tasksRetainedMax })),
          finishedAgeS: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 * 365 * 86_400 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** Scheduled backups: the leader writes a snapshot file into `dir` every `intervalS` and keeps the newest `retain`. */
const BackupSchema = Type.Object(
  {
    intervalS: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86_400 })),
    retain: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    dir: Dir,
  },
  { additionalProperties: false },
);

const MetricsSchema = Type.Object(
  {
    /** GET /metrics and the work of keeping them (default true); false: no route, nothing measured. */
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const ClusterConfigSchema = Type.Object(
  {
    /**
     * Plain HTTP and plaintext Raft, no client tokens: for local experiments and benchmarks only. Without it (the
     * default) every connection between nodes is mutual TLS and every client needs a token.
     */
    insecure: Type.Optional(Type.Boolean()),
    managers: Type.Array(ManagerSchema, { minItems: 1 }),
    workers: Type.Optional(Type.Array(WorkerSchema)),
    raft: Type.Optional(RaftSchema),
    api: Type.Optional(ApiSchema),
    tasks: Type.Optional(TasksSchema),
    tls: Type.Optional(TlsSchema),
    log: Type.Optional(LogSchema),
    backup: Type.Optional(BackupSchema),
    metrics: Type.Optional(MetricsSchema),
    scheduler: Type.Optional(SchedulerSchema),
  },
  { additionalProperties: false },
);

/**
 * The keys that must agree across managers, as a config file spells them: nothing replicates them, and the leader
 * applies its own (Raft and task timings, task retention, certificate lifetime, backups, preemption), or each
 * manager applies its own to what it serves (the API's limits, metrics). Not: `insecure` and the members (a join
 * decides them), the operator's API certificate files (paths on one host), `log` (each node's own).
 */
export const ClusterSettingsSchema = Type.Object(
  {
    raft: RaftSchema,
    api: Type.Omit(ApiSchema, ['tlsCertFile', 'tlsKeyFile', 'tlsCaFile'], { additionalProperties: false }),
    tasks: TasksSchema,
    tls: TlsSchema,
    /** Absent: no scheduled backups. `dir` is absolute: a path on the host of the manager that leads. */
    backup: Type.Optional(BackupSchema),
    metrics: MetricsSchema,
    scheduler: SchedulerSchema,
  },
  { additionalProperties: false },
);
export type ClusterSettings = Static<typeof ClusterSettingsSchema>;

/** Where a node that joined from flags alone keeps its config, in its data directory. */
export const joinedConfigFile = 'cluster.json';

/** The file as written. */
export type ClusterConfigFile = Static<typeof ClusterConfigSchema>;
export type ManagerConfig = Static<typeof ManagerSchema>;
export type WorkerConfig = Static<typeof WorkerSchema>;

/** The config as used: defaults filled in, data directories absolute. */
export interface ClusterConfig {
  /** See the schema: true turns TLS and tokens off. */
  readonly insecure: boolean;
  /**
   * Where a cluster started from this file keeps what it shares (the CA, its key, the admin token): `.minkube`
   * beside the file. Nodes that joined with a token keep their own material in their data directory instead.
   */
  readonly clusterDir: string;
  readonly managers: readonly ManagerConfig[];
  readonly workers: readonly WorkerConfig[];
  readonly raft: {
    readonly heartbeatIntervalMs: number;
    readonly electionTimeoutMs: number;
    readonly snapshotThresholdEntries: number;
    readonly snapshotThresholdBytes: number;
  };
  readonly api: {
    readonly bodyLimitBytes: number;
    readonly requestTimeoutMs: number;
    readonly tlsCertFile?: string;
    readonly tlsKeyFile?: string;
    /** The CA(s) of the operator's API certificate, trusted beside the cluster CA by the API's clients. */
    readonly tlsCaFile?: string;
    /** Every built-in role's limit, and any custom policy's the file names. Only a secure cluster applies them. */
    readonly rateLimits: Readonly<Record<string, RateLimitConfig>>;
    readonly rateLimitAnonymous: RateLimitConfig;
  };
  readonly tasks: TasksConfig;
  /** tasks.retention in the file. */
  readonly taskRetention: TaskRetentionConfig;
  /** null: no scheduled backups. `dir` is absolute. */
  readonly backup: BackupConfig | null;
  /** Every issuer uses it: local provisioning, joins and renewals (a worker's lifetime is its signing manager's). */
  readonly tls: { readonly certLifetimeS: number };
  /** level: as written (absent: MINKUBE_LOG_LEVEL, else info; see daemon/reload.ts logLevelOf). */
  readonly log: { readonly level?: string };
  /** Prometheus metrics on every node (GET /metrics). */
  readonly metrics: { readonly enabled: boolean };
  readonly scheduler: { readonly preemption: boolean };
}

export type TasksConfig = { readonly [K in keyof typeof clusterConfigDefaults.tasks]: number };
export type RateLimitConfig = Static<typeof RateLimitSchema>;
export interface TaskRetentionConfig {
  readonly finishedMax: number;
  readonly finishedAgeS: number;
}
export interface BackupConfig {
  readonly intervalS: number;
  readonly retain: number;
  readonly dir: string;
}

export const clusterConfigDefaults = {
  raft: { heartbeatIntervalMs: 50, electionTimeoutMs: 300, snapshotThresholdEntries: 20_000, snapshotThresholdBytes: 64 * 1024 * 1024 },
  api: {
    bodyLimitBytes: limits.httpBodyBytesDefault,
    requestTimeoutMs: limits.requestTimeoutMsDefault,
    // Generous: a person or a script never meets them; a runaway loop or a leaked token does. The benchmarks drive 256
    // clients through one admin token well under the admin's rate.
    rateLimits: {
      admin: { requestsPerS: 10_000, burst: 20_000 },
      operator: { requestsPerS: 2000, burst: 4000 },
      developer: { requestsPerS: 500, burst: 1000 },
      viewer: { requestsPerS: 200, burst: 400 },
    },
    rateLimitAnonymous: { requestsPerS: 20, burst: 50 },
  },
  tasks: {
    workerHeartbeatIntervalMs: 500,
    workerTtlMs: 2000,
    lostGraceMs: 1000,
    reconcileIntervalMs: 1000,
    backoffBaseMs: 1000,
    backoffCapMs: 60_000,
    assignTimeoutMs: 10_000,
    stopTimeoutMs: 10_000,
  },
  tls: { certLifetimeS: limits.nodeCertLifetimeDaysDefault * 86_400 },
  taskRetention: { finishedMax: 10_000, finishedAgeS: 86_400 },
  backup: { intervalS: 3600, retain: 7 },
  containerRetentionS: 3600,
  metrics: { enabled: true },
} as const;

/** Reads, parses and validates a config file; relative data directories are resolved against its directory. */
export async function loadClusterConfig(path: string): Promise<ClusterConfig> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new MinkubeError('CONFIG_INVALID', `cannot read the cluster config ${absolute}: ${reason}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // No `cause`: the message already says the parser's, and a logged error's message is given its cause's again.
    throw new MinkubeError('CONFIG_INVALID', `the cluster config ${absolute} is not valid JSON: ${(err as Error).message}`);
  }
  return parseClusterConfig(json, dirname(absolute), absolute);
}

/** Validates a parsed config (or its JSON text); `source` names it in the error message. */
export function parseClusterConfig(json: unknown, baseDir: string, source = 'the cluster config'): ClusterConfig {
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json);
    } catch (err) {
      throw new MinkubeError('CONFIG_INVALID', `${source} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const problems = [...new Set([...schemaProblems(json), ...semanticProblems(json, baseDir)])];
  if (problems.length > 0) throw configInvalid(source, problems);
  return withDefaults(json as ClusterConfigFile, baseDir);
}

/** The one CONFIG_INVALID for a list of problems, each on its own line and in details.problems. */
export function configInvalid(source: string, problems: readonly string[]): MinkubeError {
  const list = problems.map((p) => `  - ${p}`).join('\n');
  const noun = problems.length === 1 ? 'problem' : 'problems';
  return new MinkubeError('CONFIG_INVALID', `${source} is invalid (${problems.length} ${noun}):\n${list}`, { details: { problems } });
}

function withDefaults(file: ClusterConfigFile, baseDir: string): ClusterConfig {
  const api = { ...clusterConfigDefaults.api, ...file.api, rateLimits: { ...clusterConfigDefaults.api.rateLimits, ...file.api?.rateLimits } };
  if (api.tlsCertFile !== undefined) api.tlsCertFile = resolve(baseDir, api.tlsCertFile);
  if (api.tlsKeyFile !== undefined) api.tlsKeyFile = resolve(baseDir, api.tlsKeyFile);
  if (api.tlsCaFile !== undefined) api.tlsCaFile = resolve(baseDir, api.tlsCaFile);
  const { retention, ...tasks } = file.tasks ?? {};
  return {
    insecure: file.insecure === true,
    clusterDir: resolve(baseDir, '.minkube'),
    managers: file.managers.map((m) => ({ ...m, dataDir: resolve(baseDir, m.dataDir) })),
    // A worker's data directory (process-runtime state and logs) defaults to ./data/<id> beside the file.
    // containerRetentionS stays as written: the worker takes clusterConfigDefaults.containerRetentionS when absent.
    workers: (file.workers ?? []).map((w) => ({ ...w, dataDir: resolve(baseDir, w.dataDir ?? `data/${w.id}`) })),
    raft: { ...clusterConfigDefaults.raft, ...file.raft },
    api,
    tasks: { ...clusterConfigDefaults.tasks, ...tasks },
    taskRetention: { ...clusterConfigDefaults.taskRetention, ...retention },
    backup: file.backup === undefined ? null : { ...clusterConfigDefaults.backup, ...file.backup, dir: resolve(baseDir, file.backup.dir) },
    tls: { ...clusterConfigDefaults.tls, ...file.tls },
    log: file.log?.level === undefined ? {} : { level: file.log.level },
    metrics: { enabled: file.metrics?.enabled ?? clusterConfigDefaults.metrics.enabled },
    scheduler: { preemption: file.scheduler?.preemption === true },
  };
}

/** A running config's cluster-wide keys (ClusterSettingsSchema), every one spelt out, defaults included. */
export function clusterSettingsOf(config: ClusterConfig): ClusterSettings {
  const { bodyLimitBytes, requestTimeoutMs, rateLimits, rateLimitAnonymous } = config.api;
  return {
    raft: { ...config.raft },
    api: { bodyLimitBytes, requestTimeoutMs, rateLimits: structuredClone(rateLimits), rateLimitAnonymous: { ...rateLimitAnonymous } },
    tasks: { ...config.tasks, retention: { ...config.taskRetention } },
    tls: { ...config.tls },
    ...(config.backup === null ? {} : { backup: { ...config.backup } }),
    metrics: { ...config.metrics },
    scheduler: { ...config.scheduler },
  };
}

/**
 * The config a manager that joined from flags alone keeps (`<dataDir>/cluster.json`): itself, and the settings the
 * cluster answered. Keys this build does not know (a newer leader's) are dropped: it could not run with them. What
 * is left is checked as any config file is (CONFIG_INVALID naming `source` and every problem), relative paths against
 * `baseDir` (the file's directory; give `self.dataDir` absolute).
 */
export function joinedManagerConfig(settings: unknown, self: ManagerConfig, insecure: boolean, baseDir: string, source: string): { file: ClusterConfigFile; config: ClusterConfig } {
  if (!isRecord(settings)) throw configInvalid(source, ['settings: the cluster answered no settings (expected an object)']);
  const known = Value.Clean(ClusterSettingsSchema, structuredClone(settings)) as Record<string, unknown>;
  const file = { ...(insecure ? { insecure } : {}), managers: [self], ...known } as ClusterConfigFile;
  return { file, config: parseClusterConfig(file, baseDir, source) };
}

/** Type problems, one per path (a missing field also fails its type check: keep only the first). */
function schemaProblems(json: unknown): string[] {
  const byPath = new Map<string, string>();
  for (const e of Value.Errors(ClusterConfigSchema, json)) {
    const path = displayPath(e.path);
    if (byPath.has(path)) continue;
    byPath.set(path, describeSchemaProblem(e.message, e.schema, 'unknown key'));
  }
  return [...byPath].map(([path, problem]) => `${path}: ${problem}`);
}

/** What a schema cannot say: address syntax, uniqueness, timing relationships. Checks only well-typed parts. */
function semanticProblems(json: unknown, baseDir: string): string[] {
  if (!isRecord(json)) return [];
  const problems: string[] = [];
  const managers = Array.isArray(json.managers) ? (json.managers as unknown[]) : [];
  const workers = Array.isArray(json.workers) ? (json.workers as unknown[]) : [];
  const ids = new Map<string, string>();
  const addresses = new Map<string, string>();
  /** Resolved path -> its first node: two nodes on one directory would fight over its lock (DATA_DIR_IN_USE). */
  const dataDirs = new Map<string, { node: string; entry: string }>();
  /** Reports a duplicate; a value that is not a string is the schema's problem. */
  const seen = (table: Map<string, string>, value: unknown, path: string, what: string, normalise = (s: string) => s): void => {
    if (typeof value !== 'string') return;
    const first = table.get(normalise(value));
    if (first === undefined) table.set(normalise(value), path);
    else problems.push(`${path}: duplicate ${what} "${value}" (also ${first})`);
  };
  const address = (value: unknown, path: string): void => {
    if (typeof value !== 'string') return;
    const problem = checkAddress(value);
    if (problem !== null) problems.push(`${path}: ${problem}`);
    // Two spellings of one endpoint (localhost and 127.0.0.1, [::1] and ::1) are one address.
    else seen(addresses, value, path, 'address', endpointKey);
  };
  /** `entry` is the node's place in the file ('managers[0]'), named too when two nodes share an id. */
  const dataDir = (node: string, entry: string, dir: unknown): void => {
    if (typeof dir !== 'string' || dir === '') return;
    const absolute = resolve(baseDir, dir);
    const first = dataDirs.get(absolute);
    if (first === undefined) dataDirs.set(absolute, { node, entry });
    else {
      const other = first.node === node ? `${first.node} (${first.entry})` : first.node;
      problems.push(`${entry}.dataDir: ${node} and ${other} have the same data directory ${absolute} (each node needs its own)`);
    }
  };
  // Every problem of an entry is listed, a shared data directory beside a duplicate id too: one error says them all.
  managers.forEach((m, i) => {
    if (!isRecord(m)) return;
    seen(ids, m.id, `managers[${i}].id`, 'id');
    address(m.raftAddress, `managers[${i}].raftAddress`);
    address(m.apiAddress, `managers[${i}].apiAddress`);
    address(m.dnsAddress, `managers[${i}].dnsAddress`);
    if (typeof m.id === 'string') dataDir(`manager ${m.id}`, `managers[${i}]`, m.dataDir);
  });
  workers.forEach((w, i) => {
    if (!isRecord(w)) return;
    seen(ids, w.id, `workers[${i}].id`, 'id');
    address(w.apiAddress, `workers[${i}].apiAddress`);
    // Absent, it is data/<id> (withDefaults), which a manager's dataDir may name too.
    if (typeof w.id === 'string') dataDir(`worker ${w.id}`, `workers[${i}]`, w.dataDir ?? `data/${w.id}`);
    // The schema names only the first key a record refuses: every bad label key is listed here (the first twice,
    // which the Set of problems keeps once).
    if (isRecord(w.labels)) {
      for (const k of Object.keys(w.labels)) if (!labelKeyRe.test(k)) problems.push(`workers[${i}].labels.${k}: not a valid label key (${labelKeyRule})`);
    }
    const range = isRecord(w.portRange) ? w.portRange : null;
    if (range !== null && typeof range.min === 'number' && typeof range.max === 'number' && range.min > range.max) problems.push(`workers[${i}].portRange: min is above max`);
  });
  problems.push(...timingProblems({ raft: numbersOr(json.raft, clusterConfigDefaults.raft), tasks: numbersOr(json.tasks, clusterConfigDefaults.tasks) }));
  const api = isRecord(json.api) ? json.api : {};
  if ((api.tlsCertFile === undefined) !== (api.tlsKeyFile === undefined)) problems.push('api: tlsCertFile and tlsKeyFile go together');
  return problems;
}

/** Heartbeat intervals a workerTtlMs spans at least: room for two missed beats (a lost packet, a pause, a slow manager). */
const workerTtlHeartbeatsMin = 3;

/**
 * Rules between timing keys, over the values a node runs with (defaults filled in). A reload checks them too, over the
 * file's live keys and the running values of the keys that change only on restart.
 */
export function timingProblems(c: { raft: { heartbeatIntervalMs: number; electionTimeoutMs: number }; tasks: TasksConfig }): string[] {
  const problems: string[] = [];
  const { heartbeatIntervalMs: heartbeat, electionTimeoutMs: election } = c.raft;
  // A follower must hear at least two heartbeats per election timeout, or one lost packet starts an election.
  if (election <= 2 * heartbeat) problems.push(`raft.electionTimeoutMs: must be more than 2 × heartbeatIntervalMs (${election} ms is not more than 2 × ${heartbeat} ms)`);
  const { workerHeartbeatIntervalMs: beat, workerTtlMs: ttl, backoffBaseMs: base, backoffCapMs: cap } = c.tasks;
  if (ttl < workerTtlHeartbeatsMin * beat) {
    const room = `so that a worker may miss ${workerTtlHeartbeatsMin - 1} heartbeats before it is unreachable`;
    problems.push(`tasks.workerTtlMs: must be at least ${workerTtlHeartbeatsMin} × workerHeartbeatIntervalMs, ${room} (${ttl} ms is less than ${workerTtlHeartbeatsMin} × ${beat} ms)`);
  }
  if (base > cap) problems.push(`tasks.backoffBaseMs: must not be above backoffCapMs (${base} ms is above ${cap} ms)`);
  return problems;
}

/** The defaults with each key the file gives a number for (a wrong type is already a problem of its own). */
function numbersOr<T extends Readonly<Record<string, number>>>(section: unknown, defaults: T): { [K in keyof T]: number } {
  const out: Record<string, number> = { ...defaults };
  if (isRecord(section)) for (const key of Object.keys(defaults)) if (typeof section[key] === 'number') out[key] = section[key];
  return out as { [K in keyof T]: number };
}

const hostnamePattern = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const ipv6Pattern = /^\[[0-9A-Fa-f:.]+\]$/;

/** Checks 'host:port' (IPv6 hosts in brackets); returns the problem or null. */
export function checkAddress(address: string): string | null {
  const i = address.lastIndexOf(':');
  if (i <= 0) return `expected host:port, got "${address}"`;
  const host = address.slice(0, i);
  const port = address.slice(i + 1);
  if (!hostnamePattern.test(host) && !ipv6Pattern.test(host)) return `bad host "${host}" in "${address}" (expected host:port)`;
  // A leading zero is refused, not read past: "08001" and "8001" would be two spellings of one endpoint (endpointKey).
  if (/^0[0-9]+$/.test(port)) {
    const bare = port.replace(/^0+/, '');
    const inRange = bare !== '' && bare.length <= 5 && Number(bare) <= 65535;
    return `port "${port}" in "${address}" has a leading zero${inRange ? ` (write ${bare})` : `; a port is 1..65535`}`;
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return `port must be 1..65535, got "${port}" in "${address}"`;
  return null;
}

/** '/managers/0/raftAddress' -> 'managers[0].raftAddress' */
function displayPath(pointer: string): string {
  if (pointer === '') return '(root)';
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, part) => (/^[0-9]+$/.test(part) ? `${acc}[${part}]` : acc === '' ? part : `${acc}.${part}`), '');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
