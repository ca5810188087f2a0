// Snapshots (issue 5): 3 managers holding N keys (~100-byte values) and N pending task records (no workers), with
// snapshots taken every `--threshold` entries. Measures RSS, a follower's restart (SIGKILL -> ready and caught up,
// from its snapshot plus the log after it), and a new member joining by snapshot (start -> caught up -> voter).
// `npx tsx bench/snapshot.ts [--keys 100000] [--tasks 100000] [--threshold 20000] [--clients 128] [--restarts 1] [--restart-vs DIR] [--quiet-s 30] [--quick]`
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync, statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { ProcCluster, eventually, freePort, httpJson, minkubeBin, sleep } from '../test/support/cluster.js';
import { breakdownOf, probeArgs, rssMiB, type MemoryBreakdown } from './mem-breakdown.js';
import { median, type SummaryRow } from './summary.js';
import { BenchClient, arg, flag, printResult, printTable, round } from './support.js';

interface Sizes {
  keys: number;
  tasks: number;
  thresholdEntries: number;
  clients: number;
  /** How many times the follower is restarted (--restarts, default 1); the median run is reported. */
  restarts: number;
  /** Another checkout (--restart-vs DIR) whose build restarts the follower too, alternating with this one. */
  restartVs: string | null;
  /** Seconds the cluster is left quiet after the load before RSS is read again (--quiet-s, default 30). */
  quietS: number;
}

export interface SnapshotBenchResult extends Sizes {
  leader: string;
  follower: string;
  load: { keysSeconds: number; tasksSeconds: number; retries: number };
  /** Elections won while loading and settling (the leader's term after minus before). */
  leaderChanges: number;
  /** The longest each manager's event loop was held during the load (prom-client's nodejs_eventloop_lag_max_seconds, in ms). */
  loopLagMaxMs: Record<string, number | null>;
  /** The leader's latest snapshot: its index and the size of its file on disk. */
  snapshot: { index: number; fileBytes: number; takeMs: number | null };
  /** RSS as found, and after a full garbage collection (what each holds live; see breakdownOf's afterGc). */
  rssMiB: {
    leader: number;
    follower: number;
    /** After `quietS` seconds with no requests: what V8 gave back once the load stopped. */
    leaderQuiet: number;
    followerQuiet: number;
    leaderAfterGc: number;
    followerAfterGc: number;
    followerAfterRestart: number;
    joiner: number;
  };
  /** Where the leader's and the follower's bytes are (after the load), and the restarted follower's. */
  breakdown: {
    leader: MemoryBreakdown | null;
    follower: MemoryBreakdown | null;
    leaderAfterGc: MemoryBreakdown | null;
    followerAfterGc: MemoryBreakdown | null;
    followerAfterRestart: MemoryBreakdown | null;
  };
  /**
   * From the start (ms): the restarted log's "transport listening" (the process is up: Node and tsx booted), "raft
   * state loaded" (snapshot and log read), "manager started", then GET /ready 200, then caught up.
   */
  restart: { bootMs: number | null; stateLoadedMs: number | null; startedMs: number | null; readyMs: number; caughtUpMs: number; targetIndex: number; readyRunsMs?: number[] };
  join: JoinTiming;
}

interface JoinTiming {
  targetIndex: number;
  /** From spawning the new manager until its appliedIndex reaches the leader's commitIndex at the spawn. */
  caughtUpMs: number;
  /** ... until the leader lists it as a voter. */
  voterMs: number;
  /** From the start to the joiner's "receiving a snapshot" (process start, join request, learner added). */
  startToReceivingMs: number | null;
  /** The leader's own measure of the transfer ("snapshot sent", ms), and the joiner's log: receiving -> installed. */
  sentMs: number | null;
  receiveToInstalledMs: number | null;
  sentBytes: number | null;
}

const retryable = new Set([0, 429, 503, 504]);

/** Runs `count` requests with `clients` in flight, retrying the ones that failed passingly; returns the retries. */
async function fill(count: number, clients: number, send: (i: number) => Promise<number>): Promise<number> {
  let next = 0;
  let retries = 0;
  const failed: number[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (;;) {
        const i = failed.pop() ?? (next < count ? next++ : undefined);
        if (i === undefined) return;
        const status = await send(i).catch(() => 0);
        if (status === 200 || status === 201) continue;
        if (!retryable.has(status)) throw new Error(`request ${i} answered ${status}`);
        retries++;
        failed.push(i);
        await sleep(20);
      }
    }),
  );
  return retries;
}

