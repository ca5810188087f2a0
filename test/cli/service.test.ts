// `minkube service ...` as child processes against an in-process cluster (three managers, two workers over the
// in-memory runtime, whose containers do what their command says): what --wait waits for, how it fails, and what
// its progress lines say while it waits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/cluster.js';
import { startCli, type CliResult } from '../support/cli.js';
import { cliTaskCluster, type TaskCluster } from '../manager/tasks-harness.js';

let c: TaskCluster;
let cli: (args: string[]) => Promise<CliResult>;

beforeAll(async () => {
  ({ c, cli } = await cliTaskCluster((spec) => {
    // Runs half a second, then exits 3: running (healthy, without a check) at times, but never for long.
    if (spec.command?.[0] === 'crash') return { durationMs: 500, exitCode: 3 };
    return { durationMs: null };
  }));
});
afterAll(() => c?.close());

describe.concurrent('minkube service get', () => {
  it('shows the command quoted as task get shows a replica\'s, one word a shell would read back', async () => {
    expect((await cli(['service', 'create', 'quoted', 'busybox', '--replicas', '1', '--', 'sh', '-c', "mkdir -p /w; echo v1 > /w/x; echo 'it''s'"])).code).toBe(0);
    const get = await cli(['service', 'get', 'quoted']);
    expect(get.stdout).toMatch(/^image: busybox {2}command: sh -c 'mkdir -p \/w; echo v1 > \/w\/x; echo '\\''it'\\'''\\''s'\\'''$/m);
    const replica = await eventually(async () => (await c.http<{ tasks: { taskId: string }[] }>('m1', 'GET', '/v1/services/quoted')).body.tasks[0]?.taskId, 10_000, 'a replica');
    const task = await cli(['task', 'get', replica]);
    expect(/^command:\s+(.*)$/m.exec(task.stdout)?.[1]).toBe(/ {2}command: (.*)$/m.exec(get.stdout)?.[1]);
    await cli(['service', 'rm', 'quoted']);
  });
});

