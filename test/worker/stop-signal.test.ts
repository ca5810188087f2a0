// A task spec's stopSignal and stopTimeoutS, honoured by both real runtimes (processes, Docker) and by the worker
// agent: a task that ignores SIGTERM but exits on SIGINT stops by SIGINT (its own exit code, not a kill's); one that
// ignores every signal is killed once the spec's stopTimeoutS has passed, although the worker's own timeout is long.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Assignment } from '../../src/contracts/worker.js';
import type { TaskSpec } from '../../src/contracts/task-model.js';
import { DockerRuntime } from '../../src/runtime/docker.js';
import { ProcessRuntime } from '../../src/runtime/process.js';
import type { ContainerRuntime } from '../../src/runtime/types.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { describeDocker, removeLabelled, testImage, testLabels } from '../support/docker.js';
import { waitFor } from '../support/wait.js';

/** Ignores SIGTERM, exits 7 on SIGINT; says "ready" once its traps are set. */
const trapsInt = ['sh', '-c', 'trap "" TERM; trap "exit 7" INT; echo ready; while :; do sleep 0.1; done'];
/** Ignores every signal a stop may send but SIGKILL. */
const ignoresAll = ['sh', '-c', 'trap "" TERM INT QUIT HUP USR1 USR2; echo ready; while :; do sleep 0.1; done'];
/** Far longer than any test waits: a stop that finishes did not wait it out. */
const workerStopTimeoutMs = 600_000;
const killedExitCode = 137;

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
});

async function processRuntime(): Promise<{ runtime: ProcessRuntime; dir: string }> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'minkube-stop-signal-'));
  dirs.push(dir);
  return { runtime: new ProcessRuntime({ stateDir: dir }), dir };
}

async function ready(rt: ContainerRuntime, id: string): Promise<void> {
  await waitFor('the task to set its traps', async () => (await rt.logs(id)).includes('ready'), 60_000, 50);
}

