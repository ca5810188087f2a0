// The leader's memory of the proposals waiting uncommitted in its log, by their bytes: a resend of one of them is not
// appended again while its first copy waits (the simulator's slow drains, seeds 762140133 and 2107352524).
import { describe, expect, it } from 'vitest';
import { logIndex, term } from '../../src/lib/ids.js';
import { UncommittedCommands } from '../../src/manager/proposals.js';
import type { Entry } from '../../src/raft/types.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const command = (index: number, t: number, data: string): Entry => ({ index: logIndex(index), term: term(t), type: 'command', data: bytes(data) });

describe('UncommittedCommands', () => {
  it('knows the bytes its leader term appended until they are applied', () => {
    const u = new UncommittedCommands();
    u.appended([command(5, 2, 'a'), command(6, 2, 'b'), { ...command(7, 2, 'c'), type: 'config' }], 2);
    expect(u.has(bytes('a'), 2)).toBe(true);
    expect(u.has(bytes('b'), 2)).toBe(true);
    expect(u.has(bytes('c'), 2)).toBe(false); // only commands
    expect(u.has(bytes('ab'), 2)).toBe(false);
    expect(u.has(bytes('a'), 3)).toBe(false); // another term: this node does not lead it
    u.appliedThrough(5);
    expect(u.has(bytes('a'), 2)).toBe(false);
    expect(u.has(bytes('b'), 2)).toBe(true);
    u.appliedThrough(6);
    expect(u.has(bytes('b'), 2)).toBe(false);
  });

  it('a new term, or losing the lead, forgets everything (the old tail may be overwritten)', () => {
    const u = new UncommittedCommands();
    u.appended([command(5, 2, 'a')], 2);
    u.appended([command(6, 4, 'b')], 4);
    expect(u.has(bytes('a'), 4)).toBe(false);
    expect(u.has(bytes('b'), 4)).toBe(true);
    u.clear();
    expect(u.has(bytes('b'), 4)).toBe(false);
  });

  it('two copies of the same bytes (appended before this memory knew them): both are forgotten only once applied', () => {
    const u = new UncommittedCommands();
    u.appended([command(5, 2, 'a'), command(6, 2, 'a')], 2);
    u.appliedThrough(5);
    expect(u.has(bytes('a'), 2)).toBe(true);
    u.appliedThrough(6);
    expect(u.has(bytes('a'), 2)).toBe(false);
  });
});
