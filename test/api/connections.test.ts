// The connection slots' cap by file descriptors: a new connection whose descriptor the process's check calls crowded
// takes the place of the connection idle longest, or is closed at once when none has been idle long enough; and a
// process out of descriptors gets the idle connections back (shed).
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConnectionSlots, type FdCheck } from '../../src/api/connections.js';

/** A socket as the slots see it: an address, a descriptor, destroy() and 'close'. */
function fakeSocket(fd: number, remoteAddress = '127.0.0.1'): Socket & { destroyed: boolean } {
  const socket = Object.assign(new EventEmitter(), {
    remoteAddress,
    destroyed: false,
    _handle: { fd },
    destroy() {
      if (socket.destroyed) return socket;
      socket.destroyed = true;
      socket.emit('close');
      return socket;
    },
  });
  return socket as unknown as Socket & { destroyed: boolean };
}

/** Descriptors from crowdedFrom up are crowded; counts what the slots said. */
function fdCheck(crowdedFrom: number): FdCheck & { refused: number; evicted: number } {
  const check = {
    refused: 0,
    evicted: 0,
    crowded: (fd: number | undefined) => fd !== undefined && fd >= crowdedFrom,
    refusedOne: () => void check.refused++,
    evictedOne: () => void check.evicted++,
  };
  return check;
}

const roomy = { connectionsMax: 100, connectionsPerAddressMax: 100 };

describe('ConnectionSlots under a descriptor check', () => {
  it('gives a crowded connection the place of the one idle longest, well under connectionsMax', () => {
    const fds = fdCheck(12);
    const slots = new ConnectionSlots({ ...roomy, evictableIdleMsMin: 0 }, fds);
    const first = fakeSocket(10);
    const second = fakeSocket(11);
    expect(slots.admit(first)).toBe(true);
    expect(slots.admit(second)).toBe(true);
    const crowded = fakeSocket(12);
    expect(slots.admit(crowded)).toBe(true);
    expect(first.destroyed).toBe(true);
    expect(second.destroyed).toBe(false);
    expect(crowded.destroyed).toBe(false);
    expect(fds).toMatchObject({ evicted: 1, refused: 0 });
  });

  it('closes a crowded connection at once when no connection has been idle long enough, and says so', () => {
    const fds = fdCheck(11);
    const slots = new ConnectionSlots({ ...roomy, evictableIdleMsMin: 60_000 }, fds);
    const held = fakeSocket(10);
    expect(slots.admit(held)).toBe(true);
    const crowded = fakeSocket(11);
    expect(slots.admit(crowded)).toBe(false);
    expect(crowded.destroyed).toBe(true);
    expect(held.destroyed).toBe(false);
    expect(fds).toMatchObject({ evicted: 0, refused: 1 });
  });

  it('takes an address past its own cap from its own idle connections, without counting it as crowded', () => {
    const fds = fdCheck(11);
    const slots = new ConnectionSlots({ connectionsMax: 100, connectionsPerAddressMax: 1, evictableIdleMsMin: 0 }, fds);
    const other = fakeSocket(9, '127.0.0.2');
    const own = fakeSocket(10);
    expect(slots.admit(other)).toBe(true);
    expect(slots.admit(own)).toBe(true);
    const again = fakeSocket(11);
    expect(slots.admit(again)).toBe(true);
    expect(own.destroyed).toBe(true);
    expect(other.destroyed).toBe(false);
    expect(fds).toMatchObject({ evicted: 0, refused: 0 });
  });

  it('sheds every connection idle long enough, and none that is not', async () => {
    const slots = new ConnectionSlots({ ...roomy, evictableIdleMsMin: 50 }, fdCheck(1000));
    const old = [fakeSocket(10), fakeSocket(11)];
    for (const s of old) slots.admit(s);
    // performance.now() moves on: the slots measure idle time on it.
    const start = performance.now();
    while (performance.now() - start < 60) await new Promise((r) => setTimeout(r, 10));
    const fresh = fakeSocket(12);
    slots.admit(fresh);
    expect(slots.shed()).toBe(2);
    expect(old.map((s) => s.destroyed)).toEqual([true, true]);
    expect(fresh.destroyed).toBe(false);
  });
});
