// The Raft transport with mutual TLS: members talk; a stranger without a certificate, a worker's certificate,
// another cluster's certificate, or a manager's certificate claiming another id never gets a message through; and a
// certificate that is no manager's the listener takes is closed right after its handshake, before a byte is read.
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { peerProblem } from '../../src/daemon/security.js';
import { logIndex, nodeId, term, type NodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import type { Message } from '../../src/raft/types.js';
import { createClusterCa, identityFromCertificate, issueNodeKeyAndCert, type NodeRole } from '../../src/security/ca.js';
import { encodeFrame, WIRE_VERSION } from '../../src/transport/codec.js';
import { TcpTransport, type TransportTls } from '../../src/transport/tcp.js';
import { heartbeat } from './conformance.js';
import { waitFor } from '../support/wait.js';
import { freePorts, memoryLogger, type LogLine } from './tcp-cluster.js';

interface Cert {
  keyPem: string;
  certPem: string;
  caCertPem: string;
}

const sans = { ips: ['127.0.0.1'], dns: ['localhost'] };
let ca: { certPem: string; keyPem: string };
let other: { certPem: string; keyPem: string };

async function certFor(id: string, role: NodeRole, authority = ca, clusterId = 'c1'): Promise<Cert> {
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id, role, clusterId, caCertPem: authority.certPem, caKeyPem: authority.keyPem, sans });
  return { keyPem, certPem, caCertPem: authority.certPem };
}

function transportTls(c: Cert): TransportTls {
  return { caCertPem: c.caCertPem, certPem: c.certPem, keyPem: c.keyPem, verifyPeer: (cert, peer) => peerProblem(identityFromCertificate(cert), 'c1', peer) };
}

const n1 = nodeId('n1');
const n2 = nodeId('n2');
let t1: TcpTransport;
let t2: TcpTransport;
const received: Message[] = [];
let address2: string;

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
  other = await createClusterCa({ clusterId: 'c2' });
  const [p1, p2] = await freePorts(2);
  const a1 = `127.0.0.1:${p1}`;
  address2 = `127.0.0.1:${p2}`;
  // n2 also knows n3, so that "a member claiming another member's id" is tested against a known id.
  t2 = await TcpTransport.start({ id: n2, listen: address2, peers: new Map<NodeId, string>([[n1, a1], [nodeId('n3'), '127.0.0.1:1']]), logger: memoryLogger('n2').logger, tls: transportTls(await certFor('n2', 'manager')) });
  t2.onMessage((m) => received.push(m));
  t1 = await TcpTransport.start({ id: n1, listen: a1, peers: new Map([[n2, address2]]), logger: memoryLogger('n1').logger, tls: transportTls(await certFor('n1', 'manager')), reconnectMaxMs: 100 });
}, 30_000);

afterAll(async () => {
  await t1?.close();
  await t2?.close();
});

/** Sends a hello and a heartbeat with an absurd term as `claimed`, over the given socket; resolves when it closes. */
function impersonate(socket: import('node:net').Socket, claimed: NodeId, connectEvent: string): Promise<void> {
  return new Promise((done) => {
    socket.once(connectEvent, () => {
      socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: claimed, to: n2 }));
      socket.write(encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: [{ ...heartbeat(claimed, n2, 'forged'), term: term(Number.MAX_SAFE_INTEGER) }] }));
    });
    socket.on('error', () => {});
    socket.once('close', () => done());
  });
}

describe('TcpTransport with mutual TLS', () => {
  it('carries messages between members', async () => {
    t1.send([heartbeat(n1, n2, 'hello over tls')]);
    await waitFor('a heartbeat over TLS', () => received.some((m) => m.type === 'heartbeat' && m.context === 'hello over tls'), 10_000);
    expect(t1.reachable(n2)).toBe(true);
  });

  const port = (): number => Number(address2.split(':')[1]);
  const tlsTo = (c: Cert, trust = c.caCertPem): import('node:net').Socket =>
    tlsConnect({ host: '127.0.0.1', port: port(), ca: trust, cert: c.certPem, key: c.keyPem, checkServerIdentity: () => undefined });

  it.each([
    ['plain TCP without TLS', async () => impersonate(netConnect({ host: '127.0.0.1', port: port() }), n1, 'connect')],
    ['a worker certificate', async () => impersonate(tlsTo(await certFor('n1', 'worker')), n1, 'secureConnect')],
    ['another cluster\'s certificate', async () => impersonate(tlsTo(await certFor('n1', 'manager', other, 'c2'), ca.certPem), n1, 'secureConnect')],
    ['a member\'s certificate claiming another id', async () => impersonate(tlsTo(await certFor('n3', 'manager')), n1, 'secureConnect')],
  ])('refuses %s: nothing reaches Raft', async (_name, attack) => {
    const before = received.length;
    await attack();
    expect(received.slice(before).filter((m) => m.type === 'heartbeat' && m.context === 'forged')).toEqual([]);
    expect(received.some((m) => m.term === Number.MAX_SAFE_INTEGER)).toBe(false);
  });

  it('a dialer checks the listener too: a listener whose certificate names another node is dropped', () => {
    expect(peerProblem(identityFromCertificate(''), 'c1', 'n2')).toMatch(/names no Minkube node/);
    expect(peerProblem({ id: 'n3', role: 'manager', clusterId: 'c1' }, 'c1', 'n2')).toBe('its certificate names n3, not n2');
    expect(peerProblem({ id: 'n2', role: 'worker', clusterId: 'c1' }, 'c1', 'n2')).toMatch(/worker's, not a manager's/);
    expect(peerProblem({ id: 'n2', role: 'manager', clusterId: 'c2' }, 'c1', 'n2')).toMatch(/cluster c2, not c1/);
  });
});

