// The worker agent over the in-memory runtime: fencing, exits, failure classes, re-adoption, reconciliation, bounds.
import { createServer, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Assignment, WorkerTaskStatus } from '../../src/contracts/worker.js';
import type { TaskSpec } from '../../src/contracts/task-model.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { MemoryHost, MemoryRuntime, type MemoryBehaviour, type RunSpec, type RuntimeFailureReason } from '../../src/runtime/index.js';
import { WorkerAgent, type WorkerAgentOptions } from '../../src/worker/agent.js';
import { MemoryKeptLogs } from '../../src/worker/kept-logs.js';
import { PortAllocator } from '../../src/worker/ports.js';
import { sleep, waitFor } from '../support/wait.js';
import { rejection } from '../support/errors.js';
import { SteppedClock } from '../support/manual-clock.js';

const logger = pino({ level: 'silent' });
const agents: WorkerAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
});

/** The spec's env tells the fake runtime what the container does. */
function behave(spec: RunSpec): Partial<MemoryBehaviour> {
  const env = spec.env ?? {};
  const out: Partial<MemoryBehaviour> = { logs: env.LOGS ?? '' };
  if (env.DURATION_MS !== undefined) out.durationMs = Number(env.DURATION_MS);
  if (env.EXIT_CODE !== undefined) out.exitCode = Number(env.EXIT_CODE);
  if (env.RUN_FAILURE !== undefined) out.runFailure = env.RUN_FAILURE as RuntimeFailureReason;
  if (env.OOM === '1') out.oomKilled = true;
  return out;
}

/** A memory runtime that records every stop it is asked for: which container, how long before SIGKILL, which signal. */
class StopRecording extends MemoryRuntime {
  readonly stops: Array<{ containerId: string; timeoutMs: number; signal: NodeJS.Signals | undefined }> = [];
  override async stop(id: string, timeoutMs: number, signal?: NodeJS.Signals): Promise<void> {
    this.stops.push({ containerId: id, timeoutMs, signal });
    return super.stop(id, timeoutMs);
  }
}

function setup(opts: Partial<WorkerAgentOptions> & { host?: MemoryHost; runtime?: MemoryRuntime } = {}) {
  const runtime = opts.runtime ?? new MemoryRuntime({ host: opts.host ?? new MemoryHost(), behave });
  const agent = new WorkerAgent({ workerId: 'w1', runtime, logger, stopTimeoutMs: 50, ...opts });
  agents.push(agent);
  return { agent, runtime };
}

function assignment(taskId: string, attempt = 1, term = 1, spec: Partial<TaskSpec> = {}, desiredState: 'run' | 'stop' = 'run'): Assignment {
  return { taskId, attempt, term, spec: { image: 'busybox', ...spec }, desiredState };
}

