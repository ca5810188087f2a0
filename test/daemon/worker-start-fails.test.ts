// A worker whose start-up fails part-way closes everything it opened, newest first, and throws the error that stopped
// it: here at its last step (the loops refuse to start, after the API listens) and at its listen (the port is taken).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { HttpClient } from '../../src/client/http.js';
import { parseClusterConfig, type ClusterConfig } from '../../src/config/cluster.js';
import { startWorkerFromConfig } from '../../src/daemon/worker.js';
import { splitHostPort } from '../../src/lib/address.js';
import { ProcessRuntime } from '../../src/runtime/process.js';
import { WorkerAgent } from '../../src/worker/agent.js';
import { WorkerLoops } from '../../src/worker/loops.js';
import { freePort } from '../support/wait.js';

/** The parts closed, in the order they were closed. */
const closed = vi.hoisted((): string[] => []);
// Tracing is exported only with OTEL_EXPORTER_OTLP_ENDPOINT set: this stands for it, and says when it is shut down.
vi.mock('../../src/daemon/otel.js', () => ({
  startTracing: () => Promise.resolve({ shutdown: () => Promise.resolve(void closed.push('tracing')) }),
}));

const logger = pino({ level: 'silent' });
let dir: string;
let apiAddress: string;
let config: ClusterConfig;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minkube-worker-start-fails-'));
  apiAddress = `127.0.0.1:${await freePort()}`;
  // No manager listens: the loops never get as far as asking one.
  const managers = [{ id: 'm1', raftAddress: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, dataDir: 'm1' }];
  config = parseClusterConfig({ insecure: true, managers, workers: [{ id: 'w1', apiAddress, runtime: 'process', dataDir: 'w1' }] }, dir, 'the test');
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.restoreAllMocks();
  closed.length = 0;
});

/** Records each part's close as it happens, then closes it as it would have been. */
function recordCloses(): void {
  const record = <T extends object>(proto: T, method: keyof T & string, part: string): void => {
    const original = proto[method] as (...args: unknown[]) => Promise<void>;
    vi.spyOn(proto as Record<string, (...args: unknown[]) => Promise<void>>, method).mockImplementation(function (this: unknown, ...args: unknown[]) {
      closed.push(part);
      return original.apply(this, args);
    });
  };
  record(WorkerLoops.prototype, 'stop', 'loops');
  record(HttpClient.prototype, 'close', 'http client');
  record(WorkerAgent.prototype, 'close', 'agent');
  record(ProcessRuntime.prototype, 'close', 'runtime');
}

/** Whether another process can listen on the address now (the worker's API let go of it). */
async function free(address: string): Promise<boolean> {
  const { host, port } = splitHostPort(address);
  const server = createServer();
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => resolve(true));
  });
  if (listening) await new Promise((r) => server.close(r));
  return listening;
}

describe('a worker whose start-up fails', () => {
  it('at its last step (after its API listens): closes the loops, its HTTP client, API, agent, runtime and tracing, newest first, and throws the error', async () => {
    recordCloses();
    const boom = new Error('the loops cannot start');
    vi.spyOn(WorkerLoops.prototype, 'start').mockImplementation(() => {
      throw boom;
    });
    await expect(startWorkerFromConfig(config, 'w1', logger)).rejects.toBe(boom);
    expect(closed).toEqual(['loops', 'http client', 'agent', 'runtime', 'tracing']);
    // The API is closed too: its port is free again.
    expect(await free(apiAddress)).toBe(true);
  });

  it('at its listen (the port is taken): closes its agent, runtime and tracing, and throws LISTEN_FAILED', async () => {
    recordCloses();
    const holder: Server = createServer();
    const { host, port } = splitHostPort(apiAddress);
    await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(port, host, resolve));
    try {
      await expect(startWorkerFromConfig(config, 'w1', logger)).rejects.toMatchObject({ code: 'LISTEN_FAILED', message: expect.stringContaining(`cannot listen on ${apiAddress} (apiAddress)`) as string });
      expect(closed).toEqual(['agent', 'runtime', 'tracing']);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});
