// The leader's worker-health verdicts against a manual clock: silence is measured on the monotonic reading, so a step
// of the leader's wall clock (an NTP step) neither judges every worker unreachable nor keeps a silent one ready.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { clusterConfigDefaults } from '../../src/config/cluster.js';
import { SeededRandom } from '../../src/lib/random.js';
import { WorkerHealth } from '../../src/manager/worker-health.js';
import { DirectRaft as BaseDirectRaft } from '../support/direct-raft.js';
import { ManualClock } from '../support/manual-clock.js';

const tenMinutesMs = 600_000;

class DirectRaft extends BaseDirectRaft {
  verdicts(): string[] {
    return this.proposed.flatMap((c) => (c.op === 'worker.state' ? [`${c.workerId} ${c.state}`] : []));
  }
}

async function setup(): Promise<{ clock: ManualClock; raft: DirectRaft; health: WorkerHealth }> {
  const clock = new ManualClock(1_700_000_000_000);
  const raft = new DirectRaft();
  await raft.proposeCommand({ op: 'worker.register', workerId: 'w1', apiAddress: 'w1:1', runtime: 'memory', atMs: clock.nowMs() });
  const health = new WorkerHealth({
    store: raft.sm.tasks, raft, clock, random: new SeededRandom(1), logger: pino({ level: 'silent' }), proposalTimeoutMs: 1000,
    tasks: { ...clusterConfigDefaults.tasks, workerHeartbeatIntervalMs: 100, workerTtlMs: 1000, lostGraceMs: 1000 },
  });
  health.start(1);
  return { clock, raft, health };
}

/** Moves the clock on in steps of the health check, the worker heartbeating (or not) at each. */
function run(clock: ManualClock, health: WorkerHealth, ms: number, heartbeats: boolean): void {
  for (let passedMs = 0; passedMs < ms; passedMs += 100) {
    if (heartbeats) health.seen('w1');
    clock.advance(100);
  }
}

/** Lets the verdicts proposed so far apply and leave the judging set (microtasks only: no time passes). */
async function verdictsSettled(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe('WorkerHealth', () => {
  it('does not judge a heartbeating worker unreachable when the wall clock steps ten minutes forward', async () => {
    const { clock, raft, health } = await setup();
    run(clock, health, 500, true);
    clock.stepWall(tenMinutesMs); // between a heartbeat and the next check
    health.check();
    run(clock, health, 3000, true);
    await verdictsSettled();
    expect(raft.verdicts()).toEqual([]);
    expect(raft.sm.tasks.worker('w1')?.state).toBe('ready');
    health.stop();
  });

  it('still judges a silent worker unreachable, then down, on time when the wall clock steps ten minutes back', async () => {
    const { clock, raft, health } = await setup();
    run(clock, health, 500, true);
    clock.stepWall(-tenMinutesMs);
    run(clock, health, 1200, false); // past the TTL, far short of ten minutes
    await verdictsSettled();
    expect(raft.verdicts()).toEqual(['w1 unreachable']);
    run(clock, health, 1200, false); // past the TTL and the grace
    await verdictsSettled();
    expect(raft.verdicts()).toEqual(['w1 unreachable', 'w1 down']);
    expect(raft.sm.tasks.worker('w1')?.state).toBe('down');
    health.stop();
  });
});
