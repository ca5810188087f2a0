// A manager's signing for joiners and renewals: a renewed certificate gets the configured lifetime
// (tls.certLifetimeS), counted from the manager's clock, and keeps the identity and names the old one proved; a
// joiner with the other role's join token is told which token it holds and which it needs.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/lib/clock.js';
import { JoinServiceImpl } from '../../src/manager/join-service.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { certificateLifetimeMs, createClusterCa, createCsr, generateNodeKey, identityFromCertificate, issueNodeKeyAndCert, needsRenewal, type NodeRole } from '../../src/security/ca.js';
import { newJoinToken } from '../../src/security/tokens.js';

const clusterId = 'c1';

/** What tlsSocket.getPeerCertificate() gives the route for a client certificate: its DER and its SAN string. */
function asPeer(certPem: string): PeerCertificate {
  const cert = new X509Certificate(certPem);
  return { raw: cert.raw, subjectaltname: cert.subjectAltName } as unknown as PeerCertificate;
}

describe('JoinServiceImpl.renew', () => {
  it('signs a renewal with certLifetimeS from its clock, for the identity and names the current certificate proves', async () => {
    const nowMs = Date.UTC(2031, 0, 1);
    const clock: Clock = { nowMs: () => nowMs, monoMs: () => nowMs, setTimeout: () => ({ cancel: () => undefined }) };
    const ca = await createClusterCa({ clusterId, now: new Date(nowMs - 86_400_000) });
    const sans = { ips: ['127.0.0.1', '10.0.0.9'], dns: ['localhost'] };
    const manager = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId, sans, now: new Date(nowMs) });
    const worker = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'w1', role: 'worker', clusterId, sans, now: new Date(nowMs - 50_000), lifetimeDays: 60 / 86_400 });
    const service = new JoinServiceImpl({
      material: { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...manager, identity: { id: 'm1', role: 'manager', clusterId } },
      clock,
      certLifetimeS: 120,
      joinToken: () => undefined,
      managers: () => [],
      worker: () => undefined,
    });
    expect(needsRenewal(worker.certPem, new Date(nowMs))).toBe(true);
    const { keyPem } = await generateNodeKey();
    const { certificate } = await service.renew(asPeer(worker.certPem), await createCsr({ keyPem, id: 'w1', role: 'worker', clusterId }));
    expect(identityFromCertificate(certificate)).toEqual({ id: 'w1', role: 'worker', clusterId });
    expect(certificateLifetimeMs(certificate)).toBe(120_000);
    expect(Date.parse(new X509Certificate(certificate).validTo)).toBe(nowMs + 120_000);
    expect(new X509Certificate(certificate).subjectAltName).toBe(new X509Certificate(worker.certPem).subjectAltName);
  });
});

describe('JoinServiceImpl.join', () => {
  it('a join token of the other role is refused saying which it is and which the joiner needs', async () => {
    const nowMs = Date.UTC(2031, 0, 1);
    const clock: Clock = { nowMs: () => nowMs, monoMs: () => nowMs, setTimeout: () => ({ cancel: () => undefined }) };
    const ca = await createClusterCa({ clusterId, now: new Date(nowMs - 86_400_000) });
    const manager = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId, sans: { ips: ['127.0.0.1'], dns: [] }, now: new Date(nowMs) });
    const tokens = { manager: newJoinToken(ca.certPem), worker: newJoinToken(ca.certPem) };
    const roleOf = new Map([[tokens.manager.secretHash, 'manager'], [tokens.worker.secretHash, 'worker']] as const);
    const service = new JoinServiceImpl({
      material: { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...manager, identity: { id: 'm1', role: 'manager', clusterId } },
      clock,
      joinToken: (secretHash) => {
        const role = roleOf.get(secretHash);
        return role === undefined ? undefined : { secretHash, role, createdAtMs: nowMs, expiresAtMs: nowMs + 60_000 };
      },
      managers: () => [
        { id: 'm1', raftAddress: '127.0.0.1:9100', apiAddress: '127.0.0.1:9101' },
        { id: 'm5', raftAddress: '127.0.0.1:9500', apiAddress: '127.0.0.1:9501', learner: true },
      ],
      worker: (id: string) => (id === 'w1' ? { state: 'ready' as const } : id === 'w9' ? { state: 'down' as const } : undefined),
    });
    const { keyPem } = await generateNodeKey();
    const csrOf = (id: string, role: NodeRole): Promise<string> => createCsr({ keyPem, id, role, clusterId });
    const join = async (token: string, id: string, role: NodeRole) => service.join({ token, id, csr: await csrOf(id, role), addresses: ['127.0.0.1:9300'] });

    const workerWithManagerToken = await join(tokens.manager.token, 'w3', 'worker').catch((e: unknown) => e);
    expect(workerWithManagerToken).toBeInstanceOf(MinkubeError);
    expect(workerWithManagerToken).toMatchObject({ code: 'INVALID_BODY', status: 400, message: 'this is a manager join token; a worker needs one made with minkube token create --role worker' });
    await expect(join(tokens.worker.token, 'm2', 'manager')).rejects.toMatchObject({ code: 'INVALID_BODY', message: 'this is a worker join token; a manager needs one made with minkube token create --role manager' });
    // The right kind still joins.
    expect(identityFromCertificate((await join(tokens.worker.token, 'w3', 'worker')).certificate)).toEqual({ id: 'w3', role: 'worker', clusterId });
    // One name, one node: a worker may not take a manager's id (a learner's too), nor a manager a registered worker's,
    // even a down one (only worker rm frees it); a down worker's id is a worker's to take again.
    await expect(join(tokens.worker.token, 'm1', 'worker')).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: 'm1 is a manager of this cluster; a worker needs an id of its own' });
    await expect(join(tokens.worker.token, 'm5', 'worker')).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: 'm5 is a manager of this cluster; a worker needs an id of its own' });
    await expect(join(tokens.manager.token, 'w1', 'manager')).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: expect.stringMatching(/^w1 is a worker of this cluster \(registered, ready\); a manager needs an id of its own/) as string });
    await expect(join(tokens.manager.token, 'w9', 'manager')).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: expect.stringMatching(/^w9 is a worker of this cluster \(registered, down\)/) as string });
    expect(identityFromCertificate((await join(tokens.worker.token, 'w9', 'worker')).certificate)).toEqual({ id: 'w9', role: 'worker', clusterId });
    // A learner made by `member add` is the slot a manager joining at its addresses comes to fill; a voter never is.
    const asManager = async (id: string, addresses: string[]) => service.join({ token: tokens.manager.token, id, csr: await csrOf(id, 'manager'), addresses });
    expect(identityFromCertificate((await asManager('m5', ['localhost:9500', '127.0.0.1:9501'])).certificate)).toEqual({ id: 'm5', role: 'manager', clusterId });
    await expect(asManager('m5', ['127.0.0.1:9600', '127.0.0.1:9601'])).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: 'm5 is already a member at other addresses (127.0.0.1:9500, 127.0.0.1:9501); remove it first (minkube member remove m5) to join again with that id' });
    await expect(asManager('m1', ['127.0.0.1:9100', '127.0.0.1:9101'])).rejects.toMatchObject({ code: 'JOIN_REFUSED', message: 'm1 is already a member; remove it first (minkube member remove m1) to join again with that id' });
    // Another id in the request than in the body is still the CSR's problem, as before.
    await expect(service.join({ token: tokens.worker.token, id: 'w4', csr: await csrOf('w5', 'worker'), addresses: [] })).rejects.toMatchObject({ code: 'INVALID_BODY', message: expect.stringMatching(/^the certificate request names/) as string });
  });
});

