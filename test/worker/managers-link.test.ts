// The worker's link to the managers asks the managers the cluster names in heartbeats' answers first, then the
// configured ones they leave out: a worker follows managers that joined after it started, and still reaches the
// cluster once every manager of its config is gone.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpClient } from '../../src/client/http.js';
import { heartbeatHedgeMs, HttpManagerLink } from '../../src/worker/managers.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';

const servers: Server[] = [];
const http = new HttpClient();
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A stand-in manager that answers every heartbeat with `managers`, and counts what it was asked. */
async function manager(managers: () => string[] | undefined): Promise<{ address: string; asked: () => number }> {
  let asked = 0;
  const server = createServer((req, res) => {
    asked++;
    req.resume();
    const list = managers();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ heartbeatIntervalMs: 1000, ...(list === undefined ? {} : { managers: list }) }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, asked: () => asked };
}

const beat = (link: HttpManagerLink) => link.heartbeat('w1', { stats: { cpuPercent: 0, memoryUsedMb: 0, diskFreeMb: 0, runningTasks: 0 } as never, tasks: [] });

describe('HttpManagerLink', () => {
  it('asks the learnt managers first, keeps the configured ones last, and reports each change once', async () => {
    const changes: (readonly string[])[] = [];
    const link = new HttpManagerLink({ managers: ['127.0.0.1:1', '127.0.0.1:2'], timeoutMs: 1000, http, onLearned: (m) => changes.push(m) });
    link.learnManagers(['127.0.0.4:4', '127.0.0.1:2', '127.0.0.4:4', '']);
    expect(link.managers()).toEqual(['127.0.0.4:4', '127.0.0.1:2', '127.0.0.1:1']);
    link.learnManagers(['127.0.0.4:4', '127.0.0.1:2']);
    link.learnManagers([]);
    expect(changes).toEqual([['127.0.0.4:4', '127.0.0.1:2']]);
  });

  it('keeps at most 16 learnt managers', () => {
    const link = new HttpManagerLink({ managers: ['127.0.0.1:1'], timeoutMs: 1000, http });
    link.learnManagers(Array.from({ length: 40 }, (_, i) => `127.0.0.9:${i + 10}`));
    expect(link.managers()).toHaveLength(17);
  });

  it('reaches a manager that joined later once every configured one is gone', async () => {
    const joined = await manager(() => undefined);
    const configured = await manager(() => [joined.address]);
    const link = new HttpManagerLink({ managers: [configured.address], timeoutMs: 1000, http });
    const first = await beat(link);
    link.learnManagers(first.managers ?? []);
    expect(link.managers()).toEqual([joined.address, configured.address]);
    const gone = servers.pop()!; // the configured manager goes; the one that joined stays
    await new Promise((r) => gone.close(r));
    const before = joined.asked();
    await beat(link);
    expect(joined.asked()).toBe(before + 1);
  });
});

describe('a frozen manager', () => {
  /** Accepts the connection and reads the request, but never answers: a manager stopped with SIGSTOP looks so. */
  async function frozen(): Promise<{ address: string; server: Server }> {
    const server = createServer(() => undefined);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
  }

  it('delays a heartbeat heartbeatHedgeMs, not the request timeout: the next manager is asked as well', async () => {
    const stuck = await frozen();
    const live = await manager(() => undefined);
    const hedgeMs = heartbeatHedgeMs({ workerTtlMs: 2000 });
    expect(hedgeMs).toBe(500);
    expect(heartbeatHedgeMs({ workerTtlMs: 300 })).toBe(250);
    const link = new HttpManagerLink({ managers: [stuck.address, live.address], timeoutMs: 10_000, heartbeatHedgeMs: hedgeMs, http });
    const start = performance.now();
    await beat(link);
    const tookMs = performance.now() - start;
    expect(live.asked()).toBe(1);
    expect(tookMs).toBeGreaterThanOrEqual(hedgeMs - 50);
    expect(tookMs).toBeLessThan(5_000);
    // The manager that answered is asked first from then on.
    await beat(link);
    expect(live.asked()).toBe(2);
    stuck.server.closeAllConnections();
  });

  it('asks the next manager when the hedge falls due on the link\'s clock', async () => {
    let stuckAsked = 0;
    const stuck = createServer(() => stuckAsked++);
    servers.push(stuck);
    await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r));
    const live = await manager(() => undefined);
    const clock = new ManualClock();
    const link = new HttpManagerLink({ managers: [`127.0.0.1:${(stuck.address() as AddressInfo).port}`, live.address], timeoutMs: 10_000, heartbeatHedgeMs: 500, http, clock });
    const beating = beat(link);
    await waitFor('the frozen manager asked', () => stuckAsked === 1);
    expect(clock.nextDelayMs()).toBe(500);
    expect(live.asked()).toBe(0);
    clock.advance(500);
    await beating;
    expect(live.asked()).toBe(1);
    stuck.closeAllConnections();
  });

  it('a slow manager is not given up: its answer counts when the others fail', async () => {
    let asked = 0;
    const slow = createServer((req, res) => {
      asked++;
      req.resume();
      setTimeout(() => res.end(JSON.stringify({ heartbeatIntervalMs: 1000 })), 700).unref();
    });
    servers.push(slow);
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const link = new HttpManagerLink({ managers: [`127.0.0.1:${(slow.address() as AddressInfo).port}`, '127.0.0.1:1'], timeoutMs: 10_000, heartbeatHedgeMs: 100, http });
    expect(await beat(link)).toEqual({ heartbeatIntervalMs: 1000 });
    expect(asked).toBe(1);
  });

  it('every manager failing is UNREACHABLE naming the last reason', async () => {
    const link = new HttpManagerLink({ managers: ['127.0.0.1:1', '127.0.0.1:2'], timeoutMs: 1000, heartbeatHedgeMs: 100, http });
    await expect(beat(link)).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringMatching(/^no manager answered POST \/v1\/workers\/w1\/heartbeat/) as string });
  });
});
