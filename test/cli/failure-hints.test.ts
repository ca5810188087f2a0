// What the CLI adds below a failure when its cause may be its own setup: a token the managers refuse, a certificate no
// CA of the credentials file signed, a MINKUBE_CONFIG that names no file. Each depends on where the managers came from.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, vi } from 'vitest';
import { writeCredentials } from '../../src/client/credentials.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { createClusterCa } from '../../src/security/ca.js';

type Connection = typeof import('../../src/cli/connection.js');

let dir: string;
let credentialsFile: string;
const fallback = 'http://127.0.64.9:8001';
const untrusted = new MinkubeError('UNREACHABLE', "cannot reach https://127.0.64.9:8501/v1/cluster (TLS: the server's certificate is refused: no CA this client trusts signed it: self-signed certificate)");
const refused = new MinkubeError('UNAUTHENTICATED', 'unknown, revoked or expired token');
const unreachable = new MinkubeError('UNREACHABLE', `cannot reach ${fallback}/v1/cluster (ECONNREFUSED)`);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'minkube-hints-'));
  credentialsFile = join(dir, 'credentials.json');
  const ca = await createClusterCa({ clusterId: 'c1' });
  await writeCredentials({ clusterId: 'c1', apis: ['https://127.0.64.9:8501'], ca: ca.certPem, token: 'mk_0123456789abcdef_secret' }, credentialsFile);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh copy of the module (it keeps the credentials file and where the managers came from for the process). */
async function connection(env: Record<string, string | undefined>): Promise<Connection> {
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) vi.stubEnv(k, undefined as unknown as string);
    else vi.stubEnv(k, v);
  }
  vi.resetModules();
  return import('../../src/cli/connection.js');
}
beforeEach(() => vi.stubEnv('MINKUBE_TOKEN', ''));
afterEach(() => vi.unstubAllEnvs());

it("a refused token names the credentials file's token and suggests MINKUBE_TOKEN", async () => {
  const c = await connection({ MINKUBE_CONFIG: credentialsFile });
  c.cliApiUrl(undefined, undefined, fallback);
  expect(c.failureHints(refused)).toEqual([
    `the token sent (the credentials file ${credentialsFile}) was refused: it may have been revoked or have expired; send another with MINKUBE_TOKEN=<a live token>, or point MINKUBE_CONFIG at a credentials file with one`,
  ]);
  // MINKUBE_TOKEN's own token: that one is named.
  const withEnv = await connection({ MINKUBE_CONFIG: credentialsFile, MINKUBE_TOKEN: 'mk_fedcba9876543210_secret' });
  withEnv.cliApiUrl(undefined, undefined, fallback);
  expect(withEnv.failureHints(refused)[0]).toMatch(/^the token sent \(MINKUBE_TOKEN\) was refused: .*give MINKUBE_TOKEN a live token, or unset it/);
});

it('an untrusted certificate from a manager --api names points at --api, and never says where minkube up writes when MINKUBE_CONFIG names the file', async () => {
  const c = await connection({ MINKUBE_CONFIG: credentialsFile });
  c.cliApiUrl('https://127.0.64.9:8501', undefined, fallback);
  const [hint] = c.failureHints(untrusted);
  expect(hint).toMatch(new RegExp(`^no CA trusted here signed the server's certificate: the credentials file ${credentialsFile} gives the CA this CLI trusts; check that --api names a manager of that cluster`));
  expect(hint).toContain('minkube up writes the file MINKUBE_CONFIG names');
  expect(hint).not.toContain('~/.minkube/config.json');
  // The file's own managers: the file is what to fix.
  const own = await connection({ MINKUBE_CONFIG: credentialsFile });
  own.cliApiUrl(undefined, undefined, fallback);
  expect(own.failureHints(untrusted)[0]).toMatch(/; point MINKUBE_CONFIG at the cluster's credentials file \(minkube up writes the file MINKUBE_CONFIG names;/);
  // Without MINKUBE_CONFIG: the default file is named.
  const home = await connection({ MINKUBE_CONFIG: undefined, HOME: dir });
  home.cliApiUrl(undefined, 'https://127.0.64.9:8501', fallback);
  expect(home.failureHints(untrusted)[0]).toMatch(/: no credentials file \(.*config\.json does not exist\), so no cluster CA is trusted; check that MINKUBE_API names .*\(minkube up writes ~\/\.minkube\/config\.json;/);
});

it('a MINKUBE_CONFIG naming no file is named when the default manager it fell back to cannot be reached', async () => {
  const missing = join(dir, 'no-such.json');
  const c = await connection({ MINKUBE_CONFIG: missing });
  expect(c.cliApiUrl(undefined, undefined, fallback)).toBe(fallback);
  expect(c.failureHints(unreachable)).toEqual([
    `MINKUBE_CONFIG names ${missing}, which does not exist, so the CLI asked ${fallback}; point MINKUBE_CONFIG at the cluster's credentials file, or give --api`,
  ]);
  expect(c.failureHints(new MinkubeError('TASK_NOT_FOUND', 'no task t1'))).toEqual([]);
  // --api given: the file was not needed for the address, so nothing is said of it.
  const flagged = await connection({ MINKUBE_CONFIG: missing });
  flagged.cliApiUrl(fallback, undefined, fallback);
  expect(flagged.failureHints(unreachable)).toEqual([]);
});
