// Quotas per namespace, replicated in the state machine: the quota.set command, its wire form, the store, the
// check a submission passes at apply (in log order, so two racing submissions cannot both slip under a limit), and
// the snapshot section. A namespace without a quota is unlimited; a limit left out of a quota is unlimited too.
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TaskSpec } from '../contracts/task-model.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { namespacePattern } from './placement-schemas.js';
import { namespaceOf, type NamespaceUsage } from './quota-usage.js';

export interface QuotaLimits {
  readonly tasksMax?: number;
  readonly cpus?: number;
  readonly memoryMb?: number;
}

export interface QuotaRecord extends QuotaLimits {
  readonly namespace: string;
}

/** Sets (replaces) a namespace's quota; one with no limit at all removes it. */
export interface QuotaSetCommand extends QuotaRecord {
  readonly op: 'quota.set';
}

export type QuotaCommand = QuotaSetCommand;
export type QuotaOp = QuotaCommand['op'];

export function isQuotaOp(op: unknown): op is QuotaOp {
  return op === 'quota.set';
}

export const QuotaLimitsSchema = Type.Object(
  {
    tasksMax: Type.Optional(Type.Integer({ minimum: 0, maximum: limits.tasksRetainedMax })),
    cpus: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000 })),
    memoryMb: Type.Optional(Type.Number({ minimum: 0, maximum: 1024 ** 3 })),
  },
  { additionalProperties: false },
);

const QuotaSetSchema = Type.Object(
  { op: Type.Literal('quota.set'), namespace: Type.String({ pattern: namespacePattern }), ...QuotaLimitsSchema.properties },
  { additionalProperties: false },
);
const check = TypeCompiler.Compile(QuotaSetSchema);

export function wireQuotaCommand(cmd: QuotaCommand): Record<string, unknown> {
  return { op: cmd.op, namespace: cmd.namespace, ...limitsOf(cmd) };
}

export function decodeQuotaCommand(raw: Record<string, unknown>): { ok: true; cmd: QuotaCommand } | { ok: false; problem: string } {
  if (check.Check(raw)) return { ok: true, cmd: raw as Static<typeof QuotaSetSchema> };
  const first = check.Errors(raw).First();
  return { ok: false, problem: `quota.set: ${first === undefined ? 'invalid' : `${first.path || '/'} ${first.message}`}` };
}

function limitsOf(q: QuotaLimits): QuotaLimits {
  return {
    ...(q.tasksMax === undefined ? {} : { tasksMax: q.tasksMax }),
    ...(q.cpus === undefined ? {} : { cpus: q.cpus }),
    ...(q.memoryMb === undefined ? {} : { memoryMb: q.memoryMb }),
  };
}

export type QuotaApplyResult = { readonly ok: true; readonly id: string } | { readonly ok: false; readonly code: 'QUEUE_FULL'; readonly message: string };

export class QuotaStore {
  private quotas = new Map<string, QuotaRecord>();

  get(namespace: string): QuotaRecord | undefined {
    return this.quotas.get(namespace);
  }

  /** Every quota in namespace order. */
  list(): QuotaRecord[] {
    return [...this.quotas.values()].sort((a, b) => (a.namespace < b.namespace ? -1 : 1));
  }

  apply(cmd: QuotaCommand): QuotaApplyResult {
    const l = limitsOf(cmd);
    if (Object.keys(l).length === 0) {
      this.quotas.delete(cmd.namespace);
      return { ok: true, id: cmd.namespace };
    }
    if (!this.quotas.has(cmd.namespace) && this.quotas.size >= limits.quotasMax) {
      return { ok: false, code: 'QUEUE_FULL', message: `${this.quotas.size} namespaces have a quota (the limit)` };
    }
    this.quotas.set(cmd.namespace, { namespace: cmd.namespace, ...l });
    return { ok: true, id: cmd.namespace };
  }

