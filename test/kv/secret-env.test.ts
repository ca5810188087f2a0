// secretEnv in the replicated state: the spec rules, the one redaction every answer uses, the command version a
// submission with secretEnv is written in, the Idempotency-Key fingerprint, and a snapshot round trip that hands the
// values to the next leader's retry.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodeCommand, validateCommand, type Command } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { TaskSpec } from '../../src/contracts/task-model.js';
import { normaliseSpec, specFingerprint, specRuleProblem, specView, taskView } from '../../src/kv/task-spec.js';
import { assignmentOf } from '../../src/manager/task-service.js';
import { TaskDriver as Driver } from './task-driver.js';

const raw = new Packr({ useRecords: false, moreTypes: false });


const spec: TaskSpec = { image: 'db-client', env: { HOST: 'db' }, secretEnv: { DB_PASSWORD: 'hunter2', API_KEY: 'k-1' } };

describe('secretEnv spec rules', () => {
  it.each([
    [{ '1BAD': 'v' }, 'spec.secretEnv.1BAD: not a valid variable name'],
    [{ 'A-B': 'v' }, 'spec.secretEnv.A-B: not a valid variable name'],
    [{ ['S'.repeat(257)]: 'v' }, `spec.secretEnv.${'S'.repeat(32)}...: not a valid variable name`],
    [{ TOKEN: 'a\u0000b' }, 'spec.secretEnv.TOKEN: contains a NUL byte'],
    [{ HOST: 'x' }, 'spec.secretEnv.HOST: also in env; a variable goes in env or in secretEnv, not both'],
    [{ TOKEN: '<redacted>' }, 'spec.secretEnv.TOKEN: "<redacted>" is how answers show a secret, not a value'],
  ])('refuses secretEnv %j, naming the variable and never its value', (secretEnv, message) => {
    expect(specRuleProblem({ image: 'x', env: { HOST: 'db' }, secretEnv }, 'spec.')).toBe(message);
  });

  it('accepts good names; the leader refuses a bad one before it enters the log', () => {
    expect(specRuleProblem(spec, 'spec.')).toBeNull();
    const bad = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'task.submit', taskId: 't1', spec: { image: 'x', secretEnv: { 'NO PE': 'v' } }, atMs: 1 } });
    expect(validateCommand(bad)).toBe('spec.secretEnv.NO PE: not a valid variable name');
  });
});

describe('the redaction every view goes through', () => {
  it('keeps the names, replaces every value, and leaves the stored spec alone', () => {
    const view = specView(spec);
    expect(view).toEqual({ image: 'db-client', env: { HOST: 'db' }, secretEnv: { DB_PASSWORD: '<redacted>', API_KEY: '<redacted>' } });
    expect(spec.secretEnv).toEqual({ DB_PASSWORD: 'hunter2', API_KEY: 'k-1' });
    expect(JSON.stringify(view)).not.toMatch(/hunter2|k-1/);
    const plain: TaskSpec = { image: 'x' };
    expect(specView(plain)).toBe(plain);
  });

  it('a name such as __proto__ stays a plain name', () => {
    const secretEnv = JSON.parse('{"__proto__":"s3cret"}') as Record<string, string>;
    expect(JSON.stringify(specView({ image: 'x', secretEnv }))).toBe('{"image":"x","secretEnv":{"__proto__":"<redacted>"}}');
  });

  it('taskView redacts a record; the store keeps the values for the assignment', () => {
    const d = new Driver();
    d.submit('t1', spec);
    const stored = d.sm.tasks.task('t1')!;
    expect(stored.spec.secretEnv).toEqual({ API_KEY: 'k-1', DB_PASSWORD: 'hunter2' });
    expect(JSON.stringify(taskView(stored))).not.toMatch(/hunter2|k-1/);
    expect(taskView(stored).spec.secretEnv).toEqual({ API_KEY: '<redacted>', DB_PASSWORD: '<redacted>' });
    expect(assignmentOf(stored).spec.secretEnv).toEqual({ API_KEY: 'k-1', DB_PASSWORD: 'hunter2' });
  });
});

