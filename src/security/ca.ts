// The cluster CA and the nodes' certificates (ECDSA P-256, SHA-256): managers and workers prove who they are to each
// other with these over mutual TLS. Everything comes out as PEM that node:tls takes as it is.
// Certificates are read with node:crypto and made with it too (keys by generateKeyPairSync, the DER by cert-der.ts);
// @peculiar/x509 (a tenth of a second to load) only makes and reads certificate requests, and is loaded the first
// time one is: a manager that makes its cluster's CA and its own certificate never loads it.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate as NodeX509Certificate, type KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type * as X509 from '@peculiar/x509';
import { MinkubeError } from '../lib/errors.js';
import { describeExpected, type ExpectedServer } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { certificatePem, nameDer } from './cert-der.js';

let x509Module: Promise<typeof X509> | undefined;

function loadX509(): Promise<typeof X509> {
  return (x509Module ??= (async () => {
    // The shim first: @peculiar/x509 refuses to load without the Reflect metadata API.
    await import('./reflect-shim.js');
    const x509 = await import('@peculiar/x509');
    // node's webcrypto is the standard interface; the DOM lib that would name its type is not in our tsconfig.
    x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);
    return x509;
  })());
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export type NodeRole = 'manager' | 'worker';
export interface NodeIdentity {
  id: string;
  role: NodeRole;
  clusterId: string;
  /** When its certificate was issued (peerCertificateIssuedAtMs), where the reader asked for it. */
  issuedAtMs?: number;
}
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}
export interface SubjectAltNames {
  ips: string[];
  dns: string[];
}

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const dayMs = 24 * 60 * 60 * 1000;
// Ids end up in certificate subjects and file names: a plain charset keeps them unambiguous in every DN printer.
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isNodeRole(s: unknown): s is NodeRole {
  return s === 'manager' || s === 'worker';
}

function assertName(what: string, s: string): void {
  if (!namePattern.test(s)) throw new MinkubeError('INVALID_PARAM', `${what} "${s}" must be 1-128 letters, digits, '.', '_' or '-'`);
}

function subjectOf(identity: NodeIdentity): X509.JsonName {
  return [{ CN: [identity.id] }, { OU: [identity.role] }, { O: [identity.clusterId] }];
}

async function importPrivateKey(keyPem: string): Promise<CryptoKey> {
  const x509 = await loadX509();
  return webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), ecdsa, true, ['sign']) as Promise<CryptoKey>;
}

/** A new P-256 key pair; the private half as PKCS#8 PEM (no line break after its last line, as x509's PEM had). */
function newKeyPair(): { keyPem: string; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString().trimEnd(), spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

/** A positive 16-byte serial: the top bit is cleared (DER integers are signed) and the next one set (no leading zero). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function validity(now: Date, lifetimeDays: number): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now.getTime() - limits.certBackdateMs), notAfter: new Date(now.getTime() + lifetimeDays * dayMs) };
}

export function createClusterCa(opts: { clusterId: string; lifetimeDays?: number; now?: Date }): Promise<CaMaterial> {
  try {
    assertName('cluster id', opts.clusterId);
    const { keyPem, spki } = newKeyPair();
    // Basic constraints cA (critical), key usage keyCertSign and cRLSign (critical), a subject key identifier.
    const certPem = certificatePem({
      serialHex: randomSerial(),
      subject: nameDer([['CN', 'minkube-ca'], ['O', opts.clusterId]]),
      ...validity(opts.now ?? new Date(), opts.lifetimeDays ?? limits.caLifetimeDaysDefault),
      spki,
      signingKey: createPrivateKey(keyPem),
      kind: { ca: true },
    });
    return Promise.resolve({ certPem, keyPem });
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** The cluster a CA certificate is for (its O=), or null for a certificate that names none. */
export function clusterIdOfCa(caCertPem: string): string | null {
  return /^O=(.*)$/m.exec(new NodeX509Certificate(caCertPem).subject)?.[1] ?? null;
}

/** sha256 (hex) of the CA certificate's DER: a joining node pins the CA with it before trusting anything it is sent. */
export function caDigest(caCertPem: string): string {
  return createHash('sha256').update(new NodeX509Certificate(caCertPem).raw).digest('hex');
}

export function generateNodeKey(): Promise<{ keyPem: string }> {
  return Promise.resolve({ keyPem: newKeyPair().keyPem });
}

/** The public half of a PKCS#8 key, which webcrypto cannot derive itself: node:crypto can, as a JWK. */
async function keyPairOf(keyPem: string): Promise<CryptoKeyPair> {
  const privateKey = await importPrivateKey(keyPem);
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey);
  const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as webcrypto.JsonWebKey;
  const publicKey = (await webcrypto.subtle.importKey('jwk', publicJwk, ecdsa, true, ['verify'])) as CryptoKey;
  return { privateKey, publicKey };
}