describe('assign', () => {
  it('starts a labelled container and answers running with its id', async () => {
    const { agent, runtime } = setup();
    const status = await agent.assign(assignment('t1', 2, 7, { command: ['sleep', '9'], labels: { app: 'x', 'minkube.worker': 'evil' } }));
    expect(status).toMatchObject({ taskId: 't1', attempt: 2, term: 7, state: 'running', exitCode: null, error: null, finishedAt: null });
    expect(status.containerId).toMatch(/^m-/);
    const info = await runtime.inspect(status.containerId!);
    expect(info?.name).toBe('minkube-t1-2-7');
    expect(info?.labels).toEqual({ app: 'x', 'minkube.task': 't1', 'minkube.worker': 'w1', 'minkube.attempt': '2', 'minkube.term': '7' });
    expect(agent.get('t1')).toEqual(status);
    expect(agent.list()).toEqual([status]);
  });

  it('is idempotent for the same token: the same status, never a second container', async () => {
    const { agent, runtime } = setup();
    const first = await agent.assign(assignment('t1'));
    const again = await Promise.all([agent.assign(assignment('t1')), agent.assign(assignment('t1'))]);
    expect(again).toEqual([first, first]);
    expect(runtime.calls.run).toBe(1);
  });

  it('refuses a token older than the newest seen, by attempt and then by term', async () => {
    const { agent, runtime } = setup();
    await agent.assign(assignment('t1', 2, 5));
    const byAttempt = await rejection(agent.assign(assignment('t1', 1, 9)));
    expect(byAttempt).toMatchObject({ code: 'TASK_STALE_FENCING_TOKEN', status: 409 });
    expect(byAttempt.message).toMatch(/attempt 1 term 9 is older than attempt 2 term 5/);
    expect((await rejection(agent.assign(assignment('t1', 2, 4)))).code).toBe('TASK_STALE_FENCING_TOKEN');
    expect(runtime.calls.run).toBe(1);
    expect(agent.get('t1')).toMatchObject({ attempt: 2, term: 5, state: 'running' });
  });

  it('a newer attempt replaces the older one: the old container is stopped and removed first', async () => {
    const { agent, runtime } = setup();
    const old = await agent.assign(assignment('t1', 1, 1));
    const next = await agent.assign(assignment('t1', 2, 1));
    expect(next).toMatchObject({ attempt: 2, state: 'running' });
    expect(next.containerId).not.toBe(old.containerId);
    await waitFor('the old container removed', async () => (await runtime.inspect(old.containerId!)) === null);
    const live = await runtime.list({ 'minkube.task': 't1' });
    expect(live.map((c) => [c.id, c.state])).toEqual([[next.containerId, 'running']]);
    expect(agent.list()).toHaveLength(1);
  });

  it('answers starting when the container takes longer than the assign wait, running later', async () => {
    let release = (): void => undefined;
    const released = new Promise<void>((r) => (release = r));
    class SlowRuntime extends MemoryRuntime {
      override async run(spec: RunSpec) {
        await released; // the container starts only after the assign has answered
        return super.run(spec);
      }
    }
    const { agent } = setup({ runtime: new SlowRuntime({ behave }), assignWaitMs: 10 });
    expect(await agent.assign(assignment('t1'))).toMatchObject({ state: 'starting', containerId: null });
    release();
    await waitFor('t1 running', () => agent.get('t1').state === 'running');
    // A stop that arrives while starting stops the container once it has started.
    await agent.assign(assignment('t2'));
    const stopped = await agent.stop({ taskId: 't2', attempt: 1, term: 1 });
    expect(stopped).toMatchObject({ state: 'stopped' });
  });

  it('a stop that came while the container was starting stops it without the grace period once it has started', async () => {
    let release = (): void => undefined;
    const released = new Promise<void>((r) => (release = r));
    const stops: number[] = [];
    class SlowRuntime extends MemoryRuntime {
      override async run(spec: RunSpec) {
        await released;
        return super.run(spec);
      }
      override async stop(id: string, timeoutMs: number): Promise<void> {
        stops.push(timeoutMs);
        return super.stop(id, timeoutMs);
      }
    }
    // stopTimeoutMs 10 s: a graceful stop would wait that long for a task that ignores SIGTERM.
    const { agent } = setup({ runtime: new SlowRuntime({ behave }), assignWaitMs: 10, stopTimeoutMs: 10_000 });
    expect(await agent.assign(assignment('t1', 1, 1, { env: { DURATION_MS: '600000' } }))).toMatchObject({ state: 'starting' });
    const stopping = agent.stop({ taskId: 't1', attempt: 1, term: 1 }, { waitUntilMs: performance.now() + 5000 });
    release();
    expect(await stopping).toMatchObject({ state: 'stopped' });
    expect(stops).toEqual([0]);
    // A stop of a task that was running when asked keeps the grace period.
    await agent.assign(assignment('t2', 1, 1, { env: { DURATION_MS: '600000' } }));
    await agent.stop({ taskId: 't2', attempt: 1, term: 1 }, { waitUntilMs: performance.now() + 5000 });
    expect(stops).toEqual([0, 10_000]);
  });

  it('starts at most startConcurrency containers at once; the rest wait as starting, then run', async () => {
    let now = 0;
    let most = 0;
    class CountingRuntime extends MemoryRuntime {
      override async run(spec: RunSpec) {
        most = Math.max(most, ++now);
        await sleep(20);
        now--;
        return super.run(spec);
      }
    }
    const { agent } = setup({ runtime: new CountingRuntime({ behave }), assignWaitMs: 5, startConcurrency: 3 });
    const first = await Promise.all(Array.from({ length: 12 }, (_, i) => agent.assign(assignment(`c${i}`, 1, 1, { env: { DURATION_MS: '10000' } }))));
    expect(first.filter((s) => s.state === 'starting').length).toBeGreaterThan(0);
    await waitFor('every task running', () => agent.list().every((t) => t.state === 'running'));
    expect(most).toBe(3);
  });

  it('an assignment with desired state stop records the task as stopped without starting anything', async () => {
    const { agent, runtime } = setup();
    expect(await agent.assign(assignment('t1', 1, 1, {}, 'stop'))).toMatchObject({ state: 'stopped', containerId: null });
    expect(runtime.calls.run).toBe(0);
  });
});

