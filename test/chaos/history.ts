// What the fault test records: every key-value operation with its invocation and completion times and its result
// (ok, failed, or unknown), every task submission, every fault; and how kv records become per-key register histories.
import type { RegisterInput, RegisterOperation, RegisterOutput } from './linearizability.js';
import { errorCode, type Outcome } from './http.js';

export type OpStatus = 'ok' | 'fail' | 'unknown';
export type KvKind = 'read' | 'put' | 'cas' | 'delete';

export interface KvOpRecord {
  readonly id: number;
  /** The client that issued it ('c1', ...; 'final' for the reads after the heal). */
  readonly client: string;
  /** The manager it was sent to. */
  readonly node: string;
  readonly key: string;
  readonly kind: KvKind;
  readonly value?: string;
  readonly ifVersion?: number;
  /** Milliseconds since the run started. */
  readonly callMs: number;
  returnMs: number | null;
  status: OpStatus;
  /**
   * What the register answered: set for ok operations and for the failures that still observe the state (409 on a
   * compare-and-set, 404 on a delete); null when the operation told nothing (unknown, or refused before applying).
   */
  output: RegisterOutput | null;
  httpStatus?: number;
  code?: string;
  error?: string;
}

export interface TaskSubmission {
  readonly id: number;
  /** The Idempotency-Key, also written by the task's command into the run file. */
  readonly marker: string;
  readonly callMs: number;
  returnMs: number | null;
  status: OpStatus;
  taskId: string | null;
  tries: number;
  lastError?: string;
}

export interface FaultRecord {
  readonly kind: string;
  detail: string;
  readonly startMs: number;
  endMs: number | null;
}

/** How one kv answer reads: its status, and what it tells about the register. */
export function classifyKv(kind: KvKind, outcome: Outcome): Pick<KvOpRecord, 'status' | 'output'> & { httpStatus?: number; code?: string; error?: string } {
  if (outcome.kind === 'refused') return { status: 'fail', output: null, error: outcome.error };
  if (outcome.kind === 'unknown') return { status: 'unknown', output: null, error: outcome.error };
  const { status, body } = outcome;
  const code = errorCode(outcome);
  const meta = code === undefined ? { httpStatus: status } : { httpStatus: status, code };
  if (status === 200) {
    const version = Number(body.version);
    if (kind === 'read') return { ...meta, status: 'ok', output: { kind: 'value', value: String(body.value), version } };
    return { ...meta, status: 'ok', output: { kind: 'written', version } };
  }
  if (status === 404 && code === 'KV_KEY_NOT_FOUND') {
    return { ...meta, status: kind === 'read' ? 'ok' : 'fail', output: kind === 'read' || kind === 'delete' ? { kind: 'absent' } : null };
  }
  if (status === 409 && code === 'KV_VERSION_MISMATCH') return { ...meta, status: 'fail', output: { kind: 'mismatch' } };
  // 4xx and 503 are refusals before anything was applied (README: "A 503 means the request was not applied").
  if ((status >= 400 && status < 500) || status === 503) return { ...meta, status: 'fail', output: null };
  // 504 TIMEOUT, 500 and anything else: the write may or may not have been applied.
  return { ...meta, status: 'unknown', output: null };
}

/** The records of each key as register operations: reads that told nothing are dropped, unknown writes kept open. */
export function toRegisterHistories(records: readonly KvOpRecord[]): Map<string, RegisterOperation[]> {
  const byKey = new Map<string, RegisterOperation[]>();
  for (const r of records) {
    const op = toOperation(r);
    if (op === null) continue;
    const list = byKey.get(r.key) ?? [];
    list.push(op);
    byKey.set(r.key, list);
  }
  return byKey;
}

function toOperation(r: KvOpRecord): RegisterOperation | null {
  if (r.kind === 'read' && (r.status !== 'ok' || r.output === null)) return null;
  if (r.status === 'fail' && r.output === null) return null;
  const output = r.status === 'unknown' ? null : r.output;
  return { id: r.id, input: inputOf(r), output, callMs: r.callMs, returnMs: output === null ? Infinity : (r.returnMs ?? Infinity) };
}

function inputOf(r: KvOpRecord): RegisterInput {
  switch (r.kind) {
    case 'read':
      return { op: 'read' };
    case 'put':
      return { op: 'put', value: r.value ?? '' };
    case 'cas':
      return { op: 'put', value: r.value ?? '', ifVersion: r.ifVersion ?? 0 };
    case 'delete':
      return r.ifVersion === undefined ? { op: 'delete' } : { op: 'delete', ifVersion: r.ifVersion };
  }
}

/** One line per record, for failure reports. */
export function describeKv(r: KvOpRecord): string {
  const args = r.kind === 'read' ? '' : r.kind === 'delete' ? (r.ifVersion === undefined ? '' : ` ifVersion=${r.ifVersion}`) : ` ${r.value}${r.ifVersion === undefined ? '' : ` ifVersion=${r.ifVersion}`}`;
  const at = `[${r.callMs.toFixed(0)}, ${r.returnMs === null ? '?' : r.returnMs.toFixed(0)}] ms`;
  const out = r.output === null ? '' : ` -> ${JSON.stringify(r.output)}`;
  const why = r.code ?? r.error ?? (r.httpStatus === undefined ? '' : `HTTP ${r.httpStatus}`);
  return `#${r.id} ${r.client}@${r.node} ${r.kind} ${r.key}${args} ${at} ${r.status}${out}${why === '' ? '' : ` (${why})`}`;
}
