// Services end to end with real processes: 3 managers and 3 workers, a service of 3 replicas listening on their
// allocated ports, with the process runtime (a Node one-liner) and with Docker (busybox httpd, host networking):
// every replica answers on its address; a replica killed is replaced; a worker killed gets its replicas placed
// elsewhere; a rolling update to a version whose health check fails rolls back by itself, and the service never has
// fewer than replicas - parallelism healthy replicas meanwhile (sampled every 100 ms).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.js';
import { ProcCluster } from '../support/cluster.js';
import { describeDocker, removeContainersNamed, removeLabelled, testImage, workerSandboxes } from '../support/docker.js';
import { eventually, sleep } from '../support/wait.js';

const tasksTuning = {
  tasks: {
    workerHeartbeatIntervalMs: 200, workerTtlMs: 1500, lostGraceMs: 500, reconcileIntervalMs: 500, backoffBaseMs: 200, backoffCapMs: 2000,
    assignTimeoutMs: 10_000, stopTimeoutMs: 2000,
  },
};

interface Replica {
  taskId: string;
  version: number;
  state: string;
  desiredState: string;
  health: string | null;
  workerId: string | null;
  ports: { name: string; hostPort: number; address: string }[];
}

interface ServiceBody {
  replicas: { desired: number; running: number; healthy: number };
  tasks: Replica[];
  version: number;
  rollout: { state: string; message: string | null };
}

interface Flavour {
  runtime: 'process' | 'docker';
  secure: boolean;
  /** A task that serves HTTP on $PORT (200 on /, or 503 everywhere when broken). */
  task(broken: boolean): Record<string, unknown>;
  /** Kills one replica's process or container, behind the worker's back. */
  kill(c: ProcCluster, replica: Replica): Promise<void>;
}

const nodeServer = (status: number): string =>
  `require('http').createServer((q,s)=>{s.statusCode=${status};s.end(JSON.stringify({pid:process.pid}))}).listen(Number(process.env.PORT))`;

const processFlavour: Flavour = {
  runtime: 'process',
  secure: true,
  task: (broken) => ({ image: 'node', command: [process.execPath, '-e', nodeServer(broken ? 503 : 200)] }),
  kill: async (_c, r) => {
    const res = await fetch(`http://${r.ports[0]!.address}/`);
    const { pid } = (await res.json()) as { pid: number };
    process.kill(pid, 'SIGKILL');
  },
};

const dockerFlavour: Flavour = {
  runtime: 'docker',
  secure: false,
  task: (broken) => ({
    image: testImage,
    // busybox httpd serves /www: an index for the check, or none at all (404) for the broken version.
    command: ['sh', '-c', `mkdir -p /www && ${broken ? 'true' : 'echo ok > /www/index.html'} && exec busybox httpd -f -p "$PORT" -h /www`],
    labels: { 'minkube.test': 'services-e2e' },
  }),
  kill: async (c, r) => {
    const t = await c.http('m1', 'GET', `/v1/tasks/${r.taskId}`);
    execFileSync('docker', ['kill', t.body.containerId as string]);
  },
};

