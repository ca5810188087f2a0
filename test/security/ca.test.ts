// The cluster CA and node certificates, checked the way the cluster uses them: through real node:tls connections.
import { execFileSync } from 'node:child_process';
import { webcrypto, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import '../../src/security/reflect-shim.js';
import * as x509 from '@peculiar/x509';
import {
  caDigest,
  certificateExpiry,
  certificateLifetimeMs,
  createClusterCa,
  createCsr,
  generateNodeKey,
  identityFromCertificate,
  isIssuedBy,
  issueNodeCertificate,
  issueNodeKeyAndCert,
  needsRenewal,
  subjectAltNames,
  type CaMaterial,
  type NodeRole,
} from '../../src/security/ca.js';
import { MinkubeError } from '../../src/lib/errors.js';

const sans = { ips: ['127.0.0.1'], dns: ['localhost'] };

async function nodeCert(ca: CaMaterial, id: string, role: NodeRole, clusterId = 'c1') {
  return issueNodeKeyAndCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, id, role, clusterId, sans });
}

const servers: tls.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A TLS server that asks for client certificates and reports each connection's peer as node:tls saw it. */
async function startServer(ca: CaMaterial, server: { certPem: string; keyPem: string }) {
  const peers: { authorized: boolean; error: string | null; peer: tls.PeerCertificate }[] = [];
  const srv = tls.createServer({ key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (socket) => {
    peers.push({ authorized: socket.authorized, error: socket.authorizationError === undefined ? null : String(socket.authorizationError), peer: socket.getPeerCertificate() });
    socket.end('hello');
  });
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as AddressInfo).port, peers };
}

/** Connects and reads the server's greeting; resolves to the error when tls refuses the connection. */
async function connect(port: number, opts: tls.ConnectionOptions): Promise<string | Error> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...opts });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', (err: Error) => resolve(err));
  });
}

describe('cluster CA', () => {
  it('is a self-signed CA named minkube-ca of its cluster', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject.split('\n')).toEqual(['CN=minkube-ca', 'O=c1']);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const parsed = new x509.X509Certificate(ca.certPem);
    const bc = parsed.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.critical).toBe(true);
    const ku = parsed.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    const years = (certificateExpiry(ca.certPem).getTime() - Date.now()) / (365 * 24 * 3600e3);
    expect(Math.round(years)).toBe(10);
  });

  it('has a digest that is the sha256 of its DER, different for another CA', async () => {
    const [a, b] = await Promise.all([createClusterCa({ clusterId: 'c1' }), createClusterCa({ clusterId: 'c1' })]);
    expect(caDigest(a.certPem)).toMatch(/^[0-9a-f]{64}$/);
    expect(caDigest(a.certPem)).toBe(new X509Certificate(a.certPem).fingerprint256.replaceAll(':', '').toLowerCase());
    expect(caDigest(a.certPem)).not.toBe(caDigest(b.certPem));
  });

  it('refuses a cluster id that is not a plain name', async () => {
    await expect(createClusterCa({ clusterId: 'a,O=b' })).rejects.toBeInstanceOf(MinkubeError);
  });
});

