// A leader proposes nothing newer than its members understand (etcd's cluster version): a member of command version
// 10 met a version-11 worker registration in the log, stopped (INVALID_COMMAND ... upgrade this manager) at every
// restart, and the cluster lost its quorum. Here the leader asks, counts a member that does not say as 10, strips a
// registration's engine for such a cluster, and refuses any other newer command with UPGRADE_REQUIRED.
import { afterEach, describe, expect, it } from 'vitest';
import { unpack } from 'msgpackr';
import { pino } from 'pino';
import { commandVersion, decodeCommand, encodeCommand, fitCommand, type Command } from '../../src/kv/commands.js';
import { ClusterVersion, commandVersionSaid, fitToCluster } from '../../src/manager/cluster-version.js';
import { ManualClock } from '../support/manual-clock.js';
import { DriverCluster, waitFor, type DriverNode } from './driver-harness.js';
import type { Message } from '../../src/raft/types.js';

const engine = 'docker:0f5c3ab1-7d2e-4c65-9a1b-2e8d9c0f4a77';
const registration: Command = { op: 'worker.register', workerId: 'w9', apiAddress: '127.0.65.9:9001', runtime: 'docker', atMs: 1000, instance: 'aaaaaaaaaaaa', engine };
/** The envelope's `v` as written (decodeCommand keeps no version). */
const rawV = (data: Uint8Array): unknown => (unpack(data) as { v: unknown }).v;

describe('fitCommand', () => {
  it('keeps a command the cluster understands, byte for byte', () => {
    const data = encodeCommand({ clientId: 'c', seq: 1, cmd: registration });
    expect(fitCommand(data, 11)).toEqual({ data });
  });

  it('proposes a version-11 registration without its engine to a version-10 cluster, in the same client session', () => {
    const data = encodeCommand({ clientId: 'c', seq: 7, ackSeq: 3, reqId: 'r1', cmd: registration });
    const fitted = fitCommand(data, 10);
    if (!('data' in fitted)) throw new Error('refused');
    const envelope = decodeCommand(fitted.data);
    expect(envelope).toMatchObject({ clientId: 'c', seq: 7, ackSeq: 3, reqId: 'r1' });
    expect(envelope.cmd).toEqual({ op: 'worker.register', workerId: 'w9', apiAddress: '127.0.65.9:9001', runtime: 'docker', atMs: 1000, instance: 'aaaaaaaaaaaa' });
    expect(rawV(fitted.data)).toBe(5);
  });

  it('refuses any other command newer than the cluster, with the version it needs', () => {
    const data = encodeCommand({ clientId: 'c', seq: 1, cmd: { op: 'worker.remove', workerId: 'w1', atMs: 1, revoke: true } as Command });
    expect(fitCommand(data, 8)).toEqual({ newer: 9 });
    // Stripping the engine is not enough for a version-4 cluster (the instance is version 5).
    expect(fitCommand(encodeCommand({ clientId: 'c', seq: 1, cmd: registration }), 4)).toEqual({ newer: 5 });
  });
});

describe('ClusterVersion', () => {
  const quiet = pino({ level: 'silent' });

  it('counts a member that has not said, or said nothing, as 10, asks again until it says this version, and logs once per change', async () => {
    const clock = new ManualClock();
    const answers = new Map<string, number | null>([['m2', null], ['m3', 10]]);
    const asked: string[] = [];
    const warned: string[] = [];
    const logger = { ...quiet, warn: (_o: unknown, msg: string) => void warned.push(msg), info: () => undefined } as unknown as typeof quiet;
    const cv = new ClusterVersion({ self: 'm1', own: 11, unsaid: 10, clock, logger, retryMs: 5000, ask: async (m) => (asked.push(m), answers.get(m) ?? null) });
    expect(cv.lowest()).toEqual({ version: 11, older: [] }); // not leading: the leader judges
    cv.update(true, ['m1', 'm2', 'm3']);
    expect(cv.lowest()).toEqual({ version: 10, older: ['m2', 'm3'] });
    await Promise.resolve();
    expect(asked.sort()).toEqual(['m2', 'm3']);
    answers.set('m2', 11);
    answers.set('m3', 11);
    clock.advance(5000);
    await waitFor('both asked again', () => asked.length === 4);
    await Promise.resolve();
    expect(cv.lowest()).toEqual({ version: 11, older: [] });
    expect(cv.versions()).toEqual(new Map([['m1', 11], ['m2', 11], ['m3', 11]]));
    clock.advance(5000);
    expect(asked).toHaveLength(4); // every member says 11: no more asking
    expect(warned).toHaveLength(2); // m2 and m3 holding it back (m3's 10 changes nothing said), then m3 alone once m2 said 11
    expect(warned[0]).toMatch(/the cluster runs at command version 10 because m2 \(has not said yet, counted as 10\), m3 \(has not said yet/);
    cv.update(false, ['m1', 'm2', 'm3']);
    cv.close();
  });

  it('asks everyone again on a membership change, one request per member at a time', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const cv = new ClusterVersion({ self: 'm1', own: 11, unsaid: 10, clock, logger: quiet, retryMs: 5000, ask: () => (calls++, new Promise<number | null>(() => undefined)) });
    cv.update(true, ['m1', 'm2']);
    cv.update(true, ['m1', 'm2', 'm4']);
    expect(calls).toBe(2); // m2's first request is still in flight; m4 asked
    expect(cv.lowest()).toEqual({ version: 10, older: ['m2', 'm4'] });
    cv.close();
  });

  it('a follower asks too and keeps the answers, so once elected it counts its members at what they said, not as 10', async () => {
    const clock = new ManualClock();
    const asked: string[] = [];
    const cv = new ClusterVersion({ self: 'm1', own: 11, unsaid: 10, clock, logger: quiet, retryMs: 5000, ask: async (m) => (asked.push(m), 11) });
    cv.update(false, ['m1', 'm2', 'm3']);
    await waitFor('both asked', () => asked.length === 2);
    await Promise.resolve();
    expect(cv.lowest()).toEqual({ version: 11, older: [] }); // a follower judges nothing
    expect(cv.versionOf('m2')).toBe(11); // but says what it knows (GET /v1/cluster on a follower)
    cv.update(true, ['m1', 'm2', 'm3']); // elected: asks again, and meanwhile counts what they said
    expect(cv.lowest()).toEqual({ version: 11, older: [] });
    expect(cv.versions()).toEqual(new Map([['m1', 11], ['m2', 11], ['m3', 11]]));
    cv.update(true, ['m1', 'm2']); // m3 removed: forgotten
    cv.update(true, ['m1', 'm2', 'm3']); // added again: not known until it says
    expect(cv.lowest()).toEqual({ version: 10, older: ['m3'] });
    cv.close();
  });

  it("reads a member's GET /health: its commandVersion, 10 for an older build's answer, null for none", () => {
    expect(commandVersionSaid(200, JSON.stringify({ status: 'ok', commandVersion: 11 }), 10)).toBe(11);
    expect(commandVersionSaid(200, JSON.stringify({ status: 'ok' }), 10)).toBe(10);
    expect(commandVersionSaid(503, '', 10)).toBeNull();
  });
});

