// A voter that missed two members' `--join` (it was down while they were added, and the config file does not list
// them) is needed for a quorum with them, with real processes over real TCP: the new members (larger ids, so they
// wait to be dialed) knock on it, it dials them back, grants their (pre-)votes (the core takes a vote request from
// outside its configuration when the candidate's configuration is newer), and catches up from their leader.
import { afterEach, describe, expect, it } from 'vitest';
import { ProcCluster, eventually } from '../support/cluster.js';

let cluster: ProcCluster | null = null;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = null;
});

async function members(c: ProcCluster, id: string): Promise<{ id: string; voter: boolean }[]> {
  const r = await c.http(id, 'GET', '/v1/cluster/members', undefined, 5000);
  return r.status === 200 ? (r.body as { members: { id: string; voter: boolean }[] }).members : [];
}

describe('a voter that missed a join, with real processes', () => {
  it('answers the new members: m3, back with only m1..m3 known, and m4 + m5 elect a leader and serve', async () => {
    const c = await ProcCluster.create({ managers: 3 });
    cluster = c;
    c.startAll();
    await c.waitForLeader({ timeoutMs: 90_000 });
    await c.signal('m3', 'SIGTERM');
    // m4 and m5 join through m1 with addresses the config file does not list: only the log carries them.
    for (const [id, host] of [['m4', 4], ['m5', 5]] as const) {
      const a = await c.addManagerNode(id, host);
      c.start(id, ['--join', c.url('m1'), '--raft-address', a.raftAddress, '--api-address', a.apiAddress, '--data-dir', a.dataDir]);
      await eventually(async () => ((await members(c, 'm1')).find((m) => m.id === id)?.voter === true ? true : undefined), 90_000, `${id} to become a voter`);
    }
    const put = await c.http('m1', 'PUT', '/v1/kv/before', { value: 'm3 missed this' }, 10_000);
    expect(put.status).toBe(200);
    // Five voters; m1 and m2 go, m3 comes back knowing neither m4 nor m5: three of five only with m3.
    await c.signal('m1', 'SIGTERM');
    await c.signal('m2', 'SIGTERM');
    c.start('m3');
    const leader = await c.waitForLeader({ among: ['m3', 'm4', 'm5'], timeoutMs: 120_000 });
    expect(['m4', 'm5']).toContain(leader);
    await eventually(async () => ((await c.http(leader, 'PUT', '/v1/kv/after', { value: 'with m3' }, 10_000).catch(() => null))?.status === 200 ? true : undefined), 60_000, 'a write through the new leader');
    await eventually(async () => ((await c.http('m3', 'GET', '/v1/kv/before?consistency=stale', undefined, 5000)).body?.value === 'm3 missed this' ? true : undefined), 60_000, 'm3 to catch up');
    let seen = '';
    await eventually(
      async () => {
        const r = await c.http('m3', 'GET', '/v1/cluster/members', undefined, 5000).catch((err: unknown) => ({ status: 0, body: String(err) }));
        seen = `${r.status} ${JSON.stringify(r.body)}`;
        const ids = r.status === 200 ? (r.body as { members: { id: string }[] }).members.map((m) => m.id).sort() : [];
        return ids.join(',') === 'm1,m2,m3,m4,m5' ? true : undefined;
      },
      60_000,
      'm3 to list the five members',
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; m3 answered ${seen}`);
    });
  }, 400_000);
});
