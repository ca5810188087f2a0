// Snapshots and membership changes with real manager processes: a log kept below its snapshot threshold under
// 30,000 writes, a wiped follower that catches up by snapshot, growing 3 -> 5 -> 3 under writes, removing the leader,
// a removal refused for quorum, and disaster recovery with --force-new-cluster.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcCluster, eventually, sleep, type HttpReply } from '../support/cluster.js';

let cluster: ProcCluster | null = null;

afterEach(async () => {
  await cluster?.cleanup();
  cluster = null;
});

async function startCluster(extra: Record<string, unknown> = {}): Promise<{ c: ProcCluster; leader: string }> {
  const c = await ProcCluster.create({ managers: 3, extra });
  cluster = c;
  c.startAll();
  // Generous: on a loaded machine three processes start slowly.
  return { c, leader: await c.waitForLeader({ timeoutMs: 90_000 }) };
}

async function view(c: ProcCluster, id: string): Promise<{ firstIndex: number; lastIndex: number; snapshotIndex: number; appliedIndex: number; commitIndex: number }> {
  const r = await c.http(id, 'GET', '/v1/cluster', undefined, 3000);
  expect(r.status).toBe(200);
  return r.body as { firstIndex: number; lastIndex: number; snapshotIndex: number; appliedIndex: number; commitIndex: number };
}

/** Writes `count` puts over `keys` keys with `clients` in flight; returns the last acknowledged value per key. */
async function writeMany(c: ProcCluster, ids: string[], count: number, keys: number, clients: number): Promise<Map<string, string>> {
  const last = new Map<string, { seq: number; value: string }>();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, w) => {
      while (next < count) {
        const i = next++;
        const key = `k${i % keys}`;
        const value = `v${i}`;
        const r = await c.http(ids[(i + w) % ids.length]!, 'PUT', `/v1/kv/${key}`, { value }, 10_000).catch(() => null);
        if (r?.status === 200) {
          const prev = last.get(key);
          if (prev === undefined || prev.seq < i) last.set(key, { seq: i, value });
        }
      }
    }),
  );
  return new Map([...last].map(([k, v]) => [k, v.value]));
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const s = statSync(join(dir, name));
    total += s.isDirectory() ? dirBytes(join(dir, name)) : s.size;
  }
  return total;
}

async function members(c: ProcCluster, id: string): Promise<{ id: string; voter: boolean }[]> {
  const r = await c.http(id, 'GET', '/v1/cluster/members', undefined, 5000);
  expect(r.status).toBe(200);
  return (r.body as { members: { id: string; voter: boolean }[] }).members;
}

describe('snapshots with real processes', () => {
  it('30,000 writes with a snapshot threshold of 1,000 keep the log below it; a wiped follower catches up by snapshot', async () => {
    const threshold = 1000;
    const { c, leader } = await startCluster({ raft: { snapshotThresholdEntries: threshold } });
    const followers = c.managerIds.filter((id) => id !== leader);
    const maxLog = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const id of c.managerIds) {
          const v = await view(c, id).catch(() => null);
          if (v !== null) maxLog.set(id, Math.max(maxLog.get(id) ?? 0, v.lastIndex - v.firstIndex + 1));
        }
        await sleep(200);
      }
    })();
    const acked = await writeMany(c, c.managerIds, 30_000, 2000, 64);
    sampling = false;
    await sampler;
    expect(acked.size).toBe(2000);
    for (const id of c.managerIds) {
      // A snapshot begun as the last writes came may still be on its way to disk (a CI run found 1,005 entries):
      // once it is written, the log is compacted below the threshold.
      const v = await eventually(async () => {
        const w = await view(c, id);
        return w.lastIndex - w.firstIndex + 1 <= threshold ? w : undefined;
      }, 10_000, `${id}'s log to be compacted below ${threshold} entries`);
      expect(v.snapshotIndex).toBeGreaterThan(25_000);
      // Sampled while writing: a snapshot begins at seven eighths of the threshold, so what arrives while it is
      // written leaves the log below the threshold.
      expect(maxLog.get(id)).toBeLessThanOrEqual(threshold);
      expect(dirBytes(join(c.dir, id))).toBeLessThan(8 * 1024 * 1024);
    }

    const victim = followers[0]!;
    await c.signal(victim, 'SIGKILL');
    c.wipe(victim);
    await writeMany(c, [leader], 2000, 2000, 32).then((m) => m.forEach((v, k) => acked.set(k, v)));
    c.start(victim);
    const leaderView = await view(c, leader);
    await eventually(async () => ((await view(c, victim).catch(() => null))?.appliedIndex ?? 0) >= leaderView.commitIndex || undefined, 30_000, 'the wiped follower to catch up');
    const caughtUp = await view(c, victim);
    expect(caughtUp.snapshotIndex).toBeGreaterThan(0);
    expect(caughtUp.firstIndex).toBeGreaterThan(1);
    for (const [key, value] of acked) {
      const r = await c.http(victim, 'GET', `/v1/kv/${key}?consistency=stale`);
      expect(r.body.value, key).toBe(value);
    }
  }, 480_000);

  it('a restarted manager loads its snapshot and replays the log after it', async () => {
    const { c, leader } = await startCluster({ raft: { snapshotThresholdEntries: 200 } });
    const acked = await writeMany(c, [leader], 1500, 300, 16);
    const follower = c.managerIds.find((id) => id !== leader)!;
    await eventually(async () => ((await view(c, follower)).snapshotIndex > 0 ? true : undefined), 10_000, 'a snapshot');
    await c.signal(follower, 'SIGKILL');
    c.start(follower);
    await eventually(async () => ((await c.http(follower, 'GET', '/ready', undefined, 1000).catch(() => null))?.status === 200 ? true : undefined), 20_000, 'ready');
    for (const [key, value] of acked) expect((await c.http(follower, 'GET', `/v1/kv/${key}`)).body.value).toBe(value);
  }, 120_000);
});