describe('JoinServiceImpl.join after a CA rotation', () => {
  it("a token kept from the previous CA is refused, whatever digest it is sent with; one of this CA's joins", async () => {
    const nowMs = Date.UTC(2031, 0, 1);
    const clock: Clock = { nowMs: () => nowMs, monoMs: () => nowMs, setTimeout: () => ({ cancel: () => undefined }) };
    const oldCa = await createClusterCa({ clusterId, now: new Date(nowMs - 86_400_000) });
    const ca = await createClusterCa({ clusterId, now: new Date(nowMs - 86_400_000) });
    const manager = await issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId, sans: { ips: ['127.0.0.1'], dns: [] }, now: new Date(nowMs) });
    const old = newJoinToken(oldCa.certPem);
    const fresh = newJoinToken(ca.certPem);
    const records = new Map([old, fresh].map((t) => [t.secretHash, { secretHash: t.secretHash, role: 'manager' as const, createdAtMs: nowMs, expiresAtMs: nowMs + 60_000, caDigest: t.caDigest }]));
    const service = new JoinServiceImpl({
      material: { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...manager, identity: { id: 'm1', role: 'manager', clusterId } },
      clock,
      joinToken: (secretHash) => records.get(secretHash),
      managers: () => [{ id: 'm1', raftAddress: '127.0.0.1:9100', apiAddress: '127.0.0.1:9101' }],
      worker: () => undefined,
    });
    const { keyPem } = await generateNodeKey();
    const join = async (token: string) => service.join({ token, id: 'm9', csr: await createCsr({ keyPem, id: 'm9', role: 'manager', clusterId }), addresses: ['127.0.0.1:9900', '127.0.0.1:9901'] });
    // The old token with the new CA's digest put in: the digest is public (GET /v1/join/ca), the secret is what counts.
    const forged = old.token.replace(old.caDigest, fresh.caDigest);
    const previousCa = "the join token was made under the cluster's previous CA (rotated since): make a new one with minkube token create";
    await expect(join(forged)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: previousCa });
    // Sent as it was made, with the old CA's digest: the same answer, since the secret names the stored token.
    await expect(join(old.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: previousCa });
    // A secret this cluster never stored, under another CA's digest, is another cluster's token; a live token of this
    // CA with another digest put in is refused all the same (the digest is the joiner's pin, and must be this CA's).
    const stranger = newJoinToken(oldCa.certPem);
    const another = 'the join token is for another cluster (its CA digest does not match)';
    await expect(join(stranger.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: another });
    await expect(join(fresh.token.replace(fresh.caDigest, old.caDigest))).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: another });
    await expect(join(newJoinToken(ca.certPem).token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: 'unknown, revoked or expired join token' });
    expect(identityFromCertificate((await join(fresh.token)).certificate)).toMatchObject({ id: 'm9', role: 'manager' });
  });
});
