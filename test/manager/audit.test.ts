// The audit log on disk: what a committed change and a refusal say (never a secret), lines in order across restarts
// without writing a replayed entry twice, rotation at the size limit, a full queue dropping and counting lines, and
// reading pages back (newest, since a time, after a cursor, by principal) across rotated files.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditCommittedLine, AuditLine } from '../../src/contracts/services.js';
import { encodeCommand, type Command, type CommandEnvelope, type EntryPrincipal } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { Clock } from '../../src/lib/clock.js';
import type { LogIndex, NodeId, Term } from '../../src/lib/ids.js';
import { AuditLog, type AuditLogOptions } from '../../src/manager/audit.js';
import { encodeConfEntry } from '../../src/raft/membership.js';
import { joinTokenAccessor } from '../../src/security/tokens.js';
import type { Entry } from '../../src/raft/types.js';
import { ManualClock } from '../support/manual-clock.js';

const t0 = Date.parse('2030-01-01T00:00:00.000Z');
const admin: EntryPrincipal = { a: '0123456789abcdef', r: 'admin' };

let dir: string;
let nowMs: number;
const clock: Clock = { nowMs: () => nowMs, monoMs: () => nowMs, setTimeout: () => ({ cancel: () => undefined }) };
const logger = { warn: vi.fn(), error: vi.fn() };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'minkube-audit-'));
  nowMs = t0;
  logger.warn.mockReset();
  logger.error.mockReset();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function openLog(o: Partial<AuditLogOptions> = {}): Promise<AuditLog> {
  return AuditLog.open({ dir, clock, logger: logger as unknown as Logger, ...o });
}

function fileLines(name = 'audit.log'): AuditLine[] {
  return readFileSync(join(dir, name), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditLine);
}

/** Applies commands through a real state machine, handing each result to the log as the manager does. */
class Applier {
  readonly sm = new KvStateMachine();
  index = 0;
  seq = 0;

  constructor(private readonly log: AuditLog) {}

  apply(cmd: Command, extra: Partial<CommandEnvelope> = {}): number {
    const envelope: CommandEnvelope = { clientId: 'm1.x', seq: ++this.seq, cmd, ...extra };
    const index = ++this.index;
    this.log.committed(index, this.sm.applyEntry(index, encodeCommand(envelope)));
    return index;
  }
}

