// Services against Docker Swarm in the same run, and the reconciler's cost:
//  1. a service of 50 busybox httpd replicas with an http health check until all are healthy: Minkube (1 manager,
//     2 Docker workers sharing the engine, host networking) vs `docker service create --replicas 50` with the same
//     image and a health check (a one-node swarm: `docker swarm init --advertise-addr 127.0.0.1` if the engine is in
//     none, left again afterwards only then);
//  2. a rolling update of 20 replicas (parallelism 2, monitor 1 s) to a second tag of the image (`docker tag`) until
//     every replica runs it and is healthy, vs `docker service update --image ... --update-parallelism 2`;
//  3. the reconciler alone, in process (the real state machine and decide(), no Raft or HTTP): 1,000 services of 10
//     replicas on 20 in-memory workers placed round-robin, the placements/s from nothing to all running, and the
//     leader's CPU per full reconcile pass over a converged cluster.
// `npx tsx bench/services.ts [--replicas 50] [--update 20] [--interval 2] [--timeout 5] [--start-period 10] [--deadline-s 300] [--services 1000] [--per 10] [--only swarm|reconciler] [--side minkube|swarm|both] [--trace] [--rounds 1] [--sigterm honoured|ignored]`
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { ProcCluster, eventually, sleep } from '../test/support/cluster.js';
import { encodeCommand, type Command } from '../src/kv/commands.js';
import { KvStateMachine } from '../src/kv/state-machine.js';
import { finalTaskStates } from '../src/contracts/task-model.js';
import { decide, replicaState } from '../src/manager/service-decide.js';
import { roundRobin } from '../src/scheduler/round-robin.js';
import { addSpreadCounts, placementTask } from '../src/manager/placement-input.js';
import type { SummaryRow } from './summary.js';
import { arg, percentile, printResult, printTable, round } from './support.js';

const image = 'minkube-busybox:latest';
/**
 * Both health checks forgive failures in the first seconds (same meaning in both: a success in them counts). Without
 * it, on a loaded machine Swarm kills replicas that are slow to answer their first checks and never converges.
 */
const startPeriodS = Number(arg('start-period', '10'));
/** Check every intervalS, each bounded by timeoutS (Swarm's checks are docker execs, slow on a loaded engine). */
const intervalS = Number(arg('interval', '2'));
const timeoutS = Number(arg('timeout', '5'));
/** A side that has not converged by then is reported as not converging rather than waited on. */
const convergeMsMax = Number(arg('deadline-s', '300')) * 1000;
/** --trace: print where each Minkube replica's time went (see printTrace). */
const trace = process.argv.includes('--trace');
const image2 = 'minkube-busybox:services-bench-v2';
/**
 * The same command on both sides, and the same stop grace (10 s: Swarm's default --stop-grace-period and Minkube's
 * tasks.stopTimeoutMs). busybox httpd as PID 1 ignores SIGTERM, so every stop would wait out the grace on both sides
 * and a rolling update would measure little but 10 s per batch; a server honours SIGTERM, so by default the shell
 * traps it and exits (`--sigterm ignored`: the bare `exec httpd` that waits out the grace).
 */
const sigtermIgnored = arg('sigterm', 'honoured') === 'ignored';
const httpd = (port: string): string => sigtermIgnored
  ? `mkdir -p /www && echo ok > /www/index.html && exec busybox httpd -f -p ${port} -h /www`
  : `mkdir -p /www && echo ok > /www/index.html; trap "exit 0" TERM; busybox httpd -f -p ${port} -h /www & wait`;

function docker(args: string[], allowFail = false): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return (r.stdout ?? '').trim();
}

function dockerUp(): boolean {
  return spawnSync('docker', ['image', 'inspect', image], { stdio: 'ignore' }).status === 0;
}

// ---- Minkube ----

