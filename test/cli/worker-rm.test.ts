// `minkube worker rm ID` (DELETE /v1/workers/:id) as a child process against an in-process cluster: a retired worker's
// record is forgotten once it is down; a ready one and an unknown id are refused, each with its code and exit 1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliResult } from '../support/cli.js';
import { waitFor } from '../support/wait.js';
import { cliTaskCluster, type TaskCluster } from '../manager/tasks-harness.js';

let c: TaskCluster;
let cli: (args: string[]) => Promise<CliResult>;

beforeAll(async () => {
  ({ c, cli } = await cliTaskCluster(() => ({ durationMs: 50, exitCode: 0 })));
});
afterAll(() => c?.close());

describe('minkube worker rm', () => {
  it('refuses a ready worker, forgets a down one, then knows it no more', async () => {
    const ready = await cli(['worker', 'rm', 'w1']);
    expect(ready.code).toBe(1);
    expect(ready.stderr).toMatch(/WORKER_NOT_DOWN: worker w1 is (ready|unreachable): only a down worker's record is removed/);
    await c.workers.get('w2')!.stop();
    await waitFor('w2 to be down', async () => {
      const r = await c.http<{ state: string }>('m1', 'GET', '/v1/workers/w2');
      return r.body.state === 'down';
    }, 20_000);
    await waitFor('w2 to hold no task and be removed', async () => {
      const r = await cli(['worker', 'rm', 'w2']);
      if (r.code !== 0) expect(r.stderr).toMatch(/WORKER_NOT_DOWN/);
      return r.code === 0 && r.stdout.trim() === 'removed worker w2';
    }, 20_000);
    const listed = await cli(['worker', 'ls', '--json']);
    expect((JSON.parse(listed.stdout) as { items: { id: string }[] }).items.map((w) => w.id)).toEqual(['w1']);
    const again = await cli(['worker', 'rm', 'w2']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/WORKER_NOT_FOUND/);
    const api = await c.http<{ code: string }>('m3', 'DELETE', '/v1/workers/w9');
    expect(api.status).toBe(404);
  });
});
