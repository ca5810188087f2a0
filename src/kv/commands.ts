// The commands carried in Raft entries and their wire format (msgpackr). Every manager decodes the same bytes the
// same way, so decoding validates the shape strictly. The leader decodes every proposal before it enters the log
// (validateCommand, through the driver), so an entry that does not decode is never committed by a manager that
// checks; one already in an old log is applied as a no-op (see KvStateMachine.applyEntry).
import { Packr } from 'msgpackr';
import type { EntryPrincipal } from '../contracts/services.js';
import { commandVersion } from '../contracts/command-version.js';
import { MinkubeError } from '../lib/errors.js';
import { isTraceparent } from '../lib/trace.js';
import { decodeTaskCommand, isTaskOp, submissionsOf, wireTaskCommand, type TaskCommand } from './task-commands.js';
import { specRuleProblem } from './task-spec.js';
import { decodeAuthCommand, isAuthOp, wireAuthCommand, type AuthCommand } from './auth-commands.js';
import { decodeServiceCommand, isServiceOp, serviceSpecsOf, wireServiceCommand, type ServiceCommand } from './service-commands.js';
import { decodeQuotaCommand, isQuotaOp, wireQuotaCommand, type QuotaCommand } from './quota-store.js';

export type * from './task-commands.js';
export type { EntryPrincipal } from '../contracts/services.js';
export type * from './auth-commands.js';
export type * from './service-commands.js';

export interface PutCommand {
  readonly op: 'put';
  readonly key: string;
  readonly value: string;
  /** 0: the key must not exist; N: the key's current version must be N. */
  readonly ifVersion?: number;
}

export interface DeleteCommand {
  readonly op: 'delete';
  readonly key: string;
  readonly ifVersion?: number;
}

/** Keys, task/worker records (task-commands.ts) and auth (auth-commands.ts). Every switch over `op` ends in assertNever. */
export type Command = PutCommand | DeleteCommand | TaskCommand | AuthCommand | ServiceCommand | QuotaCommand;
export type CommandOp = Command['op'];

/** What one Raft entry carries: the command and the client session it belongs to. */
export interface CommandEnvelope {
  readonly clientId: string;
  /** Per client, starting at 1. A (clientId, seq) pair is applied at most once. */
  readonly seq: number;
  /** Every seq of this client below ackSeq has been answered or abandoned: its cached result may be forgotten. */
  readonly ackSeq?: number;
  /** The HTTP request id, for logs only. */
  readonly reqId?: string;
  /** Who asked (for the audit log only: applying never reads it). Absent for the cluster's own and insecure requests. */
  readonly pr?: EntryPrincipal;
  /**
   * The W3C traceparent of the request that proposed it, so that every manager's apply can join the trace. Optional
   * and outside `v`: a manager that predates it ignores it (decodeCommand keeps only the fields it knows), and this
   * one drops a malformed one rather than refuse the entry, so old and new managers apply every entry alike.
   */
  readonly tp?: string;
  readonly cmd: Command;
}


const principalCharsMax = 128;

/**
 * The newest envelope version this manager understands. An envelope without `v` is version 1 (written before the
 * field existed). A newer command is refused when proposed, so it never reaches the log of a cluster whose leader
 * cannot read it. Version 2: a task spec with secretEnv, which a version-1 manager's strict spec schema would skip
 * while newer managers apply it (so it stops instead, see KvStateMachine.applyEntry). Every other command is still
 * written as version 1, so older managers go on reading it during an upgrade.
 */
export { commandVersion, commandVersionUnsaid } from '../contracts/command-version.js';