/** A keep-alive POST with headers (BenchClient sends none): the status only. */
function post(agent: Agent, url: URL, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', timeout: timeoutMs, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Each manager's nodejs_eventloop_lag_max_seconds in ms: the longest stall since the last read (prom-client resets it). */
async function loopLagMaxMs(cluster: ProcCluster): Promise<Record<string, number | null>> {
  const out: Record<string, number | null> = {};
  for (const id of cluster.managerIds) {
    const text = await fetch(new URL('/metrics', cluster.url(id))).then((r) => r.text()).catch(() => '');
    const m = /^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
    out[id] = m === null ? null : round(Number(m[1]) * 1000, 0);
  }
  return out;
}

async function load(cluster: ProcCluster, leader: string, s: Sizes): Promise<SnapshotBenchResult['load']> {
  const client = new BenchClient(s.clients);
  const agent = new Agent({ keepAlive: true, maxSockets: s.clients, maxFreeSockets: s.clients });
  const base = cluster.url(leader);
  const value = JSON.stringify({ value: 'v'.repeat(100) });
  try {
    const t0 = performance.now();
    let retries = await fill(s.keys, s.clients, async (i) => (await client.send(new URL(`/v1/kv/key-${i}`, base), 'PUT', value, 10_000)).status);
    const t1 = performance.now();
    console.log(`${s.keys} keys written in ${round((t1 - t0) / 1000, 1)} s`);
    const tasksUrl = new URL('/v1/tasks', base);
    retries += await fill(s.tasks, s.clients, async (i) => {
      const spec = JSON.stringify({ name: `bench-${i}`, image: 'busybox:latest', command: ['sleep', '3600'], env: { INDEX: String(i) } });
      return post(agent, tasksUrl, spec, { 'idempotency-key': `bench-task-${i}` }, 10_000);
    });
    const t2 = performance.now();
    console.log(`${s.tasks} tasks submitted in ${round((t2 - t1) / 1000, 1)} s (${retries} retries)`);
    return { keysSeconds: round((t1 - t0) / 1000, 1), tasksSeconds: round((t2 - t1) / 1000, 1), retries };
  } finally {
    client.close();
    agent.destroy();
  }
}

interface ClusterView {
  role: string;
  term: number;
  leaderId: string | null;
  commitIndex: number;
  appliedIndex: number;
  snapshotIndex: number;
}

async function view(baseUrl: string): Promise<ClusterView | null> {
  const r = await httpJson(baseUrl, 'GET', '/v1/cluster', undefined, 2000).catch(() => null);
  return r?.status === 200 ? (r.body as ClusterView) : null;
}

/** Polls until the manager at baseUrl has applied through `index`; the ms since `since`. */
async function caughtUp(baseUrl: string, index: number, since: number, what: string): Promise<number> {
  await eventually(async () => ((await view(baseUrl))?.appliedIndex ?? -1) >= index || undefined, 600_000, what);
  return round(performance.now() - since, 0);
}

/** The newest snapshot file's size in a manager's data directory (names sort as snapshots do). */
function snapshotFileBytes(dataDir: string): number {
  const dir = join(dataDir, 'snapshots');
  const names = readdirSync(dir).filter((n) => n.endsWith('.snap')).sort();
  const newest = names.at(-1);
  return newest === undefined ? 0 : statSync(join(dir, newest)).size;
}

/** The pino lines of a manager's log with this message. */
function logLines(path: string, msg: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
/** A log line's time (pino's ISO string) in epoch ms. */
const timeMs = (line: Record<string, unknown> | undefined): number | null => (typeof line?.time === 'string' ? Date.parse(line.time) : null);

/**
 * Waits for an agreed leader with a snapshot, then for every manager to apply what it committed and to hold a
 * snapshot too; returns the leader (it may have changed during the load).
 */
async function settle(cluster: ProcCluster): Promise<string> {
  const leader = await cluster.waitForLeader({ timeoutMs: 120_000 });
  const commit = await eventually(async () => {
    const v = await view(cluster.url(leader));
    return v !== null && v.snapshotIndex > 0 ? v.commitIndex : undefined;
  }, 120_000, 'the leader to take a snapshot');
  for (const id of cluster.managerIds) {
    await caughtUp(cluster.url(id), commit, 0, `${id} to apply through ${commit}`);
    await eventually(async () => (((await view(cluster.url(id)))?.snapshotIndex ?? 0) > 0 ? true : undefined), 120_000, `${id} to take a snapshot`);
  }
  return cluster.waitForLeader();
}

/** SIGKILL a follower and start it again: ms until GET /ready is 200, and until it applied the leader's commit. */
async function restartFollower(cluster: ProcCluster, leader: string, follower: string, bin?: string): Promise<SnapshotBenchResult['restart']> {
  await cluster.signal(follower, 'SIGKILL');
  const targetIndex = (await view(cluster.url(leader)))!.commitIndex;
  const [t0, wall0] = [performance.now(), Date.now()];
  cluster.start(follower, [], bin === undefined ? {} : { bin });
  // Polled every 5 ms (eventually() waits 50 ms between tries, which would round the time up by up to that).
  for (;;) {
    if ((await cluster.http(follower, 'GET', '/ready', undefined, 1000).catch(() => null))?.status === 200) break;
    if (performance.now() - t0 > 600_000) throw new Error(`timed out waiting for ${follower} to be ready`);
    await sleep(5);
  }
  const readyMs = round(performance.now() - t0, 0);
  const caughtUpMs = await caughtUp(cluster.url(follower), targetIndex, t0, `${follower} to catch up`);
  await sleep(200); // the log lines are flushed through pipes
  const logPath = join(cluster.dir, `${follower}.log`);
  const since = (msg: string): number | null => {
    const t = timeMs(logLines(logPath, msg).at(-1));
    return t === null || t < wall0 ? null : t - wall0;
  };
  return { bootMs: since('transport listening'), stateLoadedMs: since('raft state loaded'), startedMs: since('manager started'), readyMs, caughtUpMs, targetIndex };
}

/** A manager started with --join, outside the config; the caller kills it. */
async function spawnJoiner(cluster: ProcCluster, via: string): Promise<{ proc: ChildProcess; url: string; logPath: string }> {
  const host = '127.0.0.4';
  const [raftPort, apiPort] = [await freePort(host), await freePort(host)];
  const logPath = join(cluster.dir, 'm4.log');
  const log = createWriteStream(logPath, { flags: 'a' });
  const args = ['manager', '--id', 'm4', '--join', via, '--raft-address', `${host}:${raftPort}`, '--api-address', `${host}:${apiPort}`, '--data-dir', join(cluster.dir, 'm4'), '--config', cluster.configPath];
  const proc = spawn(process.execPath, [minkubeBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MINKUBE_LOG_LEVEL: process.env.MINKUBE_LOG_LEVEL ?? 'info' } });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log, { end: false });
  return { proc, url: `http://${host}:${apiPort}`, logPath };
}