describe('statuses', () => {
  it('the same status object while nothing it shows changes, a new one when it does (heartbeats compare by identity)', async () => {
    const { agent } = setup();
    await agent.assign(assignment('s1', 1, 1, { env: { DURATION_MS: '30' } }));
    const running = agent.get('s1');
    expect(agent.get('s1')).toBe(running);
    expect(agent.list().find((t) => t.taskId === 's1')).toBe(running);
    await waitFor('s1 succeeded', () => agent.get('s1').state === 'succeeded');
    const done = agent.get('s1');
    expect(done).not.toBe(running);
    expect(done).toMatchObject({ state: 'succeeded', exitCode: 0, finishedAt: expect.any(String) as string });
    expect(agent.get('s1')).toBe(done);
  });
});

describe('stop', () => {
  it('stops with the same token, refuses an older one, 404s an unknown task', async () => {
    const { agent, runtime } = setup();
    await agent.assign(assignment('t1', 3, 2));
    expect((await rejection(agent.stop({ taskId: 't1', attempt: 2, term: 9 }))).code).toBe('TASK_STALE_FENCING_TOKEN');
    expect((await rejection(agent.stop({ taskId: 'nope', attempt: 1, term: 1 }))).code).toBe('TASK_NOT_FOUND');
    const status = await agent.stop({ taskId: 't1', attempt: 3, term: 2 });
    expect(status).toMatchObject({ state: 'stopped', exitCode: 143, error: null });
    expect(status.finishedAt).not.toBeNull();
    expect(runtime.calls.stop).toBe(1);
    // Again: answers the final status.
    expect(await agent.stop({ taskId: 't1', attempt: 3, term: 2 })).toEqual(status);
    await waitFor('no container left', async () => (await runtime.list({})).length === 0);
  });

  it('a newer token stops the older attempt and fences a late assignment of the newer one', async () => {
    const { agent, runtime } = setup();
    const old = await agent.assign(assignment('t1', 1, 1));
    const status = await agent.stop({ taskId: 't1', attempt: 2, term: 1 });
    expect(status).toMatchObject({ attempt: 2, state: 'stopped', containerId: null });
    expect((await runtime.inspect(old.containerId!))?.state ?? 'exited').toBe('exited');
    // The assignment of attempt 2 arriving after its stop: the same token, so the current (stopped) status.
    expect(await agent.assign(assignment('t1', 2, 1))).toEqual(status);
    expect(runtime.calls.run).toBe(1);
  });

  it('an exit the worker saw only after a stop was asked for is the task\'s own when it ended before the ask (a paused worker)', async () => {
    // The runtime tells the exit late, as to a worker that was paused when its container ended by itself.
    let tell = (): void => undefined;
    const told = new Promise<void>((r) => (tell = r));
    class LateRuntime extends MemoryRuntime {
      override async wait(id: string, opts: { signal?: AbortSignal } = {}) {
        const status = await super.wait(id, opts);
        await told;
        return status;
      }
    }
    const { agent } = setup({ runtime: new LateRuntime({ behave }) });
    await agent.assign(assignment('t1', 1, 1, { env: { DURATION_MS: '1', EXIT_CODE: '0' } }));
    await agent.assign(assignment('t2', 1, 1, { env: { DURATION_MS: '1', EXIT_CODE: '3' } }));
    // Longer than limits.stopEndedBeforeMarginMs before the stops.
    await sleep(300);
    const stops = [agent.stop({ taskId: 't1', attempt: 1, term: 1 }, { waitUntilMs: performance.now() + 5000 }), agent.stop({ taskId: 't2', attempt: 1, term: 1 }, { waitUntilMs: performance.now() + 5000 })];
    await sleep(20);
    tell();
    const [t1, t2] = await Promise.all(stops);
    expect(t1).toMatchObject({ state: 'succeeded', exitCode: 0, error: null });
    expect(t2).toMatchObject({ state: 'failed', exitCode: 3, error: { class: 'permanent' } });
    // One that was running when the stop came is stopped, whatever code its stop left.
    await agent.assign(assignment('t3', 1, 1, { env: { DURATION_MS: '600000' } }));
    expect(await agent.stop({ taskId: 't3', attempt: 1, term: 1 }, { waitUntilMs: performance.now() + 5000 })).toMatchObject({ state: 'stopped' });
  });
});

