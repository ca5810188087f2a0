// The certificates cert-der.ts writes by hand are the ones @peculiar/x509 made for the same inputs (ca.ts used it
// until it cost a manager's first start a tenth of a second): their to-be-signed parts compare byte for byte.
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import '../../src/security/reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { certificatePem, nameDer, tbsCertificateDer } from '../../src/security/cert-der.js';

x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);
const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** The first element of a certificate's outer SEQUENCE: its TBSCertificate. */
function tbsOf(der: Buffer): Buffer {
  const lengthAt = (at: number): { start: number; end: number } => {
    const first = der[at + 1]!;
    if (first < 0x80) return { start: at + 2, end: at + 2 + first };
    const n = first & 0x7f;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[at + 2 + i]!;
    return { start: at + 2 + n, end: at + 2 + n + len };
  };
  const tbsAt = lengthAt(0).start;
  return der.subarray(tbsAt, lengthAt(tbsAt).end);
}

async function keys(): Promise<{ pair: webcrypto.CryptoKeyPair; spki: Buffer; keyPem: string }> {
  const pair = (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pair.publicKey));
  const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey), 'PRIVATE KEY');
  return { pair, spki, keyPem };
}

interface Case {
  clusterId: string;
  id: string;
  role: 'manager' | 'worker';
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  dns: string[];
  ips: string[];
}

const cases: Case[] = [
  { clusterId: 'mk-0a1b2c3d4e5f', id: 'm1', role: 'manager', serialHex: '4f0102030405060708090a0b0c0d0e0f', notBefore: new Date('2026-12-03T13:00:00Z'), notAfter: new Date('2027-03-03T13:00:00Z'), dns: ['localhost'], ips: ['127.0.0.1'] },
  // An id PrintableString cannot hold ('_': UTF8String), validity past 2049 (GeneralizedTime), IPv6 names, a serial
  // whose first byte is small.
  { clusterId: 'my_cluster', id: 'worker_7.a-b', role: 'worker', serialHex: '40ff00ee11dd22cc33bb44aa55996688', notBefore: new Date('2049-12-31T23:55:00Z'), notAfter: new Date('2060-01-01T00:00:00Z'), dns: ['localhost', 'w7.example.org'], ips: ['127.0.0.1', '::1', 'fe80::1:2', '10.0.0.7', '2001:db8:0:0:1:0:0:1'] },
];

describe('hand-written certificates', () => {
  for (const c of cases) {
    it(`match @peculiar/x509's byte for byte: ${c.clusterId} / ${c.id}`, async () => {
      const ca = await keys();
      const caName: x509.JsonName = [{ CN: ['minkube-ca'] }, { O: [c.clusterId] }];
      const theirCa = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: c.serialHex,
        name: caName,
        notBefore: c.notBefore,
        notAfter: c.notAfter,
        signingAlgorithm,
        keys: ca.pair,
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(ca.pair.publicKey),
        ],
      });
      const caParams = { serialHex: c.serialHex, subject: nameDer([['CN', 'minkube-ca'], ['O', c.clusterId]]), notBefore: c.notBefore, notAfter: c.notAfter, spki: ca.spki, signingKey: createPrivateKey(ca.keyPem), kind: { ca: true } } as const;
      expect(tbsCertificateDer(caParams).toString('hex')).toBe(tbsOf(Buffer.from(theirCa.rawData)).toString('hex'));
      const ourCaPem = certificatePem(caParams);
      const ourCa = new X509Certificate(ourCaPem);
      expect(ourCa.verify(ourCa.publicKey)).toBe(true);
      expect(ourCa.ca).toBe(true);

      const node = await keys();
      const caCert = new x509.X509Certificate(ourCaPem);
      const sans: x509.JsonGeneralNames = [...c.dns.map((value) => ({ type: 'dns' as const, value })), ...c.ips.map((value) => ({ type: 'ip' as const, value }))];
      const theirs = await x509.X509CertificateGenerator.create({
        serialNumber: c.serialHex,
        subject: [{ CN: [c.id] }, { OU: [c.role] }, { O: [c.clusterId] }],
        issuer: caCert.subjectName,
        notBefore: c.notBefore,
        notAfter: c.notAfter,
        signingAlgorithm,
        publicKey: node.pair.publicKey,
        signingKey: ca.pair.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension(sans),
          await x509.SubjectKeyIdentifierExtension.create(node.pair.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      const nodeParams = {
        serialHex: c.serialHex,
        subject: nameDer([['CN', c.id], ['OU', c.role], ['O', c.clusterId]]),
        issuerCert: ourCa,
        notBefore: c.notBefore,
        notAfter: c.notAfter,
        spki: node.spki,
        signingKey: createPrivateKey(ca.keyPem),
        kind: { ca: false, dns: c.dns, ips: c.ips },
      } as const;
      expect(tbsCertificateDer(nodeParams).toString('hex')).toBe(tbsOf(Buffer.from(theirs.rawData)).toString('hex'));
      const ours = new X509Certificate(certificatePem(nodeParams));
      expect(ours.verify(ourCa.publicKey)).toBe(true);
      expect(ours.checkIssued(ourCa)).toBe(true);
      // @peculiar/x509 reads ours as it reads its own.
      expect(await new x509.X509Certificate(ours.raw).verify({ publicKey: caCert.publicKey, signatureOnly: true })).toBe(true);
    });
  }
});