let cluster: DriverCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

/** A cluster whose leader counts m3 at `m3Version` (as its GET /health would say). */
function clusterWithOlder(m3Version: number): DriverCluster {
  const lowest = (): { version: number; older: string[] } => ({ version: Math.min(commandVersion, m3Version), older: m3Version < commandVersion ? ['m3'] : [] });
  return new DriverCluster({ fit: () => fitToCluster({ lowest }, fitCommand) });
}

function forward(from: DriverNode, to: DriverNode, entries: Uint8Array[]): void {
  const m: Message = { type: 'propose', from: from.id, to: to.id, term: 0 as Message['term'], entries };
  from.transport.send([m]);
}

describe('a leader whose member reports command version 10', () => {
  it('proposes a version-11 worker registration without its engine: every entry in every log is version 10 or older', async () => {
    cluster = clusterWithOlder(10);
    await cluster.startAll();
    const leader = await cluster.leader();
    const r = await leader.service.proposeCommand(registration, performance.now() + 5000, 'req-1');
    expect(r.ok).toBe(true);
    await cluster.converged();
    for (const n of cluster.running.values()) {
      expect(n.service.kv.tasks.storedWorker('w9')).toMatchObject({ instance: 'aaaaaaaaaaaa' });
      expect(n.service.kv.tasks.storedWorker('w9')?.engine).toBeUndefined();
    }
    for (const disk of cluster.disks.values()) {
      for (const e of disk.entries) if (e.type === 'command') expect(rawV(e.data)).toBeLessThanOrEqual(10);
    }
  });

  it('strips the engine of a forwarded registration too', async () => {
    cluster = clusterWithOlder(10);
    await cluster.startAll();
    const leader = await cluster.leader();
    await cluster.converged();
    const follower = [...cluster.running.values()].find((n) => n.id !== leader.id)!;
    forward(follower, leader, [encodeCommand({ clientId: 'peer', seq: 1, cmd: registration })]);
    await waitFor('w9 registered on every manager', () => [...cluster!.running.values()].every((n) => n.service.kv.tasks.storedWorker('w9') !== undefined));
    for (const n of cluster.running.values()) expect(n.service.kv.tasks.storedWorker('w9')?.engine).toBeUndefined();
  });

  it('with every member at 11, the engine is kept', async () => {
    cluster = clusterWithOlder(11);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.service.proposeCommand(registration, performance.now() + 5000, 'req-1');
    expect(leader.service.kv.tasks.storedWorker('w9')?.engine).toBe(engine);
  });

  it('refuses any other command newer than the lowest member with 409 UPGRADE_REQUIRED naming it, own or forwarded', async () => {
    cluster = clusterWithOlder(8);
    await cluster.startAll();
    const leader = await cluster.leader();
    await cluster.converged();
    const removal = { op: 'worker.remove', workerId: 'w1', atMs: 1, revoke: true } as Command;
    await expect(leader.service.proposeCommand(removal, performance.now() + 5000, 'req-1')).rejects.toMatchObject({
      code: 'UPGRADE_REQUIRED', status: 409, message: expect.stringMatching(/command version 9, and m3 of this cluster understands only 8: upgrade m3 first/),
    });
    const follower = [...cluster.running.values()].find((n) => n.id !== leader.id)!;
    const before = leader.driver.refusedProposals;
    forward(follower, leader, [encodeCommand({ clientId: 'peer', seq: 1, cmd: removal })]);
    await waitFor('the leader to refuse it', () => leader.driver.refusedProposals === before + 1);
  });
});
