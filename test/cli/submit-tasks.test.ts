// ApiClient.submitTasks (what `task run --count` submits through) against a fake manager on 127.0.0.1 that serves
// POST /v1/tasks/batch: requests of at most taskBatchMax and under the body limit, one key per request, retries.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient, type SubmittedTask } from '../../src/client/api-client.js';
import type { TaskSpec } from '../../src/contracts/task-model.js';
import { MinkubeError, type ErrorCode } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { copies } from '../../src/cli/task-many.js';

interface Received {
  key: string | undefined;
  bytes: number;
  tasks: TaskSpec[];
}

/** A batch route that remembers what each Idempotency-Key created, as the managers do, and fails on request. */
class FakeBatchServer {
  readonly received: Received[] = [];
  private readonly byKey = new Map<string, SubmittedTask[]>();
  private nextId = 0;
  /** Answers for the coming requests, in order (then 201 again). */
  failures: ErrorCode[] = [];
  /** Requests answered 201 before `failures` apply. */
  failAfter = 0;
  private readonly server: Server = createServer((req, res) => void this.handle(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  reset(): void {
    this.received.length = 0;
    this.failures = [];
    this.failAfter = 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const key = req.headers['idempotency-key'] as string | undefined;
    const tasks = (JSON.parse(text) as { tasks: TaskSpec[] }).tasks;
    this.received.push({ key, bytes: Buffer.byteLength(text), tasks });
    const failure = this.failAfter-- > 0 ? undefined : this.failures.shift();
    if (req.url !== '/v1/tasks/batch' || failure !== undefined) {
      const e = new MinkubeError(failure ?? 'NOT_FOUND');
      res.writeHead(e.status, { 'content-type': 'application/json' }).end(JSON.stringify(e.toBody()));
      return;
    }
    const known = key === undefined ? undefined : this.byKey.get(key);
    const items = known ?? tasks.map(() => ({ id: `t${String(this.nextId++).padStart(6, '0')}`, state: 'pending' as const }));
    if (key !== undefined) this.byKey.set(key, items);
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ items }));
  }
}

const server = new FakeBatchServer();
let client: ApiClient;

beforeAll(async () => {
  await server.start();
  client = new ApiClient(server.url);
});
beforeEach(() => server.reset());
afterAll(() => server.close());

const spec: TaskSpec = { image: 'busybox', command: ['echo', 'hi'] };

describe.sequential('ApiClient.submitTasks', () => {
  it('1001 specs go as 1000 then 1, keys key.0 and key.1; the ids come back in order', async () => {
    const seen: number[] = [];
    const items = await client.submitTasks(copies(spec, 1001), { idempotencyKey: 'run-a', onCreated: (batch) => seen.push(batch.length) });
    expect(server.received.map((r) => [r.key, r.tasks.length])).toEqual([['run-a.0', limits.taskBatchMax], ['run-a.1', 1]]);
    expect(seen).toEqual([1000, 1]);
    expect(items).toHaveLength(1001);
    expect(items[0]).toEqual({ id: 't000000', state: 'pending' });
    expect(items.at(-1)!.id).toBe('t001000');
    expect(server.received[1]!.tasks[0]).toEqual(spec);
  });

  it('a batch is split further to stay under the body limit', async () => {
    const big: TaskSpec = { image: 'busybox', env: { PAD: 'x'.repeat(280) } };
    await client.submitTasks(copies(big, 10), { bodyBytesMax: 1000 });
    expect(server.received.map((r) => r.tasks.length)).toEqual([3, 3, 3, 1]);
    for (const r of server.received) expect(r.bytes).toBeLessThanOrEqual(1000);
    // Without a key, one random key for the call: the requests share it, numbered.
    const bases = new Set(server.received.map((r) => r.key!.replace(/\.\d+$/, '')));
    expect(bases.size).toBe(1);
    expect(server.received.map((r) => r.key!.split('.').at(-1))).toEqual(['0', '1', '2', '3']);
  });

  it('a request answered "not now" is tried again under its own key and creates nothing twice', async () => {
    server.failAfter = 1;
    server.failures = ['NO_LEADER', 'QUEUE_FULL'];
    const items = await client.submitTasks(copies(spec, 5), { idempotencyKey: 'run-b', batchMax: 2 });
    expect(server.received.map((r) => r.key)).toEqual(['run-b.0', 'run-b.1', 'run-b.1', 'run-b.1', 'run-b.2']);
    expect(new Set(items.map((t) => t.id)).size).toBe(5);
    // Calling again with the same key answers the same tasks.
    const again = await client.submitTasks(copies(spec, 5), { idempotencyKey: 'run-b', batchMax: 2 });
    expect(again).toEqual(items);
  });

  it('a failure after the first request says how many tasks were created before it', async () => {
    server.failAfter = 2;
    server.failures = ['INVALID_TASK_SPEC'];
    const seen: string[] = [];
    const err = await client.submitTasks(copies(spec, 7), { batchMax: 3, onCreated: (b) => seen.push(...b.map((t) => t.id)) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MinkubeError);
    expect(err).toMatchObject({ code: 'INVALID_TASK_SPEC', status: 400 });
    expect((err as Error).message).toMatch(/\(request 3 of 3; 6 of 7 tasks were created before it\)$/);
    expect(seen).toHaveLength(6);
    expect(server.received).toHaveLength(3);
  });

  it('a failure of the first request is the server\'s error as it came; attempts: 1 tries once', async () => {
    server.failures = ['NO_LEADER'];
    const err = await client.submitTasks([spec], { attempts: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NO_LEADER', message: 'no leader is known; the cluster may have lost its quorum' });
    expect(server.received).toHaveLength(1);
  });

  it('refuses a batchMax over the limit without a request; no specs, no request', async () => {
    await expect(client.submitTasks([spec], { batchMax: limits.taskBatchMax + 1 })).rejects.toMatchObject({ code: 'INVALID_PARAM' });
    expect(await client.submitTasks([])).toEqual([]);
    expect(server.received).toHaveLength(0);
  });
});

describe('copies', () => {
  it('names copy i name-i; a spec without a name is shared as it is', () => {
    expect(copies({ image: 'a', name: 'job' }, 3).map((s) => s.name)).toEqual(['job-1', 'job-2', 'job-3']);
    expect(copies(spec, 2)).toEqual([spec, spec]);
  });
});
