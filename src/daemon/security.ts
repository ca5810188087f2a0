// What a node needs to take part in a closed cluster: its TLS material (read from its data directory, or made on the
// spot for a node its config file lists), the check every peer connection runs, and the TLS options of its servers
// and of its one HTTP client. `insecure: true` in the config turns all of it off, loudly.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsMaterial } from '../client/http.js';
import { configInvalid, type ClusterConfig } from '../config/cluster.js';
import { MinkubeError } from '../lib/errors.js';
import { makeDirs } from '../lib/make-dirs.js';
import type { AdminTokenMark } from '../manager/auth-service.js';
import type { ExpectedServer } from '../lib/ids.js';
import { certificateExpiry, expectedServerProblem, identityFromCertificate, type NodeIdentity, type NodeRole } from '../security/ca.js';
import { adminTokenPending, clearAdminTokenPending, ensureLocalPki, readApiCaFile, readNodeTls, type NodeTls } from '../security/pki-files.js';
import { hashSecret, newApiToken, parseApiToken } from '../security/tokens.js';
import type { TransportTls } from '../transport/tcp.js';

export interface NodeSecurity {
  readonly clusterId: string;
  readonly identity: NodeIdentity;
  readonly material: NodeTls;
  /** Mutual TLS for the Raft transport: a peer must hold a manager certificate of this cluster naming its id. */
  transportTls(): TransportTls;
  /**
   * The node's HTTPS server: it asks for a client certificate but lets clients without one through; the app decides
   * per route (a manager's clients bring a token, a worker serves managers only).
   */
  serverTls(): ServerTls;
  /**
   * For the node's one HTTP client: trust the cluster CA (and api.tlsCaFile's, given to the client apart) and present
   * this node's certificate; a server's certificate must name the node each call expects (serverProblem).
   */
  clientTls(): TlsMaterial;
  /** Who a verified peer certificate says it is, if it is one of this cluster's nodes. */
  peerIdentity(cert: PeerCertificate): NodeIdentity | null;
}

export interface ServerTls {
  key: string;
  cert: string;
  ca: string;
  requestCert: true;
  rejectUnauthorized: boolean;
  minVersion: 'TLSv1.2';
}

export interface SecuredNode {
  id: string;
  role: NodeRole;
  dataDir: string;
  /** 'host:port' addresses the node serves on: their hosts go into its certificate. */
  addresses: string[];
}

/**
 * Null under `insecure` (after a warning a reader cannot miss). Otherwise the node's material: from its data
 * directory, or issued now from the cluster CA beside the config file when the file lists the node (the CA itself
 * is made by the first node of the cluster to start: no set-up step). A node the file does not list must have
 * joined with a token first.
 */
export async function loadNodeSecurity(config: ClusterConfig, node: SecuredNode, listed: boolean, logger: Logger): Promise<NodeSecurity | null> {
  if (config.insecure) {
    logger.warn(
      { insecure: true },
      'INSECURE: this cluster runs without TLS and without authentication (insecure: true in its config); anyone who can reach its ports can run commands on its workers',
    );
    return null;
  }
  let material = await readNodeTls(node.dataDir);
  if (listed) {
    // ensureLocalPki keeps a certificate of this CA and replaces one of another, so it runs every time.
    await ensureLocalPki({ clusterDir: config.clusterDir, nodes: [node], certLifetimeS: config.tls.certLifetimeS });
    material = await readNodeTls(node.dataDir);
  }
  if (material === null) {
    throw new MinkubeError(
      'CONFIG_INVALID',
      `${node.role} ${node.id} has no certificate in ${node.dataDir}/tls: start it with --join URL --token TOKEN (minkube token create --role ${node.role}), or list it in the cluster config`,
    );
  }
  if (material.identity.id !== node.id || material.identity.role !== node.role) {
    throw new MinkubeError('CONFIG_INVALID', `the certificate in ${node.dataDir}/tls names ${material.identity.role} ${material.identity.id}, not ${node.role} ${node.id}`);
  }
  // A listed node got a new one above; a joined node's expired certificate opens no connection, renewal included:
  // retrying for ever would only look like a node that is down.
  const expiresAt = certificateExpiry(material.certPem);
  if (expiresAt.getTime() <= Date.now()) {
    throw new MinkubeError(
      'CONFIG_INVALID',
      `the certificate in ${node.dataDir}/tls expired at ${expiresAt.toISOString()}, and an expired certificate cannot be renewed: move ${node.dataDir}/tls aside and join again (${node.role} --id ${node.id} --join URL --token TOKEN, a token from minkube token create --role ${node.role})`,
    );
  }
  return nodeSecurityFrom(material);
}

/**
 * api.tlsCaFile's CA(s), which a node's HTTP client trusts beside the cluster CA (the managers' API may serve a
 * certificate of another CA): read and checked at start, before anything is written, CONFIG_INVALID naming `source`.
 * Undefined when the config names none; under insecure: true the file is not used, and a warning says so.
 */