export async function createCsr(opts: { keyPem: string; id: string; role: NodeRole; clusterId: string }): Promise<string> {
  const identity = { id: opts.id, role: opts.role, clusterId: opts.clusterId };
  assertIdentity(identity);
  const x509 = await loadX509();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subjectOf(identity), keys: await keyPairOf(opts.keyPem), signingAlgorithm });
  return csr.toString('pem');
}

function assertIdentity(identity: NodeIdentity): void {
  assertName('node id', identity.id);
  assertName('cluster id', identity.clusterId);
  if (!isNodeRole(identity.role)) throw new MinkubeError('INVALID_PARAM', `role "${String(identity.role)}" is neither manager nor worker`);
}

export interface IssueOptions extends NodeIdentity {
  caCertPem: string;
  caKeyPem: string;
  csrPem: string;
  sans: SubjectAltNames;
  lifetimeDays?: number;
  now?: Date;
}

/** Signs a node's CSR once its signature holds and its subject names exactly the identity being certified. */
export async function issueNodeCertificate(opts: IssueOptions): Promise<string> {
  const identity = { id: opts.id, role: opts.role, clusterId: opts.clusterId };
  assertIdentity(identity);
  const csr = await parseCsr(opts.csrPem);
  const asked = identityFromName(csr.subjectName);
  if (asked === null || asked.id !== identity.id || asked.role !== identity.role || asked.clusterId !== identity.clusterId) {
    throw new MinkubeError('INVALID_BODY', `the certificate request names "${csr.subject}", not CN=${identity.id}, OU=${identity.role}, O=${identity.clusterId}`);
  }
  let key: KeyObject;
  try {
    // Through node's key parser: the request's key is one node:crypto (and so node:tls) can use.
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new MinkubeError('INVALID_BODY', 'the certificate request carries a public key that cannot be read', { cause });
  }
  // Judged before the signature is checked: WebCrypto cannot verify with a curve it lacks (P-192, secp256k1), and
  // threw a 500 for such a request.
  const weak = weakKeyProblem(key);
  if (weak !== null) throw new MinkubeError('INVALID_BODY', `the certificate request's key ${weak}: use ECDSA P-256 (what minkube makes), or RSA of at least 2048 bits`);
  let signed: boolean;
  try {
    signed = await csr.verify();
  } catch (cause) {
    throw new MinkubeError('INVALID_BODY', 'the certificate request\'s signature cannot be checked', { cause });
  }
  if (!signed) throw new MinkubeError('INVALID_BODY', 'the certificate request is not signed by its own key');
  return signNodeCertificate(opts, identity, key.export({ type: 'spki', format: 'der' }));
}

/** Curves a node key may be on (node's names for P-256, P-384, P-521). */
const strongCurves: ReadonlySet<string> = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** Why a CSR's key is too weak to certify (an RSA key under 2048 bits, an EC key on another curve), or null. */
function weakKeyProblem(key: KeyObject): string | null {
  const d = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType;
  if (type === 'ec') return d.namedCurve !== undefined && strongCurves.has(d.namedCurve) ? null : `is on curve ${d.namedCurve ?? 'unknown'}`;
  if (type === 'rsa' || type === 'rsa-pss') return (d.modulusLength ?? 0) >= 2048 ? null : `is RSA of ${d.modulusLength ?? 0} bits`;
  if (type === 'ed25519') return null;
  return `is of type ${type ?? 'unknown'}`;
}

/**
 * A node certificate for this public key (SubjectPublicKeyInfo DER): basic constraints not a CA (critical), key usage
 * digitalSignature and keyAgreement (critical), extended key usage serverAuth and clientAuth, the SANs (DNS names
 * first), subject and authority key identifiers.
 */
function signNodeCertificate(opts: Omit<IssueOptions, 'csrPem'>, identity: NodeIdentity, spki: Buffer): string {
  const sans = sanEntries(opts.sans);
  return certificatePem({
    serialHex: randomSerial(),
    subject: nameDer([['CN', identity.id], ['OU', identity.role], ['O', identity.clusterId]]),
    issuerCert: new NodeX509Certificate(opts.caCertPem),
    ...validity(opts.now ?? new Date(), opts.lifetimeDays ?? limits.nodeCertLifetimeDaysDefault),
    spki,
    signingKey: createPrivateKey(opts.caKeyPem),
    kind: { ca: false, dns: sans.dns, ips: sans.ips },
  });
}

