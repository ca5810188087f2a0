// The CLI's credentials file, as kubectl's kubeconfig: the managers' API URLs, the cluster CA and a token.
// `minkube up` writes it; every command finds it by itself: $MINKUBE_CONFIG, else ~/.minkube/config.json.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { MinkubeError } from '../lib/errors.js';
import { makeDirs } from '../lib/make-dirs.js';

export interface Credentials {
  /** The cluster these credentials are for (its CA's cluster id; "insecure" for an insecure cluster). */
  readonly clusterId: string;
  /** Every manager's API, as https URLs (http for an insecure cluster); the CLI uses the first unless --api names another. */
  readonly apis: readonly string[];
  /** The cluster CA's certificate (PEM): the CA the CLI trusts for these URLs. null: an insecure cluster. */
  readonly ca: string | null;
  /**
   * The CA (PEM, one or several) that signed the managers' operator API certificate when it is not the cluster CA:
   * the config's api.tlsCaFile, copied here by whoever wrote the file; the CLI trusts it beside `ca`.
   */
  readonly apiCa?: string;
  /** An API token (mk_<accessor>_<secret>). null: an insecure cluster, which takes none. */
  readonly token: string | null;
}

/** An insecure cluster's file: `{ clusterId, apis, insecure: true }`, http URLs, no CA and no token. */
export function insecureCredentials(apis: readonly string[]): Credentials {
  return { clusterId: 'insecure', apis, ca: null, token: null };
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.MINKUBE_CONFIG;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.minkube', 'config.json');
}

/** Null when there is no file; a file that is there but unreadable or malformed is an error naming it. */
export async function readCredentials(path = credentialsPath()): Promise<Credentials | null> {
  try {
    return parseCredentials(await readFile(path, 'utf8'), path);
  } catch (err) {
    return noFileOrThrow(err, path);
  }
}

/** As readCredentials, for the CLI's start-up (one small file, read once). */
export function readCredentialsSync(path = credentialsPath()): Credentials | null {
  try {
    return parseCredentials(readFileSync(path, 'utf8'), path);
  } catch (err) {
    return noFileOrThrow(err, path);
  }
}

function noFileOrThrow(err: unknown, path: string): null {
  if (err instanceof MinkubeError) throw err;
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
  throw new MinkubeError('CONFIG_INVALID', `cannot read the credentials file ${path}: ${(err as Error).message}`, { cause: err });
}

function parseCredentials(text: string, path: string): Credentials {
  const problem = (what: string): MinkubeError => new MinkubeError('CONFIG_INVALID', `the credentials file ${path} is invalid: ${what}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw problem('not JSON');
  }
  const c = raw as Partial<Record<keyof Credentials, unknown>>;
  if (typeof c !== 'object' || c === null) throw problem('not an object');
  if (typeof c.clusterId !== 'string') throw problem('clusterId must be a string');
  if (!Array.isArray(c.apis) || c.apis.length === 0 || !c.apis.every((a) => typeof a === 'string')) throw problem('apis must be a non-empty list of URLs');
  if ((raw as { insecure?: unknown }).insecure === true) {
    if (!c.apis.every((a) => (a as string).startsWith('http://'))) throw problem('an insecure cluster\'s apis must be http:// URLs');
    return insecureCredentials(c.apis as string[]);
  }
  if (typeof c.ca !== 'string' || !c.ca.includes('BEGIN CERTIFICATE')) throw problem('ca must be a PEM certificate');
  const caProblem = certificatesProblem(c.ca);
  if (caProblem !== null) throw problem(`ca: ${caProblem}`);
  if (typeof c.token !== 'string' || c.token === '') throw problem('token must be a string');
  if (c.apiCa !== undefined && (typeof c.apiCa !== 'string' || !c.apiCa.includes('BEGIN CERTIFICATE'))) throw problem('apiCa must be a PEM certificate');
  const apiCaProblem = c.apiCa === undefined ? null : certificatesProblem(c.apiCa);
  if (apiCaProblem !== null) throw problem(`apiCa: ${apiCaProblem}`);
  return { clusterId: c.clusterId, apis: c.apis as string[], ca: c.ca, token: c.token, ...(c.apiCa === undefined ? {} : { apiCa: c.apiCa }) };
}

/**
 * Why a PEM field's certificates cannot be used, or null: each block must parse, or the first request would fail deep
 * in TLS with OpenSSL's words (`asn1 encoding routines::wrong tag`) as if it were the CLI's own fault.
 */
function certificatesProblem(pem: string): string | null {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'no whole PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      const which = blocks.length === 1 ? 'the certificate' : `certificate ${i + 1} of ${blocks.length}`;
      return `${which} cannot be read (${(err as Error).message})`;
    }
  }
  return null;
}

/** Written whole (temp file and rename), readable by its owner only: it holds a token. */
export async function writeCredentials(credentials: Credentials, path = credentialsPath()): Promise<void> {
  await makeDirs(dirname(path), 0o700);
  const temp = `${path}.${process.pid}.tmp`;
  const file = credentials.ca === null || credentials.token === null ? { clusterId: credentials.clusterId, apis: credentials.apis, insecure: true } : credentials;
  await writeFile(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/**
 * The file a manager of a secure cluster leaves beside its config as it starts (`<clusterDir>/.minkube/credentials.json`):
 * `fresh` (its cluster's CA and admin token, the config's managers) when there is no file, or one that cannot be read
 * or is for another cluster (another CA); else `fresh` with the file's own list of managers, which `minkube status`
 * and `member ls|remove` keep up to date with the members a leader names (a manager that joined later added, a
 * removed one dropped), and only this manager's URL added when it is missing. Rewriting the list from the config at
 * every start undid that: managers that joined were dropped and removed ones came back.
 */
export async function writeStartedManagerCredentials(fresh: Credentials, selfApi: string, path: string): Promise<Credentials> {
  const existing = await readCredentials(path).catch(() => null);
  const sameCluster = existing !== null && existing.ca !== null && existing.ca === fresh.ca && existing.clusterId === fresh.clusterId;
  const apis = !sameCluster ? fresh.apis : existing.apis.includes(selfApi) ? existing.apis : [...existing.apis, selfApi];
  const written = { ...fresh, apis };
  await writeCredentials(written, path);
  return written;
}