async function minkube(replicas: number, updateReplicas: number): Promise<{ createS: number; updateS: number }> {
  const cluster = await ProcCluster.create({
    managers: 1, workers: 2, workerRuntime: 'docker',
    // A worker is judged lost after the same silence on both sides: Swarm's dispatcher, heartbeats every 5 s and a node
    // down after 3 of them missed (15 s); Minkube's default 2 s + 1 s is shorter than the 2-3 s a worker's event loop
    // was seen to stall (nodejs_eventloop_lag_max_seconds, little CPU) on this loaded machine during the burst of
    // starts, which moved its 25 replicas elsewhere (placed again at 7-13 s, not 0.4 s).
    extra: { tasks: { workerHeartbeatIntervalMs: 200, workerTtlMs: 10_000, lostGraceMs: 5000, reconcileIntervalMs: 500, backoffBaseMs: 200, backoffCapMs: 5000 } },
  });
  const m = 'm1';
  try {
    cluster.startAll();
    await cluster.waitForLeader({ timeoutMs: 120_000 });
    await eventually(async () => {
      const r = await cluster.http(m, 'GET', '/v1/workers');
      return ((r.body.items ?? []) as { state: string }[]).filter((w) => w.state === 'ready').length === 2 ? true : undefined;
    }, 120_000, 'both workers ready');
    const healthCheck = { type: 'http', port: 'http', path: '/', intervalS, timeoutS, retries: 3, startPeriodS };
    const body = (name: string, n: number) => ({
      name, replicas: n, ports: [{ name: 'http' }], healthCheck, update: { parallelism: 2, monitorS: 1, delayS: 0 },
      task: { image, command: ['sh', '-c', httpd('"$PORT"')], labels: { 'minkube.bench': 'services' } },
    });
    /** taskId -> when the bench first saw it healthy (its clock: the same host's as the leader's history times). */
    const healthySeenMs = new Map<string, number>();
    const healthyOf = async (name: string, version: number): Promise<number> => {
      const r = await cluster.http(m, 'GET', `/v1/services/${name}?consistency=stale`, undefined, 10_000);
      const tasks = (r.body.tasks ?? []) as { taskId: string; version: number; state: string; health: string | null; desiredState: string }[];
      const healthy = tasks.filter((t) => t.version === version && t.state === 'running' && t.health === 'healthy' && t.desiredState === 'run');
      for (const t of healthy) if (!healthySeenMs.has(t.taskId)) healthySeenMs.set(t.taskId, Date.now());
      return healthy.length;
    };
    const t0 = performance.now();
    const t0Ms = Date.now();
    const created = await cluster.http(m, 'POST', '/v1/services', body('web', replicas), 10_000);
    if (created.status !== 201) throw new Error(`create: ${JSON.stringify(created.body)}`);
    await eventually(async () => ((await healthyOf('web', 1)) === replicas ? true : undefined), convergeMsMax, `${replicas} healthy replicas`);
    const createS = (performance.now() - t0) / 1000;
    if (trace) await printTrace(cluster, m, 'web', t0Ms, healthySeenMs);
    await cluster.http(m, 'DELETE', '/v1/services/web');

    const u = await cluster.http(m, 'POST', '/v1/services', body('upd', updateReplicas), 10_000);
    if (u.status !== 201) throw new Error(`create upd: ${JSON.stringify(u.body)}`);
    await eventually(async () => ((await healthyOf('upd', 1)) === updateReplicas ? true : undefined), convergeMsMax, 'the update service healthy');
    const t1 = performance.now();
    const t1Ms = Date.now();
    const patched = await cluster.http(m, 'PATCH', '/v1/services/upd', { task: { image: image2, command: ['sh', '-c', httpd('"$PORT"')], labels: { 'minkube.bench': 'services' } } }, 10_000);
    if (patched.status !== 200) throw new Error(`update: ${JSON.stringify(patched.body)}`);
    await eventually(async () => {
      // Asked every time, so the trace sees each replica turn healthy, not only the last ones.
      const healthyNow = await healthyOf('upd', 2);
      const r = await cluster.http(m, 'GET', '/v1/services/upd?consistency=stale', undefined, 10_000);
      const done = r.body.rollout?.state === 'stable' && r.body.version === 2 && (r.body.tasks as unknown[]).length === updateReplicas;
      return done && healthyNow === updateReplicas ? true : undefined;
    }, convergeMsMax, 'the rolling update');
    const updateS = (performance.now() - t1) / 1000;
    if (trace) await printTrace(cluster, m, 'upd', t1Ms, healthySeenMs);
    await cluster.http(m, 'DELETE', '/v1/services/upd');
    await sleep(3000);
    return { createS: round(createS), updateS: round(updateS) };
  } finally {
    await cluster.cleanup();
    const ids = docker(['ps', '-aq', '--filter', 'label=minkube.bench=services'], true).split('\n').filter((x) => x !== '');
    if (ids.length > 0) docker(['rm', '-f', ...ids], true);
    docker(['rm', '-f', 'minkube-sandbox-w1', 'minkube-sandbox-w2'], true);
  }
}

/**
 * --trace: where the time of each replica went, from the bench's start (ms; median / 90th / max over the replicas):
 * the replica's record made (the service loop's decision committed), placed (scheduled), the leader learning it
 * runs, and the bench first seeing it healthy.
 */