describe('exits', () => {
  it('records exit codes, removes the container and keeps its log tail', async () => {
    const { agent, runtime } = setup();
    await agent.assign(assignment('ok', 1, 1, { env: { DURATION_MS: '10', EXIT_CODE: '0', LOGS: 'hello\nworld\n' } }));
    await agent.assign(assignment('bad', 1, 1, { env: { DURATION_MS: '10', EXIT_CODE: '3', LOGS: 'oops\n' } }));
    await waitFor('no task running', () => agent.list().every((s) => s.state !== 'running'));
    expect(agent.get('ok')).toMatchObject({ state: 'succeeded', exitCode: 0, error: null });
    expect(agent.get('bad')).toMatchObject({ state: 'failed', exitCode: 3, error: { class: 'permanent', message: 'the container exited with code 3' } });
    await waitFor('no container left', async () => (await runtime.list({})).length === 0);
    expect(await agent.logs('ok', 1000)).toBe('hello\nworld\n');
    expect(await agent.logs('ok', 1)).toBe('world\n');
    expect(await agent.logs('bad', 10)).toBe('oops\n');
  });

  it('names a kill by the OOM killer, with the memory limit when the spec gives one, watched or found exited at a restart', async () => {
    const host = new MemoryHost();
    const { agent } = setup({ host });
    await agent.assign(assignment('big', 1, 1, { env: { DURATION_MS: '10', OOM: '1' }, resources: { memoryMb: 16 } }));
    await agent.assign(assignment('host', 1, 1, { env: { DURATION_MS: '10', OOM: '1' } }));
    await waitFor('both ended', () => agent.list().every((s) => s.state === 'failed'));
    expect(agent.get('big')).toMatchObject({ exitCode: 137, error: { class: 'permanent', message: 'the container was killed for exceeding its memory limit of 16 MiB (exit code 137)' } });
    expect(agent.get('host').error?.message).toBe("the container was killed by the kernel's OOM killer (out of memory; exit code 137)");
    // Killed while no worker watched: the restarted one finds it exited (it knows only the image until a reconcile).
    await agent.assign(assignment('unwatched', 1, 1, { env: { DURATION_MS: '100', OOM: '1' }, resources: { memoryMb: 16 } }));
    await agent.close();
    await waitFor('unwatched killed', async () => (await new MemoryRuntime({ host }).list({ 'minkube.task': 'unwatched' })).some((c) => c.state === 'exited'));
    const second = setup({ host });
    await second.agent.adopt();
    expect(second.agent.get('unwatched')).toMatchObject({ state: 'failed', exitCode: 137, error: { message: "the container was killed by the kernel's OOM killer (out of memory; exit code 137)" } });
  });

  it('keeps the last 64 KiB of a finished task\'s output however many lines they hold', async () => {
    const { agent, runtime } = setup();
    const lines = Array.from({ length: 20_000 }, (_, i) => `line-${String(i).padStart(5, '0')}\n`);
    await agent.assign(assignment('chatty', 1, 1, { env: { DURATION_MS: '300', LOGS: lines.join('') } }));
    expect((await agent.logs('chatty', 100_000)).split('\n').length - 1).toBe(20_000);
    await waitFor('its container removed', async () => (await runtime.list({})).length === 0);
    const kept = await agent.logs('chatty', 100_000);
    expect(kept).toBe(lines.slice(-Math.floor((64 * 1024) / 11)).join(''));
    expect(Buffer.byteLength(kept)).toBeGreaterThan(64 * 1024 - 11);
  });

  it('reads the logs of a running container from the runtime', async () => {
    const { agent } = setup();
    await agent.assign(assignment('t1', 1, 1, { env: { LOGS: 'a\nb\nc\n' } }));
    expect(await agent.logs('t1', 2)).toBe('b\nc\n');
    expect((await rejection(agent.logs('nope', 2))).code).toBe('TASK_NOT_FOUND');
  });

  it.each<[RuntimeFailureReason, 'permanent' | 'transient']>([
    ['image-not-found', 'permanent'],
    ['invalid-spec', 'permanent'],
    ['daemon-unreachable', 'transient'],
    ['out-of-space', 'transient'],
  ])('a start failing with %s is failed with a %s error', async (reason, failureClass) => {
    const { agent } = setup();
    const status = await agent.assign(assignment('t1', 1, 1, { env: { RUN_FAILURE: reason } }));
    expect(status).toMatchObject({ state: 'failed', containerId: null, exitCode: null, error: { class: failureClass } });
    expect(status.error?.message).toContain(reason);
  });
});

