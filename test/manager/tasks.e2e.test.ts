// Tasks end to end with real processes: three managers and two workers (bin/minkube.js), run once with the process
// runtime and once with Docker (describeDocker: skipped without Docker, failed under MINKUBE_REQUIRE_DOCKER=1).
// Scenarios share one cluster per runtime and run in order; each tags its tasks with a label to find them again.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerTaskStatus } from '../../src/contracts/worker.js';
import type { TaskRecord, TaskSpec } from '../../src/contracts/task-model.js';
import { backoffCeilingMs } from '../../src/lib/backoff.js';
import { runCli } from '../support/cli.js';
import { ProcCluster, eventually, httpJson, sleep } from '../support/cluster.js';
import { describeDocker, removeContainersNamed, removeLabelled, testImage, workerSandboxes } from '../support/docker.js';

interface RuntimeCase {
  name: 'process' | 'docker';
  describe: (name: string, fn: () => void) => void;
  image: string;
}

const cases: RuntimeCase[] = [
  { name: 'process', describe: (name, fn) => describe(name, fn), image: 'minkube-none' },
  { name: 'docker', describe: describeDocker, image: testImage },
];

const tasksConfig = {
  workerHeartbeatIntervalMs: 200, workerTtlMs: 8000, lostGraceMs: 2000, reconcileIntervalMs: 500,
  backoffBaseMs: 300, backoffCapMs: 3000, assignTimeoutMs: 8000, stopTimeoutMs: 2000,
};

const final = new Set(['succeeded', 'failed', 'stopped']);

