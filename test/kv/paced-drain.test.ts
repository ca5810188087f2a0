// A paced drain in the state machine (command version 8): applying `worker.availability` with `paced` marks only the
// tasks that belong to no service; a service's replicas there are marked by the reconciler's `service.reconcile`
// `drain`, made on the service's revision (a stale one is dropped), and only while they are still on a worker being
// drained and meant to run. A version-7 drain (no `paced`) still marks every attempt at once, as it did.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, tryDecodeCommand, type Command } from '../../src/kv/commands.js';
import { movedByDrain } from '../../src/kv/task-rules.js';
import { TaskDriver } from './task-driver.js';

const update = { parallelism: 1, delayS: 0, monitorS: 0, failureAction: 'rollback' as const, order: 'stop-first' as const };

/** w1 and w2 registered; service web with replicas r1..r3 and a plain task p, all running on w1. */
function cluster(): TaskDriver {
  const d = new TaskDriver();
  d.register('w1');
  d.register('w2');
  expect(d.run({ op: 'service.create', name: 'web', atMs: 1000, replicas: 3, spec: { image: 'img' }, update })).toMatchObject({ ok: true });
  expect(d.run({ op: 'service.reconcile', name: 'web', atMs: 1000, ifRevision: 1, create: ['r1', 'r2', 'r3'], stop: [] })).toMatchObject({ ok: true });
  d.submit('p');
  for (const id of ['r1', 'r2', 'r3', 'p']) {
    d.place(id, 'w1');
    d.report({ taskId: id, workerId: 'w1', state: 'running' });
  }
  return d;
}

const revision = (d: TaskDriver): number => d.sm.services.service('web')!.revision;

function reconcileDrain(d: TaskDriver, drain: string[], ifRevision = revision(d), atMs = 5000): ReturnType<TaskDriver['run']> {
  return d.run({ op: 'service.reconcile', name: 'web', atMs, ifRevision, create: [], stop: [], drain });
}