describe('health checks', () => {
  it('a tcp check connects to the host the task\'s port is advertised on (the worker\'s API host)', async () => {
    // The task binds its port on the API host alone (127.0.0.3), not on 127.0.0.1.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.3', () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      const ports = new PortAllocator({ min: port, max: port }, '127.0.0.3', new SeededRandom(1), async () => true);
      const { agent } = setup({ ports });
      const healthCheck = { type: 'tcp' as const, port: 'http', intervalS: 1, timeoutS: 1, retries: 1, startPeriodS: 0 };
      const status = await agent.assign(assignment('web', 1, 1, { command: ['sleep', '9'], ports: [{ name: 'http' }], healthCheck }));
      expect(status.ports).toEqual([{ name: 'http', hostPort: port, address: `127.0.0.3:${port}` }]);
      await waitFor('the replica healthy', () => agent.get('web').health === 'healthy');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('re-adoption after a restart', () => {
  it('a new agent on the same runtime re-adopts running containers and records the exits it missed', async () => {
    const host = new MemoryHost();
    const first = setup({ host });
    const running = await first.agent.assign(assignment('long', 4, 2, { command: ['sleep', '99'] }));
    await first.agent.assign(assignment('short', 1, 1, { env: { DURATION_MS: '30', EXIT_CODE: '4', LOGS: 'bye\n' } }));
    await first.agent.close();
    // "short" exits while no agent watches.
    await waitFor('short exited', async () => (await first.runtime.list({ 'minkube.task': 'short' })).some((c) => c.state === 'exited'));

    const second = setup({ host });
    expect(await second.agent.adopt()).toBe(2);
    expect(second.agent.get('long')).toMatchObject({ attempt: 4, term: 2, state: 'running', containerId: running.containerId });
    expect(second.agent.get('short')).toMatchObject({ state: 'failed', exitCode: 4 });
    expect(await second.agent.logs('short', 10)).toBe('bye\n');
    expect(await second.runtime.list({ 'minkube.task': 'short' })).toEqual([]);
    // The same assignment again is idempotent; the adopted container is watched again.
    expect(await second.agent.assign(assignment('long', 4, 2))).toMatchObject({ containerId: running.containerId });
    expect(second.runtime.calls.run).toBe(0);
    await second.runtime.stop(running.containerId!, 0);
    await waitFor('long failed', () => second.agent.get('long').state === 'failed');
    expect(second.agent.get('long').exitCode).toBe(143);
  });

  it("a stop of an adopted task uses the stopTimeoutS of the stop's spec, which the adopted entry did not know", async () => {
    const host = new MemoryHost();
    const first = setup({ host, stopTimeoutMs: 10_000 });
    await first.agent.assign(assignment('slow-stop', 1, 1, { command: ['sleep', '99'], stopTimeoutS: 2 }));
    await first.agent.close();
    const runtime = new StopRecording({ host, behave });
    const second = setup({ host, stopTimeoutMs: 10_000, runtime });
    expect(await second.agent.adopt()).toBe(1);
    expect(await second.agent.assign(assignment('slow-stop', 1, 1, { command: ['sleep', '99'], stopTimeoutS: 2 }, 'stop'))).toMatchObject({ state: 'stopped' });
    expect(runtime.stops.map((x) => x.timeoutMs)).toEqual([2000]);
  });

  it("a restarted worker's reconcile stop of an adopted task no longer assigned to it uses the task's stopSignal and stopTimeoutS (outside tester)", async () => {
    const host = new MemoryHost();
    const first = setup({ host, stopTimeoutMs: 10_000 });
    const own = await first.agent.assign(assignment('own-stop', 1, 1, { command: ['sleep', '99'], stopSignal: 'SIGINT', stopTimeoutS: 3 }));
    const plain = await first.agent.assign(assignment('default-stop', 1, 1, { command: ['sleep', '99'] }));
    // Made by a build that did not record the stop: today's default applies to it.
    const older = await first.runtime.run({ name: 'older', image: 'busybox', labels: { 'minkube.worker': 'w1', 'minkube.task': 'older', 'minkube.attempt': '1', 'minkube.term': '1' } });
    // An older attempt of own-stop's task, made with a stop of its own: removed as an orphan, stopped its way.
    const stale = await first.runtime.run({ name: 'stale', image: 'busybox', labels: { 'minkube.worker': 'w1', 'minkube.task': 'own-stop', 'minkube.attempt': '0', 'minkube.term': '1', 'minkube.stop-signal': 'SIGQUIT', 'minkube.stop-timeout-s': '1' } });
    await first.agent.close();

    const clock = new SteppedClock();
    const recording = new StopRecording({ host, behave });
    const second = setup({ host, clock, stopTimeoutMs: 10_000, runtime: recording });
    expect(await second.agent.adopt()).toBe(3);
    clock.step(5); // adopted before the list was taken
    // The managers placed all of them elsewhere meanwhile: none comes back with a spec.
    const report = await second.agent.reconcile(async () => []);
    expect(report.corrections.map((c) => c.kind).sort()).toEqual(['remove-orphan', 'stop', 'stop', 'stop']);
    await waitFor('every copy stopped', () => ['own-stop', 'default-stop', 'older'].every((t) => second.agent.get(t).state === 'stopped'));
    await waitFor('the stale copy removed', async () => (await second.runtime.inspect(stale.id)) === null);
    const byContainer = Object.fromEntries(recording.stops.map((s) => [s.containerId, { timeoutMs: s.timeoutMs, signal: s.signal }]));
    expect(byContainer).toEqual({
      [own.containerId!]: { timeoutMs: 3000, signal: 'SIGINT' },
      [plain.containerId!]: { timeoutMs: 10_000, signal: undefined },
      [older.id]: { timeoutMs: 10_000, signal: undefined },
      [stale.id]: { timeoutMs: 1000, signal: 'SIGQUIT' },
    });
  });

  it('a malformed stop label is no stop of the task: the default applies', async () => {
    const host = new MemoryHost();
    const runtime = new StopRecording({ host, behave });
    for (const [n, timeout] of ['x', '-1', '3601', '1e3'].entries()) {
      await runtime.run({ name: `bad-${n}`, image: 'busybox', labels: { 'minkube.worker': 'w1', 'minkube.task': `bad-${n}`, 'minkube.attempt': '1', 'minkube.term': '1', 'minkube.stop-timeout-s': timeout, 'minkube.stop-signal': 'SIGSEGV' } });
    }
    const clock = new SteppedClock();
    const { agent } = setup({ host, clock, stopTimeoutMs: 10_000, runtime });
    expect(await agent.adopt()).toBe(4);
    clock.step(5);
    await agent.reconcile(async () => []);
    await waitFor('all stopped', () => [0, 1, 2, 3].every((n) => agent.get(`bad-${n}`).state === 'stopped'));
    expect(runtime.stops.map((x) => x.timeoutMs)).toEqual([10_000, 10_000, 10_000, 10_000]);
  });

  it('a restarted worker still answers the output of tasks whose containers the previous run removed, until their retention or a forget', async () => {
    const host = new MemoryHost();
    const kept = new MemoryKeptLogs();
    const clock = new SteppedClock();
    const first = setup({ host, keptLogs: kept, clock, finishedRetentionMs: 60_000 });
    await first.agent.assign(assignment('done', 2, 1, { env: { DURATION_MS: '5', EXIT_CODE: '3', LOGS: 'why it failed\n' } }));
    await first.agent.assign(assignment('other', 1, 1, { env: { DURATION_MS: '5', LOGS: 'fine\n' } }));
    await waitFor('both containers removed', async () => (await first.runtime.list({})).length === 0 && kept.logs.size === 2);
    await first.agent.close();

    // The restart: no container, no entry; the kept tails answer.
    const second = setup({ host, keptLogs: kept, clock, finishedRetentionMs: 60_000 });
    await second.agent.adopt();
    expect(await second.agent.restoreKeptLogs()).toBe(2);
    expect(second.agent.list()).toEqual([]);
    expect(await second.agent.logs('done', 10)).toBe('why it failed\n');
    // The managers removed one record: forgotten here and on disk.
    second.agent.forget(['other']);
    expect((await rejection(second.agent.logs('other', 10))).code).toBe('TASK_NOT_FOUND');
    await waitFor('the forgotten tail deleted', () => !kept.logs.has('other'));
    // Past its retention (counted from its end) the last one goes too, at the next reconciliation.
    clock.step(60_000);
    await second.agent.reconcile(async () => []);
    expect((await rejection(second.agent.logs('done', 10))).code).toBe('TASK_NOT_FOUND');
    await waitFor('the expired tail deleted', () => kept.logs.size === 0);

    // A third start finds nothing left, and one past its retention already is deleted at once.
    await kept.save({ taskId: 'old', attempt: 1, finishedAtMs: clock.nowMs() - 61_000, text: 'x' });
    const third = setup({ host, keptLogs: kept, clock, finishedRetentionMs: 60_000 });
    expect(await third.agent.restoreKeptLogs()).toBe(0);
    await waitFor('the stale tail deleted', () => kept.logs.size === 0);
  });

  it('a restarted worker answers the empty output of an attempt that never started, as before it restarted', async () => {
    const host = new MemoryHost();
    const kept = new MemoryKeptLogs();
    const clock = new SteppedClock();
    const first = setup({ host, keptLogs: kept, clock, finishedRetentionMs: 60_000 });
    expect(await first.agent.assign(assignment('never', 1, 1, { env: { RUN_FAILURE: 'command-not-found' } }))).toMatchObject({ state: 'failed', containerId: null });
    expect(await first.agent.logs('never', 10)).toBe('');
    await waitFor('its (empty) output kept', () => kept.logs.has('never'));
    await first.agent.close();

    const second = setup({ host, keptLogs: kept, clock, finishedRetentionMs: 60_000 });
    await second.agent.adopt();
    expect(await second.agent.restoreKeptLogs()).toBe(1);
    expect(await second.agent.logs('never', 10)).toBe('');
    // Until its retention, as any attempt's output.
    clock.step(60_000);
    await second.agent.reconcile(async () => []);
    expect((await rejection(second.agent.logs('never', 10))).code).toBe('TASK_NOT_FOUND');
  });

  it("two clusters' workers of one id on one engine (two instances) neither adopt nor remove each other's containers", async () => {
    const host = new MemoryHost();
    const a = setup({ host, instance: 'aaaaaaaaaaaa' });
    const theirs = await a.agent.assign(assignment('a-task', 1, 1, { command: ['sleep', '99'] }));
    expect((await a.runtime.inspect(theirs.containerId!))?.labels['minkube.instance']).toBe('aaaaaaaaaaaa');
    const b = setup({ host, instance: 'bbbbbbbbbbbb' });
    expect(await b.agent.adopt()).toBe(0);
    expect(b.agent.list()).toEqual([]);
    // B's managers assign it nothing: A's container is no orphan of B's.
    expect(await b.agent.reconcile(async () => [])).toMatchObject({ reached: true, corrections: [] });
    expect(await b.runtime.inspect(theirs.containerId!)).toMatchObject({ state: 'running' });
    expect(a.agent.get('a-task')).toMatchObject({ state: 'running' });
  });
});

describe('instances of a process worker', () => {
  it("are one owner: a copy an earlier instance left (its data directory emptied since) is adopted, and removed once stale", async () => {
    const host = new MemoryHost();
    const processRuntime = (): MemoryRuntime => Object.defineProperty(new MemoryRuntime({ host, behave }), 'kind', { value: 'process' });
    const a = setup({ runtime: processRuntime(), instance: 'aaaaaaaaaaaa' });
    const old = await a.agent.assign(assignment('t1', 1, 1, { command: ['sleep', '99'] }));
    const b = setup({ runtime: processRuntime(), instance: 'bbbbbbbbbbbb' });
    // The process runtime's records are this worker's data directory's: whatever instance made them, they are its own.
    expect(await b.agent.adopt()).toBe(1);
    const report = await b.agent.reconcile(async () => [assignment('t1', 2, 2, { command: ['sleep', '99'] })]);
    expect(report.corrections.map((c) => c.kind).sort()).toEqual(['start']);
    await waitFor('the copy of attempt 1 to be stopped', async () => (await b.runtime.inspect(old.containerId!))?.state !== 'running');
    await waitFor('attempt 2 to run', () => b.agent.get('t1')?.state === 'running');
    expect(b.agent.get('t1')).toMatchObject({ attempt: 2 });
  });
});

describe('reconcile', () => {
  it('wakes a watch whose wait missed the exit (a cut engine connection) once it lists the container exited', async () => {
    /** Its first wait never answers, as a wait whose connection was cut did: only its signal ends it. */
    class DeafRuntime extends MemoryRuntime {
      private deaf = true;
      override async wait(id: string, opts: { signal?: AbortSignal } = {}): ReturnType<MemoryRuntime['wait']> {
        if (!this.deaf) return super.wait(id, opts);
        this.deaf = false;
        return new Promise((_, reject) => opts.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')), { once: true }));
      }
    }
    const runtime = new DeafRuntime({ host: new MemoryHost(), behave });
    const { agent } = setup({ runtime });
    const a = assignment('missed', 1, 1, { env: { DURATION_MS: '10', EXIT_CODE: '0' } });
    await agent.assign(a);
    await waitFor('the container exited', async () => (await runtime.list({ 'minkube.task': 'missed' })).some((c) => c.state === 'exited'));
    expect(agent.get('missed').state).toBe('running');
    const report = await agent.reconcile(async () => [a]);
    expect(report.corrections.map((c) => c.kind)).toEqual(['exited']);
    await waitFor('the exit seen', () => agent.get('missed').state !== 'running');
    expect(agent.get('missed')).toMatchObject({ state: 'succeeded', exitCode: 0 });
  });

  it('starts what is missing, stops what is not assigned, removes orphans, and leaves other workers alone', async () => {
    const clock = new SteppedClock();
    const { agent, runtime } = setup({ clock });
    await agent.assign(assignment('keep'));
    await agent.assign(assignment('unwanted'));
    await agent.assign(assignment('old', 1, 1));
    await agent.assign(assignment('to-stop'));
    const orphan = await runtime.run({ name: 'ghost', image: 'x', labels: { 'minkube.worker': 'w1', 'minkube.task': 'ghost', 'minkube.attempt': '1', 'minkube.term': '1' } });
    const foreign = await runtime.run({ name: 'other', image: 'x', labels: { 'minkube.worker': 'w2' } });
    clock.step(5); // everything above was there before the list was taken

    const list = [assignment('keep'), assignment('new'), assignment('old', 2, 3), assignment('to-stop', 1, 1, {}, 'stop'), assignment('never-seen', 1, 1, {}, 'stop')];
    const report = await agent.reconcile(async () => list);
    expect(report.reached).toBe(true);
    const kinds = report.corrections.map((c) => `${c.kind}:${'assignment' in c ? c.assignment.taskId : 'token' in c ? c.token.taskId : 'container' in c ? c.container.id : c.taskId}`);
    expect(kinds.sort()).toEqual(['remove-orphan:' + orphan.id, 'start:new', 'start:old', 'stop:to-stop', 'stop:unwanted'].sort());

    await waitFor('new and old running', () => agent.get('new').state === 'running' && agent.get('old').state === 'running');
    expect(agent.get('old')).toMatchObject({ attempt: 2, term: 3 });
    await waitFor('unwanted and to-stop stopped', () => agent.get('unwanted').state === 'stopped' && agent.get('to-stop').state === 'stopped');
    expect(agent.get('keep').state).toBe('running');
    expect(await runtime.inspect(orphan.id)).toBeNull();
    expect((await runtime.inspect(foreign.id))?.state).toBe('running');
    expect(() => agent.get('never-seen')).toThrow(/no task never-seen/);

    // A second pass finds nothing to correct.
    await waitFor('three containers of w1', async () => (await runtime.list({ 'minkube.worker': 'w1' })).length === 3);
    expect((await agent.reconcile(async () => list)).corrections).toEqual([]);
  });

  it('changes nothing when no manager answers', async () => {
    const clock = new SteppedClock();
    const { agent, runtime } = setup({ clock });
    await agent.assign(assignment('t1'));
    await runtime.run({ name: 'ghost', image: 'x', labels: { 'minkube.worker': 'w1' } });
    const before = { statuses: agent.list(), calls: { ...runtime.calls } };
    clock.step(5); // t1 and the ghost were there before the (failed) list, so an answer would have judged them
    const report = await agent.reconcile(async () => {
      throw new MinkubeError('UNREACHABLE', 'no manager answered');
    });
    expect(report).toEqual({ reached: false, corrections: [], evicted: 0 });
    expect(agent.list()).toEqual(before.statuses);
    expect(runtime.calls).toEqual(before.calls);
    expect(await runtime.list({})).toHaveLength(2);
  });

  it('does not judge a task assigned after the list was fetched', async () => {
    const { agent } = setup();
    let lateStatus: WorkerTaskStatus | undefined;
    const report = await agent.reconcile(async () => {
      // Assigned by the leader while the (older) list was on its way.
      lateStatus = await agent.assign(assignment('late'));
      return [];
    });
    expect(lateStatus?.state).toBe('running');
    expect(report.corrections).toEqual([]);
    expect(agent.get('late').state).toBe('running');
  });
});

describe('bounds', () => {
  it('refuses a task past tasksMax until finished ones are acknowledged and evicted', async () => {
    const clock = new SteppedClock();
    const { agent } = setup({ tasksMax: 2, finishedRetentionMs: 0, clock });
    await agent.assign(assignment('a', 1, 1, { env: { DURATION_MS: '5' } }));
    await agent.assign(assignment('b'));
    const full = await rejection(agent.assign(assignment('c')));
    expect(full).toMatchObject({ code: 'WORKER_FULL', status: 429 });
    await waitFor('a succeeded', () => agent.get('a').state === 'succeeded');
    clock.step(5); // a finished before the lists below were taken
    // Still listed: not acknowledged, so not evicted.
    expect((await agent.reconcile(async () => [assignment('a'), assignment('b')])).evicted).toBe(0);
    expect((await rejection(agent.assign(assignment('c')))).code).toBe('WORKER_FULL');
    // No longer listed: acknowledged, evicted after the (zero) retention.
    expect((await agent.reconcile(async () => [assignment('b')])).evicted).toBe(1);
    expect(await agent.assign(assignment('c'))).toMatchObject({ state: 'running' });
    expect(agent.list().map((s) => s.taskId).sort()).toEqual(['b', 'c']);
  });

  it('keeps a finished task through its retention time', async () => {
    const clock = new SteppedClock();
    const { agent } = setup({ finishedRetentionMs: 60_000, clock });
    await agent.assign(assignment('a', 1, 1, { env: { DURATION_MS: '5' } }));
    await waitFor('a succeeded', () => agent.get('a').state === 'succeeded');
    clock.step(5); // a finished before the list was taken: acknowledged, but within its retention
    expect((await agent.reconcile(async () => [])).evicted).toBe(0);
    expect(agent.get('a').state).toBe('succeeded');
  });
});