  /**
   * Whether new tasks fit their namespaces' quotas beside what the namespaces already hold: the refusal names the
   * namespace and the limit ("namespace team-a: tasksMax 5 reached (5 live + 1 new)"), or null.
   */
  refusal(specs: readonly TaskSpec[], usage: (namespace: string) => NamespaceUsage): string | null {
    if (this.quotas.size === 0 || specs.length === 0) return null;
    const adding = new Map<string, { tasks: number; cpus: number; memoryMb: number }>();
    for (const s of specs) {
      const ns = namespaceOf(s);
      if (!this.quotas.has(ns)) continue;
      const a = adding.get(ns) ?? { tasks: 0, cpus: 0, memoryMb: 0 };
      a.tasks++;
      a.cpus += s.resources?.cpus ?? 0;
      a.memoryMb += s.resources?.memoryMb ?? 0;
      adding.set(ns, a);
    }
    for (const [ns, a] of adding) {
      const q = this.quotas.get(ns)!;
      const u = usage(ns);
      if (q.tasksMax !== undefined && u.tasks + a.tasks > q.tasksMax) return `namespace ${ns}: tasksMax ${q.tasksMax} would be exceeded (${u.tasks} live + ${a.tasks} new)`;
      if (q.cpus !== undefined && a.cpus > 0 && u.cpus + a.cpus > q.cpus + 1e-9) return `namespace ${ns}: cpus ${q.cpus} would be exceeded (${round(u.cpus)} in use + ${round(a.cpus)} new)`;
      if (q.memoryMb !== undefined && a.memoryMb > 0 && u.memoryMb + a.memoryMb > q.memoryMb + 1e-9) {
        return `namespace ${ns}: memoryMb ${q.memoryMb} would be exceeded (${round(u.memoryMb)} in use + ${round(a.memoryMb)} new)`;
      }
    }
    return null;
  }

  /**
   * How many more tasks of `spec` its namespace takes now beside what it holds (Infinity without a quota, or with
   * none of its limits on what the spec asks for): what the leader's service reconciler may start.
   */
  room(spec: TaskSpec, usage: (namespace: string) => NamespaceUsage): number {
    const q = this.quotas.get(namespaceOf(spec));
    if (q === undefined) return Number.POSITIVE_INFINITY;
    const u = usage(q.namespace);
    let room = q.tasksMax === undefined ? Number.POSITIVE_INFINITY : q.tasksMax - u.tasks;
    const cpus = spec.resources?.cpus ?? 0;
    if (q.cpus !== undefined && cpus > 0) room = Math.min(room, Math.floor((q.cpus - u.cpus + 1e-9) / cpus));
    const memoryMb = spec.resources?.memoryMb ?? 0;
    if (q.memoryMb !== undefined && memoryMb > 0) room = Math.min(room, Math.floor((q.memoryMb - u.memoryMb + 1e-9) / memoryMb));
    return Math.max(0, room);
  }

  // ---- snapshot section: [namespace, tasksMax | null, cpus | null, memoryMb | null] rows in namespace order ----

  snapshotContent(): unknown[] {
    return this.list().map((q) => [q.namespace, q.tasksMax ?? null, q.cpus ?? null, q.memoryMb ?? null]);
  }

  load(records: readonly QuotaRecord[]): void {
    this.quotas = new Map(records.map((q) => [q.namespace, q]));
  }
}

/** A snapshot's quotas section (absent in snapshots written before quotas: none); throws STORAGE_CORRUPT. */
export function decodeQuotaSnapshot(raw: unknown): QuotaRecord[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new MinkubeError('STORAGE_CORRUPT', 'kv snapshot: bad quotas section');
  const next: QuotaRecord[] = [];
  for (const [i, row] of (raw as unknown[]).entries()) {
    const ok = Array.isArray(row) && row.length === 4 && typeof row[0] === 'string' && row.slice(1).every((v) => v === null || typeof v === 'number');
    if (!ok) throw new MinkubeError('STORAGE_CORRUPT', `kv snapshot: bad quota ${i}`);
    const [namespace, tasksMax, cpus, memoryMb] = row as [string, number | null, number | null, number | null];
    next.push({ namespace, ...(tasksMax === null ? {} : { tasksMax }), ...(cpus === null ? {} : { cpus }), ...(memoryMb === null ? {} : { memoryMb }) });
  }
  return next;
}

function round(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}