function servicesSuite(f: Flavour): void {
  let c: ProcCluster;
  beforeAll(async () => {
    c = await ProcCluster.create({ managers: 3, workers: 3, workerRuntime: f.runtime, secure: f.secure, extra: tasksTuning });
    c.startAll();
    // Generous: the machine is shared, and a loaded one starts six node processes slowly.
    await c.waitForLeader({ timeoutMs: 150_000 });
    await c.waitForReadyWorkers(3);
  }, 300_000);

  afterAll(async () => {
    if (c === undefined) return;
    await c.http('m1', 'DELETE', '/v1/services/web').catch(() => undefined);
    await sleep(0);
    const sandboxes = f.runtime === 'docker' ? workerSandboxes(c.dir, ['w1', 'w2', 'w3']) : [];
    await c.cleanup();
    if (f.runtime === 'docker') {
      await removeLabelled({ 'minkube.test': 'services-e2e' });
      await removeContainersNamed(sandboxes);
    }
  }, 60_000);

  const get = async (): Promise<ServiceBody> => {
    const r = await c.http('m1', 'GET', '/v1/services/web?consistency=stale');
    if (r.status !== 200) throw new Error(`GET /v1/services/web: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as ServiceBody;
  };
  const healthyReplicas = (tasks: Replica[]): Replica[] => tasks.filter((t) => t.desiredState === 'run' && t.state === 'running' && t.health === 'healthy');
  const settled = async (version: number): Promise<Replica[]> =>
    eventually(async () => {
      const s = await get();
      const healthy = healthyReplicas(s.tasks).filter((t) => t.version === version);
      return healthy.length === 3 && s.tasks.length === 3 ? healthy : undefined;
    }, 90_000, `3 healthy replicas of version ${version}`);

  it('runs 3 replicas that answer on their allocated ports, on more than one worker', async () => {
    const created = await c.http('m1', 'POST', '/v1/services', {
      name: 'web', task: f.task(false), replicas: 3, ports: [{ name: 'http' }],
      healthCheck: { type: 'http', port: 'http', path: '/', intervalS: 0.3, timeoutS: 1, retries: 2, startPeriodS: 0 },
      update: { parallelism: 1, monitorS: 1 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ name: 'web', version: 1, replicas: { desired: 3 } });
    const again = await c.http('m2', 'POST', '/v1/services', { name: 'web', task: f.task(false), replicas: 1 });
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'SERVICE_EXISTS' } } });
    const replicas = await settled(1);
    const ports = new Set(replicas.map((r) => r.ports[0]!.hostPort));
    expect(ports.size).toBe(3);
    expect(new Set(replicas.map((r) => r.workerId)).size).toBeGreaterThan(1);
    for (const r of replicas) {
      expect(r.ports).toEqual([{ name: 'http', hostPort: expect.any(Number), address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }]);
      const res = await fetch(`http://${r.ports[0]!.address}/`);
      expect(res.status).toBe(200);
      const task = await c.http('m2', 'GET', `/v1/tasks/${r.taskId}`);
      expect(task.body).toMatchObject({ service: { name: 'web', version: 1 }, health: 'healthy', ports: r.ports });
    }
  }, 120_000);

  it('replaces a replica whose process is killed', async () => {
    const [victim] = await settled(1);
    await f.kill(c, victim!);
    await eventually(async () => {
      const t = await c.http('m1', 'GET', `/v1/tasks/${victim!.taskId}`);
      return (t.body.attempt as number) > 1 ? true : undefined;
    }, 30_000, 'the killed replica to be restarted');
    const after = await settled(1);
    for (const r of after) expect((await fetch(`http://${r.ports[0]!.address}/`)).status).toBe(200);
  }, 120_000);

  it('places the replicas of a killed worker elsewhere', async () => {
    const before = await settled(1);
    const worker = before[0]!.workerId!;
    await c.signal(worker, 'SIGKILL');
    try {
      const after = await eventually(async () => {
        const s = await get();
        const healthy = healthyReplicas(s.tasks);
        return healthy.length === 3 && healthy.every((t) => t.workerId !== worker) ? healthy : undefined;
      }, 90_000, `3 healthy replicas off ${worker}`);
      for (const r of after) expect((await fetch(`http://${r.ports[0]!.address}/`)).status).toBe(200);
    } finally {
      c.start(worker);
    }
  }, 120_000);

  it('rolls back by itself from a version whose health check fails, never below replicas - parallelism healthy', async () => {
    await settled(1);
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await get().catch(() => null);
        if (s !== null) samples.push(healthyReplicas(s.tasks).length);
        await sleep(100);
      }
    })();
    try {
      const patched = await c.http('m3', 'PATCH', '/v1/services/web', { task: f.task(true) });
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      expect(patched.body).toMatchObject({ version: 2, previousVersion: 1, rollout: { state: 'updating' } });
      const done = await eventually(async () => {
        const s = await get();
        return s.rollout.state === 'rolled-back' && s.version === 1 ? s : undefined;
      }, 90_000, 'the rollout to roll back');
      // With the health check's reason, not only that it turned unhealthy (503 from node, 404 from busybox httpd).
      expect(done.rollout.message).toMatch(/^rolled back: replica \S+ of version 2 failed: unhealthy: http (503|404) from \/$/);
      await settled(1);
    } finally {
      sampling = false;
      await sampler;
    }
    expect(samples.length).toBeGreaterThan(10);
    expect(Math.min(...samples), `healthy samples: ${samples.join(',')}`).toBeGreaterThanOrEqual(2);
    // The failed replica's history says why it was restarted.
    const tasks = await c.http('m1', 'GET', '/v1/tasks?limit=1000');
    const v2 = (tasks.body.items as { service?: { version: number }; history: { reason?: string }[] }[]).filter((t) => t.service?.version === 2);
    expect(v2.length).toBeGreaterThan(0);
    const reasons = v2.flatMap((t) => t.history.map((h) => h.reason ?? ''));
    expect(reasons.some((r) => r.startsWith('unhealthy: ')), JSON.stringify(reasons)).toBe(true);
  }, 150_000);

  it('is driven by the CLI: service create --wait, ls, get, scale --wait, update, rm', async () => {
    if (f.runtime !== 'process') return;
    const env = { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json'), MINKUBE_API: c.url('m2') };
    const cmd = [process.execPath, '-e', nodeServer(200)];
    const created = await runCli(['service', 'create', 'cli', 'node', '--replicas', '2', '--port', 'http', '--health-http', 'http:/', '--health-interval', '0.3', '--monitor', '1', '--wait', '--', ...cmd], env);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('service cli: 2/2 healthy, 2 running, version 1');
    const ls = await runCli(['service', 'ls'], env);
    expect(ls.stdout).toMatch(/cli\s+2\/2\s+2\s+1\s+stable\s+node/);
    const get = await runCli(['service', 'get', 'cli', '--json'], env);
    expect(JSON.parse(get.stdout)).toMatchObject({ name: 'cli', replicas: { desired: 2, healthy: 2 } });
    const scaled = await runCli(['service', 'scale', 'cli', '1', '--wait'], env);
    expect(scaled.code, scaled.stderr).toBe(0);
    expect(scaled.stdout).toContain('service cli: 1/1 healthy, 1 running, version 1');
    const updated = await runCli(['service', 'update', 'cli', '--env', 'V=2', '--monitor', '0', '--wait'], env);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toContain('service cli: 1/1 healthy, 1 running, version 2');
    // A replica's attempts are not bounded by maxAttempts: task get says so rather than "1 of 3".
    const replica = (JSON.parse((await runCli(['service', 'get', 'cli', '--json'], env)).stdout) as { tasks: { taskId: string; version: number }[] }).tasks.find((t) => t.version === 2)!;
    const task = await runCli(['task', 'get', replica.taskId], env);
    expect(task.stdout).toMatch(/^attempt:\s+\d+ \(replica of service cli version 2: restarted without bound\)$/m);
    const missing = await runCli(['service', 'get', 'nope'], env);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringContaining('error: SERVICE_NOT_FOUND') });
    const rm = await runCli(['service', 'rm', 'cli'], env);
    expect(rm.stdout).toContain('service cli removed; stopping 1 replica');
  }, 120_000);

  it('service create --wait exits 1 naming the failure when the replicas crash-loop without a health check', async () => {
    const env = { MINKUBE_API: c.url('m2'), ...(f.secure ? { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json') } : {}) };
    // Each replica runs half a second, then exits 3: running at times (healthy, without a check), never for long.
    const image = f.runtime === 'docker' ? testImage : 'sh';
    const r = await runCli(['service', 'create', 'crashy', image, '--replicas', '2', '--wait', '--', 'sh', '-c', 'sleep 0.5; exit 3'], env);
    try {
      expect(r.code, r.stdout).toBe(1);
      // A process task's failure names a process, a Docker task's a container.
      const ran = f.runtime === 'docker' ? 'container' : 'process';
      expect(r.stderr).toMatch(new RegExp(`^error: service crashy: replica t[0-9a-z]{17} of version 1 failed: the ${ran} exited with code 3\\n$`));
    } finally {
      const tasks = await c.http('m1', 'GET', '/v1/tasks?limit=1000');
      const ids = (tasks.body.items as { id: string; service?: { name: string } }[]).filter((t) => t.service?.name === 'crashy').map((t) => t.id);
      expect((await runCli(['service', 'rm', 'crashy'], env)).code).toBe(0);
      await eventually(async () => {
        const states = await Promise.all(ids.map(async (id) => (await c.http('m1', 'GET', `/v1/tasks/${id}`)).body.state as string));
        return states.every((s) => s === 'stopped' || s === 'failed') ? true : undefined;
      }, 30_000, 'every crashy replica ended');
      if (f.runtime === 'docker') for (const id of ids) await removeLabelled({ 'minkube.task': id });
    }
  }, 60_000);

  it('service update --wait and service rollback --wait exit 1 with the reason as soon as the rollout pauses', async () => {
    if (f.runtime !== 'process') return;
    const env = { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json'), MINKUBE_API: c.url('m1') };
    const created = await runCli(['service', 'create', 'pz', 'node', '--replicas', '2', '--monitor', '2', '--wait', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)'], env);
    expect(created.code, created.stderr).toBe(0);
    // Version 2 exits at once: its first replica fails within its 2 s of watching (it never stays up that long, however
    // loaded the machine), and the rollout pauses with one replica of each version.
    const failing = ['--', process.execPath, '-e', 'process.exit(3)'];
    const paused = await runCli(['service', 'update', 'pz', '--failure-action', 'pause', '--wait', ...failing], env);
    expect(paused.code, paused.stdout).toBe(1);
    expect(paused.stderr).toMatch(/^error: service pz paused: replica t\S+ of version 2 failed/);
    // Back to version 1 (it runs: exit 0), then rollback again goes to version 2, which pauses as an update does.
    const back = await runCli(['service', 'rollback', 'pz', '--wait'], env);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('service pz: 2/2 healthy, 2 running, version 1');
    const again = await runCli(['service', 'rollback', 'pz', '--wait'], env);
    expect(again.code, again.stdout).toBe(1);
    expect(again.stderr).toMatch(/^error: service pz paused: replica t\S+ of version 2 failed/);
    expect((await runCli(['service', 'rm', 'pz'], env)).code).toBe(0);
  }, 120_000);

  it('service logs: every replica prefixed; --follow takes in a new replica and ends when the service is removed', async () => {
    if (f.runtime !== 'process') return;
    const env = { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json'), MINKUBE_API: c.url('m3') };
    const talker = "let i=0; setInterval(()=>console.log('tick '+(++i)), 200)";
    const created = await runCli(['service', 'create', 'talk', 'node', '--replicas', '2', '--monitor', '1', '--wait', '--', process.execPath, '-e', talker], env);
    expect(created.code, created.stderr).toBe(0);
    const replicas = (JSON.parse((await runCli(['service', 'get', 'talk', '--json'], env)).stdout) as { tasks: Replica[] }).tasks;
    // Each replica's last line, once both have printed one.
    const lines = await eventually(async () => {
      const tail = await runCli(['service', 'logs', 'talk', '--tail', '1'], env);
      expect(tail.code, tail.stderr).toBe(0);
      const got = tail.stdout.trimEnd().split('\n').filter(Boolean);
      return got.length === 2 ? got : undefined;
    }, 20_000, 'a line from each replica');
    expect(lines.map((l) => l.replace(/ \| tick \d+$/, '')).sort()).toEqual(replicas.map((r) => `${r.taskId}@${r.workerId}`).sort());

    const following = startCli(['service', 'logs', 'talk', '--follow', '--tail', '0'], env);
    const prefixesSoFar = (): number => new Set(following.stdoutSoFar().split('\n').filter(Boolean).map((l) => l.split(' | ')[0])).size;
    await eventually(async () => (prefixesSoFar() === 2 ? true : undefined), 20_000, 'lines from both replicas followed');
    expect((await runCli(['service', 'scale', 'talk', '3', '--wait'], env)).code).toBe(0);
    await eventually(async () => (prefixesSoFar() === 3 ? true : undefined), 20_000, 'lines from the new replica followed');
    expect((await runCli(['service', 'rm', 'talk'], env)).code).toBe(0);
    const followed = await following.done;
    expect(followed.code, followed.stderr).toBe(0);
    const prefixes = new Set(followed.stdout.trimEnd().split('\n').map((l) => l.split(' | ')[0]));
    expect(prefixes.size).toBe(3);
    expect(followed.stdout.trimEnd().split('\n').every((l) => /^t[0-9a-z]{17}@w\d \| tick \d+$/.test(l))).toBe(true);
  }, 120_000);

  it('service logs --follow follows a crash-looping replica through each attempt, prefixed with its worker', async () => {
    if (f.runtime !== 'process') return;
    const env = { MINKUBE_CONFIG: join(c.dir, '.minkube', 'credentials.json'), MINKUBE_API: c.url('m2') };
    // Five lines over 2.5 s, then exit 1: each attempt runs longer than the follower's 2 s look.
    const crasher = "let i=0; const t=setInterval(()=>{console.log('pid='+process.pid+' i='+(++i)); if(i===5){clearInterval(t); process.exitCode=1}}, 500)";
    const created = await runCli(['service', 'create', 'crash', 'node', '--replicas', '1', '--', process.execPath, '-e', crasher], env);
    expect(created.code, created.stderr).toBe(0);
    // Started while the replica is still pending: its first attempt is taken in once it runs.
    const following = startCli(['service', 'logs', 'crash', '--follow'], env);
    const attempts = await eventually(async () => {
      const r = await c.http('m2', 'GET', '/v1/services/crash?consistency=stale');
      const t = (r.body as ServiceBody).tasks[0] as (Replica & { attempt: number }) | undefined;
      return t !== undefined && t.attempt >= 4 && t.state === 'running' ? t.attempt : undefined;
    }, 40_000, 'a fourth attempt');
    const pidsSoFar = (): number => new Set(following.stdoutSoFar().match(/pid=\d+/g) ?? []).size;
    await eventually(async () => (pidsSoFar() >= Math.min(attempts, 4) - 1 ? true : undefined), 20_000, 'the running attempt followed');
    expect((await runCli(['service', 'rm', 'crash'], env)).code).toBe(0);
    const followed = await following.done;
    expect(followed.code, followed.stderr).toBe(0);
    const lines = followed.stdout.trimEnd().split('\n');
    expect(lines.every((l) => /^t[0-9a-z]{17}@w\d \| pid=\d+ i=[1-5]$/.test(l)), followed.stdout).toBe(true);
    const byPid = new Map<string, string[]>();
    for (const l of lines) {
      const pid = /pid=(\d+)/.exec(l)![1]!;
      byPid.set(pid, [...(byPid.get(pid) ?? []), l.replace(/^.* i=/, '')]);
    }
    // Each attempt followed, from its first line (the one removed may be cut short).
    expect(byPid.size, followed.stdout).toBeGreaterThanOrEqual(Math.min(attempts, 4) - 1);
    const ended = [...byPid.values()].slice(0, -1);
    for (const is of ended) expect(is).toEqual(['1', '2', '3', '4', '5']);
  }, 90_000);

  it('stops every replica when the service is removed', async () => {
    const before = await settled(1);
    const del = await c.http('m2', 'DELETE', '/v1/services/web');
    expect(del).toMatchObject({ status: 200, body: { name: 'web', deleted: true } });
    expect(await c.http('m1', 'GET', '/v1/services/web')).toMatchObject({ status: 404, body: { error: { code: 'SERVICE_NOT_FOUND' } } });
    await eventually(async () => {
      const states = await Promise.all(before.map(async (r) => (await c.http('m1', 'GET', `/v1/tasks/${r.taskId}`)).body.state as string));
      return states.every((s) => s === 'stopped') ? true : undefined;
    }, 30_000, 'every replica stopped');
  }, 60_000);
}

describe('services, process runtime (secure cluster)', () => servicesSuite(processFlavour));
describeDocker('services, Docker runtime (insecure cluster, host networking)', () => servicesSuite(dockerFlavour));