/** The command version a command is written as (its envelope's `v`). */
export function versionOf(cmd: Command): number {
  // Version 12: a worker's engine unreachable or answering again (a version-11 manager knows no such op). Proposed
  // apart from the heartbeat, so a leader that predates it drops only this, never the worker's liveness.
  if (cmd.op === 'worker.engine') return 12;
  // Version 11: a worker's registration naming its engine (a version-10 schema refuses the field, and a version-10
  // manager would not tell the instance it replaces which engine holds the id).
  if (cmd.op === 'worker.register' && cmd.engine !== undefined) return 11;
  // Version 10: a service change whose quota is judged where its replicas will run (a version-9 schema refuses the
  // field, and a version-9 manager would let a move to a full namespace through).
  if ((cmd.op === 'service.update' || cmd.op === 'service.rollback') && cmd.quotaInNamespace === true) return 10;
  // Version 9: a worker's removal that also refuses its certificates issued until then (a version-8 schema refuses
  // the field, and a version-8 manager would forget the record without refusing them).
  if (cmd.op === 'worker.remove' && cmd.revoke === true) return 9;
  // Version 8: a paced drain, and a service reconcile moving replicas off a drained worker (a version-7 schema refuses
  // both fields, and a version-7 manager would mark a drained worker's replicas all at once).
  if (cmd.op === 'worker.availability' && cmd.paced === true) return 8;
  if (cmd.op === 'service.reconcile' && cmd.drain !== undefined && cmd.drain.length > 0) return 8;
  // Version 7: a worker's availability (drain, pause, activate); a version-6 manager knows no such op.
  if (cmd.op === 'worker.availability') return 7;
  // Version 6: a retired worker's record forgotten (a version-5 manager knows no such op).
  if (cmd.op === 'worker.remove') return 6;
  // Version 5: a worker's registration or heartbeat naming its instance (a version-4 schema refuses the field).
  if ((cmd.op === 'worker.register' || cmd.op === 'worker.heartbeat') && cmd.instance !== undefined) return 5;
  // Version 4: a task or service spec with stopSignal or stopTimeoutS (a version-3 schema refuses them).
  const stopFields = (spec: { readonly stopSignal?: unknown; readonly stopTimeoutS?: unknown }): boolean => spec.stopSignal !== undefined || spec.stopTimeoutS !== undefined;
  if (submissionsOf(cmd).some((t) => stopFields(t.spec)) || serviceSpecsOf(cmd).some(stopFields)) return 4;
  // Version 3: services, and specs or reports with ports and health checks (a version-2 schema refuses them).
  if (isServiceOp(cmd.op) || isQuotaOp(cmd.op)) return 3;
  if (submissionsOf(cmd).some((t) => t.spec.ports !== undefined || t.spec.healthCheck !== undefined)) return 3;
  // And placement: constraints, priority, namespace on specs, labels and capacity on workers.
  if (submissionsOf(cmd).some((t) => t.spec.constraints !== undefined || t.spec.priority !== undefined || t.spec.namespace !== undefined)) return 3;
  if (cmd.op === 'worker.register' && (cmd.labels !== undefined || cmd.capacity !== undefined)) return 3;
  if ((cmd.op === 'task.report' || cmd.op === 'worker.heartbeat') && cmd.reports.some((r) => r.health !== undefined || r.ports !== undefined)) return 3;
  return submissionsOf(cmd).some((t) => t.spec.secretEnv !== undefined) ? 2 : 1;
}

// useRecords: false keeps every message self-describing (no shared structures that a restarted node would lack).
const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeCommand(envelope: CommandEnvelope): Uint8Array {
  // Only known fields go on the wire, so an envelope built with extra properties still encodes identically.
  const wire: Record<string, unknown> = { clientId: envelope.clientId, seq: envelope.seq, cmd: wireCommand(envelope.cmd) };
  if (envelope.ackSeq !== undefined) wire.ackSeq = envelope.ackSeq;
  if (envelope.reqId !== undefined) wire.reqId = envelope.reqId;
  if (envelope.pr !== undefined) wire.pr = 'a' in envelope.pr ? { a: envelope.pr.a, r: envelope.pr.r } : { n: envelope.pr.n, r: envelope.pr.r };
  if (envelope.tp !== undefined) wire.tp = envelope.tp;
  wire.v = versionOf(envelope.cmd);
  // pack() answers a view of a buffer it reuses for every command after (2.4 MB once a large batch was packed): an
  // exact copy keeps only its own bytes alive while the entry waits in the log.
  return Uint8Array.prototype.slice.call(packr.pack(wire));
}

function wireCommand(cmd: Command): Record<string, unknown> {
  switch (cmd.op) {
    case 'put':
      return cmd.ifVersion === undefined ? { op: cmd.op, key: cmd.key, value: cmd.value } : { op: cmd.op, key: cmd.key, value: cmd.value, ifVersion: cmd.ifVersion };
    case 'delete':
      return cmd.ifVersion === undefined ? { op: cmd.op, key: cmd.key } : { op: cmd.op, key: cmd.key, ifVersion: cmd.ifVersion };
    case 'task.submit':
    case 'task.submitBatch':
    case 'task.place':
    case 'task.report':
    case 'task.stop':
    case 'task.remove':
    case 'worker.register':
    case 'worker.heartbeat':
    case 'worker.engine':
    case 'worker.state':
    case 'worker.remove':
    case 'worker.availability':
      return wireTaskCommand(cmd);
    case 'auth.bootstrap':
    case 'auth.tokenCreate':
    case 'auth.tokenRevoke':
    case 'auth.joinTokenCreate':
    case 'auth.joinTokenRevoke':
      return wireAuthCommand(cmd);
    case 'service.create':
    case 'service.update':
    case 'service.rollback':
    case 'service.delete':
    case 'service.reconcile':
      return wireServiceCommand(cmd);
    case 'quota.set':
      return wireQuotaCommand(cmd);
    default:
      return assertNeverCommand(cmd);
  }
}

