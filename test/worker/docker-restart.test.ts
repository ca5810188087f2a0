// A Docker worker restarted (SIGKILL, or with its data directory emptied: a new instance) against the containers the
// engine really holds: it never leaves a stale copy of one of its tasks running beside the current attempt, whatever
// instance made it, and never starts an attempt again under the same token after its container was removed.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, afterEach, expect, it } from 'vitest';
import type { Assignment, AssignmentList } from '../../src/contracts/worker.js';
import { DockerRuntime } from '../../src/runtime/docker.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { labelWorker } from '../../src/worker/task-entry.js';
import { describeDocker, removeLabelled, testImage, testLabels } from '../support/docker.js';
import { waitFor } from '../support/wait.js';

const logger = pino({ level: 'silent' });
const labels = testLabels();
const deadlineMs = 60_000;

afterAll(async () => {
  await removeLabelled(labels);
});

describeDocker('a restarted Docker worker and the containers of its worker id', () => {
  const agents: WorkerAgent[] = [];
  const runtimes: DockerRuntime[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.close()));
    await Promise.all(runtimes.splice(0).map((r) => r.close()));
  });

  /** A worker process: its own runtime client (as after a restart) and agent, `instance` as its data directory says. */
  function start(workerId: string, instance: string): { agent: WorkerAgent; runtime: DockerRuntime } {
    const runtime = new DockerRuntime();
    const agent = new WorkerAgent({ workerId, instance, runtime, logger, stopTimeoutMs: 1000 });
    runtimes.push(runtime);
    agents.push(agent);
    return { agent, runtime };
  }

  const sleeper = (taskId: string, attempt: number, extra: Partial<Assignment> = {}): Assignment => ({
    taskId, attempt, term: 4, spec: { image: testImage, command: ['sh', '-c', 'echo first-run; sleep 600'], labels }, desiredState: 'run', ...extra,
  });

  /** The managers' GET assignments: these items, and of the task ids asked, those of `cluster` (the record exists). */
  function managers(items: Assignment[], cluster: readonly string[]): { fetch: (ask: readonly string[]) => Promise<AssignmentList>; asked: string[][] } {
    const asked: string[][] = [];
    return {
      asked,
      fetch: async (ask) => {
        if (ask.length > 0) asked.push([...ask]);
        return { items, knownTaskIds: ask.filter((id) => cluster.includes(id)) };
      },
    };
  }

  async function runningIn(runtime: DockerRuntime, workerId: string): Promise<string[]> {
    const all = await runtime.list({ [labelWorker]: workerId });
    return all.filter((c) => c.state === 'running').map((c) => c.name).sort();
  }

  it('with its data directory emptied (a new instance), it stops the older attempt and the ended tasks an earlier instance left running', async () => {
    const workerId = `w-dup-${randomBytes(4).toString('hex')}`;
    const [current, ended] = [`t${randomBytes(5).toString('hex')}a`, `t${randomBytes(5).toString('hex')}b`];
    const old = start(workerId, 'aaaaaaaaaaaa');
    await old.agent.assign(sleeper(current, 1), { waitUntilMs: performance.now() + deadlineMs });
    await old.agent.assign(sleeper(ended, 2), { waitUntilMs: performance.now() + deadlineMs });
    await waitFor('both running', () => old.agent.list().every((s) => s.state === 'running') && old.agent.list().length === 2, deadlineMs, 50);
    // The process goes (SIGTERM or SIGKILL: its containers keep running), and `rm data/w1/worker-instance`.
    await old.agent.close();

    const next = start(workerId, 'bbbbbbbbbbbb');
    await next.agent.adopt();
    // The managers found it lost meanwhile: `current` is placed here again as attempt 2; `ended` failed for good, and
    // the managers say they know it (its record is still there).
    const cluster = managers([sleeper(current, 2)], [current, ended]);
    await waitFor('the stale copies gone and attempt 2 running', async () => {
      await next.agent.reconcile(cluster.fetch);
      const names = await runningIn(next.runtime, workerId);
      return names.length === 1 && names[0] === `minkube-${current}-2-4`;
    }, deadlineMs, 200);
    expect(next.agent.get(current)).toMatchObject({ attempt: 2, state: 'running' });
    // Only the task it knew nothing of was asked about.
    expect(cluster.asked).toEqual([[ended]]);
  }, 180_000);

  it("leaves another cluster's worker of the same name alone: a task the managers do not know", async () => {
    const workerId = `w-dup-${randomBytes(4).toString('hex')}`;
    const foreign = `t${randomBytes(5).toString('hex')}f`;
    const other = start(workerId, 'cccccccccccc');
    await other.agent.assign(sleeper(foreign, 1), { waitUntilMs: performance.now() + deadlineMs });
    await waitFor('running', () => other.agent.get(foreign).state === 'running', deadlineMs, 50);

    const ours = start(workerId, 'dddddddddddd');
    await ours.agent.adopt();
    const cluster = managers([], []);
    for (let pass = 0; pass < 4; pass++) expect((await ours.agent.reconcile(cluster.fetch)).corrections).toEqual([]);
    expect(await runningIn(ours.runtime, workerId)).toEqual([`minkube-${foreign}-1-4`]);
    // Asked once: the managers' "not ours" is for good (task ids are never reused).
    expect(cluster.asked).toEqual([[foreign]]);
  }, 180_000);

  it('an attempt whose container was removed while the worker was down is reported failed (outcome unknown), not run again', async () => {
    const workerId = `w-dup-${randomBytes(4).toString('hex')}`;
    const taskId = `t${randomBytes(5).toString('hex')}r`;
    const first = start(workerId, 'eeeeeeeeeeee');
    await first.agent.assign(sleeper(taskId, 1), { waitUntilMs: performance.now() + deadlineMs });
    const running = await waitFor('running', () => (first.agent.get(taskId).state === 'running' ? first.agent.get(taskId) : undefined), deadlineMs, 50);
    await first.agent.close();
    // `docker rm -f` while the worker is down.
    await first.runtime.remove(running.containerId!);

    const again = start(workerId, 'eeeeeeeeeeee');
    expect(await again.agent.adopt()).toBe(0);
    // The managers' record says it runs here (the worker had reported it running).
    const report = await again.agent.reconcile(async () => [sleeper(taskId, 1, { started: true })]);
    expect(report.corrections.map((c) => c.kind)).toEqual(['gone']);
    expect(again.agent.get(taskId)).toMatchObject({ attempt: 1, state: 'failed', containerId: null, error: { class: 'transient' } });
    expect(again.agent.get(taskId).error?.message).toContain('its outcome is unknown');
    // Later passes change nothing, and no container was made again.
    expect((await again.agent.reconcile(async () => [sleeper(taskId, 1, { started: true })])).corrections).toEqual([]);
    expect(await runningIn(again.runtime, workerId)).toEqual([]);
  }, 180_000);
});