async function printTrace(cluster: ProcCluster, m: string, name: string, t0Ms: number, healthySeenMs: ReadonlyMap<string, number>): Promise<void> {
  const r = await cluster.http(m, 'GET', `/v1/services/${name}`, undefined, 10_000);
  const ids = ((r.body.tasks ?? []) as { taskId: string }[]).map((t) => t.taskId);
  const phases: Record<string, number[]> = { created: [], scheduled: [], running: [], healthy: [] };
  for (const id of ids) {
    const t = await cluster.http(m, 'GET', `/v1/tasks/${id}`, undefined, 10_000);
    const history = (t.body.history ?? []) as { state: string; atMs: number }[];
    phases.created!.push(Date.parse(t.body.createdAt as string) - t0Ms);
    const at = (state: string): number | undefined => history.findLast((h) => h.state === state)?.atMs;
    const scheduled = at('scheduled');
    const running = at('running');
    if (scheduled !== undefined) phases.scheduled!.push(scheduled - t0Ms);
    if (running !== undefined) phases.running!.push(running - t0Ms);
    const healthy = healthySeenMs.get(id);
    if (healthy !== undefined) phases.healthy!.push(healthy - t0Ms);
  }
  const p = (xs: number[], q: number): number => percentile([...xs].sort((a, b) => a - b), q);
  printTable(`trace of ${name}: ms from the start`, Object.entries(phases).map(([phase, xs]) => ({
    phase, replicas: xs.length, min: p(xs, 0), p50: p(xs, 50), p90: p(xs, 90), max: p(xs, 100),
  })));
}

// ---- Docker Swarm ----

async function swarm(replicas: number, updateReplicas: number): Promise<{ createS: number; updateS: number }> {
  const wasActive = docker(['info', '--format', '{{.Swarm.LocalNodeState}}']) === 'active';
  if (!wasActive) docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  const health = ['--health-cmd', 'wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1', '--health-interval', `${intervalS}s`, '--health-timeout', `${timeoutS}s`, '--health-retries', '3', '--health-start-period', `${startPeriodS}s`];
  const healthy = (name: string, img: string): number =>
    docker(['ps', '--filter', `label=com.docker.swarm.service.name=${name}`, '--filter', 'health=healthy', '--format', '{{.Image}}'], true)
      .split('\n')
      .filter((x) => x === img).length;
  try {
    const t0 = performance.now();
    docker(['service', 'create', '--detach', '--name', 'mkbench', '--replicas', String(replicas), ...health, image, 'sh', '-c', httpd('8080')]);
    await eventually(async () => (healthy('mkbench', image) === replicas ? true : undefined), convergeMsMax, `${replicas} healthy swarm tasks`);
    const createS = (performance.now() - t0) / 1000;
    docker(['service', 'rm', 'mkbench']);
    docker(['service', 'create', '--detach', '--name', 'mkupd', '--replicas', String(updateReplicas), ...health, '--update-monitor', '1s', image, 'sh', '-c', httpd('8080')]);
    await eventually(async () => (healthy('mkupd', image) === updateReplicas ? true : undefined), convergeMsMax, 'the swarm update service healthy');
    const t1 = performance.now();
    docker(['service', 'update', '--detach', '--image', image2, '--update-parallelism', '2', '--update-delay', '0s', '--update-monitor', '1s', 'mkupd']);
    await eventually(async () => {
      const state = docker(['service', 'inspect', '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}', 'mkupd'], true);
      return state === 'completed' && healthy('mkupd', image2) === updateReplicas ? true : undefined;
    }, convergeMsMax, 'the swarm rolling update');
    const updateS = (performance.now() - t1) / 1000;
    return { createS: round(createS), updateS: round(updateS) };
  } finally {
    docker(['service', 'rm', 'mkbench'], true);
    docker(['service', 'rm', 'mkupd'], true);
    await sleep(3000);
    if (!wasActive) docker(['swarm', 'leave', '--force'], true);
  }
}

interface Sides {
  readonly createS: number;
  readonly updateS: number;
}

// ---- the reconciler alone ----