async function isVoter(leaderUrl: string, id: string): Promise<true | undefined> {
  const r = await httpJson(leaderUrl, 'GET', '/v1/cluster/members', undefined, 2000).catch(() => null);
  const members = (r?.status === 200 ? r.body.members : []) as { id: string; voter: boolean }[];
  return members.some((m) => m.id === id && m.voter) ? true : undefined;
}

/** Starts m4 with --join and times it to caught up and to voter; leaves it running in `joiner` for the RSS. */
async function joinNewMember(cluster: ProcCluster, leader: string, joiner: { proc: ChildProcess | null; url: string }): Promise<JoinTiming> {
  const targetIndex = (await view(cluster.url(leader)))!.commitIndex;
  const [t0, wall0] = [performance.now(), Date.now()];
  const j = await spawnJoiner(cluster, cluster.url(leader));
  joiner.proc = j.proc;
  joiner.url = j.url;
  const caughtUpMs = await caughtUp(j.url, targetIndex, t0, 'the new manager m4 to catch up');
  await eventually(() => isVoter(cluster.url(leader), 'm4'), 600_000, 'm4 to become a voter');
  const voterMs = round(performance.now() - t0, 0);
  await sleep(200); // the log lines are flushed through pipes
  const sent = logLines(join(cluster.dir, `${leader}.log`), 'snapshot sent').filter((l) => l.peer === 'm4').at(-1);
  const receiving = logLines(j.logPath, 'receiving a snapshot').at(-1);
  const installed = logLines(j.logPath, 'snapshot installed').at(-1);
  const [rt, it] = [timeMs(receiving), timeMs(installed)];
  return {
    targetIndex,
    caughtUpMs,
    voterMs,
    startToReceivingMs: rt === null ? null : rt - wall0,
    sentMs: num(sent?.ms),
    receiveToInstalledMs: rt !== null && it !== null ? it - rt : null,
    sentBytes: num(sent?.sizeBytes),
  };
}

