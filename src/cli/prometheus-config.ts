// `minkube prometheus-config`: a prometheus.yml that scrapes every manager and worker of a cluster config. In a
// secure cluster over HTTPS with the cluster CA and a bearer token file (a token whose policy allows metrics:read and
// nothing else: metricsPolicy); a worker's API answers only managers' certificates, so a worker is scraped through a
// manager (GET /v1/workers/:id/metrics).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { ClusterConfig } from '../config/cluster.js';
import { writeFileOrFail, writeOut } from './output.js';

/**
 * What a scrape token needs, and all it should hold (deploy/prometheus/metrics-policy.json is this): a viewer token
 * would scrape too, but reads every task's output and every key besides, from a file on the Prometheus host.
 */
export const metricsPolicy = { name: 'metrics-reader', rules: [{ effect: 'allow', resource: 'metrics', verbs: ['read'] }] } as const;

export interface PrometheusConfigOptions {
  /** The cluster CA Prometheus trusts (secure clusters); default `.minkube/ca.crt` beside the config. */
  caFile: string;
  /** A file holding a token with metrics:read (secure clusters). */
  tokenFile: string;
  /** Prometheus duration, e.g. "15s". */
  scrapeInterval: string;
  /** Rule files to load (paths as Prometheus should read them). */
  ruleFiles: readonly string[];
}

/** A YAML scalar: JSON's double-quoted strings are YAML's. */
const q = (s: string): string => JSON.stringify(s);

/** The prometheus.yml text for a cluster: pure, so tests check it with promtool. */
export function prometheusConfigFor(config: ClusterConfig, o: PrometheusConfigOptions): string {
  const secure = !config.insecure;
  const lines: string[] = [
    '# Written by `minkube prometheus-config`: scrapes every manager and worker of the cluster config.',
    'global:',
    `  scrape_interval: ${q(o.scrapeInterval)}`,
    `  evaluation_interval: ${q(o.scrapeInterval)}`,
  ];
  if (o.ruleFiles.length > 0) lines.push('rule_files:', ...o.ruleFiles.map((f) => `  - ${q(f)}`));
  lines.push('scrape_configs:');
  const common = secure
    ? ['    scheme: https', '    tls_config:', `      ca_file: ${q(o.caFile)}`, '    authorization:', '      type: Bearer', `      credentials_file: ${q(o.tokenFile)}`]
    : ['    scheme: http'];
  lines.push('  - job_name: minkube-managers', '    metrics_path: /metrics', ...common, '    static_configs:');
  for (const m of config.managers) lines.push(`      - targets: [${q(m.apiAddress)}]`, '        labels:', `          node: ${q(m.id)}`);
  if (config.workers.length > 0) {
    lines.push('  - job_name: minkube-workers', ...common, '    static_configs:');
    config.workers.forEach((w, i) => {
      if (secure) {
        // Through a manager (spread over them), named as the worker itself.
        const via = config.managers[i % config.managers.length]!;
        lines.push(
          `      - targets: [${q(via.apiAddress)}]`,
          '        labels:',
          `          node: ${q(w.id)}`,
          `          instance: ${q(w.apiAddress)}`,
          `          __metrics_path__: ${q(`/v1/workers/${encodeURIComponent(w.id)}/metrics`)}`,
        );
      } else {
        lines.push(`      - targets: [${q(w.apiAddress)}]`, '        labels:', `          node: ${q(w.id)}`, '          __metrics_path__: "/metrics"');
      }
    });
  }
  return `${lines.join('\n')}\n`;
}

interface Flags {
  config: string;
  out?: string;
  caFile?: string;
  tokenFile?: string;
  scrapeInterval: string;
  rules?: string[];
}

function parseDuration(text: string): string {
  if (!/^[1-9][0-9]{0,5}(ms|s|m|h)$/.test(text)) throw new InvalidArgumentError('expected a Prometheus duration such as 1s, 15s or 1m.');
  return text;
}

export function addPrometheusConfigCommand(program: Command): void {
  program
    .command('prometheus-config')
    .description("write a prometheus.yml that scrapes every manager and worker of a cluster config (https, the cluster CA and a token file unless insecure)")
    .option('--config <file>', 'the cluster config', 'cluster.example.json')
    .option('--out <file>', 'write here instead of stdout')
    .option('--ca-file <path>', "the cluster CA for Prometheus to trust (default: .minkube/ca.crt beside the config)")
    .option('--token-file <path>', 'a file holding a token with metrics:read, e.g. from `minkube token create --policy deploy/prometheus/metrics-policy.json` (default: .minkube/prometheus.token beside the config)')
    .option('--scrape-interval <duration>', 'how often Prometheus scrapes', parseDuration, '15s')
    .option('--rules <file>', 'a rule file to load (repeatable), e.g. deploy/prometheus/alerts.yml', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .action(async (f: Flags) => {
      // Loaded when used: the config schema takes a while to load.
      const { loadClusterConfig } = await import('../config/cluster.js');
      const config = await loadClusterConfig(f.config);
      const tokenFile = resolve(f.tokenFile ?? join(config.clusterDir, 'prometheus.token'));
      const ruleFiles = (f.rules ?? []).map((r) => resolve(r));
      const text = prometheusConfigFor(config, {
        caFile: resolve(f.caFile ?? join(config.clusterDir, 'ca.crt')),
        tokenFile,
        scrapeInterval: f.scrapeInterval,
        ruleFiles,
      });
      if (f.out === undefined) writeOut(text);
      else await writeFileOrFail(f.out, text);
      if (!config.insecure && !existsSync(tokenFile)) {
        // The policy inline: the command may run where deploy/ is not.
        process.stderr.write(
          `note: ${tokenFile} does not exist yet; make a scrape token that reads metrics and nothing else with:\n` +
            `  echo '${JSON.stringify(metricsPolicy)}' > metrics-policy.json\n` +
            `  minkube token create --policy metrics-policy.json --name prometheus > ${tokenFile}\n`,
        );
      }
      // Prometheus takes a glob there too (rules/*.yml): only a plain path is looked for.
      for (const r of ruleFiles.filter((r) => !/[*?[]/.test(r) && !existsSync(r))) process.stderr.write(`note: the rule file ${r} does not exist\n`);
    });
}