describe('AuditLog lines', () => {
  it('records each committed change with its principal, op, target, outcome and request id, and never a value or secret', async () => {
    const log = await openLog();
    const a = new Applier(log);
    a.apply({ op: 'put', key: 'app/db-password', value: 'hunter2' }, { reqId: 'r1', pr: admin });
    nowMs = t0 + 5000;
    a.apply({ op: 'delete', key: 'nope' }, { reqId: 'r2', pr: { n: 'w1', r: 'worker' } });
    a.apply({ op: 'task.submit', taskId: 't-1', spec: { image: 'busybox', env: { SECRET: 'shh' } }, atMs: t0 + 1234 }, { reqId: 'r3' });
    const secretHash = 'ab'.repeat(32);
    a.apply({ op: 'auth.tokenCreate', accessor: 'fedcba9876543210', secretHash, name: 'ci', role: 'developer', expiresAtMs: null, atMs: t0 }, { pr: admin });
    a.apply({ op: 'auth.joinTokenRevoke', secretHash }, { pr: admin });
    const joinHash = 'cd'.repeat(32);
    a.apply({ op: 'auth.joinTokenCreate', secretHash: joinHash, role: 'worker', expiresAtMs: t0 + 60_000, atMs: t0 }, { pr: admin });
    await log.close();

    expect(fileLines()).toEqual([
      { seq: 1, time: '2030-01-01T00:00:00.000Z', index: 1, principal: { token: admin.a, role: 'admin' }, op: 'put', target: 'app/db-password', outcome: 'ok', requestId: 'r1' },
      { seq: 2, time: '2030-01-01T00:00:05.000Z', index: 2, principal: { node: 'w1', role: 'worker' }, op: 'delete', target: 'nope', outcome: 'KV_KEY_NOT_FOUND', requestId: 'r2' },
      // A command that carries its time is recorded at that time, the same on every manager.
      { seq: 3, time: '2030-01-01T00:00:01.234Z', index: 3, principal: null, op: 'task.submit', target: 't-1', outcome: 'ok', requestId: 'r3' },
      { seq: 4, time: '2030-01-01T00:00:00.000Z', index: 4, principal: { token: admin.a, role: 'admin' }, op: 'auth.tokenCreate', target: 'fedcba9876543210', outcome: 'ok', requestId: null },
      // A join token by its accessor, never its secret's hash.
      { seq: 5, time: '2030-01-01T00:00:05.000Z', index: 5, principal: { token: admin.a, role: 'admin' }, op: 'auth.joinTokenRevoke', target: joinTokenAccessor(secretHash), outcome: 'TOKEN_NOT_FOUND', requestId: null },
      // Made, too, under the accessor `token ls` shows and `token revoke` takes (not its role).
      { seq: 6, time: '2030-01-01T00:00:00.000Z', index: 6, principal: { token: admin.a, role: 'admin' }, op: 'auth.joinTokenCreate', target: joinTokenAccessor(joinHash), outcome: 'ok', requestId: null },
    ]);
    const text = readFileSync(join(dir, 'audit.log'), 'utf8');
    for (const secret of ['hunter2', 'shh', secretHash, joinHash]) expect(text).not.toContain(secret);
  });

  it('names at most a few ids of a big batch, and how many more', async () => {
    const log = await openLog();
    const tasks = Array.from({ length: 40 }, (_, i) => ({ taskId: `t${i}`, spec: { image: 'i' } }));
    new Applier(log).apply({ op: 'task.submitBatch', atMs: t0, tasks });
    await log.close();
    expect((fileLines()[0] as AuditCommittedLine).target).toBe(`${tasks.slice(0, 16).map((t) => t.taskId).join(',')} +24 more`);
  });

  it('records membership changes from config entries, and refusals with their route', async () => {
    const log = await openLog();
    const conf = encodeConfEntry({ voters: ['m1' as NodeId], learners: ['m4' as NodeId], change: { type: 'addLearner', nodeId: 'm4' as NodeId, context: '{"raftAddress":"h:1"}' } });
    log.entryApplied({ index: 7 as LogIndex, term: 2 as Term, type: 'config', data: conf });
    log.entryApplied({ index: 8 as LogIndex, term: 2 as Term, type: 'noop', data: new Uint8Array() } satisfies Entry);
    log.refused({ principal: { token: admin.a, role: 'viewer' }, route: 'POST /v1/tasks', outcome: 'FORBIDDEN', requestId: 'r9' });
    log.refused({ principal: null, route: 'GET /v1/kv/*', outcome: 'UNAUTHENTICATED', requestId: 'r10' });
    await log.close();
    expect(fileLines()).toEqual([
      { seq: 1, time: '2030-01-01T00:00:00.000Z', index: 7, principal: null, op: 'config.addLearner', target: 'm4', outcome: 'ok', requestId: null },
      { seq: 2, time: '2030-01-01T00:00:00.000Z', principal: { token: admin.a, role: 'viewer' }, route: 'POST /v1/tasks', outcome: 'FORBIDDEN', requestId: 'r9' },
      { seq: 3, time: '2030-01-01T00:00:00.000Z', principal: null, route: 'GET /v1/kv/*', outcome: 'UNAUTHENTICATED', requestId: 'r10' },
    ]);
  });

  it('skips a retried command applied before, and an entry that does not decode', async () => {
    const log = await openLog();
    const sm = new KvStateMachine();
    const data = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'put', key: 'k', value: 'v' } });
    log.committed(1, sm.applyEntry(1, data));
    log.committed(2, sm.applyEntry(2, data));
    log.committed(3, sm.applyEntry(3, new Uint8Array([0xc1])));
    await log.close();
    expect(fileLines().map((l) => (l as AuditCommittedLine).index)).toEqual([1]);
  });

  it('goes on after a restart: seq continues, and entries replayed from the log are not written twice', async () => {
    let log = await openLog();
    let a = new Applier(log);
    for (let i = 0; i < 3; i++) a.apply({ op: 'put', key: `k${i}`, value: 'v' });
    log.refused({ principal: null, route: 'GET /v1/audit', outcome: 'UNAUTHENTICATED', requestId: 'r' });
    await log.close();

    log = await openLog();
    a = new Applier(log); // the restarted manager applies entries 1..5 again from its log
    for (let i = 0; i < 5; i++) a.apply({ op: 'put', key: `k${i}`, value: 'v' });
    await log.close();
    const lines = fileLines();
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines.map((l) => ('index' in l ? l.index : 'refused'))).toEqual([1, 2, 3, 'refused', 4, 5]);
  });
});

