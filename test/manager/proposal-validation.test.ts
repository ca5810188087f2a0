// Bad bytes never enter the log: the leader refuses a forwarded proposal that does not decode, a manager refuses its
// own at once, and a log poisoned before this check existed is applied as a no-op by every manager alike.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/kv/commands.js';
import type { Message } from '../../src/raft/types.js';
import { DriverCluster, waitFor, type DriverNode } from './driver-harness.js';

const garbage = new TextEncoder().encode('not a command'); // 13 bytes
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

let cluster: DriverCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

/** A follower of the current leader, and the message it would send to forward `entries`. */
async function leaderAndFollower(c: DriverCluster): Promise<{ leader: DriverNode; follower: DriverNode }> {
  await c.startAll();
  const leader = await c.leader();
  await c.converged();
  const follower = [...c.running.values()].find((n) => n.id !== leader.id)!;
  return { leader, follower };
}

function forward(from: DriverNode, to: DriverNode, entries: Uint8Array[]): void {
  const m: Message = { type: 'propose', from: from.id, to: to.id, term: 0 as Message['term'], entries };
  from.transport.send([m]);
}

function entriesHolding(c: DriverCluster, data: Uint8Array): number {
  let n = 0;
  for (const disk of c.disks.values()) n += disk.entries.filter((e) => sameBytes(e.data, data)).length;
  return n;
}

describe('proposals are validated before they enter the log', () => {
  it('a leader refuses a forwarded 13-byte garbage proposal: nothing is appended, every manager goes on', async () => {
    cluster = new DriverCluster();
    const { leader, follower } = await leaderAndFollower(cluster);
    const lastIndex = leader.driver.status().lastIndex;
    forward(follower, leader, [garbage]);
    await waitFor('the leader to refuse it', () => leader.driver.refusedProposals === 1);
    expect(leader.driver.status().lastIndex).toBe(lastIndex);
    await cluster.putOne('after', 'ok');
    await cluster.converged();
    expect(entriesHolding(cluster, garbage)).toBe(0);
    expect(follower.service.kv.get('after')?.value).toBe('ok');
  });

  it('only the bad entries of a forward are dropped; the good ones are appended', async () => {
    cluster = new DriverCluster();
    const { leader, follower } = await leaderAndFollower(cluster);
    const good = encodeCommand({ clientId: 'peer', seq: 1, cmd: { op: 'put', key: 'good', value: 'v' } });
    forward(follower, leader, [garbage, good]);
    await waitFor('the good entry on every manager', () => [...cluster!.running.values()].every((n) => n.service.kv.get('good') !== undefined));
    expect(leader.driver.refusedProposals).toBe(1);
    expect(entriesHolding(cluster, garbage)).toBe(0);
  });

  it("a manager's own bad proposal fails its caller at once, on a leader and on a follower (which never forwards it)", async () => {
    cluster = new DriverCluster();
    const { leader, follower } = await leaderAndFollower(cluster);
    for (const node of [leader, follower]) {
      // At once: refused before the event loop turns even once (no tick, no round trip, no deadline is waited for).
      const refused = node.driver.propose(() => garbage, performance.now() + 5000).then(() => 'accepted', (err: unknown) => err);
      const nextTurn = new Promise((resolve) => setImmediate(() => resolve('not refused within one turn of the event loop')));
      expect(await Promise.race([refused, nextTurn])).toMatchObject({
        code: 'INVALID_COMMAND', message: expect.stringMatching(/^the command was refused before it entered the log: malformed command/),
      });
    }
    expect(leader.driver.refusedProposals).toBe(0);
    expect(entriesHolding(cluster, garbage)).toBe(0);
  });
});

describe('a log poisoned before proposals were validated', () => {
  it('commits, is skipped by every manager alike, and replays the same after a restart', async () => {
    cluster = new DriverCluster({ validate: false });
    const { leader, follower } = await leaderAndFollower(cluster);
    forward(follower, leader, [garbage]);
    await waitFor('the garbage entry on every disk', () => entriesHolding(cluster!, garbage) === 3);
    await cluster.putOne('after', 'ok');
    const applied = await cluster.converged();
    const poisoned = cluster.disks.get(leader.id)!.entries.find((e) => sameBytes(e.data, garbage))!.index;
    expect(applied).toBeGreaterThan(poisoned);
    for (const n of cluster.running.values()) expect(n.driver.applied).toBe(applied);
    await cluster.stop(follower.id);
    await cluster.start(follower.id);
    await cluster.putOne('again', 'ok');
    await cluster.converged();
    expect(cluster.node(follower.id).service.kv.get('again')?.value).toBe('ok');
  });
});
