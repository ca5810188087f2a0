// One name, one node, over real drivers (DriverCluster): `member add` (POST /v1/cluster/members) may not give a
// manager the id of a worker, registered in any state or with its registration not applied yet, and a worker may not
// register with the id of a manager, voter or learner: 409 JOIN_REFUSED naming the other node, as POST /v1/join
// refuses it. Outside tester: member add of a ready worker's id answered 201 and made it a learner.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { encodeCommand } from '../../src/kv/commands.js';
import type { Command } from '../../src/kv/commands.js';
import { systemClock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { SeededRandom } from '../../src/lib/random.js';
import { TaskServiceImpl } from '../../src/manager/task-service.js';
import type { WorkerApi } from '../../src/manager/worker-client.js';
import type { Message } from '../../src/raft/types.js';
import { ctx, DriverCluster, waitFor, type DriverNode } from './driver-harness.js';

let cluster: DriverCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

const member = (id: string) => ({ id, raftAddress: `127.0.63.9:${7000 + id.length}`, apiAddress: `127.0.63.9:${8000 + id.length}` });
const register = (workerId: string): Command => ({ op: 'worker.register', workerId, apiAddress: `127.0.63.20:9${workerId.length}01`, runtime: 'process', atMs: Date.now() });

async function started(): Promise<{ c: DriverCluster; leader: DriverNode }> {
  cluster = new DriverCluster();
  await cluster.startAll();
  const leader = await cluster.leader();
  await cluster.converged();
  return { c: cluster, leader };
}

async function apply(node: DriverNode, cmd: Command): Promise<void> {
  const r = await node.service.proposeCommand(cmd, performance.now() + 10_000, 'test');
  expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
}

const membersOf = (node: DriverNode) => node.membership.localView().members.map((m) => m.id);

function tasksOf(node: DriverNode): TaskServiceImpl {
  return new TaskServiceImpl({
    store: node.service.kv.tasks, raft: node.service, tasks: clusterConfigDefaults.tasks, workers: {} as WorkerApi, clock: systemClock,
    random: new SeededRandom(1), logger: pino({ level: 'silent' }), managerIds: () => node.service.managerIds(),
  });
}

describe('member add and a worker id', () => {
  it('refuses the id of a registered worker, ready or down, naming it; a removed worker\'s id is free', async () => {
    const { leader } = await started();
    await apply(leader, register('w1'));
    const refused = await leader.membership.addMember(member('w1'), ctx()).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MinkubeError);
    expect(refused).toMatchObject({ code: 'JOIN_REFUSED', status: 409, message: expect.stringMatching(/^w1 is a worker of this cluster \(registered, ready\); a manager needs an id of its own/) as string });
    expect(membersOf(leader)).toEqual(['m1', 'm2', 'm3']);

    const heartbeats = leader.service.kv.tasks.storedWorker('w1')!.heartbeats;
    await apply(leader, { op: 'worker.state', workerId: 'w1', state: 'down', atMs: Date.now(), ifHeartbeats: heartbeats, lost: [] });
    expect(leader.service.kv.tasks.storedWorker('w1')?.state).toBe('down');
    await expect(leader.membership.addMember(member('w1'), ctx())).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: expect.stringMatching(/^w1 is a worker of this cluster \(registered, down\)/) as string });

    await apply(leader, { op: 'worker.remove', workerId: 'w1', atMs: Date.now(), revoke: true });
    expect(await leader.membership.addMember(member('w1'), ctx())).toMatchObject({ created: true, member: { id: 'w1', voter: false } });
  });

  it('refuses the id of a worker whose registration is proposed but not applied yet (decided in the turn it proposes)', async () => {
    const { leader } = await started();
    // Proposed, not awaited: the registration waits in the leader's queue (or its log) when the add decides.
    const registering = leader.service.proposeCommand(register('w2'), performance.now() + 10_000, 'test');
    const adding = leader.membership.addMember(member('w2'), ctx());
    await expect(adding).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: expect.stringMatching(/^w2 is a worker of this cluster/) as string });
    expect(await registering).toMatchObject({ ok: true });
    expect(leader.service.kv.tasks.storedWorker('w2')).toBeDefined();
    expect(membersOf(leader)).toEqual(['m1', 'm2', 'm3']);
  });
});

describe('a worker and a manager id', () => {
  it('refuses a registration with the id of a voter or a learner: 409 JOIN_REFUSED, nothing proposed', async () => {
    const { c, leader } = await started();
    await leader.membership.addMember(member('m4'), ctx());
    await waitFor('m4 a learner on every manager', () => [...c.running.values()].every((n) => n.service.managerIds().includes('m4')));
    for (const node of c.running.values()) {
      const tasks = tasksOf(node);
      for (const id of ['m1', 'm4']) {
        const refused = await tasks.registerWorker({ id, apiAddress: '127.0.63.21:9001', runtime: 'process' }, ctx()).catch((e: unknown) => e);
        expect(refused, `${id} through ${node.id}`).toBeInstanceOf(MinkubeError);
        expect(refused).toMatchObject({ code: 'JOIN_REFUSED', status: 409, message: `${id} is a manager of this cluster; a worker needs an id of its own` });
      }
    }
    expect(await tasksOf(leader).registerWorker({ id: 'w4', apiAddress: '127.0.63.21:9001', runtime: 'process' }, ctx())).toMatchObject({ id: 'w4' });
    expect(leader.service.kv.tasks.storedWorker('m1')).toBeUndefined();
    expect(leader.service.kv.tasks.storedWorker('m4')).toBeUndefined();
  });

  it('the leader refuses a forwarded registration of a manager\'s id it appends after the member add (a follower that had not heard of it)', async () => {
    const { c, leader } = await started();
    await leader.membership.addMember(member('m5'), ctx());
    const follower = [...c.running.values()].find((n) => n.id !== leader.id)!;
    const refusedBefore = leader.driver.refusedProposals;
    const lastIndex = leader.driver.status().lastIndex;
    // As a follower with an older configuration would forward it.
    const data = encodeCommand({ clientId: 'stale-follower', seq: 1, cmd: register('m5') });
    const m: Message = { type: 'propose', from: follower.id, to: leader.id, term: 0 as Message['term'], entries: [data] };
    follower.transport.send([m]);
    await waitFor('the leader to refuse it', () => leader.driver.refusedProposals === refusedBefore + 1);
    expect(leader.driver.status().lastIndex).toBe(lastIndex);
    // Its own proposal, past the service's check, is refused before it enters the log too.
    await expect(leader.service.proposeCommand(register('m5'), performance.now() + 5_000, 'test')).rejects.toMatchObject({ code: 'INVALID_COMMAND', message: expect.stringMatching(/m5 is a manager of this cluster/) as string });
    expect(leader.service.kv.tasks.storedWorker('m5')).toBeUndefined();
  });
});