export async function benchSnapshot(s: Sizes): Promise<SnapshotBenchResult> {
  const cluster = await ProcCluster.create({ managers: 3, nodeArgs: probeArgs, extra: { raft: { snapshotThresholdEntries: s.thresholdEntries } } });
  const joiner: { proc: ChildProcess | null; url: string } = { proc: null, url: '' };
  try {
    cluster.startAll();
    const first = await cluster.waitForLeader();
    const termBefore = (await view(cluster.url(first)))!.term;
    await loopLagMaxMs(cluster);
    const loaded = await load(cluster, first, s);
    const loopLag = await loopLagMaxMs(cluster);
    console.log(`longest event-loop stall during the load (ms): ${JSON.stringify(loopLag)}`);
    const leader = await settle(cluster);
    await sleep(1000);
    const follower = cluster.managerIds.find((id) => id !== leader)!;
    const rssLeader = rssMiB(cluster.node(leader).proc?.pid);
    const rssFollower = rssMiB(cluster.node(follower).proc?.pid);
    const [leaderBytes, followerBytes] = [await breakdownOf(cluster.node(leader).proc?.pid), await breakdownOf(cluster.node(follower).proc?.pid)];
    await sleep(s.quietS * 1000);
    const rssLeaderQuiet = rssMiB(cluster.node(leader).proc?.pid);
    const rssFollowerQuiet = rssMiB(cluster.node(follower).proc?.pid);
    const leaderLive = await breakdownOf(cluster.node(leader).proc?.pid, { afterGc: true });
    const followerLive = await breakdownOf(cluster.node(follower).proc?.pid, { afterGc: true });
    const leaderView = (await view(cluster.url(leader)))!;
    const leaderChanges = leaderView.term - termBefore;
    const taken = logLines(join(cluster.dir, `${leader}.log`), 'snapshot taken').at(-1);
    const snapshot = { index: leaderView.snapshotIndex, fileBytes: snapshotFileBytes(join(cluster.dir, leader)), takeMs: num(taken?.ms) };
    console.log(`leader ${leader} (${leaderChanges} election(s) since ${first} led at the start); snapshot at index ${snapshot.index} (commit ${leaderView.commitIndex}), ${round(snapshot.fileBytes / 2 ** 20, 1)} MiB on disk; restarting ${follower}`);
    // --restarts N: the follower is restarted N times (each after it caught up); the run with the median ready time is
    // reported, and every run's ready time with it.
    // --restart-vs DIR: restarts alternate with another checkout's build (DIR/bin/minkube.js), on the same data.
    const restarts: SnapshotBenchResult['restart'][] = [];
    const others: number[] = [];
    for (let i = 0; i < s.restarts; i++) {
      if (s.restartVs !== null) {
        others.push((await restartFollower(cluster, leader, follower, join(s.restartVs, 'bin', 'minkube.js'))).readyMs);
        await sleep(1000);
      }
      restarts.push(await restartFollower(cluster, leader, follower));
      await sleep(1000);
    }
    if (s.restartVs !== null) console.log(`restart to ready, alternating: this checkout ${restarts.map((r) => r.readyMs).join(', ')} ms; ${s.restartVs} ${others.join(', ')} ms (medians ${median(restarts.map((r) => r.readyMs))} vs ${median(others)})`);
    const restart = { ...[...restarts].sort((a, b) => a.readyMs - b.readyMs)[Math.floor((restarts.length - 1) / 2)]!, readyRunsMs: restarts.map((r) => r.readyMs) };
    const rssAfterRestart = rssMiB(cluster.node(follower).proc?.pid);
    const restartedBytes = await breakdownOf(cluster.node(follower).proc?.pid);
    console.log(`${follower} ready in ${restart.readyMs} ms, caught up in ${restart.caughtUpMs} ms; joining m4`);
    const joined = await joinNewMember(cluster, await cluster.waitForLeader(), joiner);
    await sleep(1000);
    const rssJoiner = rssMiB(joiner.proc?.pid);
    return {
      ...s,
      leader,
      follower,
      load: loaded,
      leaderChanges,
      loopLagMaxMs: loopLag,
      snapshot,
      rssMiB: { leader: rssLeader, follower: rssFollower, leaderQuiet: rssLeaderQuiet, followerQuiet: rssFollowerQuiet, leaderAfterGc: leaderLive?.rss ?? NaN, followerAfterGc: followerLive?.rss ?? NaN, followerAfterRestart: rssAfterRestart, joiner: rssJoiner },
      breakdown: { leader: leaderBytes, follower: followerBytes, leaderAfterGc: leaderLive, followerAfterGc: followerLive, followerAfterRestart: restartedBytes },
      restart,
      join: joined,
    };
  } finally {
    if (joiner.proc !== null && joiner.proc.exitCode === null) {
      const gone = new Promise((r) => joiner.proc!.once('exit', r));
      joiner.proc.kill('SIGKILL');
      await gone;
    }
    await cluster.cleanup();
  }
}

