// `minkube task ...` and `minkube worker ls` as child processes against an in-process cluster (three managers, two
// workers over the in-memory runtime): run and follow a task, list, inspect, stop, logs, and usage errors; run --count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/cluster.js';
import { startCli, type CliResult } from '../support/cli.js';
import { cliTaskCluster, type TaskCluster } from '../manager/tasks-harness.js';

let c: TaskCluster;
let cli: (args: string[]) => Promise<CliResult>;

beforeAll(async () => {
  ({ c, cli } = await cliTaskCluster((spec) => {
    if (spec.command?.[0] === 'fail') return { durationMs: 20, exitCode: 3 };
    if (spec.command?.[0] === 'nosuch') return { runFailure: 'command-not-found' };
    if (spec.command?.[0] === 'forever') return { durationMs: null, logs: 'still here\n' };
    return { durationMs: 300, exitCode: 0, logs: `said: ${spec.command?.slice(1).join(' ') ?? ''}\n` };
  }));
});
afterAll(() => c?.close());

describe.concurrent('minkube task', () => {
  it('run --wait follows a task to success: progress, then the exit code, exit 0', async () => {
    const r = await cli(['task', 'run', 'busybox', '--name', 'greet', '--env', 'A=1', '--wait', '--', 'echo', 'hi', '-n']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^task t[0-9a-z]{17} submitted\n/);
    expect(r.stdout).toMatch(/pending\s+attempt 1: submitted/);
    expect(r.stdout).toMatch(/running\s+attempt 1 on w[12]/);
    expect(r.stdout).toMatch(/task t[0-9a-z]{17} succeeded; exit code 0\n$/);
    const id = /task (t[0-9a-z]{17}) submitted/.exec(r.stdout)![1]!;
    const t = await c.http<{ spec: unknown }>('m1', 'GET', `/v1/tasks/${id}`);
    expect(t.body.spec).toMatchObject({ name: 'greet', command: ['echo', 'hi', '-n'], env: { A: '1' } });
  });

  it('run --wait exits 1 when the task fails, printing why, after its retries', async () => {
    const r = await cli(['task', 'run', 'busybox', '--restart', 'on-failure', '--max-attempts', '2', '--wait', '--', 'fail']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/attempt 2/);
    expect(r.stdout).toMatch(/failed; exit code 3\n$/);
    expect(r.stderr).toMatch(/^error: task t[0-9a-z]{17} failed: permanent: the container exited with code 3 \(attempt 2 of 2; no attempts left\)\n$/);
  });

  it('run --wait says why no worker can take the task while it waits to be placed, as task why does', async () => {
    const running = startCli(['--api', c.url('m2'), 'task', 'run', 'busybox', '--constraint', 'zone==nowhere', '--wait', '--', 'forever']);
    const line = await eventually(async () => /^.*pending\s+attempt 1: no worker can take it now .*$/m.exec(running.stdoutSoFar())?.[0], 20_000, 'the reason it waits');
    const id = /task (t[0-9a-z]{17}) submitted/.exec(running.stdoutSoFar())![1]!;
    expect(line).toMatch(new RegExp(`attempt 1: no worker can take it now \\(w1: label zone[^;]*; w2: label zone[^;]*; see task why ${id}\\)$`));
    // Its logs: nothing on stdout, and on stderr that it has not run yet.
    expect(await cli(['task', 'logs', id])).toMatchObject({ code: 0, stdout: '', stderr: `task ${id} has not run yet (pending): no output\n` });
    expect((await cli(['task', 'stop', id])).code).toBe(0);
    const r = await running.done;
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: task ${id} was stopped\n`);
    expect(await cli(['task', 'logs', '-f', id])).toMatchObject({ code: 0, stdout: '', stderr: `task ${id} never ran (stopped): no output\n` });
    // Said once, not at every look (said again only if the reason changed: a worker judged unreachable on a loaded host).
    const said = r.stdout.split('\n').filter((l) => l.includes('no worker can take it'));
    expect(said.length).toBeGreaterThanOrEqual(1);
    expect(new Set(said).size).toBe(said.length);
  });

  it('ls pages in text mode: stderr names the --cursor that goes on, and ls --cursor C lists the next page (outside tester: the hint pointed to a nextCursor the CLI could not use)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const run = await cli(['task', 'run', 'busybox', '--name', 'paged', '--', 'forever']);
      expect(run.code, run.stderr).toBe(0);
      ids.push(run.stdout.trim());
    }
    const first = await cli(['task', 'ls', '--name', 'paged', '--limit', '2']);
    expect(first.code, first.stderr).toBe(0);
    const cursor = /^more tasks follow: add --cursor (\S+) for the next page \(or raise --limit\)$/m.exec(first.stderr)?.[1];
    expect(cursor, first.stderr).toBeDefined();
    const next = await cli(['task', 'ls', '--name', 'paged', '--limit', '2', '--cursor', cursor!]);
    expect([next.code, next.stderr]).toEqual([0, '']);
    const listed = (out: string): string[] => [...out.matchAll(/^(t[0-9a-z]{17})\s/gm)].map((m) => m[1]!);
    expect([...listed(first.stdout), ...listed(next.stdout)].sort()).toEqual([...ids].sort());
    await Promise.all(ids.map((id) => cli(['task', 'stop', id])));
  });

  it('run without --wait prints the id; get, logs and stop work on it; ls lists it', async () => {
    const run = await cli(['task', 'run', 'busybox', '--', 'forever']);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^t[0-9a-z]{17}$/);
    await eventually(async () => ((await c.http<{ state: string }>('m1', 'GET', `/v1/tasks/${id}`)).body.state === 'running' ? true : undefined), 10_000, 'running');
    const get = await cli(['task', 'get', id]);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(new RegExp(`^id:\\s+${id}$`, 'm'));
    expect(get.stdout).toMatch(/^state:\s+running \(desired: run\)$/m);
    expect(get.stdout).toMatch(/^attempt:\s+1 of 3 \(restart: never\)$/m);
    expect(get.stdout).toMatch(/^history:$/m);
    const logs = await cli(['task', 'logs', id]);
    expect(logs).toMatchObject({ code: 0, stdout: 'still here\n' });
    const ls = await cli(['task', 'ls', '--state', 'running']);
    expect(ls.stdout).toMatch(/^ID\s+NAME\s+IMAGE\s+STATE\s+WORKER\s+ATTEMPT\s+EXIT\s+UPDATED$/m);
    expect(ls.stdout).toContain(id);
    const stop = await cli(['task', 'stop', id]);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(new RegExp(`^${id}: (stopping|stopped)`));
    await eventually(async () => ((await c.http<{ state: string }>('m1', 'GET', `/v1/tasks/${id}`)).body.state === 'stopped' ? true : undefined), 10_000, 'stopped');
    const json = await cli(['--json', 'task', 'get', id]);
    expect(JSON.parse(json.stdout)).toMatchObject({ id, state: 'stopped', desiredState: 'stop' });
  });

  it('worker ls shows both workers', async () => {
    // A loaded machine can stall this process past the 600 ms worker TTL, and a worker then shows as unreachable
    // until its next heartbeat: wait for a listing with both ready.
    const r = await eventually(async () => {
      const out = await cli(['worker', 'ls']);
      return /^w1\s+ready\s/m.test(out.stdout) && /^w2\s+ready\s/m.test(out.stdout) ? out : undefined;
    }, 10_000, 'both workers listed as ready');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+STATE\s+API\s+RUNTIME\s+TASKS\s+CPU\s+MEM FREE\s+AVAILABILITY\s+LAST HEARTBEAT$/m);
    expect(r.stdout).toMatch(/^w1\s+ready\s+127\.0\.0\.1:\d+\s+memory\s/m);
    expect(r.stdout).toMatch(/^w2\s+ready\s/m);
  });

  it('run --count 3 creates three copies of the spec (the name numbered) and prints their ids', async () => {
    const r = await cli(['task', 'run', 'busybox', '--count', '3', '--name', 'copy', '--env', 'B=2', '--', 'forever']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const ids = r.stdout.trim().split('\n');
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(id).toMatch(/^t[0-9a-z]{17}$/);
    const specs = await Promise.all(ids.map(async (id) => (await c.http<{ spec: { name?: string } }>('m1', 'GET', `/v1/tasks/${id}`)).body.spec));
    expect(specs.map((s) => s.name)).toEqual(['copy-1', 'copy-2', 'copy-3']);
    for (const spec of specs) expect(spec).toMatchObject({ image: 'busybox', command: ['forever'], env: { B: '2' } });
    await Promise.all(ids.map((id) => c.http('m1', 'DELETE', `/v1/tasks/${id}`)));
  });

  it('run --count 3 --wait shows the count until all have started, then the summary; --json answers { id, state }', async () => {
    const r = await cli(['task', 'run', 'busybox', '--count', '3', '--wait', '--', 'echo', 'x']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^(t[0-9a-z]{17}\n){3}3 tasks: \d waiting, /);
    expect(r.stdout).toMatch(/\n3 tasks: 0 waiting, \d running, \d succeeded, 0 failed, 0 stopped\n/);
    expect(r.stdout).toMatch(/\n3 tasks: \d running, \d succeeded, 0 failed, 0 stopped\n$/);
    const json = await cli(['--json', 'task', 'run', 'busybox', '--count', '2', '--', 'echo', 'y']);
    expect(json.code).toBe(0);
    const items = JSON.parse(json.stdout) as { id: string; state: string }[];
    expect(items).toEqual([{ id: expect.stringMatching(/^t/) as string, state: 'pending' }, { id: expect.stringMatching(/^t/) as string, state: 'pending' }]);
  });

  it('run --count 2 --wait exits 1 when tasks fail, naming each and the count', async () => {
    const r = await cli(['task', 'run', 'busybox', '--count', '2', '--wait', '--', 'nosuch']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\n2 tasks: 0 running, 0 succeeded, 2 failed, 0 stopped\n$/);
    expect(r.stderr).toMatch(/^error: task t[0-9a-z]{17} failed: permanent: .*command-not-found.*\nerror: task t[0-9a-z]{17} failed: .*\nerror: 2 of 2 tasks failed\n$/);
  });

  it('run --count must be an integer from 1 to 100000 (a usage error, exit 2)', async () => {
    for (const bad of ['0', 'abc']) {
      const r = await cli(['task', 'run', 'busybox', '--count', bad]);
      expect(r).toMatchObject({ code: 2, stdout: '' });
      expect(r.stderr).toContain(`error: option '--count <n>' argument '${bad}' is invalid. expected an integer from 1 to 100000.`);
    }
  });

  it('errors: an unknown task is TASK_NOT_FOUND (exit 1); bad flags are usage errors (exit 2)', async () => {
    const missing = await cli(['task', 'get', 'tnosuchtask']);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toMatch(/^error: TASK_NOT_FOUND: /);
    expect((await cli(['task', 'run', 'busybox', '--restart', 'sometimes'])).code).toBe(2);
    expect((await cli(['task', 'run', 'busybox', '--env', 'NOEQUALS'])).code).toBe(2);
    expect((await cli(['task', 'ls', '--state', 'bogus'])).code).toBe(2);
    const noConfig = await cli(['worker']);
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toMatch(/required option '--config <file>'/);
  });
});
