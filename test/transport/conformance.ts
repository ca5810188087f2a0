// The Transport conformance suite: the memory and TCP transports run these same tests (hono's common.case.test.ts
// pattern). makeCluster(n) returns n connected transports; the suite owns their handlers.
import { afterEach, describe, expect, it } from 'vitest';
import { logIndex, nodeId, term, type NodeId } from '../../src/lib/ids.js';
import type { HeartbeatMessage, Message } from '../../src/raft/types.js';
import type { Transport } from '../../src/transport/types.js';
import { waitFor } from '../support/wait.js';

export interface TransportCluster {
  readonly ids: readonly NodeId[];
  readonly transports: readonly Transport[];
  /** Each node's address, for setPeers (the memory network ignores them). */
  readonly addresses?: readonly string[];
  /** Closes every transport (some may be closed already). */
  close(): Promise<void>;
}


/** One message of every type, with values that exercise each field. */
export function sampleMessages(from: NodeId, to: NodeId): Message[] {
  const env = { from, to, term: term(7) };
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
  return [
    {
      type: 'append',
      ...env,
      prevLogIndex: logIndex(41),
      prevLogTerm: term(6),
      commit: logIndex(40),
      entries: [
        { term: term(6), index: logIndex(42), type: 'command', data: bytes('put a=1') },
        { term: term(7), index: logIndex(43), type: 'noop', data: new Uint8Array(0) },
        { term: term(7), index: logIndex(44), type: 'config', data: new Uint8Array([0, 255, 128]) },
      ],
    },
    { type: 'appendResponse', ...env, success: false, index: logIndex(41), conflictTerm: term(5), conflictIndex: logIndex(30) },
    { type: 'heartbeat', ...env, commit: logIndex(44), context: 'round-1' },
    { type: 'heartbeatResponse', ...env, context: '' },
    { type: 'vote', ...env, preVote: true, lastLogIndex: logIndex(44), lastLogTerm: term(7), transfer: false },
    { type: 'voteResponse', ...env, preVote: false, granted: true },
    { type: 'timeoutNow', ...env },
    { type: 'propose', ...env, term: term(0), entries: [bytes('x'), new Uint8Array(1000).fill(9)] },
    { type: 'readIndex', ...env, term: term(0), context: 'm1.abc:17' },
    { type: 'readIndexResponse', ...env, context: 'm1.abc:17', index: logIndex(44) },
    // Optional fields, absent from older peers:
    { type: 'vote', ...env, preVote: false, lastLogIndex: logIndex(44), lastLogTerm: term(7), transfer: true, configIndex: logIndex(33) },
  ];
}

/** Messages as plain values, so Buffer and Uint8Array payloads compare equal. */
export function plainMessages(messages: readonly Message[]): unknown[] {
  const hex = (d: Uint8Array): string => Buffer.from(d).toString('hex');
  return messages.map((m) => {
    if (m.type === 'append') return { ...m, entries: m.entries.map((e) => ({ ...e, data: hex(e.data) })) };
    if (m.type === 'propose') return { ...m, entries: m.entries.map(hex) };
    return { ...m };
  });
}

export function heartbeat(from: NodeId, to: NodeId, context: string): HeartbeatMessage {
  return { type: 'heartbeat', from, to, term: term(1), commit: logIndex(0), context };
}

/** Every message a transport hands to its handler. */
export function collect(t: Transport): Message[] {
  const got: Message[] = [];
  t.onMessage((m) => got.push(m));
  return got;
}

const contexts = (ms: readonly Message[]): string[] => ms.map((m) => (m.type === 'heartbeat' ? m.context : `<${m.type}>`));

