// The audit trail: one JSON line per committed change (written by every manager as it applies the entry, so all of
// them hold the same record), per leadership transfer or reload and per refused request (written by the manager that
// served or refused it), in
// <dataDir>/audit.log, rotated by size. Writes are asynchronous but in order, through one bounded queue: a disk that
// cannot keep up costs dropped lines (counted and logged), never the apply loop's time or unbounded memory. Lines wait
// up to flushDelayMs to go out together: one write per apply was a thread-pool round trip per request on every
// manager (bench/kv-go.ts); a query or close writes what waits first. Refusals of requests without a valid credential
// past their address's anonymous bucket are counted per address (audit-summaries.ts), not written one by one.
import { open, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type {
  AuditCommittedLine, AuditLine, AuditPrincipal, AuditQuery, AuditRefusalSummaryLine, AuditRefusedLine, AuditServedLine, AuditService, Page,
} from '../contracts/services.js';
import { assertNeverCommand, type Command, type EntryPrincipal } from '../kv/commands.js';
import type { AppliedCommand } from '../kv/state-machine.js';
import { isoAt, type Clock, type Timer } from '../lib/clock.js';
import { limits } from '../lib/limits.js';
import { decodeConfEntry, type Entry } from '../raft/index.js';
import { joinTokenAccessor } from '../security/tokens.js';
import { linesBackward, linesForward } from './audit-files.js';
import { RefusalSummaries } from './audit-summaries.js';
import { changeRequester } from './members.js';

export const auditFileName = 'audit.log';
/** Lines handed to one write() call: big enough to keep up, small enough to rotate close to the size limit. */
const WRITE_LINES_MAX = 1000;
/** How long a queued line waits for others before it is written (a full write's worth goes at once). */
const FLUSH_DELAY_MS = 20;

export interface AuditLogOptions {
  /** The manager's data directory; the log is <dir>/audit.log, older ones audit.log.1 (newest) .. .N. */
  dir: string;
  clock: Clock;
  logger: Logger;
  bytesMax?: number;
  filesKept?: number;
  queueLinesMax?: number;
  flushDelayMs?: number;
  /** How anonymous refusals past their bucket are counted (default limits.auditSummary*). */
  summaryIntervalMs?: number;
  summaryClientsMax?: number;
  summaryRoutesMax?: number;
}

type Unnumbered<L> = Omit<L, 'seq'>;

export class AuditLog implements AuditService {
  private readonly queue: string[] = [];
  private draining: Promise<void> | null = null;
  /** The pending delayed write, while lines wait for it. */
  private flushTimer: Timer | null = null;
  /** Rotation and a query's opening of the files take turns, so a query never sees a file twice or not at all. */
  private filesTurn: Promise<unknown> = Promise.resolve();
  private droppedLinesValue = 0;
  private droppedUnreported = 0;
  private closed = false;
  private readonly summaries: RefusalSummaries;

  private constructor(
    private readonly o: Required<AuditLogOptions>,
    private fh: FileHandle,
    private size: number,
    private seq: number,
    /** Entries up to here are in the log already: a restart replays them, and they are not written twice. */
    private lastIndex: number,
  ) {
    this.summaries = new RefusalSummaries({
      clock: o.clock, intervalMs: o.summaryIntervalMs, clientsMax: o.summaryClientsMax, routesMax: o.summaryRoutesMax, write: (line) => this.enqueue(line),
    });
  }

  /** Opens (or creates) the log and finds where it stopped: its last line number and the last entry it recorded. */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const o: Required<AuditLogOptions> = {
      bytesMax: limits.auditLogBytesMax, filesKept: limits.auditLogFilesKept, queueLinesMax: limits.auditQueueLinesMax, flushDelayMs: FLUSH_DELAY_MS,
      summaryIntervalMs: limits.auditSummaryIntervalMs, summaryClientsMax: limits.auditSummaryClientsMax, summaryRoutesMax: limits.auditSummaryRoutesMax,
      ...options,
    };
    const { seq, index } = await lastRecorded(o.dir, o.filesKept);
    const fh = await open(join(o.dir, auditFileName), 'a', 0o600);
    const size = (await fh.stat()).size;
    return new AuditLog(o, fh, size, seq, index);
  }

  get droppedLines(): number {
    return this.droppedLinesValue;
  }

  /** A command entry this manager applied (wire it to ManagerServiceImpl's onApplied). */
  committed(index: number, applied: AppliedCommand): void {
    // A retry of a command applied before changed nothing; an entry that did not decode was a no-op.
    if (!applied.fresh || applied.envelope === undefined || index <= this.lastIndex) return;
    this.lastIndex = index;
    this.enqueue(committedLine(index, applied, this.o.clock.nowMs()));
  }

  /** Any entry the driver applied (wire it to RaftNodeDriver's onApplied): membership changes are recorded here. */
  entryApplied(entry: Entry): void {
    if (entry.type !== 'config' || entry.index <= this.lastIndex) return;
    this.lastIndex = entry.index;
    this.enqueue(configLine(entry, this.o.clock.nowMs()));
  }

  served(line: Omit<AuditServedLine, 'seq' | 'time'>): void {
    const { principal, route, target, outcome, requestId } = line;
    this.enqueue({ time: new Date(this.o.clock.nowMs()).toISOString(), principal, route, target, outcome, requestId });
  }

  refused(line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {
    const { principal, route, outcome, requestId } = line;
    this.enqueue({ time: new Date(this.o.clock.nowMs()).toISOString(), principal, route, outcome, requestId });
  }

  rateLimited(client: string, line: Omit<AuditRefusedLine, 'seq' | 'time'>): void {
    if (this.summaries.refused(line.principal, client, line.route)) this.refused(line);
  }

  async query(q: AuditQuery): Promise<Page<AuditLine>> {
    await this.flushed();
    const files = await this.openFiles();
    try {
      return q.sinceMs === undefined && q.afterSeq === undefined ? await newest(files, q) : await forwardFrom(files, q);
    } finally {
      await Promise.all(files.map((f) => f.fh.close()));
    }
  }

  /** Writes what waits now, and resolves once every line queued so far is written (or dropped). */
  async flushed(): Promise<void> {
    this.startDrain();
    while (this.draining !== null) await this.draining;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.summaries.close();
    await this.flushed();
    this.closed = true;
    await this.fh.close();
  }

  private enqueue(line: Unnumbered<AuditCommittedLine> | Unnumbered<AuditServedLine> | Unnumbered<AuditRefusedLine> | Unnumbered<AuditRefusalSummaryLine>): void {
    if (this.closed) return;
    if (this.queue.length >= this.o.queueLinesMax) {
      this.droppedLinesValue++;
      this.droppedUnreported++;
      return;
    }
    // seq first, so a line names its place before anything else (the same text as stringifying { seq, ...line },
    // without the copy: every manager writes a line per applied command).
    this.queue.push(`{"seq":${++this.seq},${JSON.stringify(line).slice(1)}\n`);
    if (this.draining !== null) return;
    if (this.queue.length >= WRITE_LINES_MAX || this.o.flushDelayMs === 0) this.startDrain();
    else this.flushTimer ??= this.o.clock.setTimeout(() => this.startDrain(), this.o.flushDelayMs);
  }

  private startDrain(): void {
    this.flushTimer?.cancel();
    this.flushTimer = null;
    if (this.queue.length > 0) this.draining ??= this.drain();
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const n = this.linesThatFit();
      const text = this.queue.slice(0, n).join('');
      this.queue.splice(0, n);
      try {
        const bytes = Buffer.byteLength(text);
        if (this.size > 0 && this.size + bytes > this.o.bytesMax) await this.rotate();
        await this.fh.write(text);
        this.size += bytes;
      } catch (err) {
        this.droppedLinesValue += n;
        this.o.logger.error({ err, lines: n }, 'audit: writing audit.log failed; these lines are lost');
      }
      this.reportDrops();
    }
    this.draining = null;
  }

  /** At most one warning per write, however many lines the full queue turned away meanwhile. */
  private reportDrops(): void {
    if (this.droppedUnreported === 0) return;
    this.o.logger.warn({ dropped: this.droppedUnreported, droppedTotal: this.droppedLinesValue }, 'audit: lines dropped, the disk did not keep up');
    this.droppedUnreported = 0;
  }

  /** How many queued lines the next write takes: as many as fit in the current file, at least one. */
  private linesThatFit(): number {
    const room = this.size === 0 ? this.o.bytesMax : Math.max(this.o.bytesMax - this.size, 0);
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < WRITE_LINES_MAX) {
      const b = Buffer.byteLength(this.queue[n]!);
      if (n > 0 && bytes + b > room) break;
      bytes += b;
      n++;
    }
    return n;
  }

  /** audit.log.(N-1) -> .N (the old .N is gone), ..., audit.log -> .1, and a new audit.log. */
  private rotate(): Promise<void> {
    return this.takeFilesTurn(async () => {
      await this.fh.close();
      const base = join(this.o.dir, auditFileName);
      for (let i = this.o.filesKept - 1; i >= 1; i--) await renameIfThere(`${base}.${i}`, `${base}.${i + 1}`);
      await rename(base, `${base}.1`);
      this.fh = await open(base, 'a', 0o600);
      this.size = 0;
    });
  }

  /** Handles on every file, oldest first, each with the size it had: a query reads what was there when it began. */
  private openFiles(): Promise<OpenFile[]> {
    return this.takeFilesTurn(async () => {
      const out: OpenFile[] = [];
      for (const path of filesOldestFirst(this.o.dir, this.o.filesKept)) {
        const fh = await open(path, 'r').catch(ignoreMissing);
        if (fh !== null) out.push({ fh, size: (await fh.stat()).size });
      }
      return out;
    });
  }

  private takeFilesTurn<T>(fn: () => Promise<T>): Promise<T> {
    const turn = this.filesTurn.then(fn, fn);
    this.filesTurn = turn.catch(() => undefined);
    return turn;
  }
}

