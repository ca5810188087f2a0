// The trace context's pieces without processes: traceparent parsing, spans with no SDK (the context passes through,
// nothing starts without one), the command envelope's optional tp (old entries and untraced ones encode as before, a
// bad one is dropped, never refused), the managers' memory of traced tasks and the assignments it marks, and the
// container's label and environment.
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import type { Assignment } from '../../src/contracts/worker.js';
import { decodeCommand, encodeCommand, validateCommand, type CommandEnvelope } from '../../src/kv/commands.js';
import type { AppliedCommand } from '../../src/kv/state-machine.js';
import { parseTraceparent, startSpan, traceIdOf, tracingExported } from '../../src/lib/trace.js';
import { TaskTraces, tracedWorkerApi } from '../../src/manager/tracing.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import { runSpecFor } from '../../src/worker/task-entry.js';
import { FakeManagerService } from '../api/fake-service.js';

const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('traceparent', () => {
  it('accepts W3C version 00 and later versions, and ignores anything malformed', () => {
    expect(parseTraceparent(tp)).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more')).toMatchObject({ traceFlags: 0 });
    for (const bad of [undefined, '', 'x', tp.toUpperCase(), `${tp}-extra`, tp.replace(/^00/, 'ff'), `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`]) {
      expect(parseTraceparent(bad), String(bad)).toBeNull();
    }
    expect(traceIdOf(tp)).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('without an SDK, starts nothing untraced and passes a caller\'s context on unchanged', () => {
    expect(tracingExported()).toBe(false);
    expect(startSpan('x', undefined)).toBeNull();
    const s = startSpan('x', tp);
    expect(s?.traceparent).toBe(tp);
    s?.span.end();
  });
});

describe('the command envelope\'s trace context', () => {
  const envelope: CommandEnvelope = { clientId: 'm1.abc', seq: 3, reqId: 'r1', cmd: { op: 'put', key: 'a', value: 'b' } };

  it('encodes an untraced entry exactly as before the field existed', () => {
    const packr = new Packr({ useRecords: false, moreTypes: false });
    expect(Buffer.from(encodeCommand(envelope))).toEqual(Buffer.from(packr.pack({ clientId: 'm1.abc', seq: 3, cmd: { op: 'put', key: 'a', value: 'b' }, reqId: 'r1', v: 1 })));
  });

  it('round-trips a traced one at the same version, and validates it', () => {
    const bytes = encodeCommand({ ...envelope, tp });
    expect(decodeCommand(bytes)).toEqual({ ...envelope, tp });
    expect(validateCommand(bytes)).toBeNull();
    expect(new Packr({ useRecords: false, moreTypes: false }).unpack(bytes)).toMatchObject({ v: 1, tp });
  });

  it('drops a malformed trace context instead of refusing the entry (old managers ignore the field)', () => {
    const bytes = encodeCommand({ ...envelope, tp: 'not-a-traceparent' });
    expect(decodeCommand(bytes)).toEqual(envelope);
    expect(validateCommand(bytes)).toBeNull();
  });
});

describe('TaskTraces and the traced worker API', () => {
  const applied = (env: CommandEnvelope, index = 1): AppliedCommand => ({ clientId: env.clientId, seq: env.seq, envelope: env, result: { ok: true, key: '', version: index }, fresh: true });
  const submit = (taskId: string, traced: boolean): CommandEnvelope => ({
    clientId: 'm1', seq: 1, ...(traced ? { tp } : {}), cmd: { op: 'task.submit', taskId, spec: { image: 'i' } as never, atMs: 1 },
  });
  const assignment = (taskId: string): Assignment => ({ taskId, attempt: 1, term: 2, spec: { image: 'i' } as never, desiredState: 'run' });

  it('remembers traced submissions (bounded), and marks only their assignments', async () => {
    const traces = new TaskTraces({ node: 'm1', logger: pino({ level: 'silent' }), tracedTasksMax: 2 });
    traces.applied(1, applied(submit('plain', false)));
    expect(traces.size).toBe(0);
    for (const id of ['t1', 't2', 't3']) traces.applied(2, applied(submit(id, true)));
    expect([traces.of('t1'), traces.of('t2'), traces.of('t3')]).toEqual([undefined, tp, tp]);

    const sent: Assignment[][] = [];
    const inner: WorkerApi = {
      assign: async (_w, a) => {
        sent.push([a]);
        return { taskId: a.taskId, attempt: 1, term: 2, state: 'running', containerId: 'c', exitCode: null, error: null, startedAt: null, finishedAt: null };
      },
      assignMany: async (_w, as) => {
        sent.push([...as]);
        return [];
      },
      logs: async () => '',
      followLogs: () => Promise.reject(new Error('not used here')),
    };
    const api = tracedWorkerApi(inner, traces, 'm1');
    await api.assign('w', assignment('t2'), { workerId: 'w', timeoutMs: 1 });
    await api.assignMany('w', [assignment('plain'), assignment('t3')], { workerId: 'w', timeoutMs: 1 });
    // No SDK: the assignment carries the submission's context itself.
    expect(sent.map((call) => call.map((a) => a.traceparent))).toEqual([[tp], [undefined, tp]]);
  });

  it('marks one task.running per attempt, however often a running task is reported (its health, its ports)', () => {
    const lines: string[] = [];
    const traces = new TaskTraces({ node: 'm1', logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    traces.applied(1, applied(submit('t1', true)));
    const running = (attempt: number, health?: 'starting' | 'healthy') => ({ taskId: 't1', workerId: 'w1', attempt, term: 2, state: 'running' as const, containerId: 'c', exitCode: null, error: null, retryAtMs: 0, ...(health === undefined ? {} : { health }) });
    for (const [seq, r] of [running(1), running(1, 'starting'), running(1, 'healthy'), running(2), running(2, 'healthy')].entries()) {
      traces.applied(seq + 2, applied({ clientId: 'm1', seq: seq + 2, cmd: { op: 'task.report', atMs: 1, reports: [r] } }));
    }
    const marked = lines.map((l) => JSON.parse(l) as { msg: string; attempt: number }).filter((l) => l.msg === 'traced task running');
    expect(marked.map((l) => l.attempt)).toEqual([1, 2]);
  });

  it('marks nothing for entries a restarted manager replays, yet follows their tasks on from there', () => {
    const lines: string[] = [];
    const traces = new TaskTraces({ node: 'm1', logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }) });
    traces.replayedThrough = 3;
    const report = (attempt: number, state: 'running' | 'failed') => ({ taskId: 't1', workerId: 'w1', attempt, term: 2, state, containerId: 'c', exitCode: null, error: null, retryAtMs: 0 });
    // Committed before the restart: the submission, attempt 1 running, and its failure (a retry follows).
    traces.applied(1, applied(submit('t1', true)));
    traces.applied(2, applied({ clientId: 'm1', seq: 2, cmd: { op: 'task.report', atMs: 1, reports: [report(1, 'running')] } }));
    traces.applied(3, applied({ clientId: 'm1', seq: 3, cmd: { op: 'task.report', atMs: 1, reports: [report(1, 'failed')] } }));
    expect(lines).toEqual([]);
    expect(traces.of('t1')).toBe(tp);
    // After it: attempt 2 runs, and joins the submission's trace; attempt 1 reported again marks nothing.
    traces.applied(4, applied({ clientId: 'm1', seq: 4, cmd: { op: 'task.report', atMs: 1, reports: [report(1, 'running'), report(2, 'running')] } }));
    const marked = lines.map((l) => JSON.parse(l) as { msg: string; attempt?: number; traceId?: string }).filter((l) => l.msg === 'traced task running');
    expect(marked.map((l) => l.attempt)).toEqual([2]);
  });

  it('forgets a task once it ends, and passes untraced calls through untouched', async () => {
    const traces = new TaskTraces({ node: 'm1', logger: pino({ level: 'silent' }) });
    traces.applied(1, applied(submit('t1', true)));
    const report = (state: 'running' | 'succeeded') => ({ taskId: 't1', workerId: 'w1', attempt: 1, term: 2, state, containerId: 'c', exitCode: null, error: null, retryAtMs: 0 });
    traces.applied(2, applied({ clientId: 'm1', seq: 2, cmd: { op: 'task.report', atMs: 1, reports: [report('running')] } }));
    expect(traces.of('t1')).toBe(tp);
    traces.applied(3, applied({ clientId: 'm1', seq: 3, cmd: { op: 'task.report', atMs: 1, reports: [report('succeeded')] } }));
    expect(traces.size).toBe(0);
    const a = assignment('t9');
    let seen: Assignment | null = null;
    const api = tracedWorkerApi({ assign: async (_w, x) => ((seen = x), {} as never), assignMany: async () => [], logs: async () => '', followLogs: () => Promise.reject(new Error('not used here')) }, traces, 'm1');
    await api.assign('w', a, { workerId: 'w', timeoutMs: 1 });
    expect(seen).toBe(a);
  });
});

describe('a traced container', () => {
  it('carries the start\'s context as the minkube.traceparent label and TRACEPARENT, and an untraced one neither', () => {
    const spec = { image: 'busybox', env: { A: '1' } } as never;
    const traced = runSpecFor('w1', { taskId: 't', attempt: 1, term: 1, spec }, tp);
    expect(traced.labels['minkube.traceparent']).toBe(tp);
    expect(traced.env).toEqual({ A: '1', TRACEPARENT: tp });
    const plain = runSpecFor('w1', { taskId: 't', attempt: 1, term: 1, spec });
    expect(plain.labels['minkube.traceparent']).toBeUndefined();
    expect(plain.env).toEqual({ A: '1' });
  });
});

describe('a request\'s trace context (no SDK)', () => {
  it('reaches the service as the caller sent it; none, or a malformed one, is no trace at all', async () => {
    const service = new FakeManagerService();
    const app = buildManagerApp({ service });
    try {
      for (const header of [tp, undefined, 'garbage']) {
        const res = await app.inject({ method: 'PUT', url: '/v1/kv/a', payload: { value: 'x' }, headers: header === undefined ? {} : { traceparent: header } });
        expect(res.statusCode).toBe(200);
        expect(service.calls.at(-1)!.ctx.traceparent, String(header)).toBe(header === tp ? tp : undefined);
      }
    } finally {
      await app.close();
    }
  });

  it('puts the trace id on the request\'s log lines', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const app = buildManagerApp({ service: new FakeManagerService(), logger });
    try {
      await app.inject({ method: 'GET', url: '/v1/cluster', headers: { traceparent: tp } });
      await app.inject({ method: 'GET', url: '/v1/cluster' });
      const requests = lines.filter((l) => l.msg === 'request');
      expect(requests.map((l) => l.traceId)).toEqual([traceIdOf(tp), undefined]);
    } finally {
      await app.close();
    }
  });
});
