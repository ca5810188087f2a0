// A renewed certificate swapped into a running TcpTransport (setTls): the connection already open stays up, the
// listener presents the new certificate, and peers that connect afterwards (dialing or dialed) are let in.
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { peerProblem } from '../../src/daemon/security.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { createClusterCa, identityFromCertificate, issueNodeKeyAndCert } from '../../src/security/ca.js';
import { TcpTransport, type TransportTls } from '../../src/transport/tcp.js';
import { collect, heartbeat } from './conformance.js';
import { waitFor } from '../support/wait.js';
import { freePorts, memoryLogger } from './tcp-cluster.js';

const n1 = nodeId('n1');
const n2 = nodeId('n2');
let ca: { certPem: string; keyPem: string };
const open: TcpTransport[] = [];

beforeAll(async () => {
  ca = await createClusterCa({ clusterId: 'c1' });
}, 30_000);

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

/** A fresh key and certificate for a manager; `seen` records the fingerprint of every peer certificate checked. */
async function tlsFor(id: string, seen: string[] = []): Promise<TransportTls> {
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id, role: 'manager', clusterId: 'c1', caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { ips: ['127.0.0.1'], dns: [] } });
  return {
    caCertPem: ca.certPem,
    certPem,
    keyPem,
    verifyPeer: (cert: PeerCertificate, peer: NodeId | null) => {
      seen.push(cert.fingerprint256);
      return peerProblem(identityFromCertificate(cert), 'c1', peer);
    },
  };
}

const fingerprint = (certPem: string): string => new X509Certificate(certPem).fingerprint256;

async function start(id: NodeId, listen: string, peer: NodeId, peerAddress: string, tls: TransportTls | undefined): Promise<TcpTransport> {
  const t = await TcpTransport.start({ id, listen, peers: new Map([[peer, peerAddress]]), logger: memoryLogger(id).logger, reconnectMaxMs: 100, ...(tls === undefined ? {} : { tls }) });
  open.push(t);
  return t;
}

async function closeOne(t: TcpTransport): Promise<void> {
  open.splice(open.indexOf(t), 1);
  await t.close();
}

/** The certificate the listener at `port` presents to a client holding `client`. */
function presented(port: number, client: TransportTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: client.caCertPem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

async function exchange(a: TcpTransport, from: NodeId, to: NodeId, got: ReturnType<typeof collect>, context: string): Promise<void> {
  a.send([heartbeat(from, to, context)]);
  await waitFor(`'${context}' from ${from} to ${to}`, () => got.some((m) => m.type === 'heartbeat' && m.context === context), 10_000);
}

describe('TcpTransport.setTls', () => {
  it('keeps the open connection, presents the new certificate, and lets a restarted peer in', async () => {
    const [p1, p2] = await freePorts(2);
    const [a1, a2] = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
    const seenBy2: string[] = [];
    const t2 = await start(n2, a2, n1, a1, await tlsFor('n2', seenBy2));
    const got2 = collect(t2);
    const t1 = await start(n1, a1, n2, a2, await tlsFor('n1'));
    await exchange(t1, n1, n2, got2, 'before');
    const opened = t2.counters.connectionsOpened;

    const renewed2 = await tlsFor('n2', seenBy2);
    t2.setTls(renewed2);
    const renewed1 = await tlsFor('n1');
    t1.setTls(renewed1);
    // The connection authenticated with the old certificates carries on.
    await exchange(t1, n1, n2, got2, 'after, same connection');
    expect(t2.counters.connectionsOpened).toBe(opened);
    expect(await presented(p2!, renewed1)).toBe(fingerprint(renewed2.certPem));

    // n1 restarts with its renewed certificate and dials n2 again: accepted, and both directions work.
    await closeOne(t1);
    const t1b = await start(n1, a1, n2, a2, renewed1);
    const got1 = collect(t1b);
    await exchange(t1b, n1, n2, got2, 'after restart');
    await exchange(t2, n2, n1, got1, 'back after restart');
    expect(seenBy2.at(-1)).toBe(fingerprint(renewed1.certPem));
  }, 30_000);

  it('dials with the new certificate after setTls', async () => {
    const [p1, p2] = await freePorts(2);
    const [a1, a2] = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
    const t1 = await start(n1, a1, n2, a2, await tlsFor('n1'));
    const renewed1 = await tlsFor('n1');
    t1.setTls(renewed1);
    // n2 comes up after the swap, so every connection n1 makes to it is dialed with the renewed material.
    const seenBy2: string[] = [];
    const t2 = await start(n2, a2, n1, a1, await tlsFor('n2', seenBy2));
    const got2 = collect(t2);
    await exchange(t1, n1, n2, got2, 'dialed after renewal');
    expect(new Set(seenBy2)).toEqual(new Set([fingerprint(renewed1.certPem)]));
  }, 30_000);

  it('refuses material on a transport started without TLS', async () => {
    const [p1] = await freePorts(1);
    const t = await start(n1, `127.0.0.1:${p1}`, n2, '127.0.0.1:1', undefined);
    expect(() => t.setTls({ caCertPem: '', certPem: '', keyPem: '', verifyPeer: () => null })).toThrow(MinkubeError);
  });
});