/** The identity a CSR's subject names, before anything about it is checked (issueNodeCertificate checks it all); null for none. */
export async function requestedIdentity(csrPem: string): Promise<NodeIdentity | null> {
  return identityFromName((await parseCsr(csrPem)).subjectName);
}

async function parseCsr(csrPem: string): Promise<X509.Pkcs10CertificateRequest> {
  const x509 = await loadX509();
  try {
    return new x509.Pkcs10CertificateRequest(csrPem);
  } catch (cause) {
    throw new MinkubeError('INVALID_BODY', 'the certificate request is not a PEM PKCS#10 request', { cause });
  }
}

/** Each name once, in the order given. */
function sanEntries(sans: SubjectAltNames): SubjectAltNames {
  return { ips: [...new Set(sans.ips)], dns: [...new Set(sans.dns)] };
}

/**
 * Key and certificate in one call, for provisioning on the machine that holds the CA key: the same certificate as
 * issueNodeCertificate's, without the request (it proves possession of a key made here, two lines above).
 */
export function issueNodeKeyAndCert(opts: Omit<IssueOptions, 'csrPem'>): Promise<{ keyPem: string; certPem: string }> {
  const identity = { id: opts.id, role: opts.role, clusterId: opts.clusterId };
  try {
    assertIdentity(identity);
    const { keyPem, spki } = newKeyPair();
    return Promise.resolve({ keyPem, certPem: signNodeCertificate(opts, identity, spki) });
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

function identityFromName(name: X509.Name): NodeIdentity | null {
  const [id, role, clusterId] = [name.getField('CN'), name.getField('OU'), name.getField('O')];
  // More than one value of a field is something we never issue: refuse it rather than pick one.
  if (id?.length !== 1 || role?.length !== 1 || clusterId?.length !== 1) return null;
  if (!isNodeRole(role[0])) return null;
  return { id: id[0]!, role: role[0], clusterId: clusterId[0]! };
}

/**
 * The same from node's reading of a subject (a certificate's legacy object): one string a field, an array where a
 * field repeats, which is refused as above.
 */
function identityFromSubject(subject: Readonly<Record<string, string | string[] | undefined>> | undefined): NodeIdentity | null {
  const [id, role, clusterId] = [subject?.CN, subject?.OU, subject?.O];
  if (typeof id !== 'string' || typeof role !== 'string' || typeof clusterId !== 'string') return null;
  if (!isNodeRole(role)) return null;
  return { id, role, clusterId };
}

/**
 * Who a certificate names, read from its DER (a PEM, a node:crypto X509Certificate, or what
 * tlsSocket.getPeerCertificate() returns); null for no certificate or one that names no node.
 * It does not check the certificate: for a peer, tls did that (socket.authorized).
 */
export function identityFromCertificate(cert: PeerCertificate | NodeX509Certificate | string): NodeIdentity | null {
  try {
    const source = typeof cert === 'string' ? cert : cert.raw;
    // A peer that sent no certificate shows up as an empty object.
    if (source === undefined || source.length === 0) return null;
    return identityFromSubject(new NodeX509Certificate(source).toLegacyObject().subject as unknown as Record<string, string | string[]>);
  } catch {
    return null;
  }
}

/** What a client asks of a server certificate that names a node (serverCertificateProblem). */
export interface ServerCertificateRule {
  /** The cluster such a certificate must be of. */
  clusterId: string;
  /**
   * Set where only a manager's will do (the client sends a token, or is a worker): the end of the refusal, as in
   * "it is worker w9's, and <managersOnly>" ('the CLI sends its token only to managers').
   */
  managersOnly?: string;
}

/**
 * Why a client refuses a server's certificate (undefined: accepted), once TLS has found that it chains to a CA the
 * client trusts and names the host it dialled. A certificate that names a node (CN, OU=manager|worker, O) is judged as
 * one: of this cluster, and a manager's where rule.managersOnly says so. The cluster's CA also signs workers'
 * certificates (a worker join token buys one, naming addresses of its holder's choosing), so "signed by our CA for
 * this host" alone would hand a token to a worker's key. A certificate that names no node is the operator's API
 * certificate (api.tlsCertFile): our CA signs one only by its key holder's hand (it issues nodes' certificates alone),
 * and another CA is trusted only where the operator named it (api.tlsCaFile), so the chain and the host name, the
 * checks of any HTTPS client, are its whole check.
 */
export function serverCertificateProblem(cert: PeerCertificate, rule: ServerCertificateRule): string | undefined {
  const identity = identityFromCertificate(cert);
  if (identity === null) return undefined;
  if (identity.clusterId !== rule.clusterId) return `it names ${identity.role} ${identity.id} of cluster ${identity.clusterId}, not of this cluster (${rule.clusterId})`;
  if (rule.managersOnly !== undefined && identity.role !== 'manager') return `it is ${identity.role} ${identity.id}'s, and ${rule.managersOnly}`;
  return undefined;
}

/**
 * Why a node refuses the certificate of a server it called expecting `expected` (undefined: accepted), once TLS has
 * found that it chains to a CA the node trusts and names the host dialled. The host proves little: the cluster CA
 * signs every worker's certificate for addresses its holder chose (a worker join token buys one), so the certificate
 * must name the node meant, role and id. A manager's API may serve the operator's API certificate, which names no
 * node (README, "The managers' API certificate"): it passes where a manager's API is expected, never for a worker.
 */
export function expectedServerProblem(cert: PeerCertificate, clusterId: string, expected: ExpectedServer): string | undefined {
  const identity = identityFromCertificate(cert);
  if (identity === null) return expected.role === 'manager' ? undefined : `it names no node, not ${describeExpected(expected)}`;
  if (identity.clusterId !== clusterId) return `it names ${identity.role} ${identity.id} of cluster ${identity.clusterId}, not of this cluster (${clusterId})`;
  if (identity.role !== expected.role || (expected.id !== undefined && identity.id !== expected.id)) {
    return `it names ${identity.role} ${identity.id}, not ${describeExpected(expected)}`;
  }
  return undefined;
}

/** node:crypto's reading of a certificate, with its validity as Dates. */
interface ReadCertificate {
  cert: NodeX509Certificate;
  notBefore: Date;
  notAfter: Date;
}

function readCertificate(certPem: string): ReadCertificate {
  const cert = new NodeX509Certificate(certPem);
  // 'Dec  3 13:00:00 2027 GMT': whole seconds, which is all a certificate holds.
  return { cert, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

export function certificateExpiry(certPem: string): Date {
  return readCertificate(certPem).notAfter;
}

/**
 * When a certificate was issued. Ours start limits.certBackdateMs early (see validity), and that slack is no part of
 * the lifetime: counted in, a 60 s certificate would be due for renewal from its first second, forever. A certificate
 * too short to have been backdated is taken as it is.
 */
function issuedAtMs(cert: Pick<ReadCertificate, 'notBefore' | 'notAfter'>): number {
  const notBeforeMs = cert.notBefore.getTime();
  const issuedMs = notBeforeMs + limits.certBackdateMs;
  return issuedMs < cert.notAfter.getTime() ? issuedMs : notBeforeMs;
}

/** When a peer's certificate was issued (as issuedAtMs: its backdating left out), to the second. */
export function peerCertificateIssuedAtMs(cert: PeerCertificate): number {
  return issuedAtMs({ notBefore: new Date(cert.valid_from), notAfter: new Date(cert.valid_to) });
}

/** How long a certificate is valid from its issue (the backdating left out). */
export function certificateLifetimeMs(certPem: string): number {
  const cert = readCertificate(certPem);
  return cert.notAfter.getTime() - issuedAtMs(cert);
}

/** True once `fraction` of the certificate's lifetime, counted from its issue, has passed (or it has expired). */
export function needsRenewal(certPem: string, now: Date, fraction = 2 / 3): boolean {
  const cert = readCertificate(certPem);
  const start = issuedAtMs(cert);
  return now.getTime() >= start + (cert.notAfter.getTime() - start) * fraction;
}

/** True when certPem is signed by caCertPem's key and is within its validity at `now`. */
export function isIssuedBy(certPem: string, caCertPem: string, now = new Date()): Promise<boolean> {
  try {
    const cert = readCertificate(certPem);
    const ca = new NodeX509Certificate(caCertPem);
    const t = now.getTime();
    return Promise.resolve(cert.cert.verify(ca.publicKey) && t >= cert.notBefore.getTime() && t <= cert.notAfter.getTime());
  } catch {
    return Promise.resolve(false);
  }
}

/** The IP and DNS names a certificate carries. */
export function subjectAltNames(certPem: string): SubjectAltNames {
  // node writes them as 'DNS:m1.example, IP Address:10.0.0.7, IP Address:0:0:0:0:0:0:0:1', a value with a
  // separator in it as a JSON string.
  const text = new NodeX509Certificate(certPem).subjectAltName ?? '';
  const out: SubjectAltNames = { ips: [], dns: [] };
  for (const m of text.matchAll(/(DNS|IP Address):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    if (m[1] === 'DNS') out.dns.push(value);
    else out.ips.push(value.includes(':') ? new URL(`http://[${value}]/`).hostname.slice(1, -1) : value);
  }
  return out;
}
