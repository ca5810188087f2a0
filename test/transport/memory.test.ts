// The memory transport passes the shared Transport suite, and partitions drop exactly what they should.
import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import type { Message } from '../../src/raft/types.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import { collect, heartbeat, runTransportConformance } from './conformance.js';
import { waitFor } from '../support/wait.js';

runTransportConformance('memory', async (n) => {
  const net = new MemoryNetwork();
  const ids = Array.from({ length: n }, (_, i) => nodeId(`n${i + 1}`));
  const transports = ids.map((id) => net.transport(id));
  return { ids, transports, close: async () => void (await Promise.all(transports.map((t) => t.close()))) };
});

describe('MemoryNetwork partitions', () => {
  const [a, b, c] = [nodeId('a'), nodeId('b'), nodeId('c')];

  /** dropped(i): the messages node i sent that the network dropped (counted when they would have been delivered). */
  function setup(): { net: MemoryNetwork; boxes: Message[][]; send: (from: number, to: number) => void; dropped: (i: number) => number } {
    const net = new MemoryNetwork();
    const ts = [a, b, c].map((id) => net.transport(id));
    const boxes = ts.map(collect);
    const ids = [a, b, c];
    return { net, boxes, send: (from, to) => ts[from]!.send([heartbeat(ids[from]!, ids[to]!, `${from}${to}`)]), dropped: (i) => ts[i]!.counters.messagesDropped };
  }

  it('isolate drops everything to and from a node until heal', async () => {
    const { net, boxes, send, dropped } = setup();
    net.isolate(c);
    send(0, 2);
    send(2, 1);
    send(0, 1);
    await waitFor('a -> b', () => boxes[1]!.length === 1);
    await waitFor('a -> c and c -> b dropped', () => dropped(0) === 1 && dropped(2) === 1);
    expect(boxes[2]).toEqual([]);
    expect(boxes[1]!.map((m) => m.from)).toEqual([a]);
    net.heal();
    send(2, 1);
    await waitFor('c -> b after heal', () => boxes[1]!.length === 2);
  });

  it('cut is one-way', async () => {
    const { net, boxes, send, dropped } = setup();
    net.cut(a, b);
    send(0, 1);
    send(1, 0);
    await waitFor('b -> a', () => boxes[0]!.length === 1);
    await waitFor('a -> b dropped', () => dropped(0) === 1);
    expect(boxes[1]).toEqual([]);
  });

  it('drops messages that are in flight when a partition starts', async () => {
    const { net, boxes, send, dropped } = setup();
    send(0, 1);
    net.isolate(b);
    await waitFor('a -> b dropped', () => dropped(0) === 1);
    expect(boxes[1]).toEqual([]);
  });

  it('reachable follows partitions both ways', () => {
    const net = new MemoryNetwork();
    const [ta] = [a, b].map((id) => net.transport(id));
    expect(ta!.reachable(b)).toBe(true);
    net.cut(b, a);
    expect(ta!.reachable(b)).toBe(false);
    net.heal();
    expect(ta!.reachable(b)).toBe(true);
  });

  it('drops invalid messages at delivery and counts them', async () => {
    const net = new MemoryNetwork();
    const [ta, tb] = [a, b].map((id) => net.transport(id));
    const box = collect(tb!);
    ta!.send([{ ...heartbeat(a, b, 'bad'), term: -1 } as unknown as Message, heartbeat(a, b, 'good')]);
    await waitFor('the good one', () => box.length === 1);
    expect(tb!.counters.frameErrors).toBe(1);
  });

  it('bounds the messages in flight per link', async () => {
    const net = new MemoryNetwork({ linkMessagesMax: 3 });
    const [ta, tb] = [a, b].map((id) => net.transport(id));
    const box = collect(tb!);
    ta!.send(Array.from({ length: 5 }, (_, i) => heartbeat(a, b, String(i))));
    await waitFor('three', () => box.length === 3);
    expect(ta!.counters.messagesDropped).toBe(2);
  });

  it('lets a restarted node take its id back', async () => {
    const net = new MemoryNetwork();
    const ta = net.transport(a);
    const tb = net.transport(b);
    expect(() => net.transport(b)).toThrow(/already/);
    await tb.close();
    const tb2 = net.transport(b);
    const box = collect(tb2);
    ta.send([heartbeat(a, b, 'hi')]);
    await waitFor('delivery to the new transport', () => box.length === 1);
  });
});
