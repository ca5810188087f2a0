// What a client sees when the cluster cannot serve it: without a quorum every request answers 503 NO_LEADER in
// bounded time (never a hang), and a manager whose log is corrupt starts recovering instead of serving it, naming its
// data directory (issue 19: it repairs from a leader; alone, it has none and waits).
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { logIndex, term } from '../../src/lib/ids.js';
import { LevelRaftStorage } from '../../src/storage/level.js';
import { entryKey } from '../../src/storage/records.js';
import { ProcCluster, eventually } from '../support/cluster.js';

let cluster: ProcCluster | null = null;
afterEach(async () => {
  await cluster?.cleanup();
  cluster = null;
});

describe('availability as a client sees it', () => {
  it('without a quorum, writes and linearizable reads answer 503 NO_LEADER within the request timeout; stale reads still work', async () => {
    const c = (cluster = await ProcCluster.create({ managers: 3 }));
    c.startAll();
    const leader = await c.waitForLeader();
    expect((await c.http(leader, 'PUT', '/v1/kv/k', { value: 'v' })).status).toBe(200);
    const [survivor, ...others] = c.managerIds;
    // A follower learns of a commit from the leader's next append or heartbeat; what it applied, it serves stale.
    await eventually(async () => {
      const r = await c.http(survivor!, 'GET', '/v1/kv/k?consistency=stale', undefined, 1000);
      return r.status === 200 ? r : undefined;
    }, 5000, 'the survivor to apply the write');
    for (const id of others) await c.signal(id, 'SIGKILL');
    // Once it knows it has no leader (a leader steps down by check-quorum), nothing it answers can be applied.
    await eventually(async () => {
      const v = await c.http(survivor!, 'GET', '/v1/cluster', undefined, 1000);
      return v.body.leaderId === null ? v : undefined;
    }, 10_000, 'the survivor to lose its leader');
    for (const [method, path, body] of [
      ['PUT', '/v1/kv/k2', { value: 'x' }],
      ['GET', '/v1/kv/k', undefined],
      ['DELETE', '/v1/kv/k', undefined],
    ] as const) {
      const t0 = Date.now();
      const r = await c.http(survivor!, method, path, body, 10_000);
      const elapsedMs = Date.now() - t0;
      expect(r.status, `${method} ${path}`).toBe(503);
      expect(r.body.error.code).toBe('NO_LEADER');
      expect(elapsedMs).toBeLessThan(6000); // the 2 s request timeout plus slack for a loaded machine: bounded, never a hang
    }
    const stale = await c.http(survivor!, 'GET', '/v1/kv/k?consistency=stale');
    expect(stale).toEqual({ status: 200, body: { key: 'k', value: 'v', version: expect.any(Number) } });
    expect((await c.http(survivor!, 'GET', '/ready')).status).toBe(503);
  });

  it('a manager whose log holds a corrupt entry starts recovering, naming its data directory and the damage, and serves none of it', async () => {
    // The one process harness: a one-manager cluster whose data directory is corrupted before the manager starts.
    const c = (cluster = await ProcCluster.create({ managers: 1 }));
    const dataDir = join(c.dir, 'm1');
    const storage = await LevelRaftStorage.open(dataDir);
    const entries = [1, 2, 3].map((i) => ({ term: term(1), index: logIndex(i), type: 'noop' as const, data: new Uint8Array() }));
    await storage.save({ term: term(1), vote: null, commit: logIndex(3) }, entries);
    await storage.close();
    const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const value = (await db.get(entryKey(2)))!;
    value[value.length - 1] = value[value.length - 1]! ^ 0xff;
    await db.put(entryKey(2), value);
    await db.close();
    c.start('m1');
    const view = await eventually(async () => {
      const r = await c.http('m1', 'GET', '/v1/cluster', undefined, 1000);
      return r.status === 200 ? (r.body as { storage: string; storageReason: string; leaderId: string | null; noQuorumReason: string }) : undefined;
    }, 120_000, 'm1 to answer');
    expect(view.storage).toBe('recovering');
    expect(view.storageReason).toContain(dataDir);
    expect(view.storageReason).toContain('index 2');
    // Alone it has no leader to repair from: it waits, says why, and serves nothing it may have lost.
    expect(view.leaderId).toBeNull();
    expect(view.noQuorumReason).toContain('m1');
    const read = await c.http('m1', 'GET', '/v1/kv/k?consistency=stale');
    expect(read.status).toBe(503);
  }, 180_000);
});