interface OpenFile {
  readonly fh: FileHandle;
  readonly size: number;
}

function filesOldestFirst(dir: string, filesKept: number): string[] {
  const base = join(dir, auditFileName);
  const older = Array.from({ length: filesKept }, (_, i) => `${base}.${filesKept - i}`);
  return [...older, base];
}

async function renameIfThere(from: string, to: string): Promise<void> {
  await rename(from, to).catch(ignoreMissing);
}

function ignoreMissing(err: unknown): null {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
  throw err;
}

// ---- what a line says ----

export function committedLine(index: number, applied: AppliedCommand, nowMs: number): Unnumbered<AuditCommittedLine> {
  const envelope = applied.envelope!;
  const { cmd } = envelope;
  return {
    time: isoAt('atMs' in cmd ? cmd.atMs : nowMs),
    index,
    principal: auditPrincipal(envelope.pr),
    op: cmd.op,
    target: targetOf(cmd),
    outcome: applied.result.ok ? 'ok' : applied.result.code,
    requestId: envelope.reqId ?? null,
  };
}

/** Who asked and under which request travel in the change's context (absent: a promotion, a forced configuration). */
function configLine(entry: Entry, nowMs: number): Unnumbered<AuditCommittedLine> {
  const { change, voters } = decodeConfEntry(entry.data);
  const op = change === null ? 'config.force' : `config.${change.type}`;
  const target = change === null ? targetList(voters) : change.nodeId;
  const by = changeRequester(change?.context);
  return { time: new Date(nowMs).toISOString(), index: entry.index, principal: auditPrincipal(by.pr), op, target, outcome: 'ok', requestId: by.reqId ?? null };
}