function reconciler(services: number, per: number): { placementsPerS: number; passMs: number; decisionsPerS: number; convergeS: number } {
  const sm = new KvStateMachine();
  let index = 0;
  let seq = 0;
  let now = 1_000_000;
  const run = (cmd: Command): void => {
    const r = sm.apply(++index, encodeCommand({ clientId: 'bench', seq: ++seq, cmd }));
    if (!r.ok) throw new Error(`${cmd.op}: ${r.message}`);
  };
  const workers = Array.from({ length: 20 }, (_, i) => `w${String(i).padStart(2, '0')}`);
  for (const w of workers) run({ op: 'worker.register', workerId: w, apiAddress: `127.0.0.1:${9000 + workers.indexOf(w)}`, runtime: 'memory', atMs: now });
  const update = { parallelism: 2, delayS: 0, monitorS: 1, failureAction: 'rollback' as const, order: 'stop-first' as const };
  const names = Array.from({ length: services }, (_, i) => `svc-${String(i).padStart(5, '0')}`);
  for (const name of names) run({ op: 'service.create', name, atMs: now, replicas: per, spec: { image: 'img', command: ['serve'] }, update });
  let ids = 0;
  let decisions = 0;
  let decideMs = 0;
  const pass = (): number => {
    let changed = 0;
    for (const name of names) {
      const s = sm.services.service(name)!;
      const t = performance.now();
      const replicas = [...sm.tasks.idsOfService(name)].map((id) => sm.tasks.task(id)!).filter((x) => !finalTaskStates.has(x.state)).map(replicaState);
      const d = decide(s, replicas, now);
      decideMs += performance.now() - t;
      decisions++;
      if (d.create === 0 && d.stop.length === 0 && d.rollout === undefined) continue;
      const create = Array.from({ length: d.create }, () => `t${String(++ids).padStart(9, '0')}`);
      run({ op: 'service.reconcile', name, atMs: now, ifRevision: s.revision, create, stop: [...d.stop], ...(d.rollout === undefined ? {} : { rollout: d.rollout }) });
      changed++;
    }
    return changed;
  };
  const t0 = performance.now();
  let placed = 0;
  let placeMs = 0;
  for (let round = 0; round < 20 && (pass() > 0 || sm.tasks.countIn('pending') > 0); round++) {
    // Place every pending replica round-robin in batches of 1000, as the scheduler loop does; then the workers start them.
    const tp = performance.now();
    for (;;) {
      const pending = [...sm.tasks.idsIn('pending')].slice(0, 1000);
      if (pending.length === 0) break;
      // As the scheduler loop does: each replica spread by its service's copies per worker.
      const tasks = pending.map((id) => placementTask(sm.tasks.task(id)!));
      const spread = new Map<string, Map<string, number>>();
      addSpreadCounts(sm.tasks, tasks, spread);
      const decision = roundRobin.place({
        tasks,
        workers: workers.map((id) => ({ id, activeTasks: sm.tasks.activeCount(id), cpuUtilization: null })),
        cursor: sm.tasks.cursor,
        spread,
      });
      run({ op: 'task.place', term: 1, atMs: now, cursor: decision.cursor, placements: decision.placements });
      placed += decision.placements.length;
    }
    placeMs += performance.now() - tp;
    for (const w of workers) {
      const reports = sm.tasks.activeOn(w).filter((t) => t.state === 'scheduled').map((t) => ({
        taskId: t.id, workerId: w, attempt: t.attempt, term: t.term, state: 'running' as const, containerId: `c-${t.id}`, exitCode: null, error: null, retryAtMs: now,
      }));
      if (reports.length > 0) run({ op: 'task.report', atMs: now, reports });
    }
    now += 100;
  }
  const convergeS = (performance.now() - t0) / 1000;
  const running = sm.tasks.countIn('running');
  if (running !== services * per) throw new Error(`converged to ${running} running, not ${services * per}`);
  // A full pass over the converged cluster: what the leader pays every reconcileIntervalMs.
  const cpu0 = process.cpuUsage();
  decisions = 0;
  decideMs = 0;
  const passes = 5;
  for (let i = 0; i < passes; i++) pass();
  const cpu = process.cpuUsage(cpu0);
  return {
    placementsPerS: round(placed / (placeMs / 1000), 0),
    passMs: round((cpu.user + cpu.system) / 1000 / passes, 1),
    decisionsPerS: round(decisions / (decideMs / 1000), 0),
    convergeS: round(convergeS),
  };
}

