// promtool validates what Minkube ships and writes: the alert rules in deploy/, and the prometheus.yml that
// `minkube prometheus-config` writes for a secure and an insecure cluster (it checks that the CA and token files exist).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ManagerMetrics } from '../../src/manager/metrics.js';
import { repoRoot } from '../support/cluster.js';
import { describeWith, minkube, promtoolBin, run } from './binaries.js';

const dir = mkdtempSync(join(tmpdir(), 'minkube-promtool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const alerts = join(repoRoot, 'deploy', 'prometheus', 'alerts.yml');

function writeConfig(name: string, insecure: boolean): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      ...(insecure ? { insecure: true } : {}),
      managers: [1, 2, 3].map((i) => ({ id: `m${i}`, raftAddress: `127.0.0.${i}:700${i}`, apiAddress: `127.0.0.${i}:800${i}`, dataDir: `m${i}` })),
      workers: [{ id: 'w1', apiAddress: '127.0.0.1:9001', runtime: 'process' }, { id: 'w2', apiAddress: '127.0.0.1:9002', runtime: 'process' }],
    }),
  );
  return path;
}

describeWith(promtoolBin, 'promtool', () => {
  it("passes a manager's /metrics with no lint problem (check metrics exits 0)", async () => {
    const m = new ManagerMetrics();
    const file = join(dir, 'manager.prom');
    writeFileSync(file, await m.registry.render());
    const r = await run('/bin/sh', ['-c', `${JSON.stringify(promtoolBin)} check metrics < ${JSON.stringify(file)}`]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 300_000);

  it('accepts deploy/prometheus/alerts.yml', async () => {
    const r = await run(promtoolBin, ['check', 'rules', alerts]);
    expect(r.stdout + r.stderr).toContain('SUCCESS: 9 rules found');
    expect(r.code).toBe(0);
  }, 300_000);

  it("accepts the config written for a secure cluster (https, the CA, a token file, workers through managers)", async () => {
    const config = writeConfig('secure.json', false);
    const [ca, token, out] = [join(dir, 'ca.crt'), join(dir, 'scrape.token'), join(dir, 'secure.yml')];
    writeFileSync(ca, 'not checked by promtool\n');
    writeFileSync(token, 'mk_x_y\n');
    const cli = await minkube(['prometheus-config', '--config', config, '--out', out, '--ca-file', ca, '--token-file', token, '--rules', alerts, '--scrape-interval', '1s']);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toContain('scheme: https');
    expect(text).toContain(`credentials_file: ${JSON.stringify(token)}`);
    expect(text).toContain('__metrics_path__: "/v1/workers/w2/metrics"');
    const r = await run(promtoolBin, ['check', 'config', out]);
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.code).toBe(0);
  }, 300_000);

  it('accepts the config written for an insecure cluster (plain http, workers scraped directly)', async () => {
    const config = writeConfig('insecure.json', true);
    const cli = await minkube(['prometheus-config', '--config', config]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).not.toContain('https');
    expect(cli.stdout).toContain('- targets: ["127.0.0.1:9002"]');
    const out = join(dir, 'insecure.yml');
    writeFileSync(out, cli.stdout);
    const r = await run(promtoolBin, ['check', 'config', out]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 300_000);

  it('names a missing token file and how to make one; a bad interval is a usage error', async () => {
    const config = writeConfig('notoken.json', false);
    const cli = await minkube(['prometheus-config', '--config', config, '--out', join(dir, 'notoken.yml')]);
    expect(cli.code).toBe(0);
    // A token of the metrics-only policy, not a viewer's (which reads every task's output and every key besides).
    expect(cli.stderr).toContain(`echo '{"name":"metrics-reader","rules":[{"effect":"allow","resource":"metrics","verbs":["read"]}]}' > metrics-policy.json\n`);
    expect(cli.stderr).toContain('minkube token create --policy metrics-policy.json --name prometheus >');
    expect(cli.stderr).not.toContain('--role viewer');
    const bad = await minkube(['prometheus-config', '--config', config, '--scrape-interval', 'often']);
    expect(bad.code).toBe(2);
  }, 300_000);
});

// Needs no promtool: what the command says about the files it names.
it('names a rule file that does not exist, writing its path all the same', async () => {
  const config = writeConfig('norules.json', true);
  const missing = join(dir, 'no-such-dir', 'rules.yml');
  const cli = await minkube(['prometheus-config', '--config', config, '--rules', alerts, '--rules', missing]);
  expect(cli.code).toBe(0);
  expect(cli.stdout).toContain(`  - ${JSON.stringify(missing)}`);
  expect(cli.stderr).toBe(`note: the rule file ${missing} does not exist\n`);
}, 300_000);