function auditPrincipal(p: EntryPrincipal | undefined): AuditPrincipal | null {
  if (p === undefined) return null;
  return 'a' in p ? { token: p.a, role: p.r } : { node: p.n, role: p.r };
}

/** What a command was about: never a value, a secret or a hash (a join token by its accessor, a hash of its hash). */
function targetOf(cmd: Command): string | null {
  switch (cmd.op) {
    case 'put':
    case 'delete':
      return cmd.key;
    case 'task.submit':
    case 'task.stop':
      return cmd.taskId;
    case 'task.submitBatch':
      return targetList(cmd.tasks.map((t) => t.taskId));
    case 'task.place':
      return targetList(cmd.placements.map((p) => p.taskId));
    case 'task.report':
      return targetList(cmd.reports.map((r) => r.taskId));
    case 'task.remove':
      return targetList(cmd.taskIds);
    case 'worker.register':
    case 'worker.heartbeat':
    case 'worker.engine':
    case 'worker.state':
    case 'worker.remove':
    case 'worker.availability':
      return cmd.workerId;
    case 'auth.bootstrap':
    case 'auth.tokenCreate':
    case 'auth.tokenRevoke':
      return cmd.accessor;
    case 'auth.joinTokenCreate':
    case 'auth.joinTokenRevoke':
      return joinTokenAccessor(cmd.secretHash);
    case 'service.create':
    case 'service.update':
    case 'service.rollback':
    case 'service.delete':
    case 'service.reconcile':
      return cmd.name;
    case 'quota.set':
      return cmd.namespace;
    default:
      return assertNeverCommand(cmd);
  }
}

