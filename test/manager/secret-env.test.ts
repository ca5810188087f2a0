// secretEnv end to end inside one process (three real managers, two workers over the in-memory runtime): the
// container gets the values in its environment beside env, and no answer shows one: the managers' task routes, the
// workers' own API, the CLI (`task run --secret-env-file`, `task get [--json]`, `task ls --json`) and every log line
// at debug. A new leader that places the retry after a failover hands the values over too.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/contracts/task-model.js';
import { MemoryRuntime } from '../../src/runtime/memory.js';
import type { RunSpec } from '../../src/runtime/types.js';
import { runCli } from '../support/cli.js';
import { eventually } from '../support/cluster.js';
import { TaskCluster } from './tasks-harness.js';

/** Every value below: none of them may appear in an answer or a log line. */
const secrets = ['hunter2-s3cret', 'tok-from-file-9f8e', 'retry-secret-77', 'svc-file-secret-31', 'svc-flag-secret-42'];

let c: TaskCluster;
let dir: string;
const logLines: string[] = [];
/** What the runtime was asked to run, per task id and attempt. */
const runs: { taskId: string; attempt: string; env: Record<string, string> | undefined }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'minkube-secret-'));
  c = await TaskCluster.create({
    logLevel: 'debug',
    logStream: { write: (line: string) => void logLines.push(line) },
    behave: (spec: RunSpec) => {
      runs.push({ taskId: spec.labels['minkube.task']!, attempt: spec.labels['minkube.attempt']!, env: spec.env });
      // Runs until the test ends it, once the leader that placed it is stopped: a fixed duration (1.5 s, then 4 s)
      // ended before a loaded CI run had stopped that leader, which then placed the retry itself, in its own term.
      if (spec.command?.[0] === 'fail-first' && spec.labels['minkube.attempt'] === '1') return { durationMs: null };
      if (spec.command?.[0] === 'serve') return { durationMs: null };
      return { durationMs: 100, exitCode: 0, logs: 'done\n' };
    },
  });
  await c.startAll();
  await eventually(async () => {
    const r = await c.http<{ items: { state: string }[] }>('m1', 'GET', '/v1/workers');
    return r.body.items.filter((w) => w.state === 'ready').length === 2 ? true : undefined;
  }, 10_000, 'two ready workers');
});
afterAll(async () => {
  await c?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

async function task(m: string, id: string): Promise<TaskRecord> {
  return (await c.http<TaskRecord>(m, 'GET', `/v1/tasks/${id}`)).body;
}

function waitState(id: string, states: readonly string[], timeoutMs = 10_000): Promise<TaskRecord> {
  const m = [...c.managers.keys()][0]!;
  return eventually(async () => {
    const t = await task(m, id);
    return states.includes(t.state) ? t : undefined;
  }, timeoutMs, `task ${id} to reach ${states.join('|')}`);
}

function expectNoSecret(text: string): void {
  for (const s of secrets) expect(text).not.toContain(s);
}

describe('secretEnv through a cluster', () => {
  it('the container gets the values beside env; no manager, worker or CLI answer shows one', async () => {
    const submitted = await c.http<{ id: string }>('m2', 'POST', '/v1/tasks', {
      image: 'db-client', command: ['migrate'], env: { HOST: 'db' }, secretEnv: { DB_PASSWORD: secrets[0] },
    });
    expect(submitted.status).toBe(201);
    expectNoSecret(JSON.stringify(submitted.body));
    const id = submitted.body.id;
    const done = await waitState(id, ['succeeded']);
    expect(runs.find((r) => r.taskId === id)?.env).toEqual({ HOST: 'db', DB_PASSWORD: secrets[0] });

    for (const m of c.managers.keys()) {
      const one = await c.http<TaskRecord>(m, 'GET', `/v1/tasks/${id}`);
      expect(one.body.spec.secretEnv).toEqual({ DB_PASSWORD: '<redacted>' });
      expect(one.body.spec.env).toEqual({ HOST: 'db' });
      expectNoSecret(JSON.stringify(one.body));
      expectNoSecret(JSON.stringify((await c.http(m, 'GET', '/v1/tasks?limit=1000')).body));
    }
    const worker = c.workers.get(done.workerId!)!;
    for (const path of ['/v1/tasks', `/v1/tasks/${id}`]) {
      const r = await c.http(worker.id, 'GET', path);
      expect(r.status).toBe(200);
      expectNoSecret(JSON.stringify(r.body));
    }

    const api = c.url('m1');
    const json = await runCli(['--api', api, '--json', 'task', 'get', id]);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as TaskRecord).spec.secretEnv).toEqual({ DB_PASSWORD: '<redacted>' });
    const text = await runCli(['--api', api, 'task', 'get', id]);
    expect(text.stdout).toMatch(/^secret env: DB_PASSWORD$/m);
    const list = await runCli(['--api', api, '--json', 'task', 'ls', '--limit', '1000']);
    expect(list.code).toBe(0);
    for (const out of [json, text, list]) expectNoSecret(out.stdout + out.stderr);
  });

  it('task run --secret-env-file and --secret-env deliver the values; the CLI prints none', async () => {
    const file = join(dir, 'secrets.env');
    writeFileSync(file, `# for the task\nAPI_TOKEN=${secrets[1]}\n\nDB_PASSWORD=from-file\n`, { mode: 0o600 });
    const r = await runCli(['--api', c.url('m3'), 'task', 'run', 'db-client', '--secret-env-file', file, '--secret-env', 'DB_PASSWORD=flag-wins', '--wait', '--', 'migrate']);
    expect(r.code).toBe(0);
    expectNoSecret(r.stdout + r.stderr);
    const id = /task (t[0-9a-z]{17}) submitted/.exec(r.stdout)![1]!;
    expect(runs.find((x) => x.taskId === id)?.env).toEqual({ API_TOKEN: secrets[1], DB_PASSWORD: 'flag-wins' });
    expect((await task('m1', id)).spec.secretEnv).toEqual({ API_TOKEN: '<redacted>', DB_PASSWORD: '<redacted>' });
  });

  it('a bad --secret-env is a usage error that does not echo the argument', async () => {
    const r = await runCli(['--api', c.url('m1'), 'task', 'run', 'x', '--secret-env', secrets[0]!]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--secret-env expects NAME=VALUE/);
    expectNoSecret(r.stderr);
  });

  it('service create and update take --secret-env(-file); an update keeps the values it does not name', async () => {
    const file = join(dir, 'service.env');
    writeFileSync(file, `SVC_A=${secrets[3]}\n`, { mode: 0o600 });
    const api = c.url('m2');
    const created = await runCli(['--api', api, 'service', 'create', 'vault-client', 'db-client', '--replicas', '1', '--env', 'HOST=db', '--secret-env-file', file, '--', 'serve']);
    expect(created.code, created.stderr).toBe(0);
    const envOf = (needle: string): Promise<Record<string, string>> =>
      eventually(async () => runs.find((r) => r.env?.[needle] !== undefined)?.env, 10_000, `a replica with ${needle}`);
    expect(await envOf('SVC_A')).toEqual({ HOST: 'db', SVC_A: secrets[3] });

    const updated = await runCli(['--api', api, 'service', 'update', 'vault-client', '--secret-env', `SVC_B=${secrets[4]}`, '--env', 'MODE=x']);
    expect(updated.code, updated.stderr).toBe(0);
    expect(await envOf('SVC_B')).toEqual({ HOST: 'db', MODE: 'x', SVC_A: secrets[3], SVC_B: secrets[4] });
    const view = await c.http<{ version: number; spec: { secretEnv?: Record<string, string> } }>('m1', 'GET', '/v1/services/vault-client');
    expect(view.body.version).toBe(2);
    expect(view.body.spec.secretEnv).toEqual({ SVC_A: '<redacted>', SVC_B: '<redacted>' });

    // "<redacted>" keeps a value the current version has, and only such a value.
    const task = { image: 'db-client', command: ['serve'], secretEnv: { SVC_A: '<redacted>', SVC_C: '<redacted>' } };
    const refused = await c.http<{ error: { code: string; message: string } }>('m1', 'PATCH', '/v1/services/vault-client', { task });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('INVALID_BODY');
    expect(refused.body.error.message).toBe(`body.task.secretEnv.SVC_C: "<redacted>" keeps the current value, and the service's current version has no secret SVC_C`);
    // A secret variable given as a plain one is refused before any request.
    const moved = await runCli(['--api', api, 'service', 'update', 'vault-client', '--env', 'SVC_A=plain']);
    expect(moved.code).not.toBe(0);
    expect(moved.stderr).toMatch(/SVC_A is a secret variable of this service: give it with --secret-env, not --env/);

    for (const out of [created, updated, moved]) expectNoSecret(out.stdout + out.stderr);
    expectNoSecret(JSON.stringify((await c.http('m3', 'GET', '/v1/services/vault-client')).body));
    expect((await c.http('m1', 'DELETE', '/v1/services/vault-client')).status).toBe(200);
  });

  it('after a failover, the new leader places the retry with the values', async () => {
    const submitted = await c.http<{ id: string }>('m1', 'POST', '/v1/tasks', {
      image: 'db-client', command: ['fail-first'], restartPolicy: 'on-failure', secretEnv: { RETRY_SECRET: secrets[2] },
    });
    expect(submitted.status).toBe(201);
    const id = submitted.body.id;
    const first = await waitState(id, ['running']);
    const leader = await c.leader();
    await c.stopManager(leader);
    await c.leader(20_000);
    // The first attempt fails now (stopped from outside the worker: 143), and the new leader places the retry.
    const [host, containerId] = [...c.hosts.values()].flatMap((h) => [...h.containers].filter(([, ct]) => ct.info.labels['minkube.task'] === id).map(([cid]) => [h, cid] as const))[0]!;
    await new MemoryRuntime({ host }).stop(containerId, 0);
    const done = await waitState(id, ['succeeded'], 20_000);
    expect(done.attempt).toBe(2);
    expect(done.term).toBeGreaterThan(first.term);
    expect(runs.filter((x) => x.taskId === id).map((x) => [x.attempt, x.env])).toEqual([
      ['1', { RETRY_SECRET: secrets[2] }],
      ['2', { RETRY_SECRET: secrets[2] }],
    ]);
    await c.startManager(leader);
  });

  it('no log line of any node holds a value', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expectNoSecret(logLines.join(''));
  });
});
