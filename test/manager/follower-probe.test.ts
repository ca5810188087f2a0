// A follower's probe of another follower: one request per peer at a time, a verdict kept for maxAgeMs.
import { describe, expect, it } from 'vitest';
import { FollowerProbe } from '../../src/manager/follower-probe.js';

describe('FollowerProbe', () => {
  it('asks once for callers at the same time, keeps the verdict for maxAgeMs, then asks again', async () => {
    const clock = { now: 0, nowMs: () => clock.now, setTimeout: () => ({ cancel() {} }) };
    const asked: string[] = [];
    let answer = true;
    const probe = new FollowerProbe({ clock, maxAgeMs: 1000, ask: async (a) => (asked.push(a), answer) });
    expect(await Promise.all([probe.answers('m2:1'), probe.answers('m2:1')])).toEqual([true, true]);
    expect(asked).toEqual(['m2:1']);
    answer = false;
    clock.now = 999;
    expect(await probe.answers('m2:1')).toBe(true);
    clock.now = 1000;
    expect(await probe.answers('m2:1')).toBe(false);
    expect(asked).toEqual(['m2:1', 'm2:1']);
    probe.keepOnly(new Set(['m3:1']));
    clock.now = 1001;
    await probe.answers('m2:1');
    expect(asked).toHaveLength(3);
  });
});