function summaryOf(r: SnapshotBenchResult): SummaryRow[] {
  const held = `${r.keys.toLocaleString('en-US')} keys + ${r.tasks.toLocaleString('en-US')} tasks`;
  return [
    { metric: `manager RSS 1 s after the load, leader, ${held}`, unit: 'MiB', value: r.rssMiB.leader, better: 'lower', note: `follower ${r.rssMiB.follower} MiB (a manager compacts its heap 1-1.5 s after a burst ends)` },
    { metric: `manager RSS after ${r.quietS} s quiet, leader, ${held}`, unit: 'MiB', value: r.rssMiB.leaderQuiet, better: 'lower', note: `follower ${r.rssMiB.followerQuiet} MiB; after a full GC ${r.rssMiB.leaderAfterGc} / ${r.rssMiB.followerAfterGc} MiB` },
    { metric: `restart to caught up, follower, ${held}`, unit: 'ms', value: r.restart.caughtUpMs, better: 'lower', note: `SIGKILL, start; ready at ${r.restart.readyMs} ms; RSS after ${r.rssMiB.followerAfterRestart} MiB` },
    { metric: `snapshot size on disk, ${held}`, unit: 'MiB', value: round(r.snapshot.fileBytes / 2 ** 20, 1), better: 'lower', note: `taken in ${r.snapshot.takeMs ?? '?'} ms; ${r.leaderChanges} election(s) during the load` },
    { metric: `new member by snapshot to caught up, ${held}`, unit: 'ms', value: r.join.caughtUpMs, better: 'lower', note: `voter at ${r.join.voterMs} ms; leader sent it in ${r.join.sentMs ?? '?'} ms` },
  ];
}

