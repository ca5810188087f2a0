// A voter that missed a member's join (it was down when the config entry adding it committed, so it knows neither
// the member nor its address) still answers it over real TCP with mutual TLS: the member's certificate proves it a
// manager of this cluster with that id, so its hello is taken; a member with the larger id, which waits to be
// dialed, knocks ("dial me", with its address) and is dialed back. A certificate that proves nothing gets nowhere.
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { peerProblem } from '../../src/daemon/security.js';
import { nodeId } from '../../src/lib/ids.js';
import type { Message } from '../../src/raft/types.js';
import { createClusterCa, identityFromCertificate, issueNodeKeyAndCert, type NodeRole } from '../../src/security/ca.js';
import { encodeFrame, WIRE_VERSION } from '../../src/transport/codec.js';
import { TcpTransport, type TransportTls } from '../../src/transport/tcp.js';
import { heartbeat } from './conformance.js';
import { waitFor } from '../support/wait.js';
import { freePorts, memoryLogger } from './tcp-cluster.js';

const sans = { ips: ['127.0.0.1'], dns: ['localhost'] };
let ca: { certPem: string; keyPem: string };
let otherCa: { certPem: string; keyPem: string };

async function tlsFor(id: string, role: NodeRole = 'manager', authority = ca, clusterId = 'c1'): Promise<TransportTls> {
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id, role, clusterId, caCertPem: authority.certPem, caKeyPem: authority.keyPem, sans });
  return { caCertPem: authority.certPem, certPem, keyPem, verifyPeer: (cert, peer) => peerProblem(identityFromCertificate(cert), 'c1', peer) };
}

const open: TcpTransport[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

async function start(id: string, listen: string, peers: [string, string][], tls?: TransportTls): Promise<{ t: TcpTransport; inbox: Message[] }> {
  const t = await TcpTransport.start({
    id: nodeId(id), listen, peers: new Map(peers.map(([p, a]) => [nodeId(p), a])), logger: memoryLogger(id).logger,
    reconnectMaxMs: 200, knockAfterMs: 100, ...(tls === undefined ? {} : { tls }),
  });
  open.push(t);
  const inbox: Message[] = [];
  t.onMessage((m) => inbox.push(m));
  return { t, inbox };
}

/** The voter's side of Raft, as far as this test needs it: every heartbeat is answered to whoever sent it. */
function answerEveryone(t: TcpTransport, inbox: Message[]): void {
  t.onMessage((m) => {
    inbox.push(m);
    if (m.type === 'heartbeat') t.send([{ type: 'heartbeatResponse', from: m.to, to: m.from, term: m.term, context: `answer to ${m.context}` }]);
  });
}

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
  otherCa = await createClusterCa({ clusterId: 'c2' });
}, 30_000);

describe('TcpTransport and a member this node does not know', () => {
  it.each([
    ['m3, which waits to be dialed (a larger id): it knocks and m2 dials it back', 'm3'],
    ['m0, which dials (a smaller id): m2 answers over its connection', 'm0'],
  ])('a voter that missed the join of %s answers it', async (_name, newId) => {
    const [p1, p2, pn] = await freePorts(3);
    const [a1, a2, an] = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`, `127.0.0.1:${pn}`];
    // m2 missed the join: it knows only m1. The new member knows both (the leader told it the configuration).
    await start('m1', a1, [['m2', a2], [newId, an]], await tlsFor('m1'));
    const voter = await start('m2', a2, [['m1', a1]], await tlsFor('m2'));
    answerEveryone(voter.t, voter.inbox);
    const member = await start(newId, an, [['m1', a1], ['m2', a2]], await tlsFor(newId));
    const m2 = nodeId('m2');
    const from = nodeId(newId);
    await waitFor(
      `${newId} to hear m2's answer`,
      () => {
        member.t.send([heartbeat(from, m2, 'are you there')]);
        return member.inbox.some((m) => m.from === m2 && m.type === 'heartbeatResponse') || undefined;
      },
      30_000,
      50,
    );
    expect(voter.t.peerStats().find((p) => p.id === from)).toMatchObject({ connected: true });
    // m2's configuration (setPeers) still does not name it: the link lives as long as its connection.
    voter.t.setPeers(new Map([[nodeId('m1'), a1]]));
    expect(voter.t.reachable(from)).toBe(true);
    await member.t.close();
    await waitFor('m2 to forget it once its connection is gone', () => !voter.t.peerStats().some((p) => p.id === from) || undefined, 30_000);
  });

  it.each([
    ['another cluster\'s manager certificate', async (): Promise<TransportTls> => tlsFor('m3', 'manager', otherCa, 'c2')],
    ['a worker certificate', async (): Promise<TransportTls> => tlsFor('m3', 'worker')],
    ['a manager certificate naming another id', async (): Promise<TransportTls> => tlsFor('m4')],
  ])('learns nothing from a knock or hello with %s', async (_name, material) => {
    const [p2] = await freePorts(1);
    const a2 = `127.0.0.1:${p2}`;
    const voter = await start('m2', a2, [], await tlsFor('m2'));
    const tls = await material();
    for (const frame of [
      { v: WIRE_VERSION, kind: 'hello', from: nodeId('m3'), to: nodeId('m2'), addr: '127.0.0.1:1', knock: true } as const,
      { v: WIRE_VERSION, kind: 'hello', from: nodeId('m1'), to: nodeId('m2') } as const,
    ]) {
      const socket = tlsConnect({ host: '127.0.0.1', port: p2!, ca: tls.caCertPem, cert: tls.certPem, key: tls.keyPem, checkServerIdentity: () => undefined });
      socket.on('error', () => undefined);
      await new Promise<void>((done) => {
        socket.once('secureConnect', () => socket.write(encodeFrame(frame)));
        socket.once('close', () => done());
      });
    }
    expect(voter.t.peerStats()).toEqual([]);
  });

  it('under insecure, the same: a voter that missed the join of m3 (which knocks) answers it', async () => {
    const [p1, p2, p3] = await freePorts(3);
    const [a1, a2, a3] = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`, `127.0.0.1:${p3}`];
    await start('m1', a1, [['m2', a2], ['m3', a3]]);
    const voter = await start('m2', a2, [['m1', a1]]);
    answerEveryone(voter.t, voter.inbox);
    const member = await start('m3', a3, [['m1', a1], ['m2', a2]]);
    await waitFor(
      "m3 to hear m2's answer",
      () => {
        member.t.send([heartbeat(nodeId('m3'), nodeId('m2'), 'are you there')]);
        return member.inbox.some((m) => m.from === 'm2' && m.type === 'heartbeatResponse') || undefined;
      },
      30_000,
      50,
    );
  });

  it('under insecure, a knock whose address is on another host than the one it came from is ignored', async () => {
    const [p2] = await freePorts(1);
    const voter = await start('m2', `127.0.0.1:${p2}`, []);
    const socket = connect({ host: '127.0.0.1', port: p2! });
    socket.on('error', () => undefined);
    await new Promise<void>((done) => {
      socket.once('connect', () => socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: nodeId('m3'), to: nodeId('m2'), addr: '10.1.2.3:7001', knock: true })));
      socket.once('close', () => done());
    });
    expect(voter.t.peerStats()).toEqual([]);
  });
});
