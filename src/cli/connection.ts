// Where every command gets its API client: one HTTP pool for the whole process, built in one place, so that TLS
// material and a token (a credentials file, later) are read here and nowhere else.
import type { PeerCertificate } from 'node:tls';
import { ApiClient, type ApiClientOptions } from '../client/api-client.js';
import { credentialsPath, readCredentialsSync, writeCredentials, type Credentials } from '../client/credentials.js';
import { HttpClient, isPlainHttp, type TlsMaterial } from '../client/http.js';
import { MinkubeError } from '../lib/errors.js';
import { clusterIdOfCa, serverCertificateProblem } from '../security/ca.js';

/** What a command may choose per client; how to connect (TLS, token, pool) is this module's business. */
export type CliClientOptions = Pick<ApiClientOptions, 'timeoutMs' | 'readRetries'>;

let http: HttpClient | undefined;
let credentials: Credentials | null | undefined;

/** The credentials file (MINKUBE_CONFIG, else ~/.minkube/config.json) that `minkube up` wrote, if there is one. */
export function cliCredentials(): Credentials | null {
  return (credentials ??= readCredentialsSync());
}

/**
 * The process's one pool: it trusts the credentials file's CAs (`ca`, and `apiCa` when the managers' API certificate
 * is from another CA) and carries its token (MINKUBE_TOKEN, when set, is sent instead: a token of another role).
 * Without a file, or with an insecure cluster's: plain HTTP and no token.
 */
export function cliHttpClient(): HttpClient {
  if (http !== undefined) return http;
  const c = cliCredentials();
  const token = cliToken()?.token;
  const tls = c === null || c.ca === null ? {} : { tls: cliTls(c.ca, clusterIdOfCa(c.ca) ?? c.clusterId), ...(c.apiCa === undefined ? {} : { apiCaPem: c.apiCa }) };
  // Node's own pool: undici's would compile its HTTP parser first, which costs a command more than all the rest.
  http = new HttpClient({ pool: 'node', ...tls, ...(token === undefined ? {} : { token }) });
  return http;
}

/** The token the CLI sends, and where it comes from (for messages): MINKUBE_TOKEN, else the credentials file's; null for none. */
function cliToken(): { token: string; from: string } | null {
  const envToken = process.env.MINKUBE_TOKEN;
  if (envToken !== undefined && envToken !== '') return { token: envToken, from: 'MINKUBE_TOKEN' };
  const fileToken = cliCredentials()?.token ?? null;
  return fileToken === null ? null : { token: fileToken, from: `the credentials file ${credentialsPath()}` };
}

/**
 * How the CLI judges a manager's API certificate: its node certificate, never a worker's (serverCertificateProblem
 * says why), or the operator's (api.tlsCertFile), which names no node.
 */
export function cliTls(caCertPem: string, clusterId: string): TlsMaterial {
  const rule = { clusterId, managersOnly: 'the CLI sends its token only to managers' };
  return { ca: caCertPem, checkServer: (cert: PeerCertificate) => serverCertificateProblem(cert, rule) };
}

/** Where a command's managers came from: the hints a failure gets depend on it. */
type ApiSource = '--api' | 'MINKUBE_API' | 'credentials' | 'fallback';
let apiSource: ApiSource | null = null;
let fallbackUrl = '';

/**
 * The managers a command talks to: --api, else MINKUBE_API, else every one the credentials file names, the first
 * first (a list, as --api takes one, so that a command still works while that manager is down), else `fallback`.
 */
export function cliApiUrl(flag: string | undefined, fromEnv: string | undefined, fallback: string): string {
  if (flag !== undefined) return ((apiSource = '--api'), flag);
  if (fromEnv !== undefined) return ((apiSource = 'MINKUBE_API'), fromEnv);
  const apis = cliCredentials()?.apis.join(',');
  if (apis !== undefined) return ((apiSource = 'credentials'), apis);
  apiSource = 'fallback';
  fallbackUrl = fallback;
  return fallback;
}

/**
 * What a user can do about a command's failure, when its cause may be the CLI's own setup rather than the cluster:
 * a token the managers refuse, a certificate no CA of the credentials file signed, a MINKUBE_CONFIG naming no file.
 * Lines to print below the error; none for a command that reached no manager's client (apiSource unset).
 */
export function failureHints(e: MinkubeError): string[] {
  if (apiSource === null) return [];
  const path = credentialsPath();
  const named = process.env.MINKUBE_CONFIG !== undefined && process.env.MINKUBE_CONFIG !== '';
  if (e.code === 'UNAUTHENTICATED') {
    const held = cliToken();
    if (held === null) return [];
    const other = held.from === 'MINKUBE_TOKEN' ? 'give MINKUBE_TOKEN a live token, or unset it to send the credentials file\'s' : 'send another with MINKUBE_TOKEN=<a live token>, or point MINKUBE_CONFIG at a credentials file with one';
    return [`the token sent (${held.from}) was refused: it may have been revoked or have expired; ${other}`];
  }
  if (e.code === 'UNREACHABLE' && e.message.includes("(TLS: the server's certificate is refused: no CA this client trusts signed it")) return [untrustedCaHint(path, named)];
  if ((e.code === 'UNREACHABLE' || e.code === 'TIMEOUT') && apiSource === 'fallback' && named) {
    return [`MINKUBE_CONFIG names ${path}, which does not exist, so the CLI asked ${fallbackUrl}; point MINKUBE_CONFIG at the cluster's credentials file, or give --api`];
  }
  return [];
}

