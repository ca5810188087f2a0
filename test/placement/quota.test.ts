// Quotas in the state machine: quota.set round-trips through the wire form, submissions past a namespace's tasksMax,
// cpus or memoryMb are refused with QUOTA_EXCEEDED naming the limit (at apply, in log order), ended tasks free their
// share, a retried submission is still answered, and a snapshot keeps the quotas.
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { TaskSpec } from '../../src/contracts/task-model.js';

class Driver {
  readonly sm = new KvStateMachine();
  private index = 0;
  private seq = 0;

  apply(cmd: Command) {
    // Through the wire form, as every entry goes.
    const envelope = decodeCommand(encodeCommand({ clientId: 'c', seq: ++this.seq, cmd }));
    return this.sm.applyEnvelope(++this.index, envelope).result;
  }

  submit(id: string, spec: Partial<TaskSpec> = {}, idempotencyKey?: string) {
    return this.apply({ op: 'task.submit', taskId: id, spec: { image: 'i', ...spec }, atMs: 1, ...(idempotencyKey === undefined ? {} : { idempotencyKey }) });
  }
}

describe('quotas', () => {
  it('tasksMax counts live tasks of the namespace; the refusal names the namespace and the limit', () => {
    const d = new Driver();
    expect(d.apply({ op: 'quota.set', namespace: 'team-a', tasksMax: 2 })).toMatchObject({ ok: true, key: 'team-a' });
    expect(d.sm.quotas.list()).toEqual([{ namespace: 'team-a', tasksMax: 2 }]);
    expect(d.submit('t1', { namespace: 'team-a' }, 'k1').ok).toBe(true);
    expect(d.submit('t2', { namespace: 'team-a' }).ok).toBe(true);
    const refused = d.submit('t3', { namespace: 'team-a' });
    expect(refused).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED' });
    expect(refused.ok ? '' : refused.message).toBe('namespace team-a: tasksMax 2 would be exceeded (2 live + 1 new)');
    // Other namespaces, and the default one, are not limited.
    expect(d.submit('t4', { namespace: 'team-b' }).ok).toBe(true);
    expect(d.submit('t5').ok).toBe(true);
    // A retry of an accepted submission is answered with its task, not refused.
    expect(d.submit('t1-retry', { namespace: 'team-a' }, 'k1')).toMatchObject({ ok: true, key: 't1' });
    // A stopped task frees its share.
    expect(d.apply({ op: 'task.stop', taskId: 't2', atMs: 2 }).ok).toBe(true);
    expect(d.submit('t6', { namespace: 'team-a' }).ok).toBe(true);
  });

  it('cpus and memoryMb sum the resources of live tasks; a batch is refused whole', () => {
    const d = new Driver();
    d.apply({ op: 'quota.set', namespace: 'ml', cpus: 4, memoryMb: 1000 });
    expect(d.submit('a', { namespace: 'ml', resources: { cpus: 3 } }).ok).toBe(true);
    const cpu = d.submit('b', { namespace: 'ml', resources: { cpus: 2 } });
    expect(cpu.ok ? '' : cpu.message).toBe('namespace ml: cpus 4 would be exceeded (3 in use + 2 new)');
    const mem = d.submit('c', { namespace: 'ml', resources: { memoryMb: 1001 } });
    expect(mem.ok ? '' : mem.message).toMatch(/^namespace ml: memoryMb 1000 would be exceeded/);
    const batch = d.apply({ op: 'task.submitBatch', atMs: 1, tasks: [{ taskId: 'd', spec: { image: 'i', namespace: 'ml', resources: { cpus: 1 } } }, { taskId: 'e', spec: { image: 'i', namespace: 'ml', resources: { cpus: 1 } } }] });
    expect(batch).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED' });
    expect(d.sm.tasks.task('d')).toBeUndefined();
    expect(d.sm.tasks.usage.of('ml')).toEqual({ tasks: 1, cpus: 3, memoryMb: 0 });
  });

  it('a quota with no limit removes it; snapshots keep quotas and usage', () => {
    const d = new Driver();
    d.apply({ op: 'quota.set', namespace: 'x', tasksMax: 1 });
    d.apply({ op: 'quota.set', namespace: 'y', memoryMb: 5 });
    d.submit('t1', { namespace: 'x' });
    const copy = new KvStateMachine();
    copy.restore(d.sm.snapshot());
    expect(copy.quotas.list()).toEqual([{ namespace: 'x', tasksMax: 1 }, { namespace: 'y', memoryMb: 5 }]);
    expect(copy.tasks.usage.of('x').tasks).toBe(1);
    d.apply({ op: 'quota.set', namespace: 'x' });
    expect(d.sm.quotas.list()).toEqual([{ namespace: 'y', memoryMb: 5 }]);
    expect(d.submit('t2', { namespace: 'x' }).ok).toBe(true);
  });

  it('a service created or scaled past the quota is refused; its replicas count as tasks', () => {
    const d = new Driver();
    d.apply({ op: 'quota.set', namespace: 'web', tasksMax: 3 });
    const update = { parallelism: 1, delayS: 0, monitorS: 1, failureAction: 'rollback', order: 'stop-first' } as const;
    const spec: TaskSpec = { image: 'i', namespace: 'web', restartPolicy: 'always', maxAttempts: 3 };
    const big = d.apply({ op: 'service.create', name: 'big', atMs: 1, replicas: 4, spec, update });
    expect(big).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED' });
    expect(big.ok ? '' : big.message).toBe('namespace web: tasksMax 3 would be exceeded (0 live + 4 new)');
    expect(d.apply({ op: 'service.create', name: 'ok', atMs: 1, replicas: 2, spec, update }).ok).toBe(true);
    d.submit('t1', { namespace: 'web' });
    expect(d.apply({ op: 'service.update', name: 'ok', atMs: 2, replicas: 3 })).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED' });
    expect(d.apply({ op: 'service.update', name: 'ok', atMs: 2, replicas: 1 }).ok).toBe(true);
  });

  it('a service moved to another namespace (quotaInNamespace, version 10) is judged as creating all its replicas there, resources included', () => {
    const d = new Driver();
    const update = { parallelism: 1, delayS: 0, monitorS: 1, failureAction: 'rollback', order: 'stop-first' } as const;
    const spec: TaskSpec = { image: 'i', restartPolicy: 'always', maxAttempts: 3, resources: { cpus: 1 } };
    expect(d.apply({ op: 'service.create', name: 'nsm', atMs: 1, replicas: 4, spec, update }).ok).toBe(true);
    d.apply({ op: 'service.reconcile', name: 'nsm', atMs: 2, ifRevision: 1, create: ['r1', 'r2', 'r3', 'r4'], stop: [] });
    d.apply({ op: 'quota.set', namespace: 'bb71ns', tasksMax: 3 });
    const moved = { ...spec, namespace: 'bb71ns' };
    // The outside tester's case: 4 live replicas (in default) hid the 4 new ones the move makes in bb71ns.
    const refused = d.apply({ op: 'service.update', name: 'nsm', atMs: 3, spec: moved, ifVersion: 1, quotaInNamespace: true });
    expect(refused).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED', message: 'namespace bb71ns: tasksMax 3 would be exceeded (0 live + 4 new)' });
    const bigger = d.apply({ op: 'service.update', name: 'nsm', atMs: 3, spec: moved, replicas: 8, ifVersion: 1, quotaInNamespace: true });
    expect(bigger).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED', message: 'namespace bb71ns: tasksMax 3 would be exceeded (0 live + 8 new)' });
    expect(d.sm.services.service('nsm')).toMatchObject({ version: 1, replicas: 4 });
    // Its resources count too.
    d.apply({ op: 'quota.set', namespace: 'bb71ns', tasksMax: 10, cpus: 3.5 });
    expect(d.apply({ op: 'service.update', name: 'nsm', atMs: 3, spec: moved, ifVersion: 1, quotaInNamespace: true })).toMatchObject({
      ok: false, code: 'QUOTA_EXCEEDED', message: 'namespace bb71ns: cpus 3.5 would be exceeded (0 in use + 4 new)',
    });
    // Room for 3: scaled down to 3 as it moves, it fits.
    expect(d.apply({ op: 'service.update', name: 'nsm', atMs: 4, spec: moved, replicas: 3, ifVersion: 1, quotaInNamespace: true }).ok).toBe(true);
    expect(d.sm.services.service('nsm')).toMatchObject({ version: 2, replicas: 3 });
    // Mid-move, scaling up counts only the replicas already in bb71ns (none yet), not the old ones in default.
    expect(d.apply({ op: 'service.update', name: 'nsm', atMs: 5, replicas: 4, quotaInNamespace: true })).toMatchObject({
      ok: false, message: 'namespace bb71ns: cpus 3.5 would be exceeded (0 in use + 4 new)',
    });
    // A rollback back into a namespace without room is refused alike, once the replicas it left there have ended.
    for (const id of ['r1', 'r2', 'r3', 'r4']) d.apply({ op: 'task.stop', taskId: id, atMs: 6 });
    d.apply({ op: 'quota.set', namespace: 'default', tasksMax: 4 });
    d.submit('other', {});
    d.submit('other2', {});
    const back = d.apply({ op: 'service.rollback', name: 'nsm', atMs: 6, quotaInNamespace: true });
    expect(back).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED', message: 'namespace default: tasksMax 4 would be exceeded (2 live + 3 new)' });
    expect(d.sm.services.service('nsm')).toMatchObject({ version: 2 });
  });

  it('an entry without quotaInNamespace (as a version-9 manager wrote it) applies as version 9 did, so every manager agrees', () => {
    const d = new Driver();
    const update = { parallelism: 1, delayS: 0, monitorS: 1, failureAction: 'rollback', order: 'stop-first' } as const;
    const spec: TaskSpec = { image: 'i', restartPolicy: 'always', maxAttempts: 3 };
    d.apply({ op: 'service.create', name: 'nsm', atMs: 1, replicas: 4, spec, update });
    d.apply({ op: 'service.reconcile', name: 'nsm', atMs: 2, ifRevision: 1, create: ['r1', 'r2', 'r3', 'r4'], stop: [] });
    d.apply({ op: 'quota.set', namespace: 'bb71ns', tasksMax: 3 });
    expect(d.apply({ op: 'service.update', name: 'nsm', atMs: 3, spec: { ...spec, namespace: 'bb71ns' }, ifVersion: 1 }).ok).toBe(true);
    expect(d.apply({ op: 'service.rollback', name: 'nsm', atMs: 4 }).ok).toBe(true);
  });

  it('a malformed quota command does not decode', () => {
    expect(() => decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'quota.set', namespace: 'Bad NS' } }))).toThrow(/quota.set/);
    expect(() => decodeCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'quota.set', namespace: 'a', tasksMax: -1 } }))).toThrow(/quota.set/);
  });
});
