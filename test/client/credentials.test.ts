// The CLI's credentials file: a secure cluster's (CA, token) and an insecure one's (http URLs only), each read back as
// written; a malformed one is CONFIG_INVALID naming the file.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { insecureCredentials, readCredentials, writeCredentials } from '../../src/client/credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-credentials-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';

describe('the credentials file', () => {
  it('reads back what was written, secure or insecure, readable by its owner alone', async () => {
    const secure = { clusterId: 'c1', apis: ['https://127.0.0.1:8001'], ca: pem, token: 'mk_0123456789abcdef_s' };
    const path = join(dir, 'secure.json');
    await writeCredentials(secure, path);
    expect(await readCredentials(path)).toEqual(secure);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const open = join(dir, 'insecure.json');
    await writeCredentials(insecureCredentials(['http://127.0.0.1:8501', 'http://127.0.0.2:8502']), open);
    expect(JSON.parse(readFileSync(open, 'utf8'))).toEqual({ clusterId: 'insecure', apis: ['http://127.0.0.1:8501', 'http://127.0.0.2:8502'], insecure: true });
    expect(await readCredentials(open)).toEqual({ clusterId: 'insecure', apis: ['http://127.0.0.1:8501', 'http://127.0.0.2:8502'], ca: null, token: null });
    expect(await readCredentials(join(dir, 'none.json'))).toBeNull();
  });

  it("keeps apiCa, the CA of the managers' operator API certificate, when there is one", async () => {
    const withApiCa = { clusterId: 'c1', apis: ['https://127.0.0.1:8001'], ca: pem, token: 'mk_0123456789abcdef_s', apiCa: pem };
    const path = join(dir, 'api-ca.json');
    await writeCredentials(withApiCa, path);
    expect(await readCredentials(path)).toEqual(withApiCa);
  });

  it.each([
    ['an insecure file with an https URL', { clusterId: 'insecure', apis: ['https://127.0.0.1:1'], insecure: true }, "an insecure cluster's apis must be http:// URLs"],
    ['a secure file without a CA', { clusterId: 'c', apis: ['https://127.0.0.1:1'], token: 't' }, 'ca must be a PEM certificate'],
    ['no managers', { clusterId: 'c', apis: [], insecure: true }, 'apis must be a non-empty list of URLs'],
    ['an apiCa that is no certificate', { clusterId: 'c', apis: ['https://127.0.0.1:1'], ca: pem, token: 't', apiCa: 'corp-ca.crt' }, 'apiCa must be a PEM certificate'],
  ])('refuses %s with CONFIG_INVALID naming the file', async (_what, body, reason) => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify(body));
    await expect(readCredentials(path)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: `the credentials file ${path} is invalid: ${reason}` });
  });
});
