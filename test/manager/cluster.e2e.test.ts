// Three managers as real processes on 127.0.0.1-3: replication through followers, leader crashes, full-cluster
// restarts and a paused leader. Every acknowledged write must survive; nothing unacknowledged may be half-applied.
import { afterEach, describe, expect, it } from 'vitest';
import { ProcCluster, eventually, type HttpReply } from '../support/cluster.js';

let cluster: ProcCluster | null = null;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = null;
});

async function startThree(): Promise<{ c: ProcCluster; leader: string; followers: string[] }> {
  const c = await ProcCluster.create({ managers: 3 });
  cluster = c;
  c.startAll();
  const leader = await c.waitForLeader();
  return { c, leader, followers: c.managerIds.filter((id) => id !== leader) };
}

async function put(c: ProcCluster, id: string, key: string, value: string): Promise<HttpReply> {
  return c.http(id, 'PUT', `/v1/kv/${key}`, { value });
}

describe('a three-manager cluster of real processes', () => {
  it('a write through a follower is readable through the other follower', async () => {
    const { c, followers } = await startThree();
    const [f1, f2] = followers as [string, string];
    const w = await put(c, f1, 'greeting', 'hello');
    expect(w.status).toBe(200);
    expect(w.body).toEqual({ key: 'greeting', version: expect.any(Number) });
    const r = await c.http(f2, 'GET', '/v1/kv/greeting');
    expect(r).toEqual({ status: 200, body: { key: 'greeting', value: 'hello', version: w.body.version } });
    const cluster = await c.http(f2, 'GET', '/v1/cluster');
    expect(cluster.body.role).toBe('follower');
    expect(cluster.body.members).toHaveLength(3);
  });

  it('serves the OpenAPI document and the explorer, made on a side thread of the built manager', async () => {
    const { c, leader, followers } = await startThree();
    for (const id of [leader, followers[0]!]) {
      for (const path of ['/openapi.json', '/docs/json']) {
        const doc = await c.http(id, 'GET', path, undefined, 30_000);
        expect(doc.status, `${id} ${path}`).toBe(200);
        expect(doc.body).toMatchObject({ openapi: '3.1.0', paths: expect.objectContaining({ '/v1/kv/{key}': expect.any(Object) }) as unknown });
      }
    }
    expect((await c.http(leader, 'PUT', '/v1/kv/after-docs', { value: 'x' })).status).toBe(200);
  });

  it('SIGKILL of the leader: a new leader is elected, writes resume, the old one restarts and catches up', async () => {
    const { c, leader, followers } = await startThree();
    for (let i = 0; i < 20; i++) expect((await put(c, followers[0]!, `k${i}`, `v${i}`)).status).toBe(200);
    await c.signal(leader, 'SIGKILL');
    const next = await c.waitForLeader({ among: followers });
    expect(next).not.toBe(leader);
    for (let i = 20; i < 40; i++) expect((await put(c, followers[1]!, `k${i}`, `v${i}`)).status).toBe(200);
    c.start(leader);
    await eventually(async () => {
      const r = await c.http(leader, 'GET', '/v1/kv/k39?consistency=stale', undefined, 1000);
      return r.status === 200 ? r : undefined;
    }, 15_000, 'the restarted node to catch up');
    for (let i = 0; i < 40; i++) expect((await c.http(leader, 'GET', `/v1/kv/k${i}?consistency=stale`)).body.value).toBe(`v${i}`);
  });

  it('SIGKILL of all three and a restart: every acknowledged write is there', async () => {
    const { c } = await startThree();
    const acked: string[] = [];
    await Promise.all(
      c.managerIds.map(async (id) => {
        for (let i = 0; i < 30; i++) {
          const r = await put(c, id, `${id}-${i}`, `value-${id}-${i}`);
          if (r.status === 200) acked.push(`${id}-${i}`);
        }
      }),
    );
    expect(acked.length).toBe(90);
    for (const id of c.managerIds) await c.signal(id, 'SIGKILL');
    c.startAll();
    await c.waitForLeader();
    for (const key of acked) {
      const r = await c.http(c.managerIds[acked.indexOf(key) % 3]!, 'GET', `/v1/kv/${key}`);
      expect(r.status, key).toBe(200);
      expect(r.body.value).toBe(`value-${key}`);
    }
  });

  it('SIGSTOP of the leader: the others elect a new leader; after SIGCONT the old leader steps down and nothing unacknowledged is applied', async () => {
    const { c, leader, followers } = await startThree();
    expect((await put(c, leader, 'before', 'x')).status).toBe(200);
    await c.signal(leader, 'SIGSTOP');
    // Requests sent to the paused leader wait in its socket buffer; they are handled after SIGCONT.
    const toOld = Array.from({ length: 10 }, (_, i) => put(c, leader, `paused-${i}`, `p${i}`).catch(() => ({ status: 0, body: null })));
    const next = await c.waitForLeader({ among: followers });
    expect(next).not.toBe(leader);
    expect((await put(c, next, 'during', 'y')).status).toBe(200);
    await c.signal(leader, 'SIGCONT');
    const results = await Promise.all(toOld);
    await eventually(async () => {
      const v = await c.http(leader, 'GET', '/v1/cluster', undefined, 1000);
      return v.body.role === 'follower' && v.body.leaderId === next ? v : undefined;
    }, 10_000, 'the old leader to step down');
    // Every manager has applied all the leader had committed once every paused request was answered.
    const committed = (await c.http(next, 'GET', '/v1/cluster')).body.commitIndex as number;
    await eventually(async () => {
      const views = await Promise.all(c.managerIds.map((id) => c.http(id, 'GET', '/v1/cluster', undefined, 1000)));
      return views.every((v) => v.status === 200 && v.body.appliedIndex >= committed) ? true : undefined;
    }, 10_000, `every manager to apply up to ${committed}`);
    for (const [i, r] of results.entries()) {
      const seen = await Promise.all(c.managerIds.map((id) => c.http(id, 'GET', `/v1/kv/paused-${i}?consistency=stale`)));
      const statuses = new Set(seen.map((s) => s.status));
      expect(statuses.size, `managers disagree on paused-${i}`).toBe(1);
      if (r.status === 200) expect(seen[0]!.body.value).toBe(`p${i}`);
      else if (r.status === 503) expect(seen[0]!.status).toBe(404);
    }
    // All three agree on the whole state.
    const applied = await Promise.all(c.managerIds.map((id) => c.http(id, 'GET', '/v1/kv/during')));
    for (const a of applied) expect(a.body.value).toBe('y');
  });
});