describe('membership changes with real processes', () => {
  it('grows 3 -> 5 and shrinks back to 3 while a client writes, losing nothing', async () => {
    const { c } = await startCluster({ raft: { snapshotThresholdEntries: 500 } });
    const acked: [string, string][] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const ids = c.managerIds.filter((id) => c.node(id).proc !== null && ['m1', 'm2', 'm3'].includes(id));
        const r: HttpReply | null = await c.http(ids[i % ids.length]!, 'PUT', `/v1/kv/w${i}`, { value: `x${i}` }, 10_000).catch(() => null);
        if (r?.status === 200) acked.push([`w${i}`, `x${i}`]);
      }
    })();
    await writeMany(c, ['m1'], 1500, 500, 16);
    for (const [id, host] of [['m4', 4], ['m5', 5]] as const) {
      const a = await c.addManagerNode(id, host);
      c.start(id, ['--join', c.url('m1'), '--raft-address', a.raftAddress, '--api-address', a.apiAddress, '--data-dir', a.dataDir]);
      await eventually(async () => ((await members(c, 'm2')).find((m) => m.id === id)?.voter === true ? true : undefined), 60_000, `${id} to become a voter`);
    }
    expect((await members(c, 'm3')).map((m) => m.id).sort()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    const grown = await view(c, 'm4');
    expect(grown.snapshotIndex).toBeGreaterThan(0);
    for (const id of ['m4', 'm5']) {
      const r = await c.http('m2', 'DELETE', `/v1/cluster/members/${id}`, undefined, 10_000);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect((r.body as { members: { id: string }[] }).members.map((m) => m.id)).not.toContain(id);
      await c.signal(id, 'SIGTERM');
    }
    // The client goes on writing to the shrunk cluster: twenty more acknowledged writes.
    const ackedAtShrink = acked.length;
    await eventually(async () => (acked.length >= ackedAtShrink + 20 ? true : undefined), 60_000, 'twenty writes acknowledged after the shrink');
    writing = false;
    await writer;
    expect(acked.length).toBeGreaterThan(10);
    expect((await members(c, 'm1')).map((m) => m.id).sort()).toEqual(['m1', 'm2', 'm3']);
    for (const [key, value] of acked) expect((await c.http('m3', 'GET', `/v1/kv/${key}`)).body.value, key).toBe(value);
  }, 240_000);

  it('removes the leader: it hands over, the rest elect a leader and keep serving', async () => {
    const { c, leader } = await startCluster();
    const follower = c.managerIds.find((id) => id !== leader)!;
    expect((await c.http(follower, 'PUT', '/v1/kv/before', { value: '1' })).status).toBe(200);
    const r = await c.http(follower, 'DELETE', `/v1/cluster/members/${leader}`, undefined, 10_000);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const rest = c.managerIds.filter((id) => id !== leader);
    // The answer names the leader that took over (as a remaining member sees it), not none.
    expect(rest).toContain(r.body.leaderId);
    const next = await c.waitForLeader({ among: rest });
    expect(next).not.toBe(leader);
    expect((await members(c, next)).map((m) => m.id).sort()).toEqual(rest.sort());
    expect((await c.http(rest[1]!, 'PUT', '/v1/kv/after', { value: '2' })).status).toBe(200);
    // The removed manager learns it was removed: at once when it appended its removal itself (it led); when
    // leadership moved first (CI under load), the new leader replicates nothing more to it, and it finds out from the
    // others once it has gone without a leader for a while (removal-watch.ts).
    await expectKnowsRemoved(c, leader);
    expect((await c.http(rest[0]!, 'GET', '/v1/kv/before')).body.value).toBe('1');
  }, 120_000);

  it("a frozen follower is unreachable in the leader's views (members, /status) although its connection stays open", async () => {
    const { c, leader } = await startCluster();
    const victim = c.managerIds.find((id) => id !== leader)!;
    const reachableOf = async (): Promise<boolean | undefined> => ((await c.http(leader, 'GET', '/v1/cluster')).body as { members: { id: string; reachable: boolean }[] }).members.find((m) => m.id === victim)?.reachable;
    expect(await reachableOf()).toBe(true);
    await c.signal(victim, 'SIGSTOP');
    try {
      await eventually(async () => ((await reachableOf()) === false ? true : undefined), 10_000, `${victim} unreachable while frozen`);
      const status = await c.http(leader, 'GET', '/status');
      expect(status.body).toMatchObject({ status: 'degraded', managersReachable: 2 });
      expect((status.body as { reasons: string[] }).reasons).toContain('1 of 3 managers unreachable');
      // The other follower says so too: it asks a fellow follower's /health, Raft giving it nothing to go on.
      const other = c.managerIds.find((id) => id !== leader && id !== victim)!;
      // And keeps answering at once while the freeze lasts (a probe stuck in the frozen peer once held it). Which of
      // the two running managers leads may change under a loaded machine's stalls (CI saw m1 give way to m3 here);
      // the frozen one never does.
      for (let i = 0; i < 6; i++) {
        const seen = await c.http(other, 'GET', '/status', undefined, 2_000);
        expect(seen.body).toMatchObject({ status: 'degraded', managersReachable: 2 });
        expect([leader, other]).toContain((seen.body as { leader: string }).leader);
        await sleep(500);
      }
    } finally {
      await c.signal(victim, 'SIGCONT');
    }
    await eventually(async () => ((await reachableOf()) === true ? true : undefined), 10_000, `${victim} reachable again`);
  }, 120_000);

  it('a running follower that is removed soon refuses requests at once (NOT_READY), not NO_LEADER after the timeout', async () => {
    const { c, leader } = await startCluster();
    const victim = c.managerIds.find((id) => id !== leader)!;
    const r = await c.http(leader, 'DELETE', `/v1/cluster/members/${victim}`, undefined, 10_000);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const removedAt = performance.now();
    await expectKnowsRemoved(c, victim);
    // Three election timeouts without a leader (at least 1 s), then the peers' answer: a few seconds at most, even
    // under load (it took about 3.5 s with ten election timeouts and a check a second).
    expect(performance.now() - removedAt).toBeLessThan(8_000);
  }, 120_000);

  it('a follower removed while it was frozen finds out once it runs again, and refuses requests at once', async () => {
    const { c, leader } = await startCluster();
    const victim = c.managerIds.find((id) => id !== leader)!;
    await c.signal(victim, 'SIGSTOP');
    try {
      const r = await c.http(leader, 'DELETE', `/v1/cluster/members/${victim}`, undefined, 10_000);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect((await c.http(leader, 'PUT', '/v1/kv/after-removal', { value: '1' })).status).toBe(200);
    } finally {
      await c.signal(victim, 'SIGCONT');
    }
    await expectKnowsRemoved(c, victim);
  }, 120_000);

  it('refuses a removal that would leave too few live voters, and transfers leadership on request', async () => {
    const { c, leader } = await startCluster();
    const [f1, f2] = c.managerIds.filter((id) => id !== leader) as [string, string];
    const moved = await c.http(f1, 'POST', '/v1/cluster/leader', { id: f2 }, 10_000);
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect((moved.body as { leaderId: string }).leaderId).toBe(f2);
    await c.waitForLeader();
    await c.signal(f1, 'SIGKILL');
    // f2 leads, f1 is dead: removing `leader` (alive) would leave f2 and the dead f1, one live of two. f2 counts f1
    // live until its next check-quorum round (every election timeout), which is not visible from outside; its
    // heartbeats are, and run on the same ticks: 30 answered by the live follower (50 ms each) span two of the
    // longest election timeouts (2 x 300 ms, randomized up to twice that), counted by f2, not timed by the test.
    const answeredBy = async (peer: string): Promise<number> => {
      const text = String((await c.http(f2, 'GET', '/metrics', undefined, 5000)).body);
      return Number(new RegExp(`^minkube_peer_round_trip_time_seconds_count\\{peer="${peer}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    const before = await answeredBy(leader);
    await eventually(async () => ((await answeredBy(leader)) >= before + 30 ? true : undefined), 60_000, `30 heartbeats of f2 answered by ${leader}`);
    const r = await c.http(f2, 'DELETE', `/v1/cluster/members/${leader}`, undefined, 10_000);
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('MEMBERSHIP_CHANGE_REFUSED');
    expect((await members(c, f2)).map((m) => m.id).sort()).toEqual(c.managerIds.sort());
    const unknown = await c.http(f2, 'DELETE', '/v1/cluster/members/nobody');
    expect(unknown.status).toBe(404);
  }, 120_000);

  it('an emptied voter started with --join is refused (JOIN_REFUSED) and keeps its marker; without --join it recovers its log from the leader', async () => {
    const { c, leader } = await startCluster();
    for (let i = 0; i < 20; i++) expect((await c.http(leader, 'PUT', `/v1/kv/e${i}`, { value: `${i}` })).status).toBe(200);
    const emptied = c.managerIds.find((id) => id !== leader)!;
    await c.signal(emptied, 'SIGKILL');
    c.wipe(emptied);
    const marker = join(c.dir, `${emptied}.marker`);
    expect(existsSync(marker)).toBe(true);
    c.start(emptied, ['--join', c.url(leader)]);
    await eventually(async () => (c.node(emptied).proc === null ? true : undefined), 60_000, `${emptied} to exit`);
    expect(readFileSync(join(c.dir, `${emptied}.log`), 'utf8')).toMatch(/JOIN_REFUSED: .*is a voter of the cluster, and .* is empty/);
    // Still a voter the cluster knows, and its marker still says what it had acknowledged.
    expect((await members(c, leader)).find((m) => m.id === emptied)?.voter).toBe(true);
    expect(existsSync(marker)).toBe(true);
    c.start(emptied);
    const recovering = await eventually(async () => ((await c.http(emptied, 'GET', '/v1/cluster')).body as { storage?: string } | null)?.storage, 60_000, `${emptied} to answer`);
    expect(['recovering', 'ok']).toContain(recovering);
    expect(readFileSync(join(c.dir, `${emptied}.log`), 'utf8')).toMatch(/storage recovering/);
    await eventually(async () => ((await c.http(emptied, 'GET', '/v1/cluster')).body as { storage?: string } | null)?.storage === 'ok' ? true : undefined, 60_000, `${emptied} to be repaired`);
    await eventually(async () => ((await c.http(emptied, 'GET', '/v1/kv/e19?consistency=stale')).body?.value === '19' ? true : undefined), 30_000, `${emptied} to hold the writes again`);
  }, 180_000);

  it('--force-new-cluster recovers a lost quorum from one survivor, and the others join back', async () => {
    const { c, leader } = await startCluster();
    for (let i = 0; i < 50; i++) expect((await c.http(leader, 'PUT', `/v1/kv/d${i}`, { value: `${i}` })).status).toBe(200);
    // The survivor must hold every write, as an operator picks the most up-to-date one: a write is acknowledged once
    // two of three have it, so without this wait the survivor may be the one that lacks the last.
    for (const id of c.managerIds) {
      await eventually(async () => ((await c.http(id, 'GET', '/v1/kv/d49?consistency=stale')).body?.value === '49' ? true : undefined), 10_000, `${id} to apply the last write`);
    }
    for (const id of c.managerIds) await c.signal(id, 'SIGKILL');
    const [survivor, ...lost] = c.managerIds as [string, ...string[]];
    c.start(survivor, ['--force-new-cluster']);
    await c.waitForLeader({ among: [survivor] });
    expect((await members(c, survivor)).map((m) => m.id)).toEqual([survivor]);
    expect((await c.http(survivor, 'PUT', '/v1/kv/after', { value: 'x' })).status).toBe(200);
    for (let i = 0; i < 50; i++) expect((await c.http(survivor, 'GET', `/v1/kv/d${i}`)).body.value).toBe(`${i}`);
    // A lost member's old data must not come back: it is wiped and joins as new.
    const other = lost[0]!;
    c.wipe(other);
    c.start(other, ['--join', c.url(survivor)]);
    await eventually(async () => ((await members(c, survivor)).find((m) => m.id === other)?.voter === true ? true : undefined), 30_000, `${other} to join back`);
    expect((await c.http(other, 'GET', '/v1/kv/after')).body.value).toBe('x');
  }, 120_000);
});

/** `id` answers /ready 503 "not a member" and refuses a write at once with NOT_READY (clients move on). */
async function expectKnowsRemoved(c: ProcCluster, id: string): Promise<void> {
  const removed = await eventually(async () => {
    const r = await c.http(id, 'GET', '/ready');
    return r.status === 503 && /not a member/.test((r.body as { error: { message: string } }).error.message) ? r : undefined;
  }, 30_000, `${id} to know it was removed`);
  expect(removed.status).toBe(503);
  const started = performance.now();
  const w = await c.http(id, 'PUT', '/v1/kv/through-removed', { value: '3' });
  expect(w.status).toBe(503);
  expect((w.body as { error: { code: string; message: string } }).error).toMatchObject({ code: 'NOT_READY', message: expect.stringMatching(/removed from the cluster|not a member/) as unknown });
  expect(performance.now() - started).toBeLessThan(1000);
  // Nor does it show its view, which is stale: `minkube status` through it showed the members it removed as voters.
  const view = await c.http(id, 'GET', '/v1/cluster');
  expect([view.status, (view.body as { error: { code: string } }).error.code]).toEqual([503, 'NOT_READY']);
  // Its /status speaks for nobody, rather than count the voters of a configuration it is no longer in.
  const status = await c.http(id, 'GET', '/status?format=json');
  expect(status.body).toMatchObject({ status: 'down', managers: 0, reasons: [expect.stringMatching(/not a member/)] });
}

describe('replacing every manager of the config', () => {
  it('workers follow the managers that joined (told in heartbeats, kept across a restart) and run tasks through them', async () => {
    const c = await ProcCluster.create({ managers: 3, workers: 1 });
    cluster = c;
    c.startAll();
    await c.waitForLeader({ timeoutMs: 90_000 });
    const a = await c.addManagerNode('m4', 4);
    c.start('m4', ['--join', c.url('m1'), '--raft-address', a.raftAddress, '--api-address', a.apiAddress, '--data-dir', a.dataDir]);
    await eventually(async () => ((await members(c, 'm4')).find((m) => m.id === 'm4')?.voter === true ? true : undefined), 60_000, 'm4 to become a voter');
    // The worker hears of m4 in its heartbeats' answers and keeps the list beside its data.
    await eventually(async () => (readFileSync(join(c.dir, 'w1', 'managers.json'), 'utf8').includes(a.apiAddress) ? true : undefined), 30_000, 'w1 to learn m4').catch(async (err: unknown) => {
      throw new Error(`${String(err)}; w1 log: ${readFileSync(join(c.dir, 'w1.log'), 'utf8').slice(-2000)}`);
    });
    for (const id of ['m1', 'm2', 'm3']) {
      const r = await eventually(async () => {
        const res = await c.http('m4', 'DELETE', `/v1/cluster/members/${id}`, undefined, 10_000).catch(() => null);
        return res?.status === 200 ? res : undefined;
      }, 60_000, `${id} removed`);
      expect(r.status).toBe(200);
      await c.signal(id, 'SIGKILL');
    }
    expect((await members(c, 'm4')).map((m) => m.id)).toEqual(['m4']);
    // Restarted, the worker reaches m4 from the kept list alone (its config names only m1-m3).
    await c.signal('w1', 'SIGTERM');
    c.start('w1');
    const submitted = await eventually(async () => {
      const r = await c.http('m4', 'POST', '/v1/tasks', { image: 'local', command: ['sh', '-c', 'echo followed'] }, 10_000).catch(() => null);
      return r?.status === 201 ? r : undefined;
    }, 30_000, 'a task submitted to m4');
    const id = (submitted.body as { id: string }).id;
    await eventually(async () => {
      const r = await c.http('m4', 'GET', `/v1/tasks/${id}`);
      return (r.body as { state?: string }).state === 'succeeded' ? true : undefined;
    }, 60_000, `task ${id} to succeed on w1 through m4`);
  }, 240_000);
});
