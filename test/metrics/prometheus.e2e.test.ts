// A real Prometheus (Debian's package) scrapes a secure 3-manager cluster with a worker, from the prometheus.yml that
// `minkube prometheus-config` writes and a token of deploy/prometheus/metrics-policy.json: every target is up, exactly one manager is leader, and a
// manager cut off from the others (SIGSTOP of both; it stays up and scrapable) reports has_leader 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ProcCluster, eventually, freePort, repoRoot } from '../support/cluster.js';
import { describeWith, minkube, prometheusBin } from './binaries.js';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describeWith(prometheusBin, 'a real Prometheus scraping a secure cluster', () => {
  let cluster: ProcCluster;
  let prometheus: ChildProcess | null = null;
  let promUrl = '';

  /** An instant PromQL query through Prometheus's HTTP API. */
  async function query(promql: string): Promise<Sample[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status: string; data: { result: Sample[] }; error?: string };
    if (body.status !== 'success') throw new Error(`${promql}: ${body.error ?? res.status}`);
    return body.data.result;
  }

  /** The one value of a query answering one series, or undefined while there is none. */
  async function scalar(promql: string): Promise<number | undefined> {
    const r = await query(promql).catch(() => []);
    return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
  }

  beforeAll(async () => {
    cluster = await ProcCluster.create({ managers: 3, workers: 1, secure: true, workerRuntime: 'process' });
    cluster.startAll();
    const leader = await cluster.waitForLeader({ timeoutMs: 180_000 });
    // The scrape token: one of the metrics-only policy (metrics:read and nothing else), as the README says.
    const policy: unknown = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'prometheus', 'metrics-policy.json'), 'utf8'));
    const created = await cluster.http(leader, 'POST', '/v1/auth/tokens', { policy, name: 'prometheus' });
    expect(created.status).toBe(201);
    const promDir = join(cluster.dir, 'prometheus');
    mkdirSync(promDir);
    const tokenFile = join(promDir, 'scrape.token');
    writeFileSync(tokenFile, `${created.body.token as string}\n`);
    const configFile = join(promDir, 'prometheus.yml');
    const cli = await minkube(['prometheus-config', '--config', cluster.configPath, '--out', configFile, '--token-file', tokenFile, '--scrape-interval', '1s', '--rules', join(repoRoot, 'deploy', 'prometheus', 'alerts.yml')]);
    expect(cli.code, cli.stderr).toBe(0);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const log = createWriteStream(join(promDir, 'prometheus.log'));
    prometheus = spawn(prometheusBin, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    prometheus.stdout!.pipe(log);
    prometheus.stderr!.pipe(log);
  }, 400_000);

  afterAll(async () => {
    if (prometheus !== null && prometheus.exitCode === null) {
      const gone = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGKILL');
      await gone;
    }
    await cluster?.cleanup();
  });

  it('scrapes every manager and the worker, and sees exactly one leader', async () => {
    // Four targets: three managers and the worker (through a manager's /v1/workers/w1/metrics).
    await eventually(async () => ((await scalar('count(up{job=~"minkube-.*"} == 1)')) === 4 ? true : undefined), 90_000, 'every target up');
    expect(await scalar('count(up{job=~"minkube-.*"} == 0)')).toBeUndefined();
    await eventually(async () => ((await scalar('sum(minkube_is_leader)')) === 1 ? true : undefined), 30_000, 'sum(minkube_is_leader) == 1');
    expect(await scalar('min(minkube_has_leader)')).toBe(1);
    expect(await scalar('count(minkube_raft_term)')).toBe(3);
    expect(await scalar('sum(minkube_workers{state="ready"}) / count(minkube_workers{state="ready"})')).toBe(1);
    expect(await scalar('count(minkube_heartbeat_duration_seconds_count{node="w1",outcome="ok"})')).toBe(1);
  }, 150_000);

  it('loads the alert rules and evaluates each of them without an error', async () => {
    const health = async (): Promise<string[] | undefined> => {
      const res = await fetch(`${promUrl}/api/v1/rules`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
      if (res === null || !res.ok) return undefined;
      const body = (await res.json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
      const rules = body.data.groups.flatMap((g) => g.rules);
      return rules.length === 9 && rules.every((r) => r.health === 'ok') ? rules.map((r) => r.name) : undefined;
    };
    const names = await eventually(health, 60_000, 'nine rules evaluated with health ok');
    expect(names).toContain('MinkubeNoLeader');
  }, 90_000);

  it("answers every query of the Grafana dashboard, and data for the managers' panels", async () => {
    const dashboard = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'grafana', 'minkube.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr.replaceAll('$managers', 'minkube-managers').replaceAll('$workers', 'minkube-workers') })));
    expect(exprs.length).toBeGreaterThan(30);
    for (const { title, expr } of exprs) await expect(query(expr), `${title}: ${expr}`).resolves.toBeInstanceOf(Array);
    expect((await query('minkube_raft_commit_index{job="minkube-managers"}')).length).toBe(3);
  }, 60_000);

  it('sees has_leader drop to 0 on a manager cut off from the others', async () => {
    const leader = await cluster.waitForLeader({ timeoutMs: 60_000 });
    const isolated = cluster.managerIds.find((id) => id !== leader)!;
    const others = cluster.managerIds.filter((id) => id !== isolated);
    await eventually(async () => ((await scalar(`minkube_has_leader{node="${isolated}"}`)) === 1 ? true : undefined), 30_000, `${isolated} has a leader`);
    for (const id of others) await cluster.signal(id, 'SIGSTOP');
    try {
      await eventually(async () => ((await scalar(`minkube_has_leader{node="${isolated}"}`)) === 0 ? true : undefined), 60_000, `has_leader 0 on ${isolated}`);
      // Still scraped: the drop is a value, not a missing target.
      expect(await scalar(`up{job="minkube-managers",node="${isolated}"}`)).toBe(1);
    } finally {
      for (const id of others) await cluster.signal(id, 'SIGCONT');
    }
    await eventually(async () => ((await scalar(`minkube_has_leader{node="${isolated}"}`)) === 1 ? true : undefined), 60_000, `${isolated} has a leader again`);
  }, 150_000);
});