export type DecodedCommand =
  | { readonly ok: true; readonly envelope: CommandEnvelope }
  /** `newer`: a well-formed envelope of a version this manager does not understand (not garbage: upgrade). */
  | { readonly ok: false; readonly problem: string; readonly newer: boolean };

/**
 * Envelopes validateCommand decoded, by the bytes they came from: when the leader applies its own proposal (the same
 * bytes object, through the log in memory) it takes the envelope instead of decoding the bytes again, one decode of
 * the two per request (~7% of a busy leader's allocations in a sample at 64 clients). Taken once, held weakly: an entry read
 * back from disk or received from a peer is other bytes and is decoded as before.
 */
const validatedEnvelopes = new WeakMap<Uint8Array, CommandEnvelope>();

/** Decodes one entry's data without throwing. */
export function tryDecodeCommand(data: Uint8Array): DecodedCommand {
  const validated = validatedEnvelopes.get(data);
  if (validated !== undefined) {
    validatedEnvelopes.delete(data);
    return { ok: true, envelope: validated };
  }
  try {
    return { ok: true, envelope: decodeCommand(data) };
  } catch (err) {
    const e = err instanceof MinkubeError ? err : malformed(String(err));
    return { ok: false, problem: e.message, newer: (e.details as { newerVersion?: number } | undefined)?.newerVersion !== undefined };
  }
}

/**
 * What the leader checks before a proposal enters the log (null: fine): it decodes, a new task's spec follows the
 * spec rules, and (given `members`, the configuration in force there) a worker's registration does not take a
 * manager's id. The rules are checked here, not at apply: entries applied before a rule existed must apply the same
 * way on every manager, old or new.
 */
export function validateCommand(data: Uint8Array, members?: { readonly voters: readonly string[]; readonly learners: readonly string[] }): string | null {
  const decoded = tryDecodeCommand(data);
  if (!decoded.ok) return decoded.problem;
  const { cmd } = decoded.envelope;
  const problem = specProblem(cmd) ?? (members === undefined ? null : managersIdProblem(cmd, members));
  if (problem === null) validatedEnvelopes.set(data, decoded.envelope);
  return problem;
}

/** A worker's registration under the id of a manager of `members` (voter or learner): one name, one node. */
function managersIdProblem(cmd: Command, members: { readonly voters: readonly string[]; readonly learners: readonly string[] }): string | null {
  if (cmd.op !== 'worker.register') return null;
  const id = cmd.workerId;
  return members.voters.includes(id) || members.learners.includes(id) ? `worker.register: ${id} is a manager of this cluster; a worker needs an id of its own` : null;
}

/**
 * What a leader whose members understand up to `lowest` proposes for `data`: the same bytes when they are of that
 * version or older; a worker's registration without its engine (version 11), re-encoded under the same client session
 * (what a manager that predates engines proposes, see README "Upgrading"); else `newer`, the version it needs. Bytes
 * that do not decode are left to validateCommand.
 */
export function fitCommand(data: Uint8Array, lowest: number): { readonly data: Uint8Array } | { readonly newer: number } {
  // Every member understands all this build writes: nothing to look at (the common case, on every proposal).
  if (lowest >= commandVersion) return { data };
  const decoded = tryDecodeCommand(data);
  if (!decoded.ok) return { data };
  const envelope = decoded.envelope;
  const v = versionOf(envelope.cmd);
  if (v <= lowest) {
    // tryDecodeCommand took the cached envelope: put it back for validateCommand.
    validatedEnvelopes.set(data, envelope);
    return { data };
  }
  const cmd = envelope.cmd;
  if (cmd.op === 'worker.register' && cmd.engine !== undefined) {
    const { engine: _engine, ...withoutEngine } = cmd;
    const fitted = encodeCommand({ ...envelope, cmd: withoutEngine });
    const fv = versionOf(withoutEngine);
    return fv <= lowest ? { data: fitted } : { newer: fv };
  }
  return { newer: v };
}

/** The worker a command's bytes register (worker.register), or null for any other command or bytes that do not decode. */
export function workerRegisteredBy(data: Uint8Array): string | null {
  try {
    const { cmd } = decodeCommand(data);
    return cmd.op === 'worker.register' ? cmd.workerId : null;
  } catch {
    return null;
  }
}

function specProblem(cmd: Command): string | null {
  for (const [i, t] of submissionsOf(cmd).entries()) {
    const problem = specRuleProblem(t.spec, cmd.op === 'task.submit' ? 'spec.' : `tasks[${i}].`);
    if (problem !== null) return problem;
  }
  for (const spec of serviceSpecsOf(cmd)) {
    const problem = specRuleProblem(spec, 'task.');
    if (problem !== null) return problem;
  }
  return null;
}

