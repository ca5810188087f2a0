// The CLI's credentials file: a secure cluster's (CA, token) and an insecure one's (http URLs only), each read back as
// written; a malformed one is CONFIG_INVALID naming the file.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { insecureCredentials, readCredentials, writeCredentials, writeStartedManagerCredentials } from '../../src/client/credentials.js';
import { createClusterCa } from '../../src/security/ca.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-credentials-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pem = (await createClusterCa({ clusterId: 'c1' })).certPem;
const other = (await createClusterCa({ clusterId: 'c2' })).certPem;
// PEM armour around bytes that are no certificate (the outside tester's `ca`).
const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';

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
    // PEM armour around what no certificate is: said here, not as INTERNAL from OpenSSL at the first request.
    ['a ca in PEM armour that is no certificate', { clusterId: 'c', apis: ['https://127.0.0.1:1'], ca: broken, token: 't' }, /ca: the certificate cannot be read \(.*asn1.*\)$/],
    ['a ca with its END line missing', { clusterId: 'c', apis: ['https://127.0.0.1:1'], ca: pem.replace('-----END CERTIFICATE-----', ''), token: 't' }, 'ca: no whole PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)'],
    ['an apiCa whose second certificate cannot be read', { clusterId: 'c', apis: ['https://127.0.0.1:1'], ca: pem, token: 't', apiCa: `${pem}${broken}` }, /apiCa: certificate 2 of 2 cannot be read \(.*asn1.*\)$/],
  ])('refuses %s with CONFIG_INVALID naming the file', async (_what, body, reason) => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify(body));
    const err = (await readCredentials(path).then(() => null, (e: unknown) => e)) as { code?: unknown; message?: string } | null;
    expect(err?.code).toBe('CONFIG_INVALID');
    const prefix = `the credentials file ${path} is invalid: `;
    expect(err?.message?.slice(0, prefix.length)).toBe(prefix);
    // OpenSSL's own words (after the field and what is wrong) are matched loosely: they are its, not ours.
    if (typeof reason === 'string') expect(err?.message?.slice(prefix.length)).toBe(reason);
    else expect(err?.message?.slice(prefix.length)).toMatch(reason);
  });

  describe("a manager's start from its config (outside tester: it rewrote the list to the config's managers)", () => {
    const url = (n: number): string => `https://127.0.64.${n}:2600${n}`;
    const config = [url(1), url(2), url(3)];
    const fresh = { clusterId: 'c1', apis: config, ca: pem, token: 'mk_0123456789abcdef_s' };

    it("keeps the list status and member ls|remove brought up to date: m5 joined, m3 removed; restarting m2 changes nothing", async () => {
      const path = join(dir, 'started-kept.json');
      await writeCredentials({ ...fresh, apis: [url(1), url(2), url(5)] }, path);
      await writeStartedManagerCredentials(fresh, url(2), path);
      expect((await readCredentials(path))?.apis).toEqual([url(1), url(2), url(5)]);
    });

    it('adds only its own URL when the list lacks it (a manager the config gained), never another the file dropped', async () => {
      const path = join(dir, 'started-self.json');
      await writeCredentials({ ...fresh, apis: [url(1), url(2)] }, path);
      await writeStartedManagerCredentials({ ...fresh, apis: [...config, url(4)] }, url(4), path);
      expect((await readCredentials(path))?.apis).toEqual([url(1), url(2), url(4)]);
    });

    it("writes the config's managers when there is no file, one of another cluster (another CA), or one it cannot read; the token and CA are its own", async () => {
      const none = join(dir, 'started-none.json');
      await writeStartedManagerCredentials(fresh, url(1), none);
      expect(await readCredentials(none)).toEqual(fresh);
      const foreign = join(dir, 'started-foreign.json');
      await writeCredentials({ clusterId: 'c0', apis: [url(9)], ca: other, token: 'mk_fedcba9876543210_s' }, foreign);
      await writeStartedManagerCredentials(fresh, url(1), foreign);
      expect(await readCredentials(foreign)).toEqual(fresh);
      const broken = join(dir, 'started-broken.json');
      writeFileSync(broken, '{ not json');
      await writeStartedManagerCredentials(fresh, url(1), broken);
      expect(await readCredentials(broken)).toEqual(fresh);
    });
  });
});
