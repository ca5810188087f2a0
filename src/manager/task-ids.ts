// Task ids made by the proposing manager: time-ordered, so ids sort in creation order and a list's cursor is simply
// the last id it answered. 't' + 9 base-36 digits of ms + 3 of a per-ms counter + 5 random ones: [a-z0-9], 18 chars.
import { randomInt } from 'node:crypto';
import { systemClock, type Clock } from '../lib/clock.js';

const counterMax = 36 ** 3;

export class TaskIdGenerator {
  private lastMs = 0;
  private counter = 0;

  constructor(private readonly clock: Clock = systemClock) {}

  next(): string {
    // A clock that steps back keeps the last time: ids from this manager never go backwards.
    let ms = Math.max(this.clock.nowMs(), this.lastMs);
    if (ms === this.lastMs) {
      this.counter++;
      if (this.counter >= counterMax) {
        ms++;
        this.counter = 0;
      }
    } else {
      this.counter = 0;
    }
    this.lastMs = ms;
    const time = Math.floor(ms).toString(36).padStart(9, '0');
    const count = this.counter.toString(36).padStart(3, '0');
    const random = randomInt(36 ** 5).toString(36).padStart(5, '0');
    return `t${time}${count}${random}`;
  }
}
