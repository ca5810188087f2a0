// What `snapshot restore --config` checks before it writes anything: that no other manager of the config is running
// (restore makes a new one-voter cluster: beside a running one it is a split brain), and that the file is a backup of
// the cluster the config's CA is for (the restored cluster's tokens are the file's).
import { HttpClient, type TlsMaterial } from '../client/http.js';
import type { ClusterConfig } from '../config/cluster.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { clusterIdOfCa } from '../security/ca.js';
import { readApiCaFile, readClusterCaCert } from '../security/pki-files.js';

export interface AnsweringManager {
  readonly id: string;
  /** The API URL that answered GET /status. */
  readonly url: string;
}

/**
 * The config's managers other than `selfId` that answer GET /status (any HTTP answer: a manager that runs), each asked
 * once, all at once, within `timeoutMs` in all. One that refuses the connection, cannot be reached or says nothing in
 * time (stopped, gone) is not listed. Nothing secret is sent: GET /status takes no token.
 */
export async function answeringManagers(config: ClusterConfig, selfId: string, timeoutMs: number = limits.restoreProbeMsMax): Promise<AnsweringManager[]> {
  const others = config.managers.filter((m) => m.id !== selfId);
  if (others.length === 0) return [];
  const http = new HttpClient({ pool: 'node', timeoutMs, connectTimeoutMs: timeoutMs, handshakeTimeoutMs: timeoutMs, ...(await probeTls(config)) });
  try {
    const answers = await Promise.all(
      others.map(async (m) => {
        const url = `${config.insecure ? 'http' : 'https'}://${m.apiAddress}`;
        try {
          await http.request({ method: 'GET', url, path: '/status', headers: { accept: 'application/json' }, timeoutMs });
          return { id: m.id, url };
        } catch {
          return null;
        }
      }),
    );
    return answers.filter((a): a is AnsweringManager => a !== null);
  } finally {
    await http.close();
  }
}

/**
 * How the probe trusts a secure cluster's managers: the cluster CA beside the config (and api.tlsCaFile's, for an
 * operator's API certificate). Without a CA there (none made yet, or moved away) the server is not verified: the
 * probe only asks whether something answers, and sends nothing a stranger could use.
 */
async function probeTls(config: ClusterConfig): Promise<{ tls?: TlsMaterial; apiCaPem?: string; verifyServer?: boolean }> {
  if (config.insecure) return {};
  const ca = await readClusterCaCert(config.clusterDir).catch(() => null);
  if (ca === null) return { verifyServer: false };
  const { tlsCaFile } = config.api;
  const apiCaPem = tlsCaFile === undefined ? undefined : await readApiCaFile(tlsCaFile).catch(() => undefined);
  return { tls: { ca }, ...(apiCaPem === undefined ? {} : { apiCaPem }) };
}

/** RESTORE_REFUSED naming the managers that answered, why restore needs them stopped, and what to do instead. */
export function managersRunning(answering: readonly AnsweringManager[], selfId: string, configPath: string): MinkubeError {
  const named = answering.map((a) => `${a.id} (${a.url})`).join(', ');
  return new MinkubeError(
    'RESTORE_REFUSED',
    `${answering.length === 1 ? 'manager' : 'managers'} ${named} of ${configPath} ${answering.length === 1 ? 'answers' : 'answer'}: ` +
      'snapshot restore rebuilds a cluster from one manager and needs every manager stopped (beside a running cluster ' +
      `${selfId} would start as a cluster of its own, and the writes each side takes would part). Nothing was written. ` +
      `To refill one emptied member of a running cluster instead: minkube member remove ${selfId}, then ` +
      `minkube manager --config ${configPath} --id ${selfId} --join URL (or start it without --join: it recovers its log ` +
      'from the leader while its marker beside the data directory remains). If those managers belong to a cluster ' +
      'being retired, give --force',
    { details: { running: answering.map((a) => a.id) } },
  );
}

/** The cluster the config's CA is for; null for an insecure cluster or one whose CA is not made yet. */
export async function targetClusterId(config: ClusterConfig): Promise<string | null> {
  if (config.insecure) return null;
  const ca = await readClusterCaCert(config.clusterDir);
  return ca === null ? null : clusterIdOfCa(ca);
}

/** RESTORE_REFUSED for a backup of another cluster than the config's. */
export function otherCluster(file: string, fileClusterId: string, target: string, configPath: string): MinkubeError {
  return new MinkubeError(
    'RESTORE_REFUSED',
    `${file} is a backup of cluster ${fileClusterId}, but ${configPath} is for cluster ${target} (its CA): restored, the ` +
      `cluster would hold ${fileClusterId}'s tokens, and ${target}'s admin token and credentials file would be refused. ` +
      'Nothing was written. To restore it all the same, give --from-other-cluster',
    { details: { fileClusterId, targetClusterId: target } },
  );
}
