// The worker's port allocator and health checks: ports are never handed to two tasks, a held port is skipped, a
// released one is free again, env names follow the port names; a check is healthy after one success and unhealthy
// after `retries` failures in a row (not counting the start period), with the failure named.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/lib/random.js';
import { HealthMonitor, initialHealth, nextHealth, probeOnce, type HealthTarget } from '../../src/worker/health.js';
import { ManualClock } from '../support/manual-clock.js';
import { waitFor } from '../support/wait.js';
import { PortAllocator, portEnv, portsLabel } from '../../src/worker/ports.js';

describe('PortAllocator', () => {
  it('hands distinct free ports, skips one held elsewhere, frees on release, and gives a task its ports again', async () => {
    const busy = new Set([20001]);
    const ports = new PortAllocator({ min: 20000, max: 20003 }, '127.0.0.9', new SeededRandom(1), async (p) => !busy.has(p));
    const a = await ports.allocate('a#1#1', [{ name: 'http' }, { name: 'admin-api' }]);
    const b = await ports.allocate('b#1#1', [{ name: 'http' }]);
    const all = [...a, ...b].map((p) => p.hostPort);
    expect(new Set(all).size).toBe(3);
    expect(all).not.toContain(20001);
    expect(a[0]).toEqual({ name: 'http', hostPort: a[0]!.hostPort, address: `127.0.0.9:${a[0]!.hostPort}` });
    expect(await ports.allocate('a#1#1', [{ name: 'http' }, { name: 'admin-api' }])).toBe(a);
    await expect(ports.allocate('c#1#1', [{ name: 'http' }])).rejects.toMatchObject({
      code: 'QUEUE_FULL',
      message: "no free port in 20000-20003 (3 held by this worker's tasks; the 1 other tried is in use outside this worker's tasks (another process on the host))",
    });
    ports.release('a#1#1');
    expect((await ports.allocate('c#1#1', [{ name: 'http' }]))[0]!.hostPort).toBeOneOf([a[0]!.hostPort, a[1]!.hostPort]);
    expect(portEnv(a)).toEqual({ MINKUBE_PORT_HTTP: String(a[0]!.hostPort), MINKUBE_PORT_ADMIN_API: String(a[1]!.hostPort), PORT: String(a[0]!.hostPort) });
    const adopted = new PortAllocator({ min: 20000, max: 20003 }, 'h', new SeededRandom(1), async () => true);
    expect(adopted.adopt('x#1#1', portsLabel(b))).toEqual([{ name: 'http', hostPort: b[0]!.hostPort, address: `h:${b[0]!.hostPort}` }]);
    expect(adopted.inUse).toBe(1);
  });
});

