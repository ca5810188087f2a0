// A manager started from flags alone (no config file) is insecure exactly when it joins through an http:// URL, or,
// restarted without --join, when its data directory holds a log and no certificate; one that neither joins nor holds
// a log is refused, rather than started as a cluster of its own (with a CA made wherever it runs).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configForSelf } from '../../src/daemon/manager.js';
import { MinkubeError } from '../../src/lib/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-self-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dataDir(name: string, holds: { log?: boolean; tls?: boolean; joinedInsecure?: boolean } = {}): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  if (holds.log === true) writeFileSync(join(d, 'CURRENT'), 'MANIFEST-000002\n');
  if (holds.tls === true) mkdirSync(join(d, 'tls'));
  if (holds.joinedInsecure === true) writeFileSync(join(d, 'insecure-member'), 'joined\n');
  return d;
}

const self = (d: string) => ({ raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: d });

describe('configForSelf', () => {
  it('joining: insecure exactly when the URL is http://', () => {
    expect(configForSelf({ id: 'm4', join: 'http://127.0.0.1:8001', self: self(dataDir('a')) }).insecure).toBe(true);
    expect(configForSelf({ id: 'm4', join: 'https://127.0.0.1:8001', joinToken: 't', self: self(dataDir('b')) }).insecure).toBe(false);
  });

  it('restarted without --join: secure when its data directory holds a certificate, insecure when it joined an insecure cluster', () => {
    expect(configForSelf({ id: 'm4', self: self(dataDir('c', { log: true, tls: true })) }).insecure).toBe(false);
    expect(configForSelf({ id: 'm4', self: self(dataDir('d', { log: true, joinedInsecure: true })) }).insecure).toBe(true);
  });

  it('a log with neither a certificate nor an insecure join (a restored snapshot) is refused, never insecure by omission', () => {
    const d = dataDir('f', { log: true });
    expect(() => configForSelf({ id: 'r1', self: self(d) })).toThrow(`${d} holds no certificate, and this manager never joined an insecure cluster: start it with --config FILE`);
  });

  it('neither joining nor holding a log: CONFIG_INVALID naming --join', () => {
    const d = dataDir('e');
    let err: unknown = null;
    try {
      configForSelf({ id: 'm4', self: self(d) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MinkubeError);
    expect((err as MinkubeError).code).toBe('CONFIG_INVALID');
    expect((err as MinkubeError).message).toBe(`without --config, a manager joins a running cluster (--join URL, with --token for a secure one); ${d} holds no earlier membership`);
  });
});
