// Failover: a prober sends a write through a follower every 5 ms (each on its own connection, so one hung request
// holds up no other); SIGKILL the leader; the unavailability is the time from the kill to the first acknowledged
// write that was sent after it. The old leader is restarted between trials. With --peer etcd the same trials run
// against a 3-member etcd in the same run. `npx tsx bench/failover.ts [--runs 5] [--peer etcd]`
import { clusterConfigDefaults } from '../src/config/cluster.js';
import { ProcCluster, eventually, sleep } from '../test/support/cluster.js';
import { EtcdCluster, etcdAvailable, etcdPutBody } from './etcd.js';
import { median, type SummaryRow } from './summary.js';
import { BenchClient, arg, printResult, printTable, round } from './support.js';

/** What a trial needs from a cluster: Minkube's managers and etcd's members both fit. */
interface FailoverTarget {
  /** Waits until the cluster agrees on a leader and every member serves; returns the leader's id. */
  settled(): Promise<string>;
  /** The write to probe with, sent through `via` (a follower). */
  write(via: string, i: number): { url: URL; method: string; body: string };
  ids(): readonly string[];
  kill(id: string): Promise<void>;
  restart(id: string): void;
}

const probeIntervalMs = 5;
const probeTimeoutMs = 5000;
/** A trial that sees no acknowledged write for this long after the kill counts as failed. */
const trialDeadlineMs = 20_000;

