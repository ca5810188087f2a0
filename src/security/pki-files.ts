// Where TLS material lives on disk: a node's <dataDir>/tls/, and the cluster directory beside a config file that holds
// the CA of a locally provisioned cluster and the admin token made with it. Files are written whole (temp file +
// rename); keys and tokens are readable by the owner only.
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { makeDirs } from '../lib/make-dirs.js';
import {
  caDigest, certificateLifetimeMs, createClusterCa, identityFromCertificate, isIssuedBy, issueNodeKeyAndCert, needsRenewal, subjectAltNames,
  type NodeIdentity, type NodeRole, type SubjectAltNames,
} from './ca.js';
import { newApiToken, parseApiToken } from './tokens.js';

export interface NodeTls {
  caCertPem: string;
  certPem: string;
  keyPem: string;
  /** Managers only: they sign the CSRs of joining nodes and renewals. */
  caKeyPem?: string;
  identity: NodeIdentity;
}

export interface LocalNode {
  id: string;
  role: NodeRole;
  dataDir: string;
  /** 'host:port' addresses the node serves on: their hosts go into its certificate. */
  addresses: string[];
}

const files = {
  caCert: 'ca.crt', caKey: 'ca.key', cert: 'node.crt', key: 'node.key', clusterId: 'cluster-id', lock: 'pki.lock',
  adminToken: 'admin.token', adminTokenPending: 'admin.token.pending',
};