describe('minkube service update', () => {
  it('health flags change the check the service has, its other timings kept; a timing alone is a change; create refuses a timing without a check (outside tester)', async () => {
    const check = async (name: string) => (await c.http<{ spec: { healthCheck?: Record<string, unknown> } }>('m1', 'GET', `/v1/services/${name}`)).body.spec.healthCheck;
    const create = ['service', 'create', 'hc', 'busybox', '--replicas', '0', '--port', 'web', '--health-tcp', 'web', '--health-interval', '1', '--health-timeout', '1', '--health-retries', '2', '--health-start-period', '7', '--', 'serve'];
    const made = await cli(create);
    expect(made.code, made.stderr).toBe(0);
    const kept = { intervalS: 1, timeoutS: 1, retries: 2, startPeriodS: 7 };
    const http = await cli(['service', 'update', 'hc', '--health-http', 'web:/b']);
    expect(http.code, http.stderr).toBe(0);
    expect(await check('hc')).toEqual({ type: 'http', port: 'web', path: '/b', ...kept });
    const retries = await cli(['service', 'update', 'hc', '--health-retries', '5']);
    expect(retries.code, retries.stderr).toBe(0);
    expect(await check('hc')).toEqual({ type: 'http', port: 'web', path: '/b', ...kept, retries: 5 });
    expect((await cli(['service', 'get', 'hc'])).stdout).toMatch(/^health: http web:\/b every 1s, timeout 1s, 5 retries, start period 7s$/m);
    const bare = await cli(['service', 'create', 'nohc', 'busybox', '--replicas', '0', '--health-retries', '3']);
    expect([bare.code, bare.stderr]).toEqual([2, expect.stringContaining('give --health-http, --health-tcp or --health-exec')]);
    expect((await c.http('m1', 'GET', '/v1/services/nohc')).status).toBe(404);
    expect((await cli(['service', 'create', 'plain', 'busybox', '--replicas', '0'])).code).toBe(0);
    const none = await cli(['service', 'update', 'plain', '--health-interval', '3']);
    expect([none.code, none.stderr]).toEqual([2, expect.stringContaining('the service has no health check')]);
    await Promise.all(['hc', 'plain'].map((n) => cli(['service', 'rm', n])));
  });

  it('a health check PORT that names no port of the service is a usage error (exit 2) listing the names, before anything changes (outside tester: --health-tcp 9 was INVALID_BODY, exit 1)', async () => {
    const tcp = await cli(['service', 'create', 'badport', 'busybox', '--replicas', '0', '--health-tcp', '9', '--', 'serve']);
    expect([tcp.code, tcp.stdout, tcp.stderr]).toEqual([2, '', expect.stringContaining('error: --health-tcp 9: PORT must name a port of the service given with --port (not a number: the worker picks the host port); the service has no port: give one with --port NAME\n')]);
    const http = await cli(['service', 'create', 'badport', 'busybox', '--replicas', '0', '--port', 'web', '--port', 'admin', '--health-http', 'api:/healthz', '--', 'serve']);
    expect([http.code, http.stderr]).toEqual([2, expect.stringContaining('error: --health-http api:/healthz: PORT must name a port of the service given with --port; its ports: web, admin\n')]);
    expect((await c.http('m1', 'GET', '/v1/services/badport')).status).toBe(404);
    // An update takes the ports the service has, or those its --port flags give it now.
    expect((await cli(['service', 'create', 'ported', 'busybox', '--replicas', '0', '--port', 'web', '--', 'serve'])).code).toBe(0);
    const wrong = await cli(['service', 'update', 'ported', '--health-tcp', '8080']);
    expect([wrong.code, wrong.stderr]).toEqual([2, expect.stringContaining('error: --health-tcp 8080: PORT must name a port of the service given with --port (not a number: the worker picks the host port); its ports: web\n')]);
    const right = await cli(['service', 'update', 'ported', '--health-tcp', 'web']);
    expect(right.code, right.stderr).toBe(0);
    await cli(['service', 'rm', 'ported']);
  });

  it('four at once, each adding its own variable: every one lands, each in its own version', async () => {
    expect((await cli(['service', 'create', 'racing', 'busybox', '--replicas', '1', '--env', 'BASE=1', '--', 'serve'])).code).toBe(0);
    const runs = await Promise.all(['A', 'B', 'C', 'D'].map((k) => cli(['service', 'update', 'racing', '--env', `${k}=1`])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const s = (await c.http<{ version: number; spec: { env: Record<string, string> } }>('m1', 'GET', '/v1/services/racing')).body;
    expect([s.version, s.spec.env]).toEqual([5, { BASE: '1', A: '1', B: '1', C: '1', D: '1' }]);
    await cli(['service', 'rm', 'racing']);
  });
});

describe.concurrent('minkube service --wait', () => {
  it('create --wait exits 1 naming the failure when the replicas crash-loop (no health check)', async () => {
    const r = await cli(['service', 'create', 'crashy', 'busybox', '--replicas', '2', '--wait', '--', 'crash']);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/^error: service crashy: replica t[0-9a-z]{17} of version 1 failed: the container exited with code 3\n$/);
    await cli(['service', 'rm', 'crashy']);
  });

  it('create --wait exits 1 when the replicas keep failing their health check', async () => {
    const r = await cli(['service', 'create', 'sick', 'busybox', '--replicas', '2', '--health-exec', 'false', '--health-interval', '0.2', '--health-retries', '1', '--wait', '--', 'serve']);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/^error: service sick: replica t[0-9a-z]{17} of version 1 failed: unhealthy: exec exited with code 1\n$/);
    await cli(['service', 'rm', 'sick']);
  });

  it('create --wait is done once the replicas stayed healthy for --monitor; scale --wait likewise', async () => {
    const r = await cli(['service', 'create', 'steady', 'busybox', '--replicas', '2', '--monitor', '1', '--wait', '--', 'serve']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('service steady: 2/2 healthy, 2 running, version 1; watching for 1 s that they stay healthy\n');
    expect(r.stdout).toMatch(/\nservice steady: 2\/2 healthy, 2 running, version 1\n$/);
    const scaled = await cli(['service', 'scale', 'steady', '3', '--wait']);
    expect(scaled.code, scaled.stderr).toBe(0);
    expect(scaled.stdout).toMatch(/service steady: 3\/3 healthy, 3 running, version 1\n$/);
    await cli(['service', 'rm', 'steady']);
  });

  it('create --wait says why a replica waits when no worker can take it', async () => {
    const running = startCli(['--api', c.url('m2'), 'service', 'create', 'nowhere', 'busybox', '--replicas', '1', '--constraint', 'zone==nowhere', '--wait', '--', 'serve']);
    const line = await eventually(async () => /^service nowhere: .*$/m.exec(running.stdoutSoFar().split('\n').filter((l) => l.includes('waiting')).join('\n'))?.[0], 20_000, 'the reason it waits');
    expect(line).toMatch(/^service nowhere: 0\/1 healthy, 0 running, version 1; waiting: replica (t[0-9a-z]{17}) of version 1 has no worker to run on \(w1: label zone[^;]*; w2: label zone[^;]*; see task why \1\)$/);
    expect((await cli(['service', 'rm', 'nowhere'])).code).toBe(0);
    expect((await running.done).code).toBe(1);
  });

  it('scale --wait and update --replicas --wait of a crash-looping service exit 1 naming the failure', async () => {
    expect((await cli(['service', 'create', 'loop', 'busybox', '--replicas', '1', '--', 'crash'])).code).toBe(0);
    const scaled = await cli(['service', 'scale', 'loop', '2', '--wait']);
    expect(scaled.code, scaled.stdout).toBe(1);
    expect(scaled.stderr).toMatch(/^error: service loop: replica t[0-9a-z]{17} of version 1 failed: the container exited with code 3\n$/);
    const updated = await cli(['service', 'update', 'loop', '--replicas', '1', '--wait']);
    expect(updated.code, updated.stdout).toBe(1);
    expect(updated.stderr).toMatch(/^error: service loop: replica t[0-9a-z]{17} of version 1 failed: the container exited with code 3\n$/);
    await cli(['service', 'rm', 'loop']);
  });
});
