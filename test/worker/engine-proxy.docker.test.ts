// A Docker worker whose DOCKER_HOST is a unix-socket proxy to dockerd that the test cuts and restores: its heartbeats
// say the engine is unreachable while the proxy is gone, and stop saying so once it is back.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { fastify, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HeartbeatRequest, RegisterRequest } from '../../src/contracts/worker.js';
import { startWorker, type RunningWorker } from '../../src/daemon/worker.js';
import { describeDocker } from '../support/docker.js';
import { freePort, waitFor } from '../support/wait.js';

const dockerSocket = '/var/run/docker.sock';
let dir: string;
let proxyPath: string;
let proxy: Server | null = null;
const piped = new Set<Socket>();
let manager: FastifyInstance;
const heartbeats: HeartbeatRequest[] = [];
let worker: RunningWorker | null = null;
const savedDockerHost = process.env.DOCKER_HOST;

async function openProxy(): Promise<void> {
  await unlink(proxyPath).catch(() => undefined);
  const server = createServer((client) => {
    const upstream = createConnection(dockerSocket);
    for (const s of [client, upstream]) {
      piped.add(s);
      s.on('error', () => undefined);
      s.on('close', () => piped.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(proxyPath, resolve));
  proxy = server;
}

async function cutProxy(): Promise<void> {
  const server = proxy;
  proxy = null;
  for (const s of piped) s.destroy();
  await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  await unlink(proxyPath).catch(() => undefined);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minkube-engine-proxy-'));
  proxyPath = join(dir, 'docker.sock');
  await openProxy();
  process.env.DOCKER_HOST = `unix://${proxyPath}`;
  manager = fastify();
  manager.post<{ Body: RegisterRequest }>('/v1/workers', async (req) => ({
    worker: { id: req.body.id, apiAddress: req.body.apiAddress, state: 'ready', runtime: req.body.runtime, registeredAt: new Date().toISOString(), lastHeartbeatAt: null, stats: null, taskCount: 0 },
  }));
  manager.post<{ Body: HeartbeatRequest }>('/v1/workers/:id/heartbeat', async (req) => {
    heartbeats.push(req.body);
    return { heartbeatIntervalMs: 50 };
  });
  manager.get('/v1/workers/:id/assignments', async () => ({ items: [], nextCursor: null }));
  const managerPort = await freePort();
  await manager.listen({ host: '127.0.62.41', port: managerPort });
  const workerPort = await freePort();
  await writeFile(join(dir, 'cluster.json'), JSON.stringify({
    insecure: true,
    managers: [{ id: 'm1', raftAddress: `127.0.62.41:${await freePort()}`, apiAddress: `127.0.62.41:${managerPort}`, dataDir: 'm1' }],
    workers: [{ id: 'ep1', apiAddress: `127.0.62.42:${workerPort}`, runtime: 'docker', dataDir: 'ep1' }],
    tasks: { workerHeartbeatIntervalMs: 50, reconcileIntervalMs: 100, stopTimeoutMs: 1000 },
  }));
});

afterAll(async () => {
  await worker?.stop();
  await manager?.close();
  await cutProxy();
  if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
  else process.env.DOCKER_HOST = savedDockerHost;
  // The worker's network sandbox outlives it, as it should: this test made it, so it removes it.
  const docker = new Docker();
  for (const c of await docker.listContainers({ all: true, filters: { name: ['minkube-sandbox-ep1-'] } })) await docker.getContainer(c.Id).remove({ force: true });
  await rm(dir, { recursive: true, force: true });
});

describeDocker('a Docker worker whose engine proxy is cut', () => {
  it('says engine unreachable in its heartbeats while the proxy is cut, and stops saying it once the proxy is back', async () => {
    worker = await startWorker({ configPath: join(dir, 'cluster.json'), id: 'ep1', logger: pino({ level: 'silent' }) });
    await waitFor('heartbeats with the engine answering', () => heartbeats.length >= 3);
    expect(heartbeats.at(-1)!.engineUnreachable).toBeUndefined();
    await cutProxy();
    const said = await waitFor('a heartbeat saying the engine is unreachable', () => heartbeats.at(-1)?.engineUnreachable, 20_000);
    expect(said.reason).toMatch(/ECONNREFUSED|ENOENT|EPIPE|ECONNRESET|socket hang up/);
    await openProxy();
    await waitFor('a heartbeat without it', () => heartbeats.length > 0 && heartbeats.at(-1)!.engineUnreachable === undefined, 10_000);
  }, 60_000);
});