describe('AuditLog on disk', () => {
  it('rotates past bytesMax, keeping filesKept older files and dropping the oldest', async () => {
    const log = await openLog({ bytesMax: 4096, filesKept: 2 });
    const a = new Applier(log);
    for (let i = 0; i < 200; i++) {
      a.apply({ op: 'put', key: `key-${i}`, value: 'v' });
      if (i % 7 === 0) await log.flushed(); // writes of several sizes, not one big one
    }
    await log.close();
    expect(readdirSync(dir).sort()).toEqual(['audit.log', 'audit.log.1', 'audit.log.2']);
    for (const f of ['audit.log', 'audit.log.1', 'audit.log.2']) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(4096);
    const seqs = ['audit.log.2', 'audit.log.1', 'audit.log'].flatMap((f) => fileLines(f).map((l) => l.seq));
    // Contiguous up to the newest: only the oldest lines were dropped, with their file.
    expect(seqs.at(-1)).toBe(200);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => 200 - seqs.length + 1 + i));
    expect(seqs[0]).toBeGreaterThan(1);
  });

  it('drops lines past queueLinesMax while the disk is busy, counts them and says so once', async () => {
    const log = await openLog({ queueLinesMax: 5 });
    const a = new Applier(log);
    // All in one turn of the event loop: five wait for the delayed write, the rest find the queue full.
    for (let i = 0; i < 20; i++) a.apply({ op: 'put', key: `k${i}`, value: 'v' });
    await log.close();
    expect(log.droppedLines).toBe(15);
    expect(fileLines().map((l) => (l as AuditCommittedLine).target)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatchObject({ dropped: 15 });
  });

  it('writes lines together after flushDelayMs, or at once when a query asks', async () => {
    const timers: { fn: () => void; delayMs: number }[] = [];
    const timed: Clock = { nowMs: () => nowMs, monoMs: () => nowMs, setTimeout: (fn, delayMs) => (timers.push({ fn, delayMs }), { cancel: () => timers.splice(timers.findIndex((t) => t.fn === fn), 1) }) };
    const log = await openLog({ clock: timed, flushDelayMs: 20 });
    const a = new Applier(log);
    for (let i = 0; i < 3; i++) a.apply({ op: 'put', key: `k${i}`, value: 'v' });
    // One timer for the three lines, and nothing written before it fires.
    expect(timers.map((t) => t.delayMs)).toEqual([20]);
    expect(statSync(join(dir, 'audit.log')).size).toBe(0);
    timers[0]!.fn();
    await log.flushed();
    expect(fileLines().map((l) => (l as AuditCommittedLine).target)).toEqual(['k0', 'k1', 'k2']);
    // A query does not wait for the timer: it writes what waits, then reads.
    a.apply({ op: 'put', key: 'k3', value: 'v' });
    expect(timers).toHaveLength(1);
    const page = await log.query({ limit: 10 });
    expect(page.items.map((l) => (l as AuditCommittedLine).target)).toContain('k3');
    expect(timers).toHaveLength(0);
    await log.close();
  });
});