export async function loadApiCa(config: ClusterConfig, source: string, logger: Logger): Promise<string | undefined> {
  const { tlsCaFile } = config.api;
  if (tlsCaFile === undefined) return undefined;
  if (config.insecure) {
    logger.warn({ tlsCaFile }, 'api.tlsCaFile is not used: the cluster is insecure (plain HTTP)');
    return undefined;
  }
  try {
    return await readApiCaFile(tlsCaFile);
  } catch (err) {
    throw configInvalid(source, [(err as Error).message]);
  }
}

export function nodeSecurityFrom(material: NodeTls): NodeSecurity {
  const { clusterId } = material.identity;
  const peerIdentity = (cert: PeerCertificate): NodeIdentity | null => {
    const identity = identityFromCertificate(cert);
    return identity !== null && identity.clusterId === clusterId ? identity : null;
  };
  return {
    clusterId,
    identity: material.identity,
    material,
    peerIdentity,
    transportTls: () => ({
      caCertPem: material.caCertPem,
      certPem: material.certPem,
      keyPem: material.keyPem,
      verifyPeer: (cert, peerId) => peerProblem(identityFromCertificate(cert), clusterId, peerId),
    }),
    serverTls: () => ({
      key: material.keyPem,
      cert: material.certPem,
      ca: material.caCertPem,
      requestCert: true,
      // The apps judge the certificate per route (/health stays open), so the handshake lets everyone through.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    }),
    // Each call names the node it means to reach (a manager's API by default): a worker calls managers only, a
    // manager calls both.
    clientTls: () => ({
      ca: material.caCertPem,
      cert: material.certPem,
      key: material.keyPem,
      checkServer: (cert, expected) => serverProblem(cert, clusterId, material.identity.role, expected),
    }),
  };
}

/**
 * Why a server's certificate is not the one this node meant to reach (undefined: it is): the node `expected` names,
 * role and id, or for a manager's API the operator's API certificate (expectedServerProblem). A worker calls
 * managers only: a call of its meant for a worker is refused before the certificate is looked at.
 */
export function serverProblem(cert: PeerCertificate, clusterId: string, callerRole: NodeRole, expected: ExpectedServer): string | undefined {
  if (callerRole === 'worker' && expected.role !== 'manager') return `a worker talks only to managers, and this call was meant for worker ${expected.id}`;
  return expectedServerProblem(cert, clusterId, expected);
}

/**
 * Why a Raft peer's certificate may not speak as peerId, or null when it may; peerId null (right after the handshake,
 * before the hello names one): why it may not speak as a manager at all.
 */
export function peerProblem(identity: NodeIdentity | null, clusterId: string, peerId: string | null): string | null {
  if (identity === null) return 'its certificate names no Minkube node';
  if (identity.clusterId !== clusterId) return `its certificate is for cluster ${identity.clusterId}, not ${clusterId}`;
  if (identity.role !== 'manager') return `its certificate is a ${identity.role}'s, not a manager's`;
  if (peerId !== null && identity.id !== peerId) return `its certificate names ${identity.id}, not ${peerId}`;
  return null;
}

/**
 * The cluster folder's admin token (`<clusterDir>/admin.token`, mode 0600): made with the CA (ensureLocalPki), or
 * here by whichever process gets there first when the file is missing. `minkube up` hands it to the CLI; the first
 * leader writes its hash into the replicated state (auth.bootstrap), where it can be revoked like any other token,
 * and after a CA rotation a leader adds the new CA's token there once (AuthServiceImpl, adminTokenPending).
 */
export async function ensureAdminToken(clusterDir: string): Promise<string> {
  const path = join(clusterDir, 'admin.token');
  await makeDirs(clusterDir, 0o700);
  const { token } = newApiToken();
  try {
    await writeFile(path, `${token}\n`, { flag: 'wx', mode: 0o600 });
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Another process wrote it: it may still be writing, so wait for a whole token.
  for (let i = 0; i < 50; i++) {
    const text = (await readFile(path, 'utf8')).trim();
    if (parseApiToken(text) !== null) return text;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new MinkubeError('CONFIG_INVALID', `${path} does not hold a Minkube API token (mk_<accessor>_<secret>); remove it to make a new one`);
}

/** What the first leader proposes from the admin token: never the secret itself. */
export function bootstrapRecordFor(adminToken: string): { accessor: string; secretHash: string } {
  const parsed = parseApiToken(adminToken);
  if (parsed === null) throw new MinkubeError('CONFIG_INVALID', 'the admin token is not a Minkube API token');
  return { accessor: parsed.accessor, secretHash: hashSecret(parsed.secret) };
}

/** The cluster folder's pending mark on its admin token, for the auth service (see adminTokenPending). */
export function adminTokenMarkFor(clusterDir: string, adminToken: string): AdminTokenMark {
  return { pending: () => adminTokenPending(clusterDir, adminToken), clear: () => clearAdminTokenPending(clusterDir) };
}
