// A manager's signing for joiners and renewals: a renewed certificate gets the configured lifetime
// (tls.certLifetimeS), counted from the manager's clock, and keeps the identity and names the old one proved.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/lib/clock.js';
import { JoinServiceImpl } from '../../src/manager/join-service.js';
import { certificateLifetimeMs, createClusterCa, createCsr, generateNodeKey, identityFromCertificate, issueNodeKeyAndCert, needsRenewal } from '../../src/security/ca.js';

const clusterId = 'c1';

/** What tlsSocket.getPeerCertificate() gives the route for a client certificate: its DER and its SAN string. */
function asPeer(certPem: string): PeerCertificate {
  const cert = new X509Certificate(certPem);
  return { raw: cert.raw, subjectaltname: cert.subjectAltName } as unknown as PeerCertificate;
}

describe('JoinServiceImpl.renew', () => {
  it('signs a renewal with certLifetimeS from its clock, for the identity and names the current certificate proves', async () => {
    const nowMs = Date.UTC(2031, 0, 1);
    const clock: Clock = { nowMs: () => nowMs, setTimeout: () => ({ cancel: () => undefined }) };
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
      workerActive: () => false,
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