describe('AuditLog.query', () => {
  async function filled(): Promise<AuditLog> {
    const log = await openLog({ bytesMax: 4096, filesKept: 3 });
    const a = new Applier(log);
    for (let i = 0; i < 60; i++) {
      nowMs = t0 + i * 1000;
      a.apply({ op: 'put', key: `k${i}`, value: 'v' }, { reqId: `r${i}`, pr: i % 3 === 0 ? admin : { n: 'w1', r: 'worker' } });
      await log.flushed();
    }
    expect(readdirSync(dir)).toContain('audit.log.1'); // the pages below cross files
    return log;
  }
  const keys = (items: readonly AuditLine[]): string[] => items.map((l) => (l as AuditCommittedLine).target ?? '');

  it('answers the newest lines without a starting point, oldest first, and no cursor', async () => {
    const log = await filled();
    const page = await log.query({ limit: 30 });
    expect(keys(page.items)).toEqual(Array.from({ length: 30 }, (_, i) => `k${30 + i}`));
    expect(page.nextCursor).toBeNull();
    await log.close();
  });

  it('pages forward from a time, through cursors, to the end', async () => {
    const log = await filled();
    const first = await log.query({ sinceMs: t0 + 10_000, limit: 20 });
    expect(keys(first.items)).toEqual(Array.from({ length: 20 }, (_, i) => `k${10 + i}`));
    const second = await log.query({ sinceMs: t0 + 10_000, afterSeq: Number(first.nextCursor), limit: 20 });
    const third = await log.query({ sinceMs: t0 + 10_000, afterSeq: Number(second.nextCursor), limit: 20 });
    expect(keys(second.items)[0]).toBe('k30');
    expect(keys(third.items)).toEqual(Array.from({ length: 10 }, (_, i) => `k${50 + i}`));
    expect(third.nextCursor).toBeNull();
    await log.close();
  });

  it('filters by a token accessor or a node id', async () => {
    const log = await filled();
    const byAdmin = await log.query({ principal: admin.a, sinceMs: 0, limit: 1000 });
    expect(keys(byAdmin.items)).toEqual(Array.from({ length: 20 }, (_, i) => `k${i * 3}`));
    const byWorker = await log.query({ principal: 'w1', limit: 5 });
    expect(keys(byWorker.items)).toEqual(['k53', 'k55', 'k56', 'k58', 'k59']);
    expect((await log.query({ principal: 'nobody', limit: 5 })).items).toEqual([]);
    await log.close();
  });

  it('leaves out the ops excludeOps names before cutting the page, so limit and cursors count only lines answered; the file keeps them', async () => {
    const log = await openLog();
    const a = new Applier(log);
    for (let i = 0; i < 10; i++) a.apply(i % 2 === 0 ? { op: 'put', key: `k${i}`, value: 'v' } : { op: 'delete', key: `k${i}` });
    const first = await log.query({ excludeOps: ['delete'], sinceMs: 0, limit: 3 });
    expect(keys(first.items)).toEqual(['k0', 'k2', 'k4']);
    const second = await log.query({ excludeOps: ['delete'], sinceMs: 0, afterSeq: Number(first.nextCursor), limit: 3 });
    expect(keys(second.items)).toEqual(['k6', 'k8']);
    expect(second.nextCursor).toBeNull();
    expect(keys((await log.query({ excludeOps: ['put'], limit: 2 })).items)).toEqual(['k7', 'k9']);
    expect(fileLines()).toHaveLength(10);
    await log.close();
  });
});