export function nodeTlsDir(dataDir: string): string {
  return join(dataDir, 'tls');
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

/**
 * The cluster CA certificate in a cluster directory (the config's `.minkube`), or null when none was made there yet;
 * clusterIdOfCa says which cluster it is (`snapshot restore` compares a backup's with it).
 */
export async function readClusterCaCert(clusterDir: string): Promise<string | null> {
  return readIfExists(join(clusterDir, files.caCert));
}

/** Writes the whole file or nothing: a crash leaves the old contents (or none), never half a key. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function removeIfExists(path: string): Promise<void> {
  await unlink(path).catch((err: unknown) => {
    if (!isErrno(err, 'ENOENT')) throw err;
  });
}

/** Why the material in a node's tls directory cannot be used, or the material; null when there is none. */
async function loadNodeTls(dataDir: string): Promise<NodeTls | string | null> {
  const dir = nodeTlsDir(dataDir);
  const [caCertPem, certPem, keyPem, caKeyPem] = await Promise.all([
    readIfExists(join(dir, files.caCert)), readIfExists(join(dir, files.cert)), readIfExists(join(dir, files.key)), readIfExists(join(dir, files.caKey)),
  ]);
  if (caCertPem === null || certPem === null || keyPem === null) return null;
  const identity = identityFromCertificate(certPem);
  if (identity === null) return `${join(dir, files.cert)} is not a Minkube node certificate`;
  // The key and the certificate are two files: a crash between their writes must not pass for a usable pair.
  if (!keyMatchesCert(keyPem, certPem)) return `${join(dir, files.key)} is not the key of ${join(dir, files.cert)}`;
  const tls: NodeTls = { caCertPem, certPem, keyPem, identity };
  if (caKeyPem !== null) tls.caKeyPem = caKeyPem;
  return tls;
}

function keyMatchesCert(keyPem: string, certPem: string): boolean {
  try {
    const fromKey = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    const fromCert = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
    return fromKey.equals(fromCert);
  } catch {
    return false;
  }
}

/** The node's material, or null when its tls directory holds none; a directory that holds unusable material throws. */
export async function readNodeTls(dataDir: string): Promise<NodeTls | null> {
  const loaded = await loadNodeTls(dataDir);
  if (typeof loaded === 'string') throw new MinkubeError('STORAGE_CORRUPT', loaded);
  return loaded;
}

/** Writes the certificate last: a reader that finds it finds the CA and the key it goes with. */
export async function writeNodeTls(dataDir: string, tls: NodeTls): Promise<void> {
  const dir = nodeTlsDir(dataDir);
  await makeDirs(dir, 0o700);
  await writeFileAtomic(join(dir, files.key), tls.keyPem, 0o600);
  await writeFileAtomic(join(dir, files.caCert), tls.caCertPem, 0o644);
  // A node that is no longer a manager must not keep the power to sign certificates.
  if (tls.caKeyPem === undefined) await removeIfExists(join(dir, files.caKey));
  else await writeFileAtomic(join(dir, files.caKey), tls.caKeyPem, 0o600);
  await writeFileAtomic(join(dir, files.cert), tls.certPem, 0o644);
}

/** The SANs of a node serving on these 'host:port' addresses; localhost and 127.0.0.1 are always in. */
export function sansForAddresses(addresses: string[]): SubjectAltNames {
  const hosts = ['localhost', '127.0.0.1', ...addresses.map(hostOf)];
  const unique = [...new Set(hosts.filter((h) => h !== ''))];
  return { ips: unique.filter((h) => isIP(h) !== 0), dns: unique.filter((h) => isIP(h) === 0) };
}

function hostOf(address: string): string {
  if (address.startsWith('[')) return address.slice(1, address.indexOf(']'));
  if (isIP(address) !== 0) return address; // a bare address, IPv6 included, has no port
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}

interface ClusterCa {
  clusterId: string;
  certPem: string;
  keyPem: string;
}

/**
 * Makes sure the cluster directory holds one CA and every listed node holds a current certificate from it. Safe to
 * call from several processes at once: they take turns under a lock file, and the first one creates the CA.
 * certLifetimeS (default limits.nodeCertLifetimeDaysDefault) is what new certificates get; a kept one is no longer.
 */
export async function ensureLocalPki(opts: { clusterDir: string; nodes: LocalNode[]; certLifetimeS?: number }): Promise<{ clusterId: string; caCertPem: string; created: boolean }> {
  await makeDirs(opts.clusterDir, 0o700);
  const lifetimeS = opts.certLifetimeS ?? limits.nodeCertLifetimeDaysDefault * 86_400;
  return withLock(join(opts.clusterDir, files.lock), async () => {
    const { ca, created } = await loadOrCreateCa(opts.clusterDir);
    for (const node of opts.nodes) await ensureNodeCert(node, ca, lifetimeS);
    return { clusterId: ca.clusterId, caCertPem: ca.certPem, created };
  });
}

async function loadOrCreateCa(clusterDir: string): Promise<{ ca: ClusterCa; created: boolean }> {
  const [certPem, keyPem, idText] = await Promise.all([
    readIfExists(join(clusterDir, files.caCert)), readIfExists(join(clusterDir, files.caKey)), readIfExists(join(clusterDir, files.clusterId)),
  ]);
  if (certPem !== null) {
    if (keyPem === null || idText === null) {
      throw new MinkubeError('STORAGE_CORRUPT', `${clusterDir} holds ${files.caCert} without ${files.caKey} or ${files.clusterId}`);
    }
    const damaged = caFilesProblem(clusterDir, certPem, keyPem);
    if (damaged !== null) throw new MinkubeError('STORAGE_CORRUPT', `${damaged}: the cluster CA beside the config is damaged; put back its ${files.caCert} and ${files.caKey} from a copy`);
    return { ca: { clusterId: idText.trim(), certPem, keyPem }, created: false };
  }
  // A cluster id written by a process that crashed before its CA keeps naming the cluster.
  const clusterId = idText?.trim() || `mk-${randomBytes(6).toString('hex')}`;
  const fresh = await createClusterCa({ clusterId });
  // Before the CA: a crash between them leaves no CA, and the next start makes one for this token.
  await makeAdminTokenWithCa(clusterDir);
  await writeFileAtomic(join(clusterDir, files.clusterId), `${clusterId}\n`, 0o644);
  await writeFileAtomic(join(clusterDir, files.caKey), fresh.keyPem, 0o600);
  // Written last: its presence says the CA is complete.
  await writeFileAtomic(join(clusterDir, files.caCert), fresh.certPem, 0o644);
  return { ca: { clusterId, ...fresh }, created: true };
}

/** Why the cluster folder's CA files cannot be used (said here, not as OpenSSL's words from deep in a start), or null. */
function caFilesProblem(clusterDir: string, certPem: string, keyPem: string): string | null {
  try {
    new X509Certificate(certPem);
  } catch (err) {
    return `${join(clusterDir, files.caCert)} cannot be read as a certificate (${(err as Error).message})`;
  }
  return keyMatchesCert(keyPem, certPem) ? null : `${join(clusterDir, files.caKey)} is not the key of ${join(clusterDir, files.caCert)}`;
}

/**
 * A new CA comes with a new admin token, unless the folder holds one already (only the CA was moved aside: that token
 * is not the CA's). The token is marked pending (admin.token.pending names its accessor) until a manager sees it in
 * the replicated state: a rotation keeps a state that knows only the old tokens, so a leader adds a pending token
 * there (see AuthServiceImpl) and removes the mark, and a token once seen is never added again, even when revoked.
 * The mark is written first (a token without one is never added); the token never replaces one another process made.
 */
async function makeAdminTokenWithCa(clusterDir: string): Promise<void> {
  const path = join(clusterDir, files.adminToken);
  if ((await readIfExists(path)) !== null) return;
  const { token, accessor } = newApiToken();
  await writeFileAtomic(join(clusterDir, files.adminTokenPending), `${accessor}\n`, 0o600);
  try {
    await writeFile(path, `${token}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
    await clearAdminTokenPending(clusterDir);
  }
}

/**
 * Whether the cluster directory marks this admin token pending: made with a new CA (ensureLocalPki) and not yet seen
 * in the replicated state. A mark that names another token (one replaced since) is not this token's.
 */
export async function adminTokenPending(clusterDir: string, token: string): Promise<boolean> {
  const named = (await readIfExists(join(clusterDir, files.adminTokenPending)))?.trim();
  return named !== undefined && named === parseApiToken(token)?.accessor;
}

/** Removes the pending mark: the replicated state has held the token, so it must never be added again. */
export async function clearAdminTokenPending(clusterDir: string): Promise<void> {
  await removeIfExists(join(clusterDir, files.adminTokenPending));
}

async function ensureNodeCert(node: LocalNode, ca: ClusterCa, lifetimeS: number): Promise<void> {
  const sans = sansForAddresses(node.addresses);
  const existing = await loadNodeTls(node.dataDir);
  if (typeof existing !== 'string' && existing !== null && (await isCurrent(existing, node, ca, sans, lifetimeS))) return;
  const { keyPem, certPem } = await issueNodeKeyAndCert({
    caCertPem: ca.certPem, caKeyPem: ca.keyPem, id: node.id, role: node.role, clusterId: ca.clusterId, sans, lifetimeDays: lifetimeS / 86_400,
  });
  const tls: NodeTls = { caCertPem: ca.certPem, certPem, keyPem, identity: { id: node.id, role: node.role, clusterId: ca.clusterId } };
  if (node.role === 'manager') tls.caKeyPem = ca.keyPem;
  await writeNodeTls(node.dataDir, tls);
}

/**
 * A node's certificate is kept when it is this CA's, names this node, is not due for renewal, is not longer-lived than
 * the configured lifetime (a shortened one applies at the next start) and covers its SANs.
 */
async function isCurrent(tls: NodeTls, node: LocalNode, ca: ClusterCa, sans: SubjectAltNames, lifetimeS: number): Promise<boolean> {
  const now = new Date();
  const { identity } = tls;
  if (identity.id !== node.id || identity.role !== node.role || identity.clusterId !== ca.clusterId) return false;
  if (caDigest(tls.caCertPem) !== caDigest(ca.certPem) || !(await isIssuedBy(tls.certPem, ca.certPem, now))) return false;
  if (needsRenewal(tls.certPem, now)) return false;
  // Certificates carry whole seconds: a second either way is rounding, not another lifetime.
  if (certificateLifetimeMs(tls.certPem) > lifetimeS * 1000 + 2000) return false;
  if ((node.role === 'manager') !== (tls.caKeyPem?.trim() === ca.keyPem.trim())) return false;
  const has = subjectAltNames(tls.certPem);
  return sans.ips.every((ip) => has.ips.includes(ip)) && sans.dns.every((d) => has.dns.includes(d));
}

/** Runs fn while holding an exclusive lock file; waits at most limits.pkiLockWaitMsMax for another holder. */
async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const content = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  // The wait is monotonic; only the lock's staleness (its file's mtime, breakIfStale) is wall time.
  const deadlineMs = performance.now() + limits.pkiLockWaitMsMax;
  while (!(await tryLock(lockPath, content))) {
    if (await breakIfStale(lockPath)) continue;
    if (performance.now() > deadlineMs) {
      throw new MinkubeError('TIMEOUT', `gave up after ${limits.pkiLockWaitMsMax} ms waiting for ${lockPath}; if no minkube process is starting, remove it`);
    }
    await new Promise((r) => setTimeout(r, 10 + Math.floor(Math.random() * 40)));
  }
  try {
    return await fn();
  } finally {
    if ((await readIfExists(lockPath)) === content) await removeIfExists(lockPath);
  }
}

async function tryLock(lockPath: string, content: string): Promise<boolean> {
  try {
    const fh = await open(lockPath, 'wx', 0o600);
    try {
      await fh.writeFile(content, 'utf8');
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  }
}

/** A lock is stale when its holder's process is gone, or it is older than any holder could take. */
async function breakIfStale(lockPath: string): Promise<boolean> {
  const [content, info] = await Promise.all([readIfExists(lockPath), stat(lockPath).catch(() => null)]);
  if (content === null || info === null) return true; // released meanwhile: try again at once
  const pid = Number.parseInt(content, 10);
  const stale = Date.now() - info.mtimeMs > limits.pkiLockStaleMs || (Number.isInteger(pid) && pid > 0 && !processAlive(pid));
  if (!stale) return false;
  // Move it aside before removing it, and put it back if it turns out to be a new holder's (two waiters broke the
  // same stale lock, and the other has taken the lock since).
  const aside = `${lockPath}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return true;
    throw err;
  }
  if ((await readIfExists(aside)) !== content) await link(aside, lockPath).catch(() => undefined);
  await removeIfExists(aside);
  return true;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return isErrno(err, 'EPERM');
  }
}

/**
 * The CA certificates of api.tlsCaFile (PEM, one or several), which the managers' API clients trust beside the cluster
 * CA; every certificate in the file must parse (node would skip a bad one without a word). CONFIG_INVALID naming the
 * key and the file otherwise.
 */
export async function readApiCaFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new MinkubeError('CONFIG_INVALID', `api.tlsCaFile: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new MinkubeError('CONFIG_INVALID', `api.tlsCaFile: ${path} holds no PEM certificate`);
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (cause) {
      throw new MinkubeError('CONFIG_INVALID', `api.tlsCaFile: certificate ${i + 1} of ${path} cannot be read (${(cause as Error).message})`, { cause });
    }
  });
  return `${blocks.join('\n')}\n`;
}
