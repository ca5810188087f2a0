// A new node's way into a closed cluster, as Swarm's: the join token carries the CA's digest, so the node first
// fetches the CA from the manager it was pointed at, trusts it only if the digest matches, and from then on talks
// to the cluster over TLS pinned to that CA: it sends a CSR with the token and keeps the certificate it gets.
import { HttpClient, isPlainHttp, normaliseBaseUrl, parseJson, untrustedCaCode } from '../client/http.js';
import { errorFromBody, isErrorCode, MinkubeError } from '../lib/errors.js';
import { caDigest, clusterIdOfCa, createCsr, generateNodeKey, serverCertificateProblem, type NodeRole } from '../security/ca.js';
import { writeNodeTls, type NodeTls } from '../security/pki-files.js';
import { parseJoinToken } from '../security/tokens.js';
import type { JoinReply } from '../contracts/services.js';

export interface JoinWithTokenOptions {
  /** Any manager's API ('host:port' or an https URL; an http:// one is refused, HTTPS_REQUIRED, before anything is sent). */
  url: string;
  token: string;
  id: string;
  role: NodeRole;
  dataDir: string;
  /** 'host:port' addresses this node serves on. */
  addresses: string[];
  timeoutMs?: number;
  /**
   * The CA (PEM) of the managers' operator API certificate when another CA than the cluster's signed it: the joining
   * node's api.tlsCaFile. The token pins the cluster CA only, so nothing fetched from the cluster can vouch for it.
   */
  apiCaPem?: string;
  /** Throws to refuse the cluster's reply (the config it makes is invalid): nothing is written then. */
  checkReply?: (reply: JoinReply) => void;
}

/** Joins, writes the material into `<dataDir>/tls/` (once checkReply accepts the reply), and answers it with the cluster's managers. */
export async function joinWithToken(o: JoinWithTokenOptions): Promise<{ material: NodeTls; reply: JoinReply }> {
  const parsed = parseJoinToken(o.token);
  if (parsed === null) throw new MinkubeError('INVALID_PARAM', '--token is not a join token (expected MKTKN-1-<digest>-<secret>; make one with `minkube token create --role worker|manager`)');
  const base = normaliseBaseUrl(o.url, { tls: { ca: '' } });
  // The CA could be fetched over plain HTTP (it is public), but the token would follow it there: never in clear.
  if (isPlainHttp(base)) throw new MinkubeError('HTTPS_REQUIRED', `${base} is plain HTTP: a join token is sent only over TLS, pinned to the CA it names; give https://${new URL(base).host} or ${new URL(base).host}`);
  const caCertPem = await fetchCa(base, o.timeoutMs ?? 5000);
  const digest = caDigest(caCertPem);
  if (digest !== parsed.caDigest) {
    throw new MinkubeError('UNAUTHENTICATED', `the cluster at ${base} presents a CA with digest ${digest}, but the token expects ${parsed.caDigest}: refusing to trust it (another cluster, or a token made before this cluster's CA was rotated: make a new one there with minkube token create)`);
  }
  const { keyPem } = await generateNodeKey();
  const clusterId = clusterIdOf(caCertPem);
  const csr = await createCsr({ keyPem, id: o.id, role: o.role, clusterId });
  // The join token goes only to a manager (or the operator's API certificate): a worker's certificate of this CA could
  // name the address asked.
  const rule = { clusterId, managersOnly: 'a joining node sends its token only to managers' };
  const http = new HttpClient({
    tls: { ca: caCertPem, checkServer: (cert) => serverCertificateProblem(cert, rule) },
    ...(o.apiCaPem === undefined ? {} : { apiCaPem: o.apiCaPem }),
    timeoutMs: o.timeoutMs ?? 10_000,
  });
  try {
    const res = await http.requestOk({ method: 'POST', url: base, path: '/v1/join', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: o.token, id: o.id, csr, addresses: o.addresses }) }).catch((err: unknown) => {
      throw err instanceof MinkubeError ? notSignedByTokensCa(err, base, digest, o.apiCaPem !== undefined) : err;
    });
    const reply = JSON.parse(res.text) as JoinReply;
    if (typeof reply !== 'object' || reply === null || typeof reply.certificate !== 'string' || !Array.isArray(reply.managers)) {
      throw new MinkubeError('UNREACHABLE', `${base}/v1/join answered no certificate and managers: is it a manager of this cluster?`);
    }
    o.checkReply?.(reply);
    const material: NodeTls = { caCertPem, certPem: reply.certificate, keyPem, identity: { id: o.id, role: o.role, clusterId } };
    if (o.role === 'manager') {
      if (reply.caKey === undefined) throw new MinkubeError('INTERNAL', 'the cluster sent a manager certificate without the CA key');
      material.caKeyPem = reply.caKey;
    }
    await writeNodeTls(o.dataDir, material);
    return { material, reply };
  } finally {
    await http.close();
  }
}

/**
 * The CA, fetched before we can verify anything: the one request made without checking the server's certificate.
 * What it answers is trusted only once its digest matches the token's (trust on first use, pinned by the token).
 * timeoutMs bounds the whole request, its connection included.
 */
async function fetchCa(base: string, timeoutMs: number): Promise<string> {
  const http = new HttpClient({ verifyServer: false, timeoutMs });
  try {
    const res = await http.request({ method: 'GET', url: base, path: '/v1/join/ca' }).catch((err: MinkubeError) => {
      // TIMEOUT or UNREACHABLE, naming the URL and the reason.
      throw new MinkubeError(err.code, `cannot fetch the cluster CA: ${err.message}`, { cause: err });
    });
    if (res.status !== 200) throw caRefused(base, res.status, res.text);
    const ca = (parseJson(res.text) as { ca?: unknown } | undefined)?.ca;
    if (typeof ca !== 'string' || !ca.includes('BEGIN CERTIFICATE')) throw new MinkubeError('UNREACHABLE', `${base}/v1/join/ca did not answer a certificate`);
    return ca;
  } finally {
    await http.close();
  }
}

/**
 * A join pins the CA its token names (no credentials file is involved, unlike the CLI's "the cluster's CA is not trusted
 * here"): a server certificate that CA did not sign (an API certificate of another CA, a proxy) is said so. Any
 * other error as it is.
 */
function notSignedByTokensCa(err: MinkubeError, base: string, digest: string, apiCa: boolean): MinkubeError {
  const code = untrustedCaCode(err);
  if (code === null) return err;
  const nor = apiCa ? ', nor by the API CA given (api.tlsCaFile)' : '';
  return new MinkubeError(
    'UNREACHABLE',
    `cannot reach ${base}/v1/join (TLS: the server's certificate is not signed by the cluster CA the join token names (digest ${digest})${nor}: ${code}): the token was not sent; is ${base} a manager's own API address, not a proxy's or one with an API certificate of another CA?`,
    { cause: err },
  );
}

/** A Minkube manager's own answer when it gave one (an insecure cluster says it has no CA), else UNREACHABLE. */
function caRefused(base: string, status: number, text: string): MinkubeError {
  const body = parseJson(text) ?? null;
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  if (isErrorCode(code) && code !== 'NOT_FOUND') return errorFromBody(body, status);
  return new MinkubeError('UNREACHABLE', `${base}/v1/join/ca answered ${status}: is it a secure Minkube manager?`);
}

/** The cluster id is the CA's organisation (O=<clusterId>). */
function clusterIdOf(caCertPem: string): string {
  const o = clusterIdOfCa(caCertPem);
  if (o === null) throw new MinkubeError('UNAUTHENTICATED', 'the cluster CA names no cluster (no O= in its subject)');
  return o;
}
