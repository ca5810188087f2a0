// Two processes of one Docker worker id on one Docker engine, end to end with real processes (bin/minkube.js): a
// second process started with another data directory and address (a restart with an emptied data directory while the
// old one was frozen, or a copy of the worker on the same host) registers, adopts the running container, and the first
// is answered WORKER_REPLACED and exits 1. Before the fix the first one stopped the container on its way out, and the
// newer one reported the stop's 137 as the task's own failure (restartPolicy never: failed). describeDocker: skipped
// without Docker, failed under MINKUBE_REQUIRE_DOCKER=1.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/contracts/task-model.js';
import { sandboxNameFor } from '../../src/runtime/docker.js';
import { workerInstanceFile } from '../../src/worker/instance.js';
import { ProcCluster, eventually } from '../support/cluster.js';
import { describeDocker, removeContainersNamed, removeLabelled, testImage, testLabels } from '../support/docker.js';

const labels = testLabels();
const tasks = { workerHeartbeatIntervalMs: 200, workerTtlMs: 8000, lostGraceMs: 2000, reconcileIntervalMs: 500, stopTimeoutMs: 2000 };
/** The addresses this test keeps to (a machine other tests share): managers and workers on 127.0.61.x, ports 20000-29999. */
const net = { hostPrefix: '127.0.61.', workerHost: '127.0.61.1', ports: { min: 20000, max: 29999 } };

describeDocker('two processes of one Docker worker id on one engine (real processes)', () => {
  let c: ProcCluster | undefined;
  /** Each process's network sandbox, named after the instance in its data directory: read before the directory goes. */
  const sandboxes = (): string[] =>
    ['w1', 'w1b'].flatMap((dir) => {
      try {
        return [sandboxNameFor('w1', readFileSync(join(c!.dir, dir, workerInstanceFile), 'utf8').trim())];
      } catch {
        return [];
      }
    });

  beforeAll(async () => {
    c = await ProcCluster.create({ managers: 1, workers: 1, workerRuntime: 'docker', ...net, extra: { tasks } });
    c.startAll();
    await c.waitForLeader({ timeoutMs: 60_000 });
    await c.waitForReadyWorkers(1, { timeoutMs: 60_000 });
  }, 120_000);

  afterAll(async () => {
    const made = c === undefined ? [] : sandboxes();
    await c?.cleanup();
    await removeLabelled(labels);
    await removeContainersNamed(made);
  });

  async function task(id: string): Promise<TaskRecord> {
    const r = await c!.http('m1', 'GET', `/v1/tasks/${id}`);
    if (r.status !== 200) throw new Error(`GET /v1/tasks/${id}: ${r.status}`);
    return r.body as unknown as TaskRecord;
  }

  it('the replaced process exits 1 and leaves the container to the newer one, under which the task runs on and ends stopped', async () => {
    const cluster = c!;
    const docker = new Docker();
    const submitted = await cluster.http('m1', 'POST', '/v1/tasks', { image: testImage, command: ['sleep', '600'], restartPolicy: 'never', labels });
    expect(submitted.status).toBe(201);
    const id = submitted.body.id as string;
    const first = await eventually(async () => {
      const t = await task(id);
      return t.state === 'running' && t.containerId !== null ? t : undefined;
    }, 60_000, 'the task running on w1');
    const containerId = first.containerId!;
    const { HostConfig } = await docker.getContainer(containerId).inspect();
    const firstInstance = readFileSync(join(cluster.dir, 'w1', workerInstanceFile), 'utf8').trim();

    // Another process of w1 on this engine: its own data directory (another instance) and address.
    const older = cluster.node('w1').proc!;
    const olderExit = new Promise<number | null>((resolve) => older.once('exit', (code) => resolve(code)));
    const copy = await cluster.addWorkerCopy('w1b', 'w1', '127.0.61.2');
    cluster.start('w1b');

    expect(await olderExit).toBe(1);
    const olderLog = readFileSync(join(cluster.dir, 'w1.log'), 'utf8');
    expect(olderLog).toContain('WORKER_REPLACED');
    expect(olderLog).toContain('this worker was replaced by another instance of its id on this same Docker engine: its containers are left to it; exiting');
    const worker = await cluster.http('m1', 'GET', '/v1/workers/w1');
    expect(worker.body).toMatchObject({ state: 'ready', apiAddress: copy.apiUrl.replace('http://', '') });
    expect(worker.body.instance).not.toBe(firstInstance);

    // The older process is gone and its container runs on, the task's one attempt, held by the newer process; the
    // sandbox whose network it may be in runs on too.
    expect((await docker.getContainer(containerId).inspect()).State).toMatchObject({ Running: true });
    if (HostConfig.NetworkMode?.startsWith('container:') === true) {
      const sandbox = await docker.getContainer(sandboxNameFor('w1', firstInstance)).inspect();
      expect(HostConfig.NetworkMode).toBe(`container:${sandbox.Id}`);
      expect(sandbox.State).toMatchObject({ Running: true });
    }
    await eventually(async () => {
      const r = await cluster.http('w1b', 'GET', `/v1/tasks/${id}`);
      return r.status === 200 && r.body.state === 'running' && r.body.containerId === containerId ? true : undefined;
    }, 30_000, 'the newer process holding the task');
    expect(await task(id)).toMatchObject({ state: 'running', attempt: 1, workerId: 'w1', containerId });

    // Stopped by the cluster, it ends stopped: its one attempt, never failed with the 137 of a stop it did not ask for.
    expect((await cluster.http('m1', 'DELETE', `/v1/tasks/${id}`)).status).toBe(200);
    const ended = await eventually(async () => {
      const t = await task(id);
      return ['succeeded', 'failed', 'stopped'].includes(t.state) ? t : undefined;
    }, 30_000, 'the task ended');
    expect(ended).toMatchObject({ state: 'stopped', attempt: 1 });
    expect(ended.history.some((h) => h.state === 'failed')).toBe(false);
    expect(cluster.node('w1b').proc).not.toBeNull();
  }, 180_000);
});