describe('node certificates over mutual TLS', () => {
  it('lets a worker and a manager authenticate each other, and the server reads who the client is', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const [manager, worker] = await Promise.all([nodeCert(ca, 'm1', 'manager'), nodeCert(ca, 'w1', 'worker')]);
    const { port, peers } = await startServer(ca, manager);

    // Both names the server certificate carries pass the client's hostname check.
    expect(await connect(port, { ca: ca.certPem, cert: worker.certPem, key: worker.keyPem, servername: 'localhost' })).toBe('hello');
    expect(await connect(port, { ca: ca.certPem, cert: worker.certPem, key: worker.keyPem })).toBe('hello');

    expect(peers[0]!.authorized).toBe(true);
    expect(identityFromCertificate(peers[0]!.peer)).toEqual({ id: 'w1', role: 'worker', clusterId: 'c1' });
    expect(identityFromCertificate(new X509Certificate(worker.certPem))).toEqual({ id: 'w1', role: 'worker', clusterId: 'c1' });
    expect(identityFromCertificate(manager.certPem)).toEqual({ id: 'm1', role: 'manager', clusterId: 'c1' });
  });

  it('does not verify a client certificate from another CA, and a client refuses a server from another CA', async () => {
    const [ca, other] = await Promise.all([createClusterCa({ clusterId: 'c1' }), createClusterCa({ clusterId: 'c1' })]);
    const [manager, stranger] = await Promise.all([nodeCert(ca, 'm1', 'manager'), nodeCert(other, 'w1', 'worker')]);
    const { port, peers } = await startServer(ca, manager);

    expect(await connect(port, { ca: ca.certPem, cert: stranger.certPem, key: stranger.keyPem })).toBe('hello');
    expect(peers[0]!.authorized).toBe(false);
    expect(peers[0]!.error).toMatch(/verify|signature|issuer/i);

    const refused = await connect(port, { ca: other.certPem, cert: stranger.certPem, key: stranger.keyPem });
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error & { code?: string }).code).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED|CERT/);
  });

  it('sees no identity when the client sends no certificate', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { port, peers } = await startServer(ca, await nodeCert(ca, 'm1', 'manager'));
    expect(await connect(port, { ca: ca.certPem })).toBe('hello');
    expect(peers[0]!.authorized).toBe(false);
    expect(identityFromCertificate(peers[0]!.peer)).toBeNull();
  });

  it('sees no identity in a certificate that repeats a field of the subject, or names no role', async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const made = async (name: x509.JsonName): Promise<string> =>
      (await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name, notBefore: new Date(), notAfter: new Date(Date.now() + 3600e3), signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, keys })).toString('pem');
    expect(identityFromCertificate(await made([{ CN: ['m1'] }, { OU: ['manager'] }, { O: ['c1'] }]))).toEqual({ id: 'm1', role: 'manager', clusterId: 'c1' });
    expect(identityFromCertificate(await made([{ CN: ['m1'] }, { CN: ['m2'] }, { OU: ['manager'] }, { O: ['c1'] }]))).toBeNull();
    expect(identityFromCertificate(await made([{ CN: ['m1'] }, { OU: ['manager', 'worker'] }, { O: ['c1'] }]))).toBeNull();
    expect(identityFromCertificate(await made([{ CN: ['m1'] }, { OU: ['admin'] }, { O: ['c1'] }]))).toBeNull();
    expect(identityFromCertificate(await made([{ CN: ['m1'] }, { O: ['c1'] }]))).toBeNull();
  });
});

describe('issueNodeCertificate', () => {
  it('refuses a CSR whose subject names another node, role or cluster', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { keyPem } = await generateNodeKey();
    const csrPem = await createCsr({ keyPem, id: 'w1', role: 'worker', clusterId: 'c1' });
    const base = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, clusterId: 'c1', sans };
    await expect(issueNodeCertificate({ ...base, id: 'w2', role: 'worker' })).rejects.toThrow(/names "CN=w1, OU=worker, O=c1", not CN=w2/);
    await expect(issueNodeCertificate({ ...base, id: 'w1', role: 'manager' })).rejects.toBeInstanceOf(MinkubeError);
    await expect(issueNodeCertificate({ ...base, id: 'w1', role: 'worker', clusterId: 'c2' })).rejects.toBeInstanceOf(MinkubeError);
    await expect(issueNodeCertificate({ ...base, csrPem: 'nonsense', id: 'w1', role: 'worker' })).rejects.toThrow(/PKCS#10/);
  });

  it("refuses a CSR whose key is weak (RSA under 2048 bits), and takes RSA 2048 and P-384", async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const base = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, clusterId: 'c1', sans, id: 'w1', role: 'worker' as const };
    type Params = x509.Pkcs10CertificateRequestCreateParams;
    const csrWith = async (algorithm: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams, signing: Params['signingAlgorithm']): Promise<string> => {
      const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as unknown as Params['keys'];
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=w1, OU=worker, O=c1', keys, signingAlgorithm: signing }, webcrypto as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1]);
      return csr.toString('pem');
    };
    const rsa = (bits: number): webcrypto.RsaHashedKeyGenParams => ({ name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' });
    const rsaSigning = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    await expect(issueNodeCertificate({ ...base, csrPem: await csrWith(rsa(1024), rsaSigning) })).rejects.toMatchObject({
      code: 'INVALID_BODY', message: "the certificate request's key is RSA of 1024 bits: use ECDSA P-256 (what minkube makes), or RSA of at least 2048 bits",
    });
    await expect(issueNodeCertificate({ ...base, csrPem: await csrWith(rsa(2048), rsaSigning) })).resolves.toMatch(/BEGIN CERTIFICATE/);
    // Curves WebCrypto lacks (its verify threw: a 500): refused by the key check first, with a 400.
    for (const curve of ['prime192v1', 'secp256k1']) {
      const dir = mkdtempSync(join(tmpdir(), 'minkube-csr-'));
      try {
        execFileSync('openssl', ['ecparam', '-name', curve, '-genkey', '-noout', '-out', join(dir, 'k.pem')]);
        const csrPem = execFileSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=w1/OU=worker/O=c1'], { encoding: 'utf8' });
        await expect(issueNodeCertificate({ ...base, csrPem }), curve).rejects.toMatchObject({ code: 'INVALID_BODY', message: expect.stringMatching(new RegExp(`^the certificate request's key is on curve ${curve}:`)) });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    await expect(issueNodeCertificate({ ...base, csrPem: await csrWith({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }) })).resolves.toMatch(/BEGIN CERTIFICATE/);
  });

  it('issues a leaf for serverAuth and clientAuth with the SANs it was given and a fresh serial', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const { keyPem } = await generateNodeKey();
    const csrPem = await createCsr({ keyPem, id: 'm1', role: 'manager', clusterId: 'c1' });
    const opts = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, id: 'm1', role: 'manager' as const, clusterId: 'c1' };
    const certPem = await issueNodeCertificate({ ...opts, sans: { ips: ['10.0.0.7', '::1'], dns: ['m1.example', 'localhost'] } });
    const cert = new X509Certificate(certPem);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(cert.checkIP('10.0.0.7')).toBe('10.0.0.7');
    expect(cert.checkHost('m1.example')).toBe('m1.example');
    expect(subjectAltNames(certPem)).toEqual({ ips: ['10.0.0.7', '::1'], dns: ['m1.example', 'localhost'] });
    expect(cert.serialNumber).toMatch(/^[0-9A-F]{32}$/);
    const again = await issueNodeCertificate({ ...opts, sans });
    expect(new X509Certificate(again).serialNumber).not.toBe(cert.serialNumber);
    expect(await isIssuedBy(certPem, ca.certPem)).toBe(true);
    expect(await isIssuedBy(certPem, (await createClusterCa({ clusterId: 'c1' })).certPem)).toBe(false);
  });
});