for (const rt of cases) {
  rt.describe(`tasks end to end, ${rt.name} runtime (3 managers, 2 workers, real processes)`, () => {
    const runLabel = { 'minkube.test': '1', 'minkube.test.run': randomBytes(6).toString('hex') };
    let c: ProcCluster;

    const spec = (command: string[], scenario: string, extra: Partial<TaskSpec> = {}): TaskSpec => ({
      image: rt.image, command, labels: { ...runLabel, scenario }, ...extra,
    });

    async function submit(m: string, s: TaskSpec, key?: string): Promise<{ status: number; id?: string }> {
      const res = await fetch(`${c.url(m)}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
        body: JSON.stringify(s),
        signal: AbortSignal.timeout(5000),
      });
      const body = (await res.json()) as { id?: string };
      return body.id === undefined ? { status: res.status } : { status: res.status, id: body.id };
    }

    async function get(id: string, among = c.managerIds): Promise<TaskRecord | undefined> {
      for (const m of among) {
        if (c.node(m).proc === null) continue;
        const r = await httpJson(c.url(m), 'GET', `/v1/tasks/${id}`, undefined, 3000).catch(() => null);
        if (r?.status === 200) return r.body as TaskRecord;
      }
      return undefined;
    }

    async function until(id: string, ok: (t: TaskRecord) => boolean, what: string, timeoutMs = 30_000): Promise<TaskRecord> {
      return eventually(async () => {
        const t = await get(id);
        return t !== undefined && ok(t) ? t : undefined;
      }, timeoutMs, `task ${id}: ${what}`);
    }

    async function tasksWithLabel(scenario: string): Promise<TaskRecord[]> {
      const out: TaskRecord[] = [];
      let cursor: string | null = null;
      const m = c.managerIds.find((id) => c.node(id).proc !== null)!;
      do {
        const q: string = cursor === null ? '' : `&cursor=${cursor}`;
        const page = (await httpJson(c.url(m), 'GET', `/v1/tasks?limit=1000${q}`)).body as { items: TaskRecord[]; nextCursor: string | null };
        out.push(...page.items.filter((t) => t.spec.labels?.scenario === scenario && t.spec.labels['minkube.test.run'] === runLabel['minkube.test.run']));
        cursor = page.nextCursor;
      } while (cursor !== null);
      return out;
    }

    /** Running copies per task: Docker containers by label, or the workers' own task maps (reachable ones). */
    async function runningCopies(): Promise<Map<string, number>> {
      const copies = new Map<string, number>();
      if (rt.name === 'docker') {
        const list = await new Docker().listContainers({ filters: { label: [`minkube.test.run=${runLabel['minkube.test.run']}`], status: ['running'] } });
        for (const x of list) {
          const task = x.Labels['minkube.task'];
          if (task !== undefined) copies.set(task, (copies.get(task) ?? 0) + 1);
        }
        return copies;
      }
      for (const w of ['w1', 'w2']) {
        if (c.node(w).proc === null) continue;
        const r = await httpJson(c.url(w), 'GET', '/v1/tasks', undefined, 2000).catch(() => null);
        for (const s of ((r?.body as { items?: WorkerTaskStatus[] } | null)?.items ?? [])) {
          if (s.state === 'running') copies.set(s.taskId, (copies.get(s.taskId) ?? 0) + 1);
        }
      }
      return copies;
    }

    async function stopAll(ids: string[]): Promise<void> {
      const m = c.managerIds.find((id) => c.node(id).proc !== null)!;
      await Promise.all(ids.map((id) => httpJson(c.url(m), 'DELETE', `/v1/tasks/${id}`)));
      await Promise.all(ids.map((id) => until(id, (t) => final.has(t.state), 'ended')));
    }

    async function workerState(id: string): Promise<string | undefined> {
      const m = c.managerIds.find((x) => c.node(x).proc !== null)!;
      const r = await httpJson(c.url(m), 'GET', `/v1/workers/${id}`).catch(() => null);
      return (r?.body as { state?: string } | null)?.state;
    }

    beforeAll(async () => {
      c = await ProcCluster.create({ managers: 3, workers: 2, workerRuntime: rt.name, extra: { tasks: tasksConfig } });
      c.startAll();
      // Generous: five processes start at once, and on a loaded machine each may take long to start.
      await c.waitForLeader({ timeoutMs: 150_000 });
      await eventually(async () => ((await workerState('w1')) === 'ready' && (await workerState('w2')) === 'ready' ? true : undefined), 60_000, 'both workers ready');
    }, 240_000);

    afterAll(async () => {
      // The workers' network sandboxes (made on their first task) go too: named after each worker's instance.
      const sandboxes = c === undefined || rt.name !== 'docker' ? [] : workerSandboxes(c.dir, ['w1', 'w2']);
      await c?.cleanup();
      if (rt.name === 'docker') {
        await removeLabelled(runLabel);
        await removeContainersNamed(sandboxes);
      }
    });

    it('20 tasks submitted through a follower alternate between the workers and all succeed', async () => {
      const leader = await c.waitForLeader();
      const follower = c.managerIds.find((id) => id !== leader)!;
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await submit(follower, spec(['sh', '-c', `echo task ${i}`], 'twenty'));
        expect(r.status).toBe(201);
        ids.push(r.id!);
      }
      const done = await Promise.all(ids.map((id) => until(id, (t) => final.has(t.state), 'ended')));
      expect(done.map((t) => t.state)).toEqual(Array(20).fill('succeeded'));
      expect(done.every((t) => t.attempt === 1 && t.exitCode === 0)).toBe(true);
      for (let i = 1; i < done.length; i++) expect(done[i]!.workerId).not.toBe(done[i - 1]!.workerId);
      const logs = await fetch(`${c.url(follower)}/v1/tasks/${ids[3]}/logs`);
      expect(await logs.text()).toBe('task 3\n');
    });

    it('logs followed through a follower: the tail, each line as it is written, the end with the container (HTTP and the CLI)', async () => {
      const leader = await c.waitForLeader();
      const follower = c.managerIds.find((id) => id !== leader)!;
      const r = await submit(follower, spec(['sh', '-c', 'echo one; echo two; sleep 3; echo three; sleep 3; echo four'], 'follow'));
      await until(r.id!, (t) => t.state === 'running', 'running');
      const logsUrl = `${c.url(follower)}/v1/tasks/${r.id!}/logs`;
      await eventually(async () => ((await (await fetch(logsUrl)).text()).includes('two') ? true : undefined), 10_000, 'the first lines');
      const cli = runCli(['--api', c.url(follower), 'task', 'logs', '--follow', '--tail', '1', r.id!]);
      const res = await fetch(`${logsUrl}?follow=true&tail=1`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      // When each line arrived: 'three' about three seconds after 'two', not all of them at the end.
      const arrivedAt = new Map<string, number>();
      let text = '';
      const reader = res.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
        for (const word of ['two', 'three', 'four']) if (text.includes(word) && !arrivedAt.has(word)) arrivedAt.set(word, performance.now());
      }
      expect(text).toBe('two\nthree\nfour\n');
      expect(arrivedAt.get('three')! - arrivedAt.get('two')!).toBeGreaterThan(1000);
      expect(arrivedAt.get('four')! - arrivedAt.get('three')!).toBeGreaterThan(1000);
      expect(await cli).toMatchObject({ code: 0, stdout: 'two\nthree\nfour\n' });
      // The stream ends with the container; the record follows at the worker's next report.
      await until(r.id!, (t) => t.state === 'succeeded', 'succeeded');
    });

    it('task run --follow prints each attempt\'s output and exits with the task\'s exit code', async () => {
      const api = ['--api', c.url(c.managerIds[2]!)];
      const ok = await runCli([...api, 'task', 'run', '--follow', rt.image, '--', 'sh', '-c', 'echo hello; sleep 0.5; echo world']);
      expect(ok, ok.stderr).toMatchObject({ code: 0, stdout: 'hello\nworld\n' });
      expect(ok.stderr).toMatch(/^task (t[0-9a-z]{17}) submitted\ntask \1: attempt 1 succeeded: exited with code 0\n$/);
      const failing = await runCli([...api, 'task', 'run', '-f', '--restart', 'on-failure', '--max-attempts', '2', rt.image, '--', 'sh', '-c', 'echo try; exit 7']);
      expect(failing.code, failing.stderr).toBe(7);
      expect(failing.stdout).toBe('try\ntry\n');
      expect(failing.stderr).toMatch(/: attempt 1 ended: exited with code 7; retrying \(attempt 2 of 2\)\ntask t[0-9a-z]{17}: attempt 2 on w\d/);
      expect(failing.stderr).toMatch(/error: task t[0-9a-z]{17} failed: .*code 7/);
    });

    it('a command that does not exist fails permanently after one attempt, with the reason', async () => {
      const r = await submit(c.managerIds[0]!, spec(['/nonexistent/minkube-no-such-command'], 'nocmd', { maxAttempts: 3, restartPolicy: 'on-failure' }));
      const t = await until(r.id!, (x) => final.has(x.state), 'ended');
      expect(t).toMatchObject({ state: 'failed', attempt: 1, error: { class: 'permanent' } });
      expect(t.error!.message).toMatch(/no such file|not found|ENOENT/i);
    });

    if (rt.name === 'docker') {
      it('a missing image fails permanently after one attempt', async () => {
        const r = await submit(c.managerIds[1]!, { ...spec(['true'], 'noimage'), image: 'minkube-no-such-image:never' });
        const t = await until(r.id!, (x) => final.has(x.state), 'ended', 60_000);
        expect(t).toMatchObject({ state: 'failed', attempt: 1, error: { class: 'permanent' } });
        expect(t.error!.message).toMatch(/image/i);
      });
    }

    if (rt.name === 'docker') {
      it('a task killed for exceeding its memory limit fails naming it, not only its exit code 137', async () => {
        const r = await submit(c.managerIds[0]!, spec(['sh', '-c', 'x=a; while true; do x=$x$x; done'], 'oom', { resources: { memoryMb: 16 } }));
        const t = await until(r.id!, (x) => final.has(x.state), 'ended', 60_000);
        expect(t).toMatchObject({ state: 'failed', exitCode: 137, error: { class: 'permanent', message: 'the container was killed for exceeding its memory limit of 16 MiB (exit code 137)' } });
      });
    }

    it('exit 1 with on-failure and maxAttempts 3 runs three times with backoff, then fails', async () => {
      const r = await submit(c.managerIds[2]!, spec(['sh', '-c', 'exit 1'], 'onfailure', { restartPolicy: 'on-failure', maxAttempts: 3 }));
      const t = await until(r.id!, (x) => final.has(x.state), 'ended');
      expect(t).toMatchObject({ state: 'failed', attempt: 3, exitCode: 1, error: { class: 'permanent' } });
      expect(t.error!.message).toMatch(/code 1.*attempt 3 of 3/);
      const h = t.history;
      expect(h.filter((x) => x.state === 'scheduled').map((x) => x.attempt)).toEqual([1, 2, 3]);
      // Each retry waited its backoff: at most its ceiling (full jitter), plus scheduling slack.
      for (const attempt of [2, 3]) {
        const requeued = h.find((x) => x.state === 'pending' && x.attempt === attempt)!;
        const placed = h.find((x) => x.state === 'scheduled' && x.attempt === attempt)!;
        const delayMs = placed.atMs - requeued.atMs;
        expect(delayMs).toBeGreaterThanOrEqual(0);
        // Attempt n is retry number n - 1.
        expect(delayMs).toBeLessThan(backoffCeilingMs(attempt - 1, { baseMs: tasksConfig.backoffBaseMs, capMs: tasksConfig.backoffCapMs }) + 1500);
      }
    });

    it('SIGKILL of a worker: its running tasks are rescheduled on the other worker; back, it stops the stale copies', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await submit(c.managerIds[0]!, spec(['sleep', '60'], 'workerkill'))).id!);
      const running = await Promise.all(ids.map((id) => until(id, (t) => t.state === 'running', 'running')));
      const victim = running[0]!.workerId!;
      const other = victim === 'w1' ? 'w2' : 'w1';
      const moved = running.filter((t) => t.workerId === victim).map((t) => t.id);
      expect(moved.length).toBeGreaterThan(0);
      await c.signal(victim, 'SIGKILL');
      const after = await Promise.all(moved.map((id) => until(id, (t) => t.state === 'running' && t.workerId === other, `running on ${other}`, 40_000)));
      for (const t of after) {
        expect(t.attempt).toBe(2);
        expect(t.history.map((x) => x.state)).toContain('lost');
      }
      expect(await workerState(victim)).toBe('down');
      c.start(victim);
      await eventually(async () => ((await workerState(victim)) === 'ready' ? true : undefined), 30_000, `${victim} back`);
      await eventually(async () => {
        const copies = await runningCopies();
        return ids.every((id) => (copies.get(id) ?? 0) === 1) ? true : undefined;
      }, 20_000, 'one running copy per task');
      await stopAll(ids);
    });

    it('a restarted worker re-adopts its running tasks', async () => {
      const ids: string[] = [];
      // An hour, so that a slow restart on a loaded machine does not outlast the tasks.
      for (let i = 0; i < 2; i++) ids.push((await submit(c.managerIds[1]!, spec(['sleep', '3600'], 'readopt'))).id!);
      const before = await Promise.all(ids.map((id) => until(id, (t) => t.state === 'running', 'running')));
      const w = before[0]!.workerId!;
      // Two tasks that print and end (placements alternate: one on each worker): their containers are removed, and
      // the output of the one on w must outlive w's restart.
      const ended: TaskRecord[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await submit(c.managerIds[1]!, spec(['sh', '-c', `echo kept ${i}; exit 3`], 'readopt-logs'));
        ended.push(await until(r.id!, (t) => final.has(t.state), 'ended'));
      }
      const endedOnW = ended.find((t) => t.workerId === w)!;
      expect(endedOnW).toBeDefined();
      // Processes only (a container cannot see the gate; Docker keeps exit codes anyway): two tasks that end with 3 once
      // the test says so, one on each worker. The one on w ends after w's restart, while no process of w is its parent:
      // its real exit code, and no second attempt under restart policy never.
      const gate = join(c.dir, `gate-${runLabel['minkube.test.run']}`);
      const gated: TaskRecord[] = [];
      if (rt.name === 'process') {
        for (let i = 0; i < 2; i++) {
          const r = await submit(c.managerIds[1]!, spec(['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.1; done; exit 3`], 'readopt-exit', { restartPolicy: 'never' }));
          gated.push(await until(r.id!, (t) => t.state === 'running', 'running'));
        }
        expect(gated.map((t) => t.workerId).sort()).toEqual(['w1', 'w2']);
      }
      await eventually(async () => (existsSync(join(c.dir, w, 'logs', `${endedOnW.id}.json`)) ? true : undefined), 10_000, 'the output kept on disk');
      await c.signal(w, 'SIGKILL');
      c.start(w);
      await eventually(async () => {
        const r = await httpJson(c.url(w), 'GET', '/v1/tasks', undefined, 1000).catch(() => null);
        return r?.status === 200 ? true : undefined;
      }, 120_000, `${w} serving again`);
      // Long enough for a replacement to show: the managers have recorded six heartbeats of the restarted worker
      // (1.2 s of them at 200 ms, in which it reconciles twice at 500 ms), counted, not timed.
      const beats = new Set<string>();
      await eventually(async () => {
        const r = await httpJson(c.url(c.managerIds.find((m) => c.node(m).proc !== null)!), 'GET', `/v1/workers/${w}`, undefined, 1000).catch(() => null);
        const at = (r?.body as { lastHeartbeatAt?: string | null } | undefined)?.lastHeartbeatAt;
        if (typeof at === 'string') beats.add(at);
        return beats.size >= 7 ? true : undefined;
      }, 30_000, `six heartbeats of ${w} after its restart`);
      for (const t of before) {
        const now = await get(t.id);
        expect(now).toMatchObject({ state: 'running', attempt: t.attempt, workerId: t.workerId, containerId: t.containerId });
      }
      const logs = await fetch(`${c.url(c.managerIds.find((m) => c.node(m).proc !== null)!)}/v1/tasks/${endedOnW.id}/logs`);
      expect(logs.status).toBe(200);
      expect(await logs.text()).toBe(`kept ${ended.indexOf(endedOnW)}\n`);
      const onWorker = (await httpJson(c.url(w), 'GET', '/v1/tasks')).body as { items: WorkerTaskStatus[] };
      for (const t of before.filter((x) => x.workerId === w)) {
        expect(onWorker.items.find((s) => s.taskId === t.id)).toMatchObject({ state: 'running', attempt: t.attempt, containerId: t.containerId });
      }
      if (rt.name === 'process') {
        writeFileSync(gate, '');
        for (const t of gated) {
          const done = await until(t.id, (x) => final.has(x.state), 'ended');
          expect(done, t.workerId!).toMatchObject({ state: 'failed', attempt: 1, workerId: t.workerId, containerId: t.containerId, exitCode: 3 });
          expect(done.history.filter((h) => h.attempt !== 1)).toEqual([]);
        }
      }
      await stopAll(ids);
    }, 240_000);

    it('SIGKILL of the leader while tasks are being submitted loses no acknowledged task and never runs two copies', async () => {
      const leader = await c.waitForLeader();
      const keys = Array.from({ length: 30 }, (_, i) => `leaderkill-${runLabel['minkube.test.run']}-${i}`);
      const acked = new Map<string, string>();
      const seen: [string, number][] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          for (const [task, n] of await runningCopies().catch(() => new Map<string, number>())) if (n > 1) seen.push([task, n]);
          await sleep(100);
        }
      })();
      let killed = false;
      let next = 0;
      await Promise.all(
        Array.from({ length: 5 }, async (_, lane) => {
          while (next < keys.length) {
            const key = keys[next++]!;
            const s = spec(['sleep', '1'], 'leaderkill');
            for (let tries = 0; ; tries++) {
              const m = c.managerIds[(lane + tries) % 3]!;
              const r = await submit(m, s, key).catch(() => ({ status: 0 }) as { status: number; id?: string });
              if (r.status === 201 && r.id !== undefined) {
                acked.set(key, r.id);
                break;
              }
              expect(tries).toBeLessThan(100);
              await sleep(100);
            }
            if (acked.size >= 10 && !killed) {
              killed = true;
              await c.signal(leader, 'SIGKILL');
            }
          }
        }),
      );
      expect(acked.size).toBe(30);
      const done = await Promise.all([...acked.values()].map((id) => until(id, (t) => final.has(t.state), 'ended', 60_000)));
      expect(done.map((t) => t.state)).toEqual(Array(30).fill('succeeded'));
      sampling = false;
      await sampler;
      // One task per key: retries through other managers after the crash reused the key.
      expect(new Set(acked.values()).size).toBe(30);
      expect((await tasksWithLabel('leaderkill')).length).toBe(30);
      // Only this test's tasks: a stale copy an earlier test left behind is that test's business.
      const ours = new Set(acked.values());
      expect(seen.filter(([task]) => ours.has(task)).map(([task, n]) => `${task} x${n}`)).toEqual([]);
      c.start(leader);
      await c.waitForLeader();
    }, 120_000);
  });
}
