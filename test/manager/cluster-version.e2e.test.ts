// The cluster version with real manager processes: a leader counts a member that has not said its command version (here
// m2, not started: what the leader meets of a member it cannot ask, or of an older build that answers GET /health
// without one) as 10, and takes a worker's registration without its engine; once m2 runs this build and says its own, the
// engine is kept. No hook makes a manager report an older version: a member not answering is counted as one.
// What is visible: the engine a WORKER_REPLACED names to the instance a registration replaced.
import { commandVersion } from '../../src/contracts/command-version.js';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, ProcCluster } from '../support/cluster.js';

let c: ProcCluster | null = null;
afterEach(async () => {
  await c?.cleanup();
  c = null;
});

const engine = 'docker:0f5c3ab1-7d2e-4c65-9a1b-2e8d9c0f4a77';

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${url}/v1/workers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** Registers w9 as instance `old`, then as `next` with an engine; answers the engine WORKER_REPLACED names to `old`. */
async function engineToldToReplaced(url: string, old: string, next: string): Promise<string | undefined> {
  expect((await post(url, { id: 'w9', apiAddress: '127.0.65.99:9001', runtime: 'docker', instance: old })).status).toBe(200);
  expect((await post(url, { id: 'w9', apiAddress: '127.0.65.99:9001', runtime: 'docker', instance: next, engine })).status).toBe(200);
  const res = await fetch(`${url}/v1/workers/w9/assignments`, { headers: { 'x-minkube-worker-instance': old } });
  const body = (await res.json()) as { error: { code: string; details?: { engine?: string } } };
  expect(body.error.code).toBe('WORKER_REPLACED');
  return body.error.details?.engine;
}

describe('the cluster version, real managers', () => {
  it('a member that has not said its version holds the cluster at 10 (registration without its engine) until it says this build\'s', async () => {
    c = await ProcCluster.create({ managers: 3, hostPrefix: '127.0.65.' });
    c.start('m1');
    c.start('m3');
    const leader = await c.waitForLeader({ among: ['m1', 'm3'] });
    const url = c.url(leader);
    const health = await fetch(`${url}/health`).then((r) => r.json() as Promise<{ commandVersion: number; build: { version: string } }>);
    expect(health).toMatchObject({ status: 'ok', commandVersion, build: { version: expect.any(String) } });
    expect(await engineToldToReplaced(url, 'aaaa1', 'bbbb1')).toBeUndefined();
    const view = (await c.http(leader, 'GET', '/v1/cluster')).body as { clusterCommandVersion: number; members: { id: string; commandVersion: number | null }[] };
    expect(view.clusterCommandVersion).toBe(10);
    expect(view.members.find((m) => m.id === 'm2')?.commandVersion).toBeNull();

    c.start('m2');
    await eventually(async () => {
      const v = (await c!.http(leader, 'GET', '/v1/cluster')).body as { clusterCommandVersion: number };
      if (v.clusterCommandVersion !== commandVersion) throw new Error(`the cluster runs at ${v.clusterCommandVersion}`);
      return true;
    }, 20_000, `the cluster at command version ${commandVersion}`);
    expect(await engineToldToReplaced(url, 'cccc1', 'dddd1')).toBe(engine);
  });
});