async function main(): Promise<void> {
  const replicas = Number(arg('replicas', '50'));
  const updateReplicas = Number(arg('update', '20'));
  const services = Number(arg('services', '1000'));
  const per = Number(arg('per', '10'));
  const only = arg('only', '');
  /** One side alone (profiling); ratios need both. */
  const side = arg('side', 'both');
  const roundsN = Math.max(1, Number(arg('rounds', '1')));
  const summary: SummaryRow[] = [];
  const data: Record<string, unknown> = {};
  if (only === '' || only === 'reconciler') {
    const r = reconciler(services, per);
    data.reconciler = r;
    printTable(`reconciler, ${services} services x ${per} replicas on 20 in-memory workers (in process)`, [
      { metric: 'placements/s (round-robin, through the state machine)', value: r.placementsPerS },
      { metric: 'leader CPU per full reconcile pass (ms)', value: r.passMs },
      { metric: 'decisions/s', value: r.decisionsPerS },
      { metric: 'nothing to all running (s)', value: r.convergeS },
    ]);
    summary.push({ metric: `service placements/s, ${services * per} replicas`, unit: '/s', value: r.placementsPerS, better: 'higher' });
    summary.push({ metric: `leader CPU per reconcile pass, ${services} services`, unit: 'ms', value: r.passMs, better: 'lower' });
  }
  if (only === '' || only === 'swarm') {
    if (!dockerUp()) {
      console.log(`skipped: no Docker engine or no ${image}`);
      summary.push({ metric: `service of ${replicas} until healthy`, unit: 's', value: null, better: 'lower', note: 'skipped: no Docker' });
    } else {
      docker(['tag', image, image2]);
      try {
        const skipped = { createS: Number.NaN, updateS: Number.NaN };
        const runMinkube = async (): Promise<Sides> => {
          const r = side === 'swarm' ? skipped : await minkube(replicas, updateReplicas);
          console.log(`minkube: ${JSON.stringify(r)} (load ${loadavg()[0]!.toFixed(1)})`);
          return r;
        };
        const runSwarm = async (): Promise<Sides> => {
          const r = side === 'minkube' ? skipped : await swarm(replicas, updateReplicas).catch((err: unknown) => {
            console.log(`swarm did not converge: ${(err as Error).message}`);
            return skipped;
          });
          console.log(`swarm: ${JSON.stringify(r)} (load ${loadavg()[0]!.toFixed(1)})`);
          return r;
        };
        // On a shared machine the load moves within minutes: each round swaps which side goes first, and the ratios
        // are taken per round and their median reported.
        const rounds: { minkube: Sides; swarm: Sides; load: number }[] = [];
        for (let i = 0; i < roundsN; i++) {
          const load = loadavg()[0]!;
          if (i % 2 === 0) {
            const mk1 = await runMinkube();
            rounds.push({ minkube: mk1, swarm: await runSwarm(), load });
          } else {
            const sw1 = await runSwarm();
            rounds.push({ swarm: sw1, minkube: await runMinkube(), load });
          }
        }
        const median = (xs: number[]): number => {
          const sorted = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
          const mid = (sorted.length - 1) / 2;
          return sorted.length === 0 ? Number.NaN : (sorted[Math.floor(mid)]! + sorted[Math.ceil(mid)]!) / 2;
        };
        const mk = { createS: median(rounds.map((r) => r.minkube.createS)), updateS: median(rounds.map((r) => r.minkube.updateS)) };
        const sw = { createS: median(rounds.map((r) => r.swarm.createS)), updateS: median(rounds.map((r) => r.swarm.updateS)) };
        data.rounds = rounds;
        data.minkube = mk;
        data.swarm = sw;
        const sigterm = sigtermIgnored ? 'ignored' : 'honoured';
        data.sigterm = sigterm;
        printTable(`services vs Docker Swarm (same engine; ${roundsN} round(s), each side first in turn; SIGTERM ${sigterm})`, rounds.flatMap((r, i) => [
          { round: i + 1, load: round(r.load, 1), metric: `${replicas} replicas until all healthy (s)`, minkube: r.minkube.createS, swarm: r.swarm.createS, ratio: round(r.minkube.createS / r.swarm.createS) },
          { round: i + 1, load: round(r.load, 1), metric: `rolling update of ${updateReplicas}, parallelism 2 (s)`, minkube: r.minkube.updateS, swarm: r.swarm.updateS, ratio: round(r.minkube.updateS / r.swarm.updateS) },
        ]));
        const createRatio = median(rounds.map((r) => r.minkube.createS / r.swarm.createS));
        const updateRatio = median(rounds.map((r) => r.minkube.updateS / r.swarm.updateS));
        data.ratios = { create: round(createRatio), update: round(updateRatio) };
        console.log(`median ratios (Minkube / Swarm, per round): create ${round(createRatio)}, update ${round(updateRatio)}`);
        summary.push({ metric: `service of ${replicas} replicas until healthy`, unit: 's', value: mk.createS, peer: sw.createS, better: 'lower', note: 'peer: Docker Swarm' });
        summary.push({ metric: `rolling update of ${updateReplicas}, parallelism 2`, unit: 's', value: mk.updateS, peer: sw.updateS, better: 'lower', note: 'peer: Docker Swarm' });
      } finally {
        docker(['rmi', image2], true);
      }
    }
  }
  printResult('services', data, summary);
}

await main();