function stopSignalTests(make: () => Promise<{ runtime: ContainerRuntime; fresh: () => ContainerRuntime; image: string; labels: Record<string, string> }>): void {
  let n = 0;
  const name = (): string => `minkube-stop-signal-${process.pid}-${Date.now()}-${++n}`;

  it('stop sends the run\'s stopSignal: SIGINT ends a task that ignores SIGTERM, with its own exit code', async () => {
    const { runtime, image, labels } = await make();
    const { id } = await runtime.run({ name: name(), image, command: trapsInt, labels, stopSignal: 'SIGINT' });
    await ready(runtime, id);
    await runtime.stop(id, workerStopTimeoutMs);
    expect((await runtime.wait(id)).exitCode).toBe(7);
    await runtime.remove(id);
  }, 120_000);

  it('a restarted worker\'s runtime stops an adopted task with the same signal', async () => {
    const { runtime, fresh, image, labels } = await make();
    const { id } = await runtime.run({ name: name(), image, command: trapsInt, labels, stopSignal: 'SIGINT' });
    await ready(runtime, id);
    const again = fresh();
    try {
      // Done within the test's timeout, far below the stop timeout: the signal ended it, with the task's own exit code
      // (Docker keeps it; a process runtime reads the file its wrapper shell wrote, the process not being its child).
      await again.stop(id, workerStopTimeoutMs);
      const info = await again.inspect(id);
      expect(info).toMatchObject({ state: 'exited', exitCode: 7 });
      await again.remove(id);
    } finally {
      await again.close();
    }
  }, 120_000);

  it('a task that ignores its stop signal is killed after the timeout', async () => {
    const { runtime, image, labels } = await make();
    const { id } = await runtime.run({ name: name(), image, command: ignoresAll, labels, stopSignal: 'SIGINT' });
    await ready(runtime, id);
    await runtime.stop(id, 1000);
    expect((await runtime.wait(id)).exitCode).toBe(killedExitCode);
    await runtime.remove(id);
  }, 120_000);

  describe('through the worker agent (spec.stopSignal, spec.stopTimeoutS)', () => {
    const agents: WorkerAgent[] = [];
    afterEach(async () => {
      await Promise.all(agents.splice(0).map((a) => a.close()));
    });
    const assignment = (taskId: string, spec: Partial<TaskSpec>, image: string, labels: Record<string, string>): Assignment => ({
      taskId, attempt: 1, term: 1, spec: { image, labels, ...spec }, desiredState: 'run',
    });

    it('SIGINT from the spec stops the task; stopTimeoutS kills one that ignores it, well before the worker\'s timeout', async () => {
      const { runtime, image, labels } = await make();
      const agent = new WorkerAgent({ workerId: `w-stop-${process.pid}`, runtime, logger, stopTimeoutMs: workerStopTimeoutMs });
      agents.push(agent);
      const suffix = `${Date.now()}`;
      const within = (): { waitUntilMs: number } => ({ waitUntilMs: performance.now() + 60_000 });
      const ids = [`polite-${suffix}`, `stubborn-${suffix}`];
      await agent.assign(assignment(ids[0]!, { command: trapsInt, stopSignal: 'SIGINT' }, image, labels), within());
      await agent.assign(assignment(ids[1]!, { command: ignoresAll, stopSignal: 'SIGINT', stopTimeoutS: 1 }, image, labels), within());
      for (const id of ids) {
        const running = await waitFor(`${id} running`, () => (agent.get(id)?.state === 'running' ? agent.get(id) : undefined), 60_000, 50);
        await ready(runtime, running.containerId!);
      }
      await Promise.all(ids.map((taskId) => agent.stop({ taskId, attempt: 1, term: 1 }, within())));
      const [a, b] = await Promise.all(ids.map((id) => waitFor(`${id} stopped`, () => (agent.get(id)?.state === 'stopped' ? agent.get(id) : undefined), 60_000, 50)));
      expect(a).toMatchObject({ state: 'stopped', exitCode: 7 });
      expect(b).toMatchObject({ state: 'stopped', exitCode: killedExitCode });
    }, 120_000);

    it('a restarted worker stops an adopted task that is no longer assigned to it within the task\'s stopTimeoutS, not the worker\'s (outside tester)', async () => {
      const { runtime, fresh, image, labels } = await make();
      const workerId = `w-restart-${process.pid}-${Date.now()}`;
      const first = new WorkerAgent({ workerId, runtime, logger, stopTimeoutMs: workerStopTimeoutMs });
      agents.push(first);
      const taskId = `stubborn-adopted-${Date.now()}`;
      await first.assign(assignment(taskId, { command: ignoresAll, stopSignal: 'SIGINT', stopTimeoutS: 1 }, image, labels), { waitUntilMs: performance.now() + 60_000 });
      const running = await waitFor(`${taskId} running`, () => (first.get(taskId)?.state === 'running' ? first.get(taskId) : undefined), 60_000, 50);
      await ready(runtime, running.containerId!);
      // The worker process goes (its containers keep running) and a new one adopts them, as after a SIGKILL.
      await first.close();
      const again = fresh();
      const second = new WorkerAgent({ workerId, runtime: again, logger, stopTimeoutMs: workerStopTimeoutMs });
      agents.push(second);
      try {
        expect(await second.adopt()).toBe(1);
        // The managers placed the task elsewhere meanwhile: no assignment hands its spec back to this worker.
        await waitFor('the reconcile stop', async () => (await second.reconcile(async () => [])).corrections.some((c) => c.kind === 'stop'), 60_000, 50);
        // Far sooner than the worker's own stop timeout: SIGKILL came 1 s after the stop signal the task ignores.
        const stopped = await waitFor(`${taskId} stopped`, () => (second.get(taskId)?.state === 'stopped' ? second.get(taskId) : undefined), 60_000, 50);
        expect(stopped.exitCode).toBe(killedExitCode);
      } finally {
        await second.close();
        await again.close();
        await again.remove(running.containerId!);
      }
    }, 120_000);
  });
}

describe('stopSignal and stopTimeoutS: process runtime', () => {
  stopSignalTests(async () => {
    const { runtime, dir } = await processRuntime();
    return { runtime, fresh: () => new ProcessRuntime({ stateDir: dir }), image: 'host', labels: { 'minkube.test': '1' } };
  });
});

describeDocker('stopSignal and stopTimeoutS: Docker runtime', () => {
  const labels = testLabels();
  afterAll(async () => {
    await removeLabelled(labels);
  });
  stopSignalTests(async () => ({ runtime: new DockerRuntime(), fresh: () => new DockerRuntime(), image: testImage, labels }));
});
