// `service logs -f` against real managers and workers (process runtime): kill -9 a manager that relays one replica's
// stream, and that replica's output goes on through another manager of the --api list, every line once, as the
// others' do; the follow ends (exit 0) when the service is removed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.js';
import { ProcCluster } from '../support/cluster.js';
import { eventually } from '../support/wait.js';

let c: ProcCluster;
beforeAll(async () => {
  c = await ProcCluster.create({ managers: 3, workers: 2, workerRuntime: 'process', hostPrefix: '127.0.64.' });
  c.startAll();
  // Generous: the machine is shared, and a loaded one starts five node processes slowly.
  await c.waitForLeader({ timeoutMs: 150_000 });
  await c.waitForReadyWorkers(2);
}, 300_000);

afterAll(async () => {
  await c?.cleanup();
}, 60_000);

/** Each replica's tick numbers, in the order shown. */
function ticksByReplica(stdout: string): Map<string, number[]> {
  const by = new Map<string, number[]>();
  for (const line of stdout.split('\n').filter(Boolean)) {
    const m = /^(t[0-9a-z]+)@w\d \| tick (\d+)$/.exec(line);
    if (m === null) throw new Error(`not a replica's line: ${line}`);
    by.set(m[1]!, [...(by.get(m[1]!) ?? []), Number(m[2])]);
  }
  return by;
}

describe('service logs -f across a killed manager', () => {
  it('the replica whose manager was killed is followed again through another, no line lost or twice', async () => {
    const leader = await c.waitForLeader();
    const others = ['m1', 'm2', 'm3'].filter((m) => m !== leader);
    const victim = others[0]!;
    const env = { MINKUBE_API: ['m1', 'm2', 'm3'].map((m) => c.url(m)).join(',') };
    const ticker = "let i=0; setInterval(()=>console.log('tick '+(++i)), 200)";
    const created = await runCli(['service', 'create', 'lg3', 'node', '--replicas', '3', '--wait', '--', process.execPath, '-e', ticker], env);
    expect(created.code, created.stderr).toBe(0);
    const following = startCli(['service', 'logs', 'lg3', '-f'], env);
    const replicasSoFar = (): Map<string, number[]> => ticksByReplica(following.stdoutSoFar().split('\n').slice(0, -1).join('\n'));
    await eventually(async () => (replicasSoFar().size === 3 ? true : undefined), 20_000, 'lines from every replica');
    await c.signal(victim, 'SIGKILL');
    const atKill = new Map([...replicasSoFar()].map(([id, ticks]) => [id, ticks.at(-1)!]));
    // Every replica, the one relayed by the killed manager too, goes on well past where it was.
    await eventually(async () => ([...replicasSoFar()].every(([id, ticks]) => ticks.at(-1)! >= atKill.get(id)! + 10) ? true : undefined), 20_000, 'every replica followed on');
    expect((await runCli(['service', 'rm', 'lg3'], env)).code).toBe(0);
    const r = await following.done;
    expect(r.code, r.stderr).toBe(0);
    for (const [id, ticks] of ticksByReplica(r.stdout)) {
      // From the first line kept (--tail's default) on: consecutive, none missing, none twice.
      expect(ticks, `${id}: ${r.stderr}`).toEqual(ticks.map((_, i) => ticks[0]! + i));
    }
    expect(r.stderr).toMatch(/; following it again\n/);
    expect(r.stderr).toMatch(/: followed again\n/);
  }, 120_000);
});