describe('expiry and renewal', () => {
  it('expires after its lifetime and asks for renewal once two thirds of it have passed', async () => {
    const t0 = new Date('2030-01-01T00:00:00Z');
    const ca = await createClusterCa({ clusterId: 'c1', now: t0 });
    const day = 24 * 3600e3;
    const { certPem } = await issueNodeKeyAndCert({
      caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'w1', role: 'worker', clusterId: 'c1', sans, now: t0,
    });
    expect(certificateExpiry(certPem).toISOString()).toBe(new Date(t0.getTime() + 90 * day).toISOString());
    expect(needsRenewal(certPem, new Date(t0.getTime() + 59 * day))).toBe(false);
    expect(needsRenewal(certPem, new Date(t0.getTime() + 61 * day))).toBe(true);
    expect(needsRenewal(certPem, new Date(t0.getTime() + 10 * day), 0.1)).toBe(true);
    expect(await isIssuedBy(certPem, ca.certPem, new Date(t0.getTime() + 91 * day))).toBe(false);
  });

  it('counts a short lifetime from the issue, not from the backdated start: a 60 s certificate is due at 40 s, not at once', async () => {
    const t0 = new Date('2030-01-01T00:00:00Z');
    const ca = await createClusterCa({ clusterId: 'c1', now: t0 });
    const { certPem } = await issueNodeKeyAndCert({
      caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: 'm1', role: 'manager', clusterId: 'c1', sans, now: t0, lifetimeDays: 60 / 86_400,
    });
    const at = (s: number): Date => new Date(t0.getTime() + s * 1000);
    // Valid from an hour before its issue (a peer's clock may be behind), but that is no part of its lifetime.
    expect(new X509Certificate(certPem).validFrom).toBe('Dec 31 23:00:00 2029 GMT');
    expect(certificateLifetimeMs(certPem)).toBe(60_000);
    expect(needsRenewal(certPem, t0)).toBe(false);
    expect(needsRenewal(certPem, at(39))).toBe(false);
    expect(needsRenewal(certPem, at(40))).toBe(true);
    expect(await isIssuedBy(certPem, ca.certPem, at(59))).toBe(true);
    expect(await isIssuedBy(certPem, ca.certPem, at(61))).toBe(false);
  });

  it('takes a certificate too short to have been backdated from its notBefore', async () => {
    // Not one of ours: 2 minutes from notBefore, less than the backdating, so it starts where it says.
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const t0 = new Date('2030-01-01T00:00:00Z');
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01', name: 'CN=other', notBefore: t0, notAfter: new Date(t0.getTime() + 120_000), keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const certPem = cert.toString('pem');
    expect(certificateLifetimeMs(certPem)).toBe(120_000);
    expect(needsRenewal(certPem, new Date(t0.getTime() + 79_000))).toBe(false);
    expect(needsRenewal(certPem, new Date(t0.getTime() + 80_000))).toBe(true);
  });
});