describe('the Raft port before a hello', () => {
  const open: TcpTransport[] = [];
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close();
  });

  /** A listener n2 that knows n1 (which would dial it, at an address where nobody listens), with its log lines. */
  async function listener(verifyPeer?: TransportTls['verifyPeer']): Promise<{ t: TcpTransport; port: number; lines: LogLine[]; inbox: Message[] }> {
    const [p] = await freePorts(1);
    const { logger, lines } = memoryLogger('n2');
    const tls = transportTls(await certFor('n2', 'manager'));
    const t = await TcpTransport.start({ id: n2, listen: `127.0.0.1:${p}`, peers: new Map([[n1, '127.0.0.1:1']]), logger, tls: verifyPeer === undefined ? tls : { ...tls, verifyPeer } });
    open.push(t);
    const inbox: Message[] = [];
    t.onMessage((m) => inbox.push(m));
    return { t, port: p!, lines, inbox };
  }

  /** Connects with `c` and writes `bytes` once the handshake is done. */
  function connectWith(port: number, c: Cert, bytes: Buffer): import('node:net').Socket {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: c.caCertPem, cert: c.certPem, key: c.keyPem, checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => socket.write(bytes));
    socket.on('error', () => undefined);
    return socket;
  }

  /** connectWith, resolving when the listener closes the connection. */
  const send = (port: number, c: Cert, bytes: Buffer): Promise<void> => new Promise((done) => connectWith(port, c, bytes).once('close', () => done()));

  const lengthPrefix = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  /** The tester's attack: a length just under frameBytesMax, and a MiB of its body, with no hello. */
  const bigFrameStart = Buffer.concat([lengthPrefix(16_777_000), Buffer.alloc(1024 * 1024, 0x41)]);
  const refusals = (lines: LogLine[], level: number): LogLine[] => lines.filter((l) => l.level === level && l.msg.startsWith('refused a peer connection: its certificate'));

  it("closes a worker's certificate right after the TLS handshake: not a byte of what it sends is read", async () => {
    const { t, port, lines } = await listener();
    const worker = await certFor('w1', 'worker');
    for (let i = 0; i < 3; i++) await send(port, worker, bigFrameStart);
    expect(t.acceptCounts.refusedCertificates).toBe(3);
    expect(t.counters.bytesReceived).toBe(0);
    expect(t.counters.frameErrors).toBe(0);
    // One warning, then debug lines (an attacker opens many): the warning says why.
    expect(refusals(lines, 40)).toEqual([expect.objectContaining({ reason: "its certificate is a worker's, not a manager's", refusedSinceWarning: 1 })]);
    expect(refusals(lines, 20)).toHaveLength(2);
    expect(lines.filter((l) => l.msg.startsWith('closing a peer connection'))).toEqual([]);
  });

  it('closes the same way a manager certificate the cluster refuses (verifyPeer without a peer id: a removed manager)', async () => {
    const removed = (cert: Parameters<TransportTls['verifyPeer']>[0]): string | null => (identityFromCertificate(cert)?.id === 'm9' ? 'its certificate was issued before m9 was removed' : null);
    const { t, port, lines } = await listener((cert, peer) => peerProblem(identityFromCertificate(cert), 'c1', peer) ?? removed(cert));
    // A worker's certificate refused just before (an attacker's flood) hides nothing else: each reason has its own minute.
    await send(port, await certFor('w1', 'worker'), bigFrameStart);
    await send(port, await certFor('m9', 'manager'), bigFrameStart);
    expect(t.acceptCounts.refusedCertificates).toBe(2);
    expect(t.counters.bytesReceived).toBe(0);
    expect(refusals(lines, 40).map((l) => l.reason)).toEqual(["its certificate is a worker's, not a manager's", 'its certificate was issued before m9 was removed']);
  });

  it("closes a manager's connection at once when its first frame declares more than a hello needs", async () => {
    const { t, port, lines } = await listener();
    const started = performance.now();
    // Only the length: the listener must close without waiting for the body (or for the 5 s hello timeout).
    await send(port, await certFor('n1', 'manager'), lengthPrefix(limits.peerHelloBytesMax + 1));
    expect(performance.now() - started).toBeLessThan(2500);
    expect(t.counters.bytesReceived).toBe(4);
    const reason = `a first frame declares ${limits.peerHelloBytesMax + 1} bytes, over the limit of ${limits.peerHelloBytesMax}`;
    expect(lines.filter((l) => l.level === 40 && l.msg.startsWith('closing a peer connection')).map((l) => l.reason)).toEqual([reason]);
  });

  it("takes a manager's hello and, behind it in the same write, an append far larger than a hello", async () => {
    const { t, port, inbox } = await listener();
    const data = new Uint8Array(2 * 1024 * 1024).fill(7);
    const append: Message = { type: 'append', from: n1, to: n2, term: term(3), prevLogIndex: logIndex(0), prevLogTerm: term(0), commit: logIndex(0), entries: [{ term: term(3), index: logIndex(1), type: 'command', data }] };
    const frames = Buffer.concat([encodeFrame({ v: WIRE_VERSION, kind: 'hello', from: n1, to: n2 }), encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages: [append] })]);
    const socket = connectWith(port, await certFor('n1', 'manager'), frames);
    try {
      await waitFor('the append', () => inbox.some((m) => m.type === 'append' && m.entries[0]?.data.length === data.length), 10_000);
      expect(t.reachable(n1)).toBe(true);
      expect(t.acceptCounts.refusedCertificates).toBe(0);
    } finally {
      socket.destroy();
    }
  });
});
