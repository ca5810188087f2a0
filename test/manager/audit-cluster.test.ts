// The audit log in a cluster of real drivers: every manager records the same committed changes (the principal and
// request id travel inside the entry, so a change proposed through a follower reads the same on the leader), and a
// restarted manager does not write the entries it replays twice.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditCommittedLine, AuditLine } from '../../src/contracts/services.js';
import { systemClock } from '../../src/lib/clock.js';
import { AuditLog } from '../../src/manager/audit.js';
import { ctx, DriverCluster } from './driver-harness.js';

const root = mkdtempSync(join(tmpdir(), 'minkube-audit-cluster-'));
const logs = new Map<string, AuditLog>();
const logger = pino({ level: 'silent' });

async function openAudit(id: string): Promise<AuditLog> {
  mkdirSync(join(root, id), { recursive: true }); // a manager's data directory exists before its audit log opens
  const log = await AuditLog.open({ dir: join(root, id), clock: systemClock, logger });
  logs.set(id, log);
  return log;
}

const cluster = new DriverCluster({
  listeners: (id) => {
    const log = logs.get(id)!;
    return { onApplied: (index, applied) => log.committed(index, applied), onEntryApplied: (entry) => log.entryApplied(entry) };
  },
});

afterAll(async () => {
  await cluster.close();
  for (const log of logs.values()) await log.close();
  rmSync(root, { recursive: true, force: true });
});

async function committedLines(id: string): Promise<AuditCommittedLine[]> {
  await logs.get(id)!.flushed();
  const text = readFileSync(join(root, id, 'audit.log'), 'utf8');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditLine).filter((l): l is AuditCommittedLine => 'index' in l);
}

/** What every manager must agree on: all but its own line number and the time it applied (checked apart below). */
const shared = ({ seq: _seq, time: _time, ...rest }: AuditCommittedLine): object => rest;

describe('the audit log across managers', () => {
  it('holds the same committed changes on every manager, with the principal and request id of the request', async () => {
    for (const id of ['m1', 'm2', 'm3']) await openAudit(id);
    await cluster.startAll();
    const leader = await cluster.leader();
    const follower = [...cluster.running.values()].find((n) => n.id !== leader.id)!;
    const principal = { a: '00000000000000a1', r: 'admin' };
    await follower.service.kvPut('app/password', 'hunter2', undefined, { requestId: 'req-put', deadlineMs: Date.now() + 10_000, principal });
    const atMs = Date.parse('2030-01-01T00:00:00Z');
    await leader.service.proposeCommand({ op: 'task.submit', taskId: 't-1', spec: { image: 'busybox' }, atMs }, Date.now() + 10_000, 'req-task', { n: 'm9', r: 'manager' });
    await leader.membership.addMember({ id: 'm4', raftAddress: 'raft-m4', apiAddress: 'api-m4' }, ctx());
    await cluster.converged();

    const [m1, m2, m3] = await Promise.all(['m1', 'm2', 'm3'].map(committedLines));
    expect(m2!.map(shared)).toEqual(m1!.map(shared));
    expect(m3!.map(shared)).toEqual(m1!.map(shared));
    expect(m1).toContainEqual(expect.objectContaining({ op: 'put', target: 'app/password', principal: { token: principal.a, role: 'admin' }, outcome: 'ok', requestId: 'req-put' }));
    // A command that carries its time is recorded at that time everywhere.
    for (const lines of [m1, m2, m3]) {
      expect(lines).toContainEqual(expect.objectContaining({ time: '2030-01-01T00:00:00.000Z', op: 'task.submit', target: 't-1', principal: { node: 'm9', role: 'manager' }, requestId: 'req-task' }));
    }
    expect(m1).toContainEqual(expect.objectContaining({ op: 'config.addLearner', target: 'm4', principal: null, requestId: null }));
    for (const id of ['m1', 'm2', 'm3']) expect(readFileSync(join(root, id, 'audit.log'), 'utf8')).not.toContain('hunter2');
  });

  it('does not write again what a restarted manager replays from its log', async () => {
    const leader = await cluster.leader();
    const restarted = [...cluster.running.keys()].find((id) => id !== leader.id)!;
    const before = await committedLines(restarted);
    await cluster.stop(restarted);
    await logs.get(restarted)!.close();
    await openAudit(restarted);
    await cluster.start(restarted);
    await cluster.putOne('after-restart', 'v');
    await cluster.converged();

    const after = await committedLines(restarted);
    const indexes = after.map((l) => l.index);
    expect(new Set(indexes).size).toBe(indexes.length);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.filter((l) => l.target === 'after-restart')).toHaveLength(1);
    expect(after.map((l) => l.seq)).toEqual(after.map((_, i) => i + 1));
  });
});
