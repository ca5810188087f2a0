// watchStall on a simulated clock: a long answer is cut once its unsent bytes have waited the bound with none of them
// leaving; any that leave (its buffer shrank, emptied or drained) start the wait again.
import { EventEmitter } from 'node:events';
import type { FastifyReply } from 'fastify';
import { describe, expect, it } from 'vitest';
import { watchStall } from '../../src/api/stalled-reader.js';
import { ManualClock } from '../support/manual-clock.js';

class FakeResponse extends EventEmitter {
  writableLength = 0;
}

function watched(): { res: FakeResponse; clock: ManualClock; cuts: number[]; stop: () => void } {
  const res = new FakeResponse();
  const clock = new ManualClock(1000);
  const cuts: number[] = [];
  const stop = watchStall(res as unknown as FastifyReply['raw'], (bytes) => cuts.push(bytes), { stallMsMax: 30_000, checkMs: 1000 }, clock);
  return { res, clock, cuts, stop };
}

describe('watchStall', () => {
  it('cuts an answer whose unsent bytes waited the bound with none taken, once', () => {
    const { res, clock, cuts } = watched();
    res.writableLength = 70_000;
    clock.advance(29_000);
    expect(cuts).toEqual([]);
    res.writableLength = 90_000; // more written, none taken
    clock.advance(2000);
    expect(cuts).toEqual([90_000]);
    clock.advance(60_000);
    expect(cuts).toHaveLength(1);
  });

  it('leaves a slow reader alone: bytes taken now and then, or a drain, start the wait again', () => {
    const { res, clock, cuts, stop } = watched();
    res.writableLength = 70_000;
    clock.advance(25_000);
    res.writableLength = 60_000; // some taken
    clock.advance(25_000);
    res.emit('drain');
    res.writableLength = 65_000;
    clock.advance(25_000);
    expect(cuts).toEqual([]);
    stop();
    clock.advance(60_000);
    expect(cuts).toEqual([]);
  });

  it('never cuts an answer with nothing unsent, however long it is quiet', () => {
    const { clock, cuts } = watched();
    clock.advance(10 * 60_000);
    expect(cuts).toEqual([]);
  });
});
