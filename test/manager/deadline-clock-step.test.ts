// Request deadlines are monotonic, end to end: a write sent through a manager's API to a leader that cannot commit it
// (its followers are gone) answers at its own timeout, whatever the leader's wall clock does meanwhile. The wall clock
// is stepped as NTP (or libfaketime) steps it; the monotonic reading and the timers run on.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { WallStepClock } from '../support/manual-clock.js';
import { DriverCluster, waitFor, type DriverNode } from './driver-harness.js';

const tenMinutesMs = 600_000;

let cluster: DriverCluster | null = null;
const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  await cluster?.close();
  cluster = null;
});

/** A leader alone: its followers are stopped, so nothing it is asked to write can commit. */
async function leaderAlone(clock: WallStepClock): Promise<DriverNode> {
  cluster = new DriverCluster({ clock });
  await cluster.startAll();
  const leader = await cluster.leader();
  await cluster.converged();
  for (const id of [...cluster.running.keys()]) if (id !== leader.id) await cluster.stop(id);
  return leader;
}

/** PUT /v1/kv/<key> through an app whose requests time out after requestTimeoutMs; the outcome once answered. */
function put(node: DriverNode, key: string, requestTimeoutMs: number): { status: number | null } {
  const app = buildManagerApp({ service: node.service, requestTimeoutMs, monoMs: () => performance.now() });
  apps.push(app);
  const outcome: { status: number | null } = { status: null };
  void app.inject({ method: 'PUT', url: `/v1/kv/${key}`, payload: { value: 'v' } }).then((res) => (outcome.status = res.statusCode));
  return outcome;
}

describe('a request waiting for its write, while the wall clock steps', () => {
  it('is not timed out when the wall clock steps ten minutes forward', async () => {
    const clock = new WallStepClock();
    const leader = await leaderAlone(clock);
    const long = put(leader, 'long', 30_000);
    clock.stepWall(tenMinutesMs);
    // A second request, sent after the step with a short timeout: once it has its answer, the driver has checked
    // the deadlines after the step (both are checked at the same tick).
    const short = put(leader, 'short', 300);
    await waitFor('the short request to time out', () => short.status !== null, 30_000);
    expect(short.status).toBeGreaterThanOrEqual(500);
    expect(long.status).toBeNull();
  });

  it('still answers at its timeout when the wall clock steps ten minutes back', async () => {
    const clock = new WallStepClock();
    const leader = await leaderAlone(clock);
    const startedMs = performance.now();
    const request = put(leader, 'back', 2000);
    clock.stepWall(-tenMinutesMs);
    // Generous for a loaded machine, and far short of the ten minutes a wall-clock deadline would have waited.
    await waitFor('the request to time out', () => request.status !== null, 30_000, 20);
    expect(request.status).toBeGreaterThanOrEqual(500);
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(2000);
  });
});