describe('secretEnv in the log', () => {
  it('a submission carrying it is written as command version 2; others stay version 1', () => {
    const versionOf = (cmd: Command) => (raw.unpack(encodeCommand({ clientId: 'c', seq: 1, cmd })) as { v: number }).v;
    expect(versionOf({ op: 'task.submit', taskId: 't1', spec, atMs: 1 })).toBe(2);
    expect(versionOf({ op: 'task.submitBatch', atMs: 1, tasks: [{ taskId: 't1', spec: { image: 'x' } }, { taskId: 't2', spec }] })).toBe(2);
    expect(versionOf({ op: 'task.submit', taskId: 't1', spec: { image: 'x', env: { A: '1' } }, atMs: 1 })).toBe(1);
    expect(versionOf({ op: 'put', key: 'k', value: 'v' })).toBe(1);
  });

  it('is normalised (names sorted) and part of the Idempotency-Key fingerprint', () => {
    expect(Object.keys(normaliseSpec(spec).secretEnv!)).toEqual(['API_KEY', 'DB_PASSWORD']);
    const other = { ...spec, secretEnv: { DB_PASSWORD: 'hunter3', API_KEY: 'k-1' } };
    expect(specFingerprint(normaliseSpec(other))).not.toBe(specFingerprint(normaliseSpec(spec)));
    const d = new Driver();
    expect(d.submit('t1', spec, 'key')).toMatchObject({ ok: true, key: 't1' });
    expect(d.submit('t2', { ...spec, secretEnv: { API_KEY: 'k-1', DB_PASSWORD: 'hunter2' } }, 'key')).toMatchObject({ ok: true, key: 't1' });
    const reused = d.submit('t3', other, 'key');
    expect(reused).toMatchObject({ ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(JSON.stringify(reused)).not.toMatch(/hunter/);
  });

  it('survives a snapshot round trip: the restored store gives the values to the next placement, and the key still compares', () => {
    const d = new Driver();
    d.run({ op: 'worker.register', workerId: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'memory', atMs: 1000 });
    d.run({ op: 'worker.register', workerId: 'w2', apiAddress: '127.0.0.1:9002', runtime: 'memory', atMs: 1000 });
    d.submit('t1', { ...spec, restartPolicy: 'on-failure' }, 'key');
    d.run({ op: 'task.place', term: 2, atMs: 2000, cursor: 'w1', placements: [{ taskId: 't1', attempt: 1, workerId: 'w1' }] });
    const restored = new Driver(new KvStateMachine());
    restored.sm.restore(d.sm.snapshot());
    restored.index = d.index;
    restored.seq = 100;
    // The old leader's worker failed the attempt; the new leader retries it on w2 from the restored state.
    restored.run({
      op: 'task.report', atMs: 3000,
      reports: [{ taskId: 't1', workerId: 'w1', attempt: 1, term: 2, state: 'failed', containerId: 'c1', exitCode: 1, error: { class: 'permanent', message: 'exit 1' }, retryAtMs: 3000 }],
    });
    expect(restored.sm.tasks.task('t1')).toMatchObject({ state: 'pending', attempt: 2 });
    restored.run({ op: 'task.place', term: 3, atMs: 4000, cursor: 'w2', placements: [{ taskId: 't1', attempt: 2, workerId: 'w2' }] });
    const [retry] = restored.sm.tasks.activeOn('w2').map(assignmentOf);
    expect(retry).toMatchObject({ taskId: 't1', attempt: 2, term: 3, spec: { secretEnv: { API_KEY: 'k-1', DB_PASSWORD: 'hunter2' } } });
    expect(restored.submit('t9', { ...spec, restartPolicy: 'on-failure', secretEnv: { DB_PASSWORD: 'other' } }, 'key')).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(restored.submit('t9', { ...spec, restartPolicy: 'on-failure' }, 'key')).toMatchObject({ ok: true, key: 't1' });
  });
});