describe('health checks', () => {
  it('healthy after one success, unhealthy after retries failures in a row, start period forgiven', () => {
    let s = nextHealth(initialHealth, 'http 503 from /', true, 2);
    expect(s).toMatchObject({ health: 'starting', failuresInRow: 0 });
    s = nextHealth(s, null, true, 2);
    expect(s.health).toBe('healthy');
    s = nextHealth(s, 'http 503 from /', false, 2);
    expect(s).toMatchObject({ health: 'healthy', failuresInRow: 1 });
    s = nextHealth(s, null, false, 2);
    expect(s).toMatchObject({ health: 'healthy', failuresInRow: 0 });
    s = nextHealth(nextHealth(s, 'a', false, 2), 'http 503 from /healthz', false, 2);
    expect(s).toEqual({ health: 'unhealthy', failuresInRow: 2, lastFailure: 'http 503 from /healthz' });
  });

  it('probes at the start, then every intervalS; failures in the start period are tried again sooner until the first success', async () => {
    const clock = new ManualClock(0);
    const probedAtMs: number[] = [];
    // Fails the first four probes (not listening yet), then passes; then fails for good.
    const results = [1, 1, 1, 1, 0, 0, 1, 1, 1];
    const check = { type: 'exec' as const, command: ['probe'], intervalS: 2, timeoutS: 1, retries: 3, startPeriodS: 1 };
    const verdicts: string[] = [];
    const monitor = new HealthMonitor({ check, ports: [], exec: async () => {
      probedAtMs.push(clock.nowMs());
      return results.shift() ?? 1;
    } }, clock, (s) => verdicts.push(s.health));
    monitor.start();
    for (let i = 0; i < 9; i++) await clock.fireNext();
    await waitFor('the unhealthy verdict', () => verdicts.includes('unhealthy'));
    // 0, then 100, 200, 400 ms after each start-period failure (until 1 s), healthy at 1500, then every 2 s.
    expect(probedAtMs).toEqual([0, 100, 300, 700, 1500, 3500, 5500, 7500, 9500]);
    expect(verdicts).toEqual(['healthy', 'unhealthy']);
    monitor.stop();
  });

  it('after the start period a failure waits the whole interval', async () => {
    const clock = new ManualClock(0);
    const probedAtMs: number[] = [];
    const check = { type: 'exec' as const, command: ['probe'], intervalS: 1, timeoutS: 1, retries: 2, startPeriodS: 0 };
    const verdicts: string[] = [];
    const monitor = new HealthMonitor({ check, ports: [], exec: async () => {
      probedAtMs.push(clock.nowMs());
      return 1;
    } }, clock, (s) => verdicts.push(s.health));
    monitor.start();
    for (let i = 0; i < 2; i++) await clock.fireNext();
    await waitFor('the unhealthy verdict', () => verdicts.includes('unhealthy'));
    expect(probedAtMs).toEqual([0, 1000]);
    monitor.stop();
  });

  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : 503;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('probes http, tcp and exec and names what failed', async () => {
    const target = (check: Partial<HealthTarget['check']>): HealthTarget => ({
      check: { type: 'http', port: 'http', intervalS: 1, timeoutS: 1, retries: 1, startPeriodS: 0, ...check },
      ports: [{ name: 'http', hostPort: port, address: `127.0.0.1:${port}` }],
      exec: async (command) => (command[0] === 'true' ? 0 : 3),
    });
    expect(await probeOnce(target({ path: '/ok' }))).toBeNull();
    expect(await probeOnce(target({ path: '/healthz' }))).toBe('http 503 from /healthz');
    expect(await probeOnce(target({ type: 'tcp' }))).toBeNull();
    expect(await probeOnce({ ...target({ type: 'tcp' }), ports: [{ name: 'http', hostPort: 1, address: '127.0.0.1:1' }] })).toMatch(/^tcp 1: /);
    expect(await probeOnce(target({ type: 'exec', command: ['true'] }))).toBeNull();
    expect(await probeOnce(target({ type: 'exec', command: ['false'] }))).toBe('exec exited with code 3');
  });

  it('connects to the host a port is advertised on (the worker\'s API host), not to 127.0.0.1', async () => {
    // A task that binds its port on the worker's API host alone, as the record and DNS advertise it.
    const own = createServer((_req, res) => res.end());
    await new Promise<void>((r) => own.listen(0, '127.0.0.3', () => r()));
    const ownPort = (own.address() as { port: number }).port;
    try {
      const at = (host: string, type: 'http' | 'tcp'): HealthTarget => ({
        check: { type, port: 'http', intervalS: 1, timeoutS: 1, retries: 1, startPeriodS: 0 },
        ports: [{ name: 'http', hostPort: ownPort, address: `${host}:${ownPort}` }],
        exec: async () => 0,
      });
      expect(await probeOnce(at('127.0.0.3', 'http'))).toBeNull();
      expect(await probeOnce(at('127.0.0.3', 'tcp'))).toBeNull();
      expect(await probeOnce(at('127.0.0.1', 'tcp'))).toMatch(/ECONNREFUSED 127\.0\.0\.1:/);
      // An IPv6 API host is advertised in brackets; the check connects to the address inside them.
      expect(await probeOnce({ ...at('127.0.0.3', 'tcp'), ports: [{ name: 'http', hostPort: 1, address: '[::1]:1' }] })).toMatch(/^tcp 1: .*::1/);
    } finally {
      await new Promise<void>((r) => own.close(() => r()));
    }
  });
});