function tableRows(r: SnapshotBenchResult): Record<string, string | number>[] {
  const mib = (b: number | null): string => (b === null ? '-' : `${round(b / 2 ** 20, 1)} MiB`);
  return [
    { measure: 'load: keys (~100 B values)', value: `${r.load.keysSeconds} s`, detail: `${r.keys} keys, ${r.clients} in flight` },
    { measure: 'load: tasks (pending)', value: `${r.load.tasksSeconds} s`, detail: `${r.tasks} tasks, ${r.load.retries} retries in all` },
    { measure: 'elections during the load', value: r.leaderChanges, detail: `${r.leader} leads after it` },
    { measure: 'longest event-loop stall during the load', value: `${Math.max(...Object.values(r.loopLagMaxMs).map((v) => v ?? 0))} ms`, detail: Object.entries(r.loopLagMaxMs).map(([id, v]) => `${id} ${v ?? '?'}`).join(', ') },
    { measure: 'snapshot file (leader)', value: mib(r.snapshot.fileBytes), detail: `index ${r.snapshot.index}, taken in ${r.snapshot.takeMs ?? '?'} ms` },
    { measure: 'RSS leader', value: `${r.rssMiB.leader} MiB`, detail: r.leader },
    { measure: 'RSS follower', value: `${r.rssMiB.follower} MiB`, detail: r.follower },
    { measure: `RSS leader after ${r.quietS} s quiet`, value: `${r.rssMiB.leaderQuiet} MiB`, detail: 'no requests since the load' },
    { measure: `RSS follower after ${r.quietS} s quiet`, value: `${r.rssMiB.followerQuiet} MiB`, detail: 'no requests since the load' },
    { measure: 'RSS leader after a full GC', value: `${r.rssMiB.leaderAfterGc} MiB`, detail: 'what it holds live' },
    { measure: 'RSS follower after a full GC', value: `${r.rssMiB.followerAfterGc} MiB`, detail: 'what it holds live' },
    { measure: 'restart: to "transport listening"', value: `${r.restart.bootMs ?? '-'} ms`, detail: 'its log: process up (node, tsx)' },
    { measure: 'restart: to "raft state loaded"', value: `${r.restart.stateLoadedMs ?? '-'} ms`, detail: 'its log: snapshot and log read' },
    { measure: 'restart: to "manager started"', value: `${r.restart.startedMs ?? '-'} ms`, detail: 'its log: listening' },
    { measure: 'restart: to GET /ready 200', value: `${r.restart.readyMs} ms`, detail: `${r.follower}, SIGKILL then start${(r.restart.readyRunsMs?.length ?? 1) > 1 ? `; median of ${r.restart.readyRunsMs!.join(', ')} ms` : ''}` },
    { measure: 'restart: to caught up', value: `${r.restart.caughtUpMs} ms`, detail: `applied >= ${r.restart.targetIndex}` },
    { measure: 'RSS follower after restart', value: `${r.rssMiB.followerAfterRestart} MiB`, detail: r.follower },
    { measure: 'join: to caught up', value: `${r.join.caughtUpMs} ms`, detail: `m4 --join, applied >= ${r.join.targetIndex}` },
    { measure: 'join: to voter', value: `${r.join.voterMs} ms`, detail: 'listed voter by the leader' },
    { measure: 'join: to "receiving a snapshot"', value: `${r.join.startToReceivingMs ?? '-'} ms`, detail: "m4's log: started, joined as a learner" },
    { measure: 'join: leader sending', value: `${r.join.sentMs ?? '-'} ms`, detail: `"snapshot sent", ${mib(r.join.sentBytes)}` },
    { measure: 'join: receiving -> installed', value: `${r.join.receiveToInstalledMs ?? '-'} ms`, detail: "m4's log" },
    { measure: 'RSS new member', value: `${r.rssMiB.joiner} MiB`, detail: 'm4' },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = flag('quick');
  const sizes: Sizes = {
    keys: Number(arg('keys', quick ? '3000' : '100000')),
    tasks: Number(arg('tasks', quick ? '3000' : '100000')),
    thresholdEntries: Number(arg('threshold', quick ? '1000' : '20000')),
    clients: Number(arg('clients', '128')),
    restarts: Math.max(1, Number(arg('restarts', '1'))),
    restartVs: arg('restart-vs', '') === '' ? null : arg('restart-vs', ''),
    quietS: Number(arg('quiet-s', quick ? '2' : '30')),
  };
  const r = await benchSnapshot(sizes);
  printTable(`Snapshots: 3 managers holding ${r.keys} keys and ${r.tasks} task records (leader ${r.leader}, snapshot every ${r.thresholdEntries} entries)`, tableRows(r));
  const split = Object.entries(r.breakdown).flatMap(([who, b]) => (b === null ? [] : [{ manager: who, ...b }]));
  printTable('Where the bytes are (MiB): smaps_rollup, process.memoryUsage(), V8 spaces committed; outside = rss - heapTotal - external', split);
  printResult('snapshot', { ...r }, summaryOf(r));
}