/** One trial: the time (ms) from the leader's SIGKILL to the first acknowledged write sent after it; null if none. */
async function trial(t: FailoverTarget, client: BenchClient, inFlight: Set<Promise<void>>, last: boolean): Promise<number | null> {
  const leader = await t.settled();
  const via = t.ids().find((id) => id !== leader)!;
  let killedAt = Infinity;
  let firstAckAt = Infinity;
  const probe = (i: number): void => {
    const sentAt = performance.now();
    const { url, method, body } = t.write(via, i);
    const p = client
      .send(url, method, body, probeTimeoutMs)
      .then((r) => {
        if (r.status === 200 && sentAt >= killedAt) firstAckAt = Math.min(firstAckAt, performance.now());
      })
      .catch(() => undefined)
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  let i = 0;
  const until = async (done: () => boolean): Promise<void> => {
    while (!done()) {
      probe(i++);
      await sleep(probeIntervalMs);
    }
  };
  const warmUntil = performance.now() + 500;
  await until(() => performance.now() >= warmUntil);
  killedAt = performance.now();
  await t.kill(leader);
  await until(() => firstAckAt < Infinity || performance.now() - killedAt > trialDeadlineMs);
  // Probes still hung on the dead leader run out on their own; they were sent before the ack, so they change nothing.
  // The old leader comes back for the next trial (the last one leaves it down: the cluster is torn down next).
  if (!last) t.restart(leader);
  return firstAckAt < Infinity ? round(firstAckAt - killedAt, 0) : null;
}

function minkubeTarget(cluster: ProcCluster): FailoverTarget {
  const body = (i: number): string => JSON.stringify({ value: `v${i}` });
  return {
    settled: async () => {
      const leader = await cluster.waitForLeader();
      for (const id of cluster.managerIds) {
        await eventually(async () => ((await cluster.http(id, 'GET', '/ready', undefined, 1000).catch(() => null))?.status === 200 ? true : undefined), 30_000, `${id} to be ready`);
      }
      return leader;
    },
    write: (via, i) => ({ url: new URL('/v1/kv/failover', cluster.url(via)), method: 'PUT', body: body(i) }),
    ids: () => cluster.managerIds,
    kill: (id) => cluster.signal(id, 'SIGKILL'),
    restart: (id) => cluster.start(id),
  };
}

function etcdTarget(etcd: EtcdCluster): FailoverTarget {
  const member = (id: string): EtcdCluster['members'][number] => etcd.members.find((m) => m.name === id)!;
  return {
    settled: async () => {
      await etcd.waitHealthy();
      return (await eventually(() => etcd.leader().catch(() => undefined), 30_000, 'an etcd leader')).name;
    },
    write: (via, i) => ({ url: new URL('/v3/kv/put', member(via).clientUrl), method: 'POST', body: etcdPutBody('failover', `v${i}`) }),
    ids: () => etcd.members.map((m) => m.name),
    kill: (id) => etcd.kill(member(id)),
    restart: (id) => etcd.startMember(member(id)),
  };
}

async function runTrials(t: FailoverTarget, runs: number): Promise<(number | null)[]> {
  // Every probe in flight has its own socket: a request hung on the dead leader must not queue the next ones.
  const client = new BenchClient(Math.ceil(probeTimeoutMs / probeIntervalMs) + 16);
  const inFlight = new Set<Promise<void>>();
  try {
    const out: (number | null)[] = [];
    for (let run = 0; run < runs; run++) out.push(await trial(t, client, inFlight, run === runs - 1));
    return out;
  } finally {
    client.close(); // fails the probes still hung on the dead leader at once
    await Promise.all(inFlight);
  }
}

export async function benchFailover(runs: number): Promise<(number | null)[]> {
  const cluster = await ProcCluster.create({ managers: 3 });
  try {
    cluster.startAll();
    return await runTrials(minkubeTarget(cluster), runs);
  } finally {
    await cluster.cleanup();
  }
}

export async function benchEtcdFailover(runs: number): Promise<(number | null)[]> {
  const etcd = await EtcdCluster.start(3);
  try {
    return await runTrials(etcdTarget(etcd), runs);
  } finally {
    await etcd.stop();
  }
}

const finite = (gaps: readonly (number | null)[]): number[] => gaps.filter((g): g is number => g !== null);

function summaryOf(runs: number, minkube: readonly (number | null)[], etcd: readonly (number | null)[] | null): SummaryRow[] {
  const timing = `${clusterConfigDefaults.raft.heartbeatIntervalMs}/${clusterConfigDefaults.raft.electionTimeoutMs} ms`;
  const failed = minkube.length - finite(minkube).length + (etcd ? etcd.length - finite(etcd).length : 0);
  const m = median(finite(minkube));
  const e = etcd === null ? null : median(finite(etcd));
  return [
    {
      metric: `failover unavailability, median of ${runs}`,
      unit: 'ms',
      value: Number.isNaN(m) ? null : m,
      ...(e === null ? {} : { peer: Number.isNaN(e) ? null : e }),
      better: 'lower',
      note: `each: ${minkube.join(', ')}${etcd ? `; etcd (same ${timing} timing): ${etcd.join(', ')}` : ''}${failed > 0 ? `; ${failed} trial(s) without an ack in ${trialDeadlineMs / 1000} s` : ''}`,
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(arg('runs', '5'));
  const minkube = await benchFailover(runs);
  let etcd: (number | null)[] | null = null;
  if (arg('peer', '') === 'etcd') {
    if (etcdAvailable()) etcd = await benchEtcdFailover(runs);
    else console.log('\n--peer etcd: no etcd binary installed (Debian: apt-get install etcd-server); skipped');
  }
  const show = (g: number | null): string | number => g ?? 'no ack';
  printTable(
    'Failover: SIGKILL of the leader -> first acknowledged write sent after it (ms), writes through a follower every 5 ms',
    minkube.map((g, i) => ({ run: i + 1, minkubeMs: show(g), ...(etcd ? { etcdMs: show(etcd[i] ?? null) } : {}) })),
  );
  printResult('failover', { runs, unavailableMs: minkube, medianMs: median(finite(minkube)), ...(etcd ? { etcdUnavailableMs: etcd, etcdMedianMs: median(finite(etcd)) } : {}) }, summaryOf(runs, minkube, etcd));
}
