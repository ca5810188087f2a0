// A Docker worker whose connection to the engine is cut and comes back (a dockerd restart, a dying proxy): the exit of
// a container that ran through the cut is still seen, and a stop asked while the engine was away still ends `stopped`.
// The engine is reached through a small unix-socket proxy in this test, cut by destroying its connections and closing it.
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Assignment } from '../../src/contracts/worker.js';
import { DockerRuntime } from '../../src/runtime/docker.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { describeDocker, removeLabelled, testImage, testLabels } from '../support/docker.js';
import { waitFor } from '../support/wait.js';

const logger = pino({ level: 'silent' });
const labels = testLabels();
const deadlineMs = 30_000;

/** The engine's own socket (the proxy's far end): DOCKER_HOST's when it names one, else the default. */
function engineSocket(): string {
  const host = process.env.DOCKER_HOST;
  return host?.startsWith('unix://') === true ? host.slice('unix://'.length) : '/var/run/docker.sock';
}

/** A unix-socket proxy to the engine that can be cut (every connection destroyed, the socket closed) and restored. */
class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Waits (POST /containers/{id}/wait) whose answer's headers came back: the engine sends them at once. */
  waitsAnswered = 0;

  constructor(readonly path: string, private readonly target: string) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const engine = createConnection(this.target);
      // A connection carries one request after another (keep-alive): the newest one's start, until its answer comes.
      let request = '';
      client.on('data', (chunk: Buffer) => {
        const start = chunk.toString('latin1', 0, 200);
        if (/^[A-Z]+ \//.test(start)) request = start;
      });
      engine.on('data', () => {
        if (/^POST \S*\/wait/.test(request)) this.waitsAnswered++;
        request = '';
      });
      for (const s of [client, engine]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(engine).pipe(client);
      client.on('close', () => engine.destroy());
      engine.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describeDocker('a Docker worker whose engine connection is cut and restored', () => {
  let dir = '';
  let proxy: CuttableProxy;
  const agents: WorkerAgent[] = [];
  const docker = new Docker();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mk-dockercut-'));
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.close()));
    await proxy.cut();
    await removeLabelled(labels);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function start(): Promise<WorkerAgent> {
    proxy = new CuttableProxy(join(dir, `docker-${randomBytes(4).toString('hex')}.sock`), engineSocket());
    await proxy.open();
    const runtime = new DockerRuntime({ socketPath: proxy.path, callTimeoutMs: 5000 });
    const agent = new WorkerAgent({ workerId: `w-cut-${randomBytes(4).toString('hex')}`, runtime, logger, stopTimeoutMs: 5000, waitRetryMs: 100 });
    agents.push(agent);
    return agent;
  }

  const task = (command: string, extra: Partial<Assignment> = {}): Assignment => ({
    taskId: `t${randomBytes(6).toString('hex')}`, attempt: 1, term: 3, spec: { image: testImage, command: ['sh', '-c', command], labels }, desiredState: 'run', ...extra,
  });

  async function running(agent: WorkerAgent, a: Assignment): Promise<string> {
    await agent.assign(a, { waitUntilMs: performance.now() + deadlineMs });
    const s = await waitFor('the task running', () => agent.get(a.taskId).state === 'running' && agent.get(a.taskId), deadlineMs, 50);
    return s.containerId!;
  }

  it('sees the exit of a container that ran through the cut (docker kill after the engine is back)', async () => {
    const agent = await start();
    const a = task('sleep 600');
    const id = await running(agent, a);
    // The cut comes once the watch's wait has its answer's headers (as with any task running for a while).
    await waitFor('the wait answered', () => proxy.waitsAnswered >= 1, deadlineMs, 20);
    await proxy.cut();
    await proxy.open();
    await docker.getContainer(id).kill();
    // Before the fix the wait under way when the connection was cut never settled: running for good.
    const s = await waitFor('the exit seen', () => agent.get(a.taskId).state !== 'running' && agent.get(a.taskId), 15_000, 50);
    expect(s).toMatchObject({ state: 'failed', exitCode: 137 });
  });

  it('ends a task stopped while the engine was unreachable as stopped, once the engine is back', async () => {
    const agent = await start();
    const a = task('trap "exit 0" TERM; while true; do sleep 0.2; done');
    await running(agent, a);
    await waitFor('the wait answered', () => proxy.waitsAnswered >= 1, deadlineMs, 20);
    await proxy.cut();
    // The stop cannot reach the engine: the task is still running, its stop asked.
    const during = await agent.stop(a, { waitUntilMs: performance.now() + 3000 });
    expect(during.state).toBe('running');
    await proxy.open();
    // The managers' assignment says stop: each reconciliation asks again until the engine takes it.
    const stop = { ...a, desiredState: 'stop' as const };
    const s = await waitFor('the stop taken', async () => {
      await agent.reconcile(async () => [stop]);
      return agent.get(a.taskId).state !== 'running' && agent.get(a.taskId);
    }, 20_000, 200);
    expect(s).toMatchObject({ state: 'stopped', exitCode: 0 });
  });
});
