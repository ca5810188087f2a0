// A manager removed while it could not hear of it finds out from the others: after quietMs without a leader it asks
// them, and only a leader of its term or later that leaves it out settles it; a leader speaking to it undoes it.
import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { RemovalWatch, type PeerClusterView, type PeerRefusedRemoved } from '../../src/manager/removal-watch.js';
import { ManualClock } from '../support/manual-clock.js';

function setup(views: Record<string, PeerClusterView | PeerRefusedRemoved | null | Error>) {
  const clock = new ManualClock();
  const state = { term: 5, leaderId: null as string | null, listsSelf: true };
  const changes: (string | null)[] = [];
  const asked: string[] = [];
  const watch = new RemovalWatch({
    self: nodeId('m3'),
    clock,
    status: () => state,
    peers: () => Object.keys(views).map((id) => ({ id, apiAddress: `${id}:1` })),
    askView: (address) => {
      asked.push(address);
      const v = views[address.slice(0, -2)];
      return v instanceof Error ? Promise.reject(v) : Promise.resolve(v ?? null);
    },
    onChange: (reason) => changes.push(reason),
    quietMs: 2000,
  });
  const step = async (ms: number): Promise<void> => {
    clock.advance(ms);
    watch.tick();
    await new Promise((r) => setImmediate(r));
  };
  return { state, changes, asked, step };
}

const view = (id: string, role: string, term: number, members: string[]): PeerClusterView => ({ id, role, term, members: members.map((m) => ({ id: m })) });

describe('RemovalWatch', () => {
  it('asks once quietMs has passed without a leader, and a current leader that leaves it out settles it', async () => {
    const t = setup({ m1: view('m1', 'leader', 6, ['m1', 'm2', 'm4']), m2: new Error('down') });
    await t.step(0);
    await t.step(1000);
    expect(t.asked).toEqual([]);
    await t.step(1000);
    expect(t.asked).toEqual(['m1:1', 'm2:1']);
    expect(t.changes).toEqual(['leader m1 of term 6 does not list it']);
    // Settled: it does not ask again.
    await t.step(5000);
    expect(t.asked).toHaveLength(2);
  });

  it('a manager refusing its certificate as removed settles it: its API answers 401 to a removed manager, /v1/cluster too', async () => {
    const t = setup({ m1: { refusedAsRemoved: 'a manager at m1:1 refuses it: manager m3: its certificate was issued before m3 was removed ...' }, m2: null });
    await t.step(0);
    await t.step(2000);
    expect(t.changes).toEqual(['a manager at m1:1 refuses it: manager m3: its certificate was issued before m3 was removed ...']);
  });

  it('a leader that still lists it, a follower, or a leader of an older term settles nothing; it asks again after quietMs', async () => {
    const t = setup({ m1: view('m1', 'leader', 6, ['m1', 'm3']), m2: view('m2', 'follower', 7, ['m1', 'm2']), m4: view('m4', 'leader', 4, ['m4']) });
    await t.step(0);
    await t.step(2000);
    expect(t.asked).toHaveLength(3);
    await t.step(1000);
    expect(t.asked).toHaveLength(3);
    await t.step(1000);
    expect(t.asked).toHaveLength(6);
    expect(t.changes).toEqual([]);
  });

  it('asks nothing while a leader is known, or while its own configuration leaves it out already', async () => {
    const t = setup({ m1: view('m1', 'leader', 6, ['m1']) });
    t.state.leaderId = 'm1';
    await t.step(10_000);
    t.state.leaderId = null;
    t.state.listsSelf = false;
    await t.step(10_000);
    await t.step(10_000);
    expect(t.asked).toEqual([]);
  });

  it('a leader speaking to it again undoes the removal', async () => {
    const t = setup({ m1: view('m1', 'leader', 6, ['m1']) });
    await t.step(0);
    await t.step(2000);
    expect(t.changes).toEqual(['leader m1 of term 6 does not list it']);
    t.state.leaderId = 'm1';
    await t.step(1000);
    expect(t.changes).toEqual(['leader m1 of term 6 does not list it', null]);
  });
});