export function runTransportConformance(name: string, makeCluster: (n: number) => Promise<TransportCluster>): void {
  describe(`Transport conformance: ${name}`, () => {
    let cluster: TransportCluster | null = null;
    const make = async (n: number): Promise<TransportCluster> => (cluster = await makeCluster(n));

    afterEach(async () => {
      await cluster?.close();
      cluster = null;
    });

    it('delivers between every pair, in both directions', async () => {
      const { ids, transports } = await make(3);
      const inboxes = transports.map(collect);
      transports.forEach((t, i) => t.send(ids.filter((_, j) => j !== i).map((to) => heartbeat(ids[i]!, to, `${ids[i]}->${to}`))));
      await waitFor('every pair to deliver', () => inboxes.every((box) => box.length === 2));
      inboxes.forEach((box, j) => {
        const expected = ids.filter((_, i) => i !== j).map((from) => `${from}->${ids[j]}`);
        expect(contexts(box).sort()).toEqual(expected.sort());
        for (const m of box) expect(m.to).toBe(ids[j]);
      });
    });

    it('delivers every message type intact', async () => {
      const { ids, transports } = await make(2);
      const [a, b] = [ids[0]!, ids[1]!];
      const inboxes = transports.map(collect);
      transports[0]!.send(sampleMessages(a, b));
      transports[1]!.send(sampleMessages(b, a));
      await waitFor('all samples', () => inboxes.every((box) => box.length === sampleMessages(a, b).length));
      expect(plainMessages(inboxes[1]!)).toEqual(plainMessages(sampleMessages(a, b)));
      expect(plainMessages(inboxes[0]!)).toEqual(plainMessages(sampleMessages(b, a)));
    });

    it('preserves the order of messages between a pair, across sends and ticks', async () => {
      const { ids, transports } = await make(2);
      const [a, b] = [ids[0]!, ids[1]!];
      const inboxes = transports.map(collect);
      await waitFor('the pair to connect', () => transports[0]!.reachable(b) && transports[1]!.reachable(a));
      const rounds = 20;
      const perRound = 100;
      for (let r = 0; r < rounds; r++) {
        const batch = (from: NodeId, to: NodeId): Message[] => Array.from({ length: perRound }, (_, i) => heartbeat(from, to, String(r * perRound + i)));
        transports[0]!.send(batch(a, b));
        transports[1]!.send(batch(b, a).slice(0, perRound / 2));
        transports[1]!.send(batch(b, a).slice(perRound / 2));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const expected = Array.from({ length: rounds * perRound }, (_, i) => String(i));
      await waitFor('every message', () => inboxes.every((box) => box.length === expected.length));
      expect(contexts(inboxes[1]!)).toEqual(expected);
      expect(contexts(inboxes[0]!)).toEqual(expected);
    });

    it('reports every peer reachable once connected, and not itself or strangers', async () => {
      const { ids, transports } = await make(3);
      transports.forEach(collect);
      await waitFor('all peers reachable', () => transports.every((t, i) => ids.every((id, j) => i === j || t.reachable(id))));
      expect(transports[0]!.reachable(nodeId('stranger'))).toBe(false);
    });

    it('drops messages to an unknown or closed peer without throwing, and keeps serving the others', async () => {
      const { ids, transports } = await make(3);
      const inboxes = transports.map(collect);
      await transports[2]!.close();
      expect(() => transports[0]!.send([heartbeat(ids[0]!, nodeId('stranger'), 'lost'), heartbeat(ids[0]!, ids[2]!, 'lost too')])).not.toThrow();
      transports[0]!.send([heartbeat(ids[0]!, ids[1]!, 'kept')]);
      // A marker sent after on the same link arrives after anything sent before it: then nothing else came.
      transports[0]!.send([heartbeat(ids[0]!, ids[1]!, 'marker')]);
      await waitFor('delivery to the live peer, then the marker', () => inboxes[1]!.length >= 2);
      expect(contexts(inboxes[1]!)).toEqual(['kept', 'marker']);
      expect(inboxes[2]).toEqual([]);
    });

    it('setPeers: a removed peer gets nothing and is unreachable; added back, it is served again', async () => {
      const { ids, transports, addresses } = await make(3);
      const inboxes = transports.map(collect);
      const peersOf = (i: number, without: NodeId | null): Map<NodeId, string> =>
        new Map(ids.flatMap((id, j) => (j === i || id === without ? [] : [[id, addresses?.[j] ?? 'memory:0'] as const])));
      await waitFor('all peers reachable', () => transports.every((t, i) => ids.every((id, j) => i === j || t.reachable(id))));
      transports[0]!.setPeers(peersOf(0, ids[2]!));
      transports[2]!.setPeers(peersOf(2, ids[0]!));
      expect(transports[0]!.reachable(ids[2]!)).toBe(false);
      transports[0]!.send([heartbeat(ids[0]!, ids[2]!, 'dropped'), heartbeat(ids[0]!, ids[1]!, 'kept')]);
      await waitFor('delivery to the remaining peer', () => inboxes[1]!.length === 1);
      expect(inboxes[2]).toEqual([]);
      transports[0]!.setPeers(peersOf(0, null));
      transports[2]!.setPeers(peersOf(2, null));
      await waitFor('the peer to be reachable again', () => transports[0]!.reachable(ids[2]!) && transports[2]!.reachable(ids[0]!));
      transports[0]!.send([heartbeat(ids[0]!, ids[2]!, 'back')]);
      transports[0]!.send([heartbeat(ids[0]!, ids[2]!, 'marker')]);
      // Anything kept from before the removal would come on this link ahead of the marker.
      await waitFor('delivery after re-adding, then the marker', () => inboxes[2]!.length >= 2);
      expect(contexts(inboxes[2]!)).toEqual(['back', 'marker']);
    });

    it('stops delivering to and from a transport once it is closed', async () => {
      const { ids, transports } = await make(2);
      const [a, b] = [ids[0]!, ids[1]!];
      const inboxes = transports.map(collect);
      await waitFor('the pair to connect', () => transports[0]!.reachable(b));
      await transports[1]!.close();
      await transports[1]!.close();
      transports[0]!.send([heartbeat(a, b, 'after close')]);
      expect(() => transports[1]!.send([heartbeat(b, a, 'from the closed one')])).not.toThrow();
      await waitFor('the peer to be unreachable', () => !transports[0]!.reachable(b));
      expect(transports[1]!.reachable(a)).toBe(false);
      // A twin pair, connected and sent to after these sends, shows that a delivery had time to happen.
      const twin = await makeCluster(2);
      try {
        const [twinInbox] = [collect(twin.transports[1]!), collect(twin.transports[0]!)];
        await waitFor('the twin pair to connect', () => twin.transports[0]!.reachable(twin.ids[1]!));
        twin.transports[0]!.send([heartbeat(twin.ids[0]!, twin.ids[1]!, 'witness')]);
        await waitFor('the twin\'s delivery', () => twinInbox.length === 1);
      } finally {
        await twin.close();
      }
      expect(inboxes[0]).toEqual([]);
      expect(inboxes[1]).toEqual([]);
    });
  });
}