/**
 * A certificate the CLI could not verify: a manager not of the credentials file's cluster, or a file not of this
 * cluster. Which to fix depends on where the URL came from: a file's own managers point at the file, --api at itself.
 */
function untrustedCaHint(path: string, named: boolean): string {
  const file = cliCredentials() === null ? `no credentials file (${path} does not exist), so no cluster CA is trusted` : `the credentials file ${path} gives the CA this CLI trusts`;
  const where = `minkube up writes ${named ? 'the file MINKUBE_CONFIG names' : '~/.minkube/config.json'}; a cluster started from a config keeps .minkube/credentials.json beside it`;
  const api = apiSource === '--api' || apiSource === 'MINKUBE_API' ? `check that ${apiSource} names a manager of that cluster, or point MINKUBE_CONFIG at the credentials file of the cluster ${apiSource} names` : "point MINKUBE_CONFIG at the cluster's credentials file";
  return `no CA trusted here signed the server's certificate: ${file}; ${api} (${where}); a managers' API certificate from another CA (api.tlsCaFile) needs that CA as apiCa in the file`;
}

/**
 * A client of the manager at `api` ('host:port' or a URL, as --api / MINKUBE_API give it), or of the first of a
 * comma-separated list of them, which moves on to the next when that one cannot serve a request (ApiClientOptions'
 * alternateUrls: a request that never reached it, a read that failed for a passing reason).
 */
export function apiClientFor(api: string, opts: CliClientOptions = {}): ApiClient {
  const [first, ...alternateUrls] = apiUrlsOf(api);
  const pool = cliHttpClient();
  refuseTokenInClear([first!, ...alternateUrls].map((u) => pool.baseUrlOf(u)));
  return new ApiClient(first!, { ...opts, http: pool, alternateUrls });
}

/**
 * The CLI sends its token only over TLS: a command that holds one (MINKUBE_TOKEN, or the credentials file's) and is
 * given a plain http:// manager, anywhere in its list, sends nothing at all (HTTPS_REQUIRED, exit 1) rather than try
 * the others and maybe that one. HttpClient refuses such a request too; this says it before any, in the CLI's terms.
 * Without a token (an insecure cluster's credentials file, or none) plain HTTP is what the cluster speaks.
 */
function refuseTokenInClear(urls: readonly string[]): void {
  const plain = urls.find(isPlainHttp);
  const held = plain === undefined ? null : cliToken();
  if (plain === undefined || held === null) return;
  const hostPort = new URL(plain).host;
  const bare = (cliCredentials()?.ca ?? null) === null ? '' : ` (or ${hostPort}, which the CLI takes as https with the credentials file's CA)`;
  const insecure = held.from === 'MINKUBE_TOKEN' ? 'unset MINKUBE_TOKEN' : 'point MINKUBE_CONFIG at its credentials file, or at none';
  throw new MinkubeError(
    'HTTPS_REQUIRED',
    `${plain} is plain HTTP, and the CLI sends its token (${held.from}) only over TLS: nothing was sent. For a secure cluster's manager give https://${hostPort}${bare}; an insecure cluster takes no token: ${insecure}`,
  );
}

/** The URLs of a comma-separated list (blanks around them and empty entries ignored); at least one. */
export function apiUrlsOf(api: string): string[] {
  const urls = api
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  if (urls.length === 0) throw new MinkubeError('INVALID_PARAM', `--api: no manager URL in ${JSON.stringify(api)}`);
  return urls;
}

/** Closes the process's pool, so a one-shot command ends as soon as it is done rather than when idle sockets time out. */
export async function closeCliConnections(): Promise<void> {
  const h = http;
  http = undefined;
  await h?.close();
}

/**
 * Brings the credentials file's list of managers up to date with the cluster's members as a leader told them
 * (`minkube status`, `member ls|add|remove`), when the command used that list (no --api or MINKUBE_API): managers
 * that joined are added, removed ones dropped, the rest keep their order; says so on stderr. A file that cannot be
 * written is left as it is: the command's own answer is what matters.
 */
export async function keepCredentialApis(apiUrl: string, memberApiAddresses: readonly string[]): Promise<void> {
  const c = cliCredentials();
  if (c === null || apiUrl !== c.apis.join(',') || memberApiAddresses.length === 0) return;
  const scheme = new URL(c.apis[0]!).protocol;
  const now = memberApiAddresses.filter((a) => a !== '').map((a) => `${scheme}//${a}`);
  const apis = [...c.apis.filter((u) => now.includes(u)), ...now.filter((u) => !c.apis.includes(u))];
  if (apis.length === 0 || (apis.length === c.apis.length && apis.every((u, i) => u === c.apis[i]))) return;
  const path = credentialsPath();
  try {
    await writeCredentials({ ...c, apis }, path);
    credentials = { ...c, apis };
    process.stderr.write(`the credentials file ${path} now names the managers ${apis.join(', ')}\n`);
  } catch {
    // Read-only, say: the list stays as it was.
  }
}