/** 'a,b,c', or 'a,...,p +984 more' for a long list: a line stays small however big the batch. */
export function targetList(list: readonly string[]): string | null {
  if (list.length === 0) return null;
  const shown = list.slice(0, limits.auditTargetIdsMax).join(',');
  return list.length > limits.auditTargetIdsMax ? `${shown} +${list.length - limits.auditTargetIdsMax} more` : shown;
}

// ---- reading ----

function parseLine(text: string): AuditLine | null {
  try {
    const line = JSON.parse(text) as AuditLine;
    return typeof line?.seq === 'number' && typeof line.time === 'string' ? line : null;
  } catch {
    return null; // a torn or foreign line is skipped, not fatal to the query
  }
}

function matches(line: AuditLine, q: AuditQuery): boolean {
  if (q.afterSeq !== undefined && line.seq <= q.afterSeq) return false;
  if (q.sinceMs !== undefined && Date.parse(line.time) < q.sinceMs) return false;
  if (q.excludeOps !== undefined && 'op' in line && q.excludeOps.includes(line.op)) return false;
  if (q.principal === undefined) return true;
  const p = line.principal;
  return p !== null && ('token' in p ? p.token : p.node) === q.principal;
}

/** Without a starting point: the newest `limit` matching lines, read from the end. */
async function newest(files: readonly OpenFile[], q: AuditQuery): Promise<Page<AuditLine>> {
  const items: AuditLine[] = [];
  for (let i = files.length - 1; i >= 0 && items.length < q.limit; i--) {
    for await (const text of linesBackward(files[i]!.fh, files[i]!.size)) {
      // Cheap before parsing: a line naming the principal contains it verbatim.
      if (q.principal !== undefined && !text.includes(q.principal)) continue;
      const line = parseLine(text);
      if (line !== null && matches(line, q)) items.push(line);
      if (items.length >= q.limit) break;
    }
  }
  return { items: items.reverse(), nextCursor: null };
}

/** From sinceMs or after a cursor: the first `limit` matching lines, and a cursor when more follow. */
async function forwardFrom(files: readonly OpenFile[], q: AuditQuery): Promise<Page<AuditLine>> {
  const items: AuditLine[] = [];
  let seqSeen = q.afterSeq ?? 0;
  for (const f of files) {
    if (q.afterSeq !== undefined && (await lastSeqOf(f)) <= q.afterSeq) continue; // a page far on skips older files unread
    for await (const text of linesForward(f.fh, f.size)) {
      if (q.principal !== undefined && !text.includes(q.principal)) continue;
      const line = parseLine(text);
      // seq only grows through the files: a smaller one is a line already seen.
      if (line === null || line.seq <= seqSeen || !matches(line, q)) continue;
      seqSeen = line.seq;
      if (items.length === q.limit) return { items, nextCursor: String(items[items.length - 1]!.seq) };
      items.push(line);
    }
  }
  return { items, nextCursor: null };
}

async function lastSeqOf(f: OpenFile): Promise<number> {
  for await (const text of linesBackward(f.fh, f.size)) {
    const line = parseLine(text);
    if (line !== null) return line.seq;
  }
  return 0;
}

/** Where the log stopped: its last line number and the last entry it recorded, reading back from the end. */
async function lastRecorded(dir: string, filesKept: number): Promise<{ seq: number; index: number }> {
  let seq: number | null = null;
  const paths = filesOldestFirst(dir, filesKept).reverse();
  for (const path of paths) {
    const fh = await open(path, 'r').catch(ignoreMissing);
    if (fh === null) continue;
    try {
      for await (const text of linesBackward(fh, (await fh.stat()).size)) {
        const line = parseLine(text);
        if (line === null) continue;
        seq ??= line.seq;
        if ('index' in line) return { seq, index: line.index };
      }
    } finally {
      await fh.close();
    }
  }
  return { seq: seq ?? 0, index: 0 };
}
