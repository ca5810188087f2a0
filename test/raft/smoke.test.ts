import { describe, expect, it } from 'vitest';
import { Network } from './harness.js';

describe('smoke', () => {
  it('elects and replicates', () => {
    const net = new Network(3);
    net.elect('n1');
    expect(net.raft('n1').status().role).toBe('leader');
    net.propose('n1', 'a', 'b');
    for (const id of net.ids) expect(net.node(id).appliedCommands()).toEqual(['a', 'b']);
    net.tickAll(30);
    expect(net.raft('n1').status().role).toBe('leader');
  });
  it('elects by ticks with prevote and check quorum', () => {
    const net = new Network(5, { preVote: true, checkQuorum: true });
    net.tickAll(30);
    const l = net.leader()!;
    expect(l).toBeDefined();
    net.propose(l.id, 'x');
    for (const id of net.ids) expect(net.node(id).appliedCommands()).toEqual(['x']);
  });
});
