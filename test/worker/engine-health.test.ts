// The worker's judgement of its engine: unreachable from a call refused or not answered within its deadline, pinged
// while in doubt (one ping at a time), answering again from the first call or ping that succeeds; what it judges goes
// into its heartbeat.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryRuntime } from '../../src/runtime/memory.js';
import { RuntimeFailure } from '../../src/runtime/types.js';
import { EngineHealth, watchedRuntime } from '../../src/worker/engine-health.js';
import { ManualClock } from '../support/manual-clock.js';

const logger = pino({ level: 'silent' });
const settle = () => new Promise((r) => setImmediate(r));

function setUp() {
  const clock = new ManualClock(10_000);
  const inner = new MemoryRuntime();
  let changes = 0;
  let pings = 0;
  const health: EngineHealth = new EngineHealth({
    clock, logger, probeIntervalMs: 1000, onChange: () => changes++,
    ping: () => {
      pings++;
      return runtime.ping();
    },
  });
  const runtime = watchedRuntime(inner, health, clock);
  return { clock, inner, health, runtime, changes: () => changes, pings: () => pings };
}

describe('the worker judges its engine', () => {
  it('a refused call makes it unreachable (with the reason); pings while in doubt clear it once the engine answers', async () => {
    const s = setUp();
    expect(s.health.unreachable()).toBeUndefined();
    s.inner.setUnreachable(true);
    await expect(s.runtime.list({})).rejects.toThrow('set unreachable');
    await settle();
    expect(s.health.unreachable()).toEqual({ reason: 'memory runtime: set unreachable', sinceMs: 10_000 });
    expect(s.changes()).toBe(1);
    // Still down: each probe pings once, and the judgement stays.
    s.clock.advance(1000);
    await settle();
    expect(s.pings()).toBe(1);
    expect(s.health.unreachable()).toBeDefined();
    s.inner.setUnreachable(false);
    s.clock.advance(1000);
    await settle();
    await settle();
    expect(s.pings()).toBe(2);
    expect(s.health.unreachable()).toBeUndefined();
    expect(s.changes()).toBe(2);
    // No doubt: no more pings.
    s.clock.advance(5000);
    await settle();
    expect(s.pings()).toBe(2);
  });

  it('a call not answered within its deadline counts; a task failure, an aborted call or a slow pull does not', async () => {
    const s = setUp();
    const failing = (err: Error) => s.health.observe(Promise.reject(err), s.clock.monoMs()).catch(() => undefined);
    await failing(new RuntimeFailure('timeout', 'docker pull did not answer within 300000 ms'));
    await failing(new RuntimeFailure('timeout', 'aborted'));
    await failing(new RuntimeFailure('image-not-found', 'no such image'));
    await settle();
    expect(s.health.unreachable()).toBeUndefined();
    await failing(new RuntimeFailure('timeout', 'docker image inspect did not answer within 15000 ms'));
    await settle();
    expect(s.health.unreachable()?.reason).toBe('docker image inspect did not answer within 15000 ms');
  });

  it('a call begun before the failure was seen does not clear it; one begun after does', async () => {
    const s = setUp();
    const before = s.clock.monoMs();
    s.clock.advance(10);
    await s.health.observe(Promise.reject(new RuntimeFailure('daemon-unreachable', 'connect ECONNREFUSED')), s.clock.monoMs()).catch(() => undefined);
    await settle();
    await s.health.observe(Promise.resolve(), before);
    await settle();
    expect(s.health.unreachable()).toBeDefined();
    await s.runtime.list({});
    await settle();
    expect(s.health.unreachable()).toBeUndefined();
  });
});
