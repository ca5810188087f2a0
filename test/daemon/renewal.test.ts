// Certificate renewal without a restart: the loop renews once two thirds of the lifetime have passed, writes the new
// material and hands it over; a failing signer is retried with backoff while the node keeps its old certificate; a
// signer's answer that certifies another key or another node is refused; a worker renews through a manager over mutual
// TLS, and the renewed material is what its server and client present from then on.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient } from '../../src/client/http.js';
import { applyRenewedTls, checkIntervalFor, localSigner, remoteSigner, renewedProblem, retryDelayMs, startCertRenewal, type CertRenewal } from '../../src/daemon/renewal.js';
import type { Clock } from '../../src/lib/clock.js';
import { nodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { createClusterCa, createCsr, generateNodeKey, identityFromCertificate, isIssuedBy, issueNodeCertificate, issueNodeKeyAndCert, needsRenewal, type NodeRole } from '../../src/security/ca.js';
import { readNodeTls, writeNodeTls, type NodeTls } from '../../src/security/pki-files.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { waitFor } from '../support/wait.js';
import { freePorts, memoryLogger } from '../transport/tcp-cluster.js';
import { ManualClock } from '../support/manual-clock.js';

const hourMs = 3_600_000;
const dayMs = 24 * hourMs;


const clusterId = 'c1';
const start = Date.UTC(2031, 0, 1);
let ca: { certPem: string; keyPem: string };
const dirs: string[] = [];
const loops: CertRenewal[] = [];
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  // Valid from long before `start` to long after today, so both the fake-time and the real-time tests can use it.
  ca = await createClusterCa({ clusterId, now: new Date(Date.UTC(2020, 0, 1)), lifetimeDays: 365 * 30 });
}, 30_000);

afterEach(async () => {
  for (const loop of loops.splice(0)) loop.stop();
  await Promise.all(closers.splice(0).map((close) => close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A node's material issued at `issuedAt`, written to a fresh data directory. */
async function nodeAt(id: string, role: NodeRole, issuedAt: Date, lifetimeDays: number): Promise<{ dataDir: string; material: NodeTls }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'minkube-renew-'));
  dirs.push(dataDir);
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id, role, clusterId, caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { ips: ['127.0.0.1'], dns: ['localhost'] }, now: issuedAt, lifetimeDays });
  const material: NodeTls = { caCertPem: ca.certPem, certPem, keyPem, identity: { id, role, clusterId } };
  if (role === 'manager') material.caKeyPem = ca.keyPem;
  await writeNodeTls(dataDir, material);
  return { dataDir, material };
}

/** A loop over a node whose material lives in a variable that onRenewed replaces, as the daemon's will. */
function loopFor(node: { dataDir: string; material: NodeTls }, clock: Clock, sign: (csr: string) => Promise<string>) {
  const log = memoryLogger('renewal');
  const state = { current: node.material, renewals: [] as NodeTls[], signed: 0 };
  const loop = startCertRenewal({
    dataDir: node.dataDir,
    material: () => state.current,
    clock,
    checkIntervalMs: hourMs,
    sign: (csr) => {
      state.signed++;
      return sign(csr);
    },
    onRenewed: (m) => {
      state.current = m;
      state.renewals.push(m);
    },
    logger: log.logger,
  });
  loops.push(loop);
  return { loop, state, lines: log.lines };
}

