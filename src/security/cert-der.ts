// The certificates Minkube issues (X.509 v3, ECDSA P-256 with SHA-256), written as DER by hand and signed with
// node:crypto. @peculiar/x509 makes the same bytes (test/security/cert-der.test.ts compares them field for field), but
// costs a node a tenth of a second of CPU to load and run: a manager's first start made its CA and certificate with it.
// Only encoding lives here; reading what others send (a CSR) stays with @peculiar/x509 (ca.ts).
import { createHash, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/** One DER element: tag, length, contents. */
function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
const octets = (bytes: Buffer): Buffer => tlv(0x04, bytes);
const trueBool = Buffer.from([0x01, 0x01, 0xff]);

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [a! * 40 + b!];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift((v & 0x7f) | 0x80);
    out.push(...base128);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A non-negative INTEGER from big-endian bytes: no redundant leading zero, one added when the top bit is set. */
function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0 && bytes[i + 1]! < 0x80) i++;
  const trimmed = bytes.subarray(i);
  return tlv(0x02, trimmed[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** KeyUsage-style named bits (bit 0 is the first): trailing zero bits left out, as DER requires. */
function namedBits(bits: readonly number[]): Buffer {
  const last = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(last / 8) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return tlv(0x03, Buffer.from([7 - (last & 7)]), bytes);
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5), in whole seconds. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2026-12-03T13:00:00.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'latin1')) : tlv(0x18, Buffer.from(`${digits}Z`, 'latin1'));
}

const nameOids = { CN: '2.5.4.3', OU: '2.5.4.11', O: '2.5.4.10' } as const;
export type NameField = keyof typeof nameOids;

/** A Name of one attribute per RDN, in order; PrintableString when the value allows it, else UTF8String. */
export function nameDer(fields: readonly (readonly [NameField, string])[]): Buffer {
  return seq(
    ...fields.map(([type, value]) =>
      tlv(0x31, seq(oid(nameOids[type]), /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(value) ? tlv(0x13, Buffer.from(value, 'latin1')) : tlv(0x0c, Buffer.from(value, 'utf8')))),
    ),
  );
}

/** Where one DER element starts and ends, and where its contents start. */
interface Element {
  tag: number;
  contentStart: number;
  end: number;
}

function elementAt(der: Buffer, at: number): Element {
  const tag = der[at]!;
  let len = der[at + 1]!;
  let contentStart = at + 2;
  if (len >= 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[at + 2 + i]!;
    contentStart += n;
  }
  const end = contentStart + len;
  if (end > der.length) throw new Error('truncated DER');
  return { tag, contentStart, end };
}

/** The raw DER of a certificate's subject Name (the issuer of what it signs). */
function subjectDerOf(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const tbs = elementAt(der, elementAt(der, 0).contentStart);
  let at = tbs.contentStart;
  // version [0], serialNumber, signature, issuer, validity: the subject comes next.
  if (der[at] === 0xa0) at = elementAt(der, at).end;
  for (let i = 0; i < 4; i++) at = elementAt(der, at).end;
  const subject = elementAt(der, at);
  if (subject.tag !== 0x30) throw new Error('no subject in the certificate');
  return der.subarray(at, subject.end);
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits. */
function keyIdentifier(spki: Buffer): Buffer {
  const outer = elementAt(spki, 0);
  const bits = elementAt(spki, elementAt(spki, outer.contentStart).end);
  if (bits.tag !== 0x03) throw new Error('no public key in the SubjectPublicKeyInfo');
  return createHash('sha1').update(spki.subarray(bits.contentStart + 1, bits.end)).digest();
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [trueBool] : []), octets(value));
}

const ecdsaWithSha256 = seq(oid('1.2.840.10045.4.3.2'));
const keyUsage = { digitalSignature: 0, keyAgreement: 4, keyCertSign: 5, cRLSign: 6 } as const;

function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  // Through the URL parser, which writes every IPv6 form (embedded IPv4 included) as eight hex groups or '::'.
  const host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const [head, tail] = host.includes('::') ? host.split('::') : [host, undefined];
  const groups = (s: string | undefined): string[] => (s === undefined || s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  return out;
}

export interface CertificateParams {
  /** Hex, positive, as ca.ts randomSerial makes it. */
  serialHex: string;
  subject: Buffer;
  /** The issuer's certificate; none for a self-signed one (the issuer is the subject, its key the subject's). */
  issuerCert?: X509Certificate;
  notBefore: Date;
  notAfter: Date;
  /** The subject's public key as SubjectPublicKeyInfo DER. */
  spki: Buffer;
  /** The key that signs: the issuer's (or, self-signed, the subject's own). */
  signingKey: KeyObject;
  /** A CA (basicConstraints cA, keyCertSign and cRLSign) or a node (serverAuth and clientAuth, with these names). */
  kind: { ca: true } | { ca: false; dns: readonly string[]; ips: readonly string[] };
}

function extensionsOf(p: CertificateParams): Buffer[] {
  const ski = extension('2.5.29.14', false, octets(keyIdentifier(p.spki)));
  if (p.kind.ca) {
    return [extension('2.5.29.19', true, seq(trueBool)), extension('2.5.29.15', true, namedBits([keyUsage.keyCertSign, keyUsage.cRLSign])), ski];
  }
  const issuerSpki = p.issuerCert?.publicKey.export({ type: 'spki', format: 'der' });
  if (issuerSpki === undefined) throw new Error('a node certificate needs its issuer');
  const names = [...p.kind.dns.map((d) => tlv(0x82, Buffer.from(d, 'latin1'))), ...p.kind.ips.map((ip) => tlv(0x87, ipBytes(ip)))];
  return [
    extension('2.5.29.19', true, seq()),
    extension('2.5.29.15', true, namedBits([keyUsage.digitalSignature, keyUsage.keyAgreement])),
    extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))),
    extension('2.5.29.17', false, seq(...names)),
    ski,
    extension('2.5.29.35', false, seq(tlv(0x80, keyIdentifier(issuerSpki)))),
  ];
}

/** The to-be-signed part of a certificate. */
export function tbsCertificateDer(p: CertificateParams): Buffer {
  const issuer = p.issuerCert === undefined ? p.subject : subjectDerOf(p.issuerCert);
  return seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    unsignedInteger(Buffer.from(p.serialHex, 'hex')),
    ecdsaWithSha256,
    issuer,
    seq(time(p.notBefore), time(p.notAfter)),
    p.subject,
    p.spki,
    tlv(0xa3, seq(...extensionsOf(p))),
  );
}

/** The signed certificate, as PEM. */
export function certificatePem(p: CertificateParams): string {
  const tbs = tbsCertificateDer(p);
  const signature = sign('sha256', tbs, { key: p.signingKey, dsaEncoding: 'der' });
  const der = seq(tbs, ecdsaWithSha256, tlv(0x03, Buffer.from([0]), signature));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----`;
}
