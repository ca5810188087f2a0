// A follower's probe of another follower: one request per peer at a time, a verdict kept for ageMsMax, and never a
// wait past timeoutMs (a probe stuck in a frozen peer's TLS handshake once held /status until the peer resumed).
import { describe, expect, it } from 'vitest';
import { FollowerProbe } from '../../src/manager/follower-probe.js';
import { ManualClock } from '../support/manual-clock.js';

describe('FollowerProbe', () => {
  it('asks once for callers at the same time, keeps the verdict for ageMsMax, then asks again', async () => {
    const clock = new ManualClock();
    const asked: string[] = [];
    let answer = true;
    const probe = new FollowerProbe({ clock, ageMsMax: 1000, timeoutMs: 500, ask: async (a) => (asked.push(a), answer) });
    expect(await Promise.all([probe.answers('m2:1'), probe.answers('m2:1')])).toEqual([true, true]);
    expect(asked).toEqual(['m2:1']);
    answer = false;
    clock.advance(999);
    expect(await probe.answers('m2:1')).toBe(true);
    clock.advance(1);
    expect(await probe.answers('m2:1')).toBe(false);
    expect(asked).toEqual(['m2:1', 'm2:1']);
    probe.keepOnly(new Set(['m3:1']));
    clock.advance(1);
    await probe.answers('m2:1');
    expect(asked).toHaveLength(3);
  });

  it('a probe that hangs counts as no answer after timeoutMs, and no second one starts while it hangs', async () => {
    const clock = new ManualClock();
    let asked = 0;
    let finish = (_answered: boolean): void => undefined;
    const probe = new FollowerProbe({ clock, ageMsMax: 1000, timeoutMs: 500, ask: () => (asked++, new Promise<boolean>((r) => (finish = r))) });
    const first = probe.answers('m2:1');
    clock.advance(500);
    expect(await first).toBe(false);
    clock.advance(5000);
    expect(await probe.answers('m2:1')).toBe(false);
    expect(asked).toBe(1);
    // Once it ends, its verdict counts, and the next probe starts after ageMsMax.
    finish(true);
    await Promise.resolve();
    expect(await probe.answers('m2:1')).toBe(true);
    clock.advance(1000);
    void probe.answers('m2:1');
    expect(asked).toBe(2);
  });

  it('ages a verdict on the monotonic clock: a wall-clock step back does not keep it, nor a step forward drop it', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const asked: string[] = [];
    const probe = new FollowerProbe({ clock, ageMsMax: 1000, timeoutMs: 500, ask: async (a) => (asked.push(a), true) });
    await probe.answers('m2:1');
    clock.stepWall(600_000);
    await probe.answers('m2:1');
    expect(asked).toHaveLength(1);
    clock.stepWall(-1_200_000);
    clock.advance(1000);
    await probe.answers('m2:1');
    expect(asked).toHaveLength(2);
  });
});