describe('startCertRenewal', () => {
  it('renews at the first check after two thirds of the lifetime, writes the files and hands over valid new material', async () => {
    const node = await nodeAt('m1', 'manager', new Date(start), 3);
    const clock = new ManualClock(start + dayMs);
    const { state } = loopFor(node, clock, localSigner(node.material, ['127.0.0.1:7000'], { clock, lifetimeDays: 3 }));
    // Due at start + 2 days (two thirds of three days, counted from the issue: the backdated hour is not
    // lifetime); checks run hourly from start + 1 day, so the one at start + 2 days renews.
    for (let i = 0; i < 48 && state.renewals.length === 0; i++) {
      expect(state.signed).toBe(0);
      await clock.fireNext();
      await waitFor('the check to finish', () => clock.nextDelayMs() !== null);
    }
    expect(state.signed).toBe(1);
    expect(clock.nowMs()).toBe(start + 2 * dayMs);

    const renewed = state.renewals[0]!;
    const now = new Date(clock.nowMs());
    expect(renewed.certPem).not.toBe(node.material.certPem);
    expect(renewed.keyPem).not.toBe(node.material.keyPem);
    expect(await isIssuedBy(renewed.certPem, ca.certPem, now)).toBe(true);
    expect(new X509Certificate(renewed.certPem).checkPrivateKey(createPrivateKey(renewed.keyPem))).toBe(true);
    expect(identityFromCertificate(renewed.certPem)).toEqual({ id: 'm1', role: 'manager', clusterId });
    expect(needsRenewal(renewed.certPem, now)).toBe(false);
    // What a restart would read is what was handed over, CA key included.
    expect(await readNodeTls(node.dataDir)).toEqual(renewed);
    expect(renewed.caKeyPem).toBe(ca.keyPem);

    // The new certificate is not due: the next checks leave it alone.
    for (let i = 0; i < 3; i++) await clock.fireNext();
    await waitFor('the last check to finish', () => clock.nextDelayMs() !== null);
    expect(state.signed).toBe(1);
    expect(clock.nextDelayMs()).toBe(hourMs);
  }, 30_000);

  it('retries a failing signer with a growing delay, keeping the old material meanwhile, and never crashes', async () => {
    const node = await nodeAt('w1', 'worker', new Date(start), 3);
    const clock = new ManualClock(start + 2.5 * dayMs);
    const good = localSigner({ ...node.material, caKeyPem: ca.keyPem }, ['127.0.0.1:7001'], { clock });
    let failuresLeft = 3;
    const { state, lines } = loopFor(node, clock, async (csr) => {
      if (failuresLeft-- > 0) throw new Error('no manager answers');
      return good(csr);
    });
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      await waitFor('a retry to be scheduled', () => clock.nextDelayMs() !== null);
      delays.push(clock.nextDelayMs()!);
      expect(state.current).toBe(node.material);
      expect((await readNodeTls(node.dataDir))?.certPem).toBe(node.material.certPem);
      await clock.fireNext();
    }
    expect(delays).toEqual([limits.certRenewRetryMsMin, limits.certRenewRetryMsMin * 2, limits.certRenewRetryMsMin * 4]);
    await waitFor('the renewal', () => state.renewals.length === 1);
    expect(state.signed).toBe(4);
    expect(lines.filter((l) => l.level === 40 && /renewal failed/.test(l.msg))).toHaveLength(3);
    expect((await readNodeTls(node.dataDir))?.certPem).toBe(state.current.certPem);
    expect(state.current.caKeyPem).toBeUndefined();
    // Success resets the backoff: the next check is a whole interval away.
    await waitFor('the next check', () => clock.nextDelayMs() !== null);
    expect(clock.nextDelayMs()).toBe(hourMs);
  }, 30_000);

  it('once a renewal fails after the certificate expired (paused past it), says so once and stops checking', async () => {
    const node = await nodeAt('w1', 'worker', new Date(start), 3);
    const clock = new ManualClock(start + 4 * dayMs);
    const expiredAt: Date[] = [];
    const loop = startCertRenewal({
      dataDir: node.dataDir, material: () => node.material, clock, checkIntervalMs: hourMs, logger: memoryLogger('renewal').logger,
      sign: () => Promise.reject(new Error('this route is for cluster nodes: no verified client certificate (CERT_HAS_EXPIRED)')),
      onRenewed: () => undefined,
      onExpired: (at) => expiredAt.push(at),
    });
    loops.push(loop);
    await waitFor('the expiry to be reported', () => expiredAt.length === 1);
    expect(expiredAt[0]!.getTime()).toBe(start + 3 * dayMs);
    expect(clock.nextDelayMs()).toBeNull();
  }, 30_000);

  it('refuses a signed certificate for another key or another node, and keeps the old material', async () => {
    const node = await nodeAt('w2', 'worker', new Date(start), 90);
    const clock = new ManualClock(start + dayMs);
    const sans = { ips: ['127.0.0.1'], dns: [] };
    const otherNode = async (): Promise<string> => (await issueNodeKeyAndCert({ id: 'w9', role: 'worker', clusterId, caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans, now: new Date(clock.nowMs()) })).certPem;
    const otherKey = async (): Promise<string> => (await issueNodeKeyAndCert({ id: 'w2', role: 'worker', clusterId, caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans, now: new Date(clock.nowMs()) })).certPem;
    let answer = otherNode;
    const { loop, state, lines } = loopFor(node, clock, () => answer());
    expect(await loop.renewNow()).toBe(false);
    answer = otherKey;
    expect(await loop.renewNow()).toBe(false);
    expect(state.renewals).toEqual([]);
    expect(await readNodeTls(node.dataDir)).toEqual(node.material);
    const refusals = lines.filter((l) => l.level === 40).map((l) => String((l.err as { message?: string }).message));
    expect(refusals).toEqual([expect.stringMatching(/names worker w9 of c1, not worker w2 of c1/), expect.stringMatching(/does not certify the key/)]);
  }, 30_000);

  it('renewNow renews a certificate that is not due; after stop nothing runs', async () => {
    const node = await nodeAt('m2', 'manager', new Date(start), 90);
    const clock = new ManualClock(start + dayMs);
    const { loop, state } = loopFor(node, clock, localSigner(node.material, [], { clock }));
    expect(await loop.renewNow()).toBe(true);
    expect(state.renewals).toHaveLength(1);
    loop.stop();
    expect(clock.nextDelayMs()).toBeNull();
    expect(await loop.renewNow()).toBe(false);
    expect(state.signed).toBe(1);
  }, 30_000);

  it('renews a 60 s certificate in time, again and again: checks every 6 s (a tenth of it), renews at the first one past 40 s', async () => {
    const node = await nodeAt('m3', 'manager', new Date(start), 60 / 86_400);
    const clock = new ManualClock(start);
    const { state } = loopFor(node, clock, localSigner(node.material, ['127.0.0.1:7000'], { clock, lifetimeDays: 60 / 86_400 }));
    const renewedAtS: number[] = [];
    while (renewedAtS.length < 3) {
      await waitFor('the check to finish', () => clock.nextDelayMs() !== null);
      // checkIntervalMs is an hour, but that would be far too late for this certificate.
      expect(clock.nextDelayMs()).toBe(6_000);
      const before = state.renewals.length;
      // It never runs on an expired certificate.
      expect(await isIssuedBy(state.current.certPem, ca.certPem, new Date(clock.nowMs()))).toBe(true);
      await clock.fireNext();
      await waitFor('the check to finish', () => clock.nextDelayMs() !== null);
      if (state.renewals.length > before) renewedAtS.push((clock.nowMs() - start) / 1000);
    }
    // Issued at 0 s: due at 40, checked at 36 and 42; the new one, issued at 42, is due at 82 and checked at 84; ...
    expect(renewedAtS).toEqual([42, 84, 126]);
    expect(Date.parse(new X509Certificate(state.current.certPem).validTo) - start).toBe(186_000);
  }, 30_000);

  it('checks at most every tenth of the certificate lifetime, at least every second', async () => {
    const at = new Date(start);
    const certFor = async (lifetimeDays: number): Promise<string> => (await nodeAt('w5', 'worker', at, lifetimeDays)).material.certPem;
    expect(checkIntervalFor(await certFor(90), hourMs)).toBe(hourMs);
    expect(checkIntervalFor(await certFor(60 / 86_400), hourMs)).toBe(6_000);
    expect(checkIntervalFor(await certFor(3600 / 86_400), hourMs)).toBe(360_000);
    expect(checkIntervalFor(await certFor(5 / 86_400), hourMs)).toBe(1_000);
    expect(checkIntervalFor('not a certificate', hourMs)).toBe(hourMs);
  }, 30_000);

  it('backs off from 5 s doubling, bounded by a minute and by the check interval', () => {
    expect([1, 2, 3, 4, 5, 50].map((n) => retryDelayMs(n, hourMs))).toEqual([5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
    expect(retryDelayMs(3, 7_000)).toBe(7_000);
  });
});

describe('renewedProblem', () => {
  it('refuses what another CA signed', async () => {
    const node = await nodeAt('w3', 'worker', new Date(), 90);
    const stranger = await createClusterCa({ clusterId });
    const { keyPem } = await generateNodeKey();
    const csrPem = await createCsr({ keyPem, id: 'w3', role: 'worker', clusterId });
    const certPem = await issueNodeCertificate({ id: 'w3', role: 'worker', clusterId, caCertPem: stranger.certPem, caKeyPem: stranger.keyPem, csrPem, sans: { ips: [], dns: [] } });
    expect(await renewedProblem(node.material, keyPem, certPem, new Date())).toMatch(/not signed by the cluster's CA/);
    expect(await renewedProblem(node.material, keyPem, 'garbage', new Date())).toMatch(/not a PEM certificate/);
  });
});

/** An HTTPS server answering POST /v1/certs/renew as a manager does: for the identity of the verified client certificate. */
async function fakeManager(seen: string[]): Promise<string> {
  const server: HttpsServer = createHttpsServer({ ...(await serverMaterial()), ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    seen.push(peer.fingerprint256);
    const who = identityFromCertificate(peer);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (!socket.authorized || who === null) return void res.writeHead(401).end('{"error":{"code":"UNAUTHENTICATED","message":"no client certificate"}}');
      const { csr, addresses } = JSON.parse(body) as { csr: string; addresses?: string[] };
      void issueNodeCertificate({ ...who, caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem: csr, sans: { ips: ['127.0.0.1', ...(addresses ?? [])], dns: [] } }).then((certificate) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ certificate })),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function serverMaterial(): Promise<{ cert: string; key: string }> {
  const { keyPem, certPem } = await issueNodeKeyAndCert({ id: 'm9', role: 'manager', clusterId, caCertPem: ca.certPem, caKeyPem: ca.keyPem, sans: { ips: ['127.0.0.1'], dns: [] } });
  return { cert: certPem, key: keyPem };
}

/** The fingerprint of the certificate a TLS listener presents to a new connection. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const fingerprint = (certPem: string): string => new X509Certificate(certPem).fingerprint256;

describe('a worker renewing through a manager', () => {
  it('asks each manager in turn over mutual TLS; the renewed material is what its server, transport and client present', async () => {
    const node = await nodeAt('w4', 'worker', new Date(Date.now() - 80 * dayMs), 90);
    const seen: string[] = [];
    const manager = await fakeManager(seen);
    const [deadPort, nodePort, raftPort] = await freePorts(3);
    const security = { ca: node.material.caCertPem, cert: node.material.certPem, key: node.material.keyPem };
    const http = new HttpClient({ tls: security, timeoutMs: 5000 });
    closers.push(() => http.close());
    // The node's own HTTPS server and Raft listener, presenting its current certificate.
    const own: HttpsServer = createHttpsServer({ ...security, requestCert: true, rejectUnauthorized: false }, (_req, res) => res.end());
    await new Promise<void>((r) => own.listen(nodePort, '127.0.0.1', r));
    closers.push(() => new Promise((r) => own.close(() => r())));
    const transport = await TcpTransport.start({
      id: nodeId('w4'), listen: `127.0.0.1:${raftPort}`, peers: new Map(), logger: memoryLogger('w4').logger,
      tls: { caCertPem: ca.certPem, certPem: node.material.certPem, keyPem: node.material.keyPem, verifyPeer: () => null },
    });
    closers.push(() => transport.close());

    const clock = new ManualClock(Date.now());
    const { loop, state } = loopFor(node, clock, remoteSigner(http, () => [`127.0.0.1:${deadPort}`, manager]));
    // onRenewed in loopFor only records; here the daemon's swap is done by hand once the renewal is in.
    await waitFor('the renewal', () => state.renewals.length === 1, 10_000);
    const renewed = state.renewals[0]!;
    expect(seen).toEqual([fingerprint(node.material.certPem)]);
    expect(identityFromCertificate(renewed.certPem)).toEqual({ id: 'w4', role: 'worker', clusterId });
    expect(await readNodeTls(node.dataDir)).toEqual(renewed);

    applyRenewedTls({ transport, server: own, http: [http] }, renewed);
    expect(await presented(nodePort!)).toBe(fingerprint(renewed.certPem));
    expect(await presented(raftPort!)).toBe(fingerprint(renewed.certPem));
    // The next renewal goes out with the renewed certificate as the client certificate.
    expect(await loop.renewNow()).toBe(true);
    expect(seen).toEqual([fingerprint(node.material.certPem), fingerprint(renewed.certPem)]);
  }, 30_000);

  it('fails naming every manager when none renews', async () => {
    const node = await nodeAt('w5', 'worker', new Date(), 90);
    const [p1, p2] = await freePorts(2);
    const http = new HttpClient({ tls: { ca: ca.certPem, cert: node.material.certPem, key: node.material.keyPem }, timeoutMs: 2000 });
    closers.push(() => http.close());
    const sign = remoteSigner(http, [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`]);
    await expect(sign('csr')).rejects.toMatchObject({ code: 'UNREACHABLE', message: expect.stringMatching(new RegExp(`no manager renewed.*${p1}.*; .*${p2}`)) });
    await expect(remoteSigner(http, [])('csr')).rejects.toMatchObject({ code: 'UNREACHABLE' });
  });
});
