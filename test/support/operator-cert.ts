// An operator's API certificate (api.tlsCertFile), made as an operator would make one: a subject that names no node
// (CN=operator-api), the managers' addresses as SANs, signed by the cluster CA or by a CA of the operator's own.
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import type { CaMaterial } from '../../src/security/ca.js';
import { certificatePem, nameDer, type NameField } from '../../src/security/cert-der.js';

export interface OperatorCertOptions {
  /** The CA that signs it (the cluster's: .minkube/ca.crt and ca.key; or createClusterCa's for "another CA"). */
  ca: CaMaterial;
  ips?: readonly string[];
  dns?: readonly string[];
  /** The subject (default CN=operator-api: no node). */
  subject?: readonly (readonly [NameField, string])[];
}

/** A P-256 key and its certificate (PEM), valid from an hour ago for a day, for serverAuth and clientAuth. */
export function operatorCertificate(o: OperatorCertOptions): { certPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const nowMs = Date.now();
  const certPem = certificatePem({
    serialHex: serial.toString('hex'),
    subject: nameDer(o.subject ?? [['CN', 'operator-api']]),
    issuerCert: new X509Certificate(o.ca.certPem),
    notBefore: new Date(nowMs - 3_600_000),
    notAfter: new Date(nowMs + 86_400_000),
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    signingKey: createPrivateKey(o.ca.keyPem),
    kind: { ca: false, ips: o.ips ?? [], dns: o.dns ?? [] },
  });
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