/** Decodes and validates one entry's data; throws MinkubeError('INVALID_COMMAND') naming what is wrong. */
export function decodeCommand(data: Uint8Array): CommandEnvelope {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (err) {
    throw malformed(`not msgpack (${(err as Error).message})`);
  }
  if (!isRecord(raw)) throw malformed('not a map');
  const { clientId, seq, ackSeq, reqId, pr, cmd, v, tp } = raw;
  if (v !== undefined && !isSeq(v)) throw malformed('v must be a positive integer');
  if (v !== undefined && v > commandVersion) {
    const message = `command version ${v} is newer than this manager understands (${commandVersion})`;
    throw new MinkubeError('INVALID_COMMAND', message, { details: { newerVersion: v } });
  }
  if (typeof clientId !== 'string' || clientId.length === 0) throw malformed('clientId must be a non-empty string');
  if (!isSeq(seq)) throw malformed('seq must be a positive integer');
  if (ackSeq !== undefined && !isSeq(ackSeq)) throw malformed('ackSeq must be a positive integer');
  if (reqId !== undefined && typeof reqId !== 'string') throw malformed('reqId must be a string');
  const envelope: { -readonly [K in keyof CommandEnvelope]: CommandEnvelope[K] } = { clientId, seq, cmd: decodeBody(cmd) };
  if (ackSeq !== undefined) envelope.ackSeq = ackSeq;
  if (reqId !== undefined) envelope.reqId = reqId;
  if (pr !== undefined) envelope.pr = decodePrincipal(pr);
  if (tp !== undefined && isTraceparent(tp)) envelope.tp = tp;
  return envelope;
}

function decodePrincipal(pr: unknown): EntryPrincipal {
  const problem = principalProblem(pr);
  if (problem !== null) throw malformed(problem);
  return copyPrincipal(pr as EntryPrincipal);
}

/**
 * An EntryPrincipal met outside an envelope (a membership change's context, a forwarded request's header), checked
 * as strictly as one inside, or null.
 */
export function entryPrincipalFrom(raw: unknown): EntryPrincipal | null {
  return principalProblem(raw) === null ? copyPrincipal(raw as EntryPrincipal) : null;
}

function principalProblem(pr: unknown): string | null {
  if (!isRecord(pr)) return 'pr must be a map';
  const keys = Object.keys(pr).sort().join(',');
  if (keys !== 'a,r' && keys !== 'n,r') return 'pr must hold exactly a (accessor) or n (node id), and r (role)';
  if (!isPrincipalText(pr.a ?? pr.n) || !isPrincipalText(pr.r)) return `pr fields must be strings of 1 to ${principalCharsMax} characters`;
  return null;
}

function copyPrincipal(pr: EntryPrincipal): EntryPrincipal {
  return 'a' in pr ? { a: pr.a, r: pr.r } : { n: pr.n, r: pr.r };
}

function isPrincipalText(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= principalCharsMax;
}

function decodeBody(cmd: unknown): Command {
  if (!isRecord(cmd)) throw malformed('cmd must be a map');
  if (isTaskOp(cmd.op)) {
    const decoded = decodeTaskCommand(cmd);
    if (!decoded.ok) throw malformed(decoded.problem);
    return decoded.cmd;
  }
  if (isAuthOp(cmd.op)) {
    const decoded = decodeAuthCommand(cmd);
    if (!decoded.ok) throw malformed(decoded.problem);
    return decoded.cmd;
  }
  if (isServiceOp(cmd.op)) {
    const decoded = decodeServiceCommand(cmd);
    if (!decoded.ok) throw malformed(decoded.problem);
    return decoded.cmd;
  }
  if (isQuotaOp(cmd.op)) {
    const decoded = decodeQuotaCommand(cmd);
    if (!decoded.ok) throw malformed(decoded.problem);
    return decoded.cmd;
  }
  const op = cmd.op as 'put' | 'delete';
  if (typeof cmd.key !== 'string') throw malformed('cmd.key must be a string');
  if (cmd.ifVersion !== undefined && !isVersion(cmd.ifVersion)) throw malformed('cmd.ifVersion must be an integer >= 0');
  const ifVersion = cmd.ifVersion as number | undefined;
  switch (op) {
    case 'put':
      if (typeof cmd.value !== 'string') throw malformed('cmd.value must be a string');
      return ifVersion === undefined ? { op, key: cmd.key, value: cmd.value } : { op, key: cmd.key, value: cmd.value, ifVersion };
    case 'delete':
      return ifVersion === undefined ? { op, key: cmd.key } : { op, key: cmd.key, ifVersion };
    default:
      throw malformed(`unknown op ${JSON.stringify(op)}`);
  }
}

export function assertNeverCommand(cmd: never): never {
  throw new MinkubeError('INTERNAL', `unhandled command ${JSON.stringify(cmd)}`);
}

function malformed(problem: string): MinkubeError {
  return new MinkubeError('INVALID_COMMAND', `malformed command: ${problem}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