describe('AuditLog refusals of requests without a valid credential past their bucket', () => {
  const kv = 'GET /v1/kv/*';
  const login = 'POST /v1/auth/login';
  const anonymous = (log: AuditLog, client: string, route: string, requestId: string) =>
    log.rateLimited(client, { principal: null, route, outcome: 'RATE_LIMITED', requestId });

  it('writes the first of an address in full, then at most one summary line per address per interval; a token past its bucket is counted apart, under the token; other authenticated refusals stay lines of their own', async () => {
    const clock = new ManualClock(t0);
    const log = await openLog({ clock, flushDelayMs: 0 });
    const viewer = { token: admin.a, role: 'viewer' };
    for (let i = 0; i < 1000; i++) {
      anonymous(log, '10.0.0.7', kv, `a${i}`);
      if (i < 300) anonymous(log, '10.0.0.8', i < 200 ? kv : login, `b${i}`);
      if (i % 200 === 0) log.rateLimited('10.0.0.7', { principal: viewer, route: kv, outcome: 'RATE_LIMITED', requestId: `v${i}` });
      if (i % 250 === 0) log.refused({ principal: viewer, route: kv, outcome: 'QUEUE_FULL', requestId: `q${i}` });
    }
    clock.advance(1000);
    for (let i = 0; i < 500; i++) anonymous(log, '10.0.0.7', kv, `c${i}`);
    clock.advance(1000);
    clock.advance(1000); // a quiet interval: the address is forgotten, and its next refusal is written in full again
    anonymous(log, '10.0.0.7', login, 'd0');
    await log.close();

    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const full = (requestId: string, route = kv, ms = 0) => ({ time: at(ms), principal: null, route, outcome: 'RATE_LIMITED', requestId });
    const byViewer = (requestId: string, outcome = 'RATE_LIMITED') => ({ time: at(0), principal: viewer, route: kv, outcome, requestId });
    expect(fileLines().map(({ seq: _, ...l }) => l)).toEqual([
      full('a0'), full('b0'), byViewer('v0'), byViewer('q0', 'QUEUE_FULL'), byViewer('q250', 'QUEUE_FULL'), byViewer('q500', 'QUEUE_FULL'), byViewer('q750', 'QUEUE_FULL'),
      { time: at(1000), principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.7', count: 999, since: at(0), routes: { [kv]: 999 } },
      { time: at(1000), principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.8', count: 299, since: at(0), routes: { [kv]: 199, [login]: 100 } },
      { time: at(1000), principal: viewer, outcome: 'RATE_LIMITED', client: '10.0.0.7', count: 4, since: at(0), routes: { [kv]: 4 } },
      { time: at(2000), principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.7', count: 500, since: at(1000), routes: { [kv]: 500 } },
      full('d0', login, 3000),
    ]);
  });

  it('counts addresses past summaryClientsMax together as client "*", routes past summaryRoutesMax as "(other routes)"; close writes what is counted', async () => {
    const clock = new ManualClock(t0);
    const log = await openLog({ clock, flushDelayMs: 0, summaryClientsMax: 2, summaryRoutesMax: 1 });
    for (const client of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) {
      anonymous(log, client, kv, `${client}-1`);
      anonymous(log, client, login, `${client}-2`);
    }
    await log.close();
    const lines = fileLines().map(({ seq: _, ...l }) => l);
    expect(lines.filter((l) => 'requestId' in l).map((l) => (l as { requestId: string }).requestId)).toEqual(['10.0.0.1-1', '10.0.0.2-1']);
    expect(lines.filter((l) => 'count' in l)).toEqual([
      { time: new Date(t0).toISOString(), principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.1', count: 1, since: new Date(t0).toISOString(), routes: { [login]: 1 } },
      { time: new Date(t0).toISOString(), principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.2', count: 1, since: new Date(t0).toISOString(), routes: { [login]: 1 } },
      { time: new Date(t0).toISOString(), principal: null, outcome: 'RATE_LIMITED', client: '*', count: 4, since: new Date(t0).toISOString(), routes: { [kv]: 2, '(other routes)': 2 } },
    ]);
  });

  it('reads summary lines back through query like any other (here from a time)', async () => {
    const clock = new ManualClock(t0);
    const log = await openLog({ clock, flushDelayMs: 0 });
    for (let i = 0; i < 3; i++) anonymous(log, '10.0.0.7', kv, `a${i}`);
    clock.advance(1000);
    const page = await log.query({ limit: 10, sinceMs: t0 + 500 });
    expect(page.items).toEqual([{ seq: 2, time: new Date(t0 + 1000).toISOString(), principal: null, outcome: 'RATE_LIMITED', client: '10.0.0.7', count: 2, since: new Date(t0).toISOString(), routes: { [kv]: 2 } }]);
    await log.close();
  });
});