describe('a paced drain (worker.availability paced, service.reconcile drain)', () => {
  it("marks the worker's plain tasks at once and leaves a service's replicas to the reconciler", () => {
    const d = cluster();
    expect(d.run({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 4000, paced: true })).toMatchObject({ ok: true });
    expect(d.task('p')).toMatchObject({ draining: true });
    for (const id of ['r1', 'r2', 'r3']) expect(d.task(id)).toMatchObject({ state: 'running', draining: undefined });
    expect(d.store.worker('w1')).toMatchObject({ availability: 'drain', taskCount: 4 });
  });

  it('a version-7 drain (not paced) still marks every attempt at once', () => {
    const d = cluster();
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 4000 });
    for (const id of ['r1', 'r2', 'r3', 'p']) expect(d.task(id)).toMatchObject({ draining: true });
  });

  it("service.reconcile's drain marks its replicas on the draining worker; a stale one is dropped; a moved replica says so", () => {
    const d = cluster();
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 4000, paced: true });
    const before = revision(d);
    expect(reconcileDrain(d, ['r1'])).toMatchObject({ ok: true });
    expect(d.task('r1')).toMatchObject({ state: 'running', draining: true });
    expect(d.task('r2').draining).toBeUndefined();
    // Made on the revision before: dropped, nothing marked.
    expect(reconcileDrain(d, ['r2'], before)).toMatchObject({ ok: true });
    expect(d.task('r2').draining).toBeUndefined();
    // Not the service's own task (p belongs to none), or unknown: skipped.
    expect(reconcileDrain(d, ['p', 'nope'])).toMatchObject({ ok: true });
    // Stopped there: placed again as the next attempt, not counted, and seen as moved by the drain until it ends.
    const r1 = d.task('r1');
    d.report({ taskId: 'r1', workerId: 'w1', attempt: 1, term: r1.term, state: 'stopped', retryAtMs: 99_000 }, 5500);
    expect(d.task('r1')).toMatchObject({ state: 'pending', attempt: 2, drainedAttempts: 1, notBeforeMs: 5500 });
    expect(movedByDrain(d.task('r1'))).toBe(true);
    d.place('r1', 'w2', 2, 2, 6000);
    d.report({ taskId: 'r1', workerId: 'w2', attempt: 2, state: 'running' }, 6100);
    expect(movedByDrain(d.task('r1'))).toBe(true);
    // A failure of its own there ends that: it is no longer moving for the drain.
    d.report({ taskId: 'r1', workerId: 'w2', attempt: 2, state: 'failed', exitCode: 3, retryAtMs: 7000 }, 6200);
    expect(d.task('r1')).toMatchObject({ state: 'pending', attempt: 3, error: { class: 'permanent' } });
    expect(movedByDrain(d.task('r1'))).toBe(false);
  });

  it('marks nothing once the worker is active again (activate ends the drain), or for a replica asked to stop', () => {
    const d = cluster();
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 4000, paced: true });
    d.run({ op: 'task.stop', taskId: 'r3', atMs: 4100 });
    expect(reconcileDrain(d, ['r3'])).toMatchObject({ ok: true });
    expect(d.task('r3')).toMatchObject({ desiredState: 'stop', draining: undefined });
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'active', atMs: 4200 });
    reconcileDrain(d, ['r1', 'r2']);
    expect([d.task('r1').draining, d.task('r2').draining]).toEqual([undefined, undefined]);
    // The plain task's drain already sent still completes.
    expect(d.task('p')).toMatchObject({ draining: true });
  });

  it('a drained worker found down: its replicas not yet marked are placed again as drained ones, not counted', () => {
    const d = cluster();
    d.run({ op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 4000, paced: true });
    reconcileDrain(d, ['r1']);
    d.run({ op: 'worker.state', workerId: 'w1', state: 'unreachable', atMs: 6000, ifHeartbeats: 1, lost: [] });
    const lost = ['r1', 'r2', 'r3', 'p'].map((taskId) => ({ taskId, attempt: 1, retryAtMs: 60_000 }));
    d.run({ op: 'worker.state', workerId: 'w1', state: 'down', atMs: 7000, ifHeartbeats: 1, lost });
    for (const id of ['r1', 'r2', 'r3', 'p']) {
      expect(d.task(id)).toMatchObject({ state: 'pending', attempt: 2, drainedAttempts: 1, notBeforeMs: 7000 });
      expect(d.task(id).history.at(-1)!.reason).toMatch(/^drained: worker w1 is drained \(lost before it stopped the task\)/);
    }
  });

  it('round-trips both fields on the wire as version 8; an empty or oversized drain list is refused', () => {
    const paced: Command = { op: 'worker.availability', workerId: 'w1', availability: 'drain', atMs: 7, paced: true };
    const reconcile: Command = { op: 'service.reconcile', name: 'web', atMs: 7, ifRevision: 2, create: [], stop: [], drain: ['t1', 't2'] };
    for (const cmd of [paced, reconcile]) expect(decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd })).cmd).toEqual(cmd);
    expect(decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { ...reconcile, drain: [] } })).cmd).not.toHaveProperty('drain');
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const raw = (cmd: Record<string, unknown>): Uint8Array => packr.pack({ clientId: 'c', seq: 1, cmd, v: 8 });
    expect(tryDecodeCommand(raw({ ...reconcile, drain: [] }))).toMatchObject({ ok: false, problem: expect.stringMatching(/^malformed command: service\.reconcile: \/drain /) as string });
    expect(tryDecodeCommand(raw({ ...paced, paced: false }))).toMatchObject({ ok: false, problem: expect.stringMatching(/^malformed command: worker\.availability: \/paced /) as string });
    expect(tryDecodeCommand(raw({ ...reconcile, drain: Array.from({ length: 10_001 }, (_, i) => `t${i}`) }))).toMatchObject({ ok: false });
  });
});
