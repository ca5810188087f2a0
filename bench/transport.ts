// Transport: a leader streams appends to two followers over loopback TCP (3 TcpTransports in this process, so all
// encoding, decoding and validation share one core), each follower answers every append, and the leader keeps a
// window of appends in flight per follower. Also times the codec alone, to show where the cost is.
// `npx tsx bench/transport.ts [--seconds 3] [--window 64]`
import { loadavg } from 'node:os';
import { logIndex, term, type NodeId } from '../src/lib/ids.js';
import type { AppendMessage, Message } from '../src/raft/types.js';
import { WIRE_VERSION, decodePayload, encodeFrame } from '../src/transport/codec.js';
import { startTcpCluster } from '../test/transport/tcp-cluster.js';
import { sleep, waitFor } from '../test/support/wait.js';
import { arg, printResult, printTable, round } from './support.js';

interface Shape {
  entriesPerAppend: number;
  entryBytes: number;
}

function makeAppend(from: NodeId, to: NodeId, seq: number, shape: Shape, data: Uint8Array): AppendMessage {
  const first = seq * shape.entriesPerAppend + 1;
  return {
    type: 'append',
    from,
    to,
    term: term(2),
    prevLogIndex: logIndex(first - 1),
    prevLogTerm: term(2),
    commit: logIndex(Math.max(0, first - 1)),
    entries: Array.from({ length: shape.entriesPerAppend }, (_, i) => ({ term: term(2), index: logIndex(first + i), type: 'command' as const, data })),
  };
}

async function streamAppends(shape: Shape, seconds: number, window: number): Promise<Record<string, number>> {
  const cluster = await startTcpCluster(3, { quiet: true });
  const [leader, ...followers] = cluster.transports;
  const [leaderId, ...followerIds] = cluster.ids;
  const data = new Uint8Array(shape.entryBytes).fill(7);
  const seqs = new Map<NodeId, number>(followerIds.map((id) => [id, 0]));
  let appendsDelivered = 0;
  let stop = false;
  const sendNext = (to: NodeId): void => {
    const seq = seqs.get(to)!;
    seqs.set(to, seq + 1);
    leader!.send([makeAppend(leaderId!, to, seq, shape, data)]);
  };
  followers.forEach((t, i) =>
    t.onMessage((m: Message) => {
      if (m.type !== 'append') return;
      appendsDelivered++;
      t.send([{ type: 'appendResponse', from: followerIds[i]!, to: leaderId!, term: m.term, success: true, index: logIndex(m.prevLogIndex + m.entries.length), conflictTerm: term(0), conflictIndex: logIndex(0) }]);
    }),
  );
  leader!.onMessage((m) => {
    if (!stop && m.type === 'appendResponse') sendNext(m.from);
  });
  const reachable = (): boolean => followerIds.every((id) => leader!.reachable(id)) && followers.every((t) => t.reachable(leaderId!));
  await waitFor('every follower and the leader reachable', reachable, 30_000);
  const t0 = performance.now();
  for (const id of followerIds) for (let i = 0; i < window; i++) sendNext(id);
  await sleep(seconds * 1000); // the measured run
  stop = true;
  const elapsedS = (performance.now() - t0) / 1000;
  const counters = leader!.counters;
  await cluster.close();
  const payloadMB = (appendsDelivered * shape.entriesPerAppend * shape.entryBytes) / 1e6;
  return {
    ...shape,
    appendsPerSec: round(appendsDelivered / elapsedS, 0),
    entriesPerSec: round((appendsDelivered * shape.entriesPerAppend) / elapsedS, 0),
    messagesPerSec: round((2 * appendsDelivered) / elapsedS, 0),
    payloadMBPerSec: round(payloadMB / elapsedS),
    wireMBPerSec: round(counters.bytesSent / 1e6 / elapsedS),
    msgsPerFrame: round(counters.messagesSent / Math.max(1, counters.framesSent), 1),
  };
}

/** The codec alone: one frame of 64 appends, encoded and decoded+validated repeatedly. */
function codecOnly(shape: Shape): Record<string, number> {
  const data = new Uint8Array(shape.entryBytes).fill(7);
  const messages = Array.from({ length: 64 }, (_, i) => makeAppend('n1' as NodeId, 'n2' as NodeId, i, shape, data));
  const frame = encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages });
  const rounds = Math.max(20, Math.floor(2e8 / frame.length / 10));
  let t = performance.now();
  for (let i = 0; i < rounds; i++) encodeFrame({ v: WIRE_VERSION, kind: 'raft', messages });
  const encodeS = (performance.now() - t) / 1000;
  const payload = frame.subarray(4);
  t = performance.now();
  for (let i = 0; i < rounds; i++) if (typeof decodePayload(payload) === 'string') throw new Error('decode failed');
  const decodeS = (performance.now() - t) / 1000;
  return {
    ...shape,
    encodeMsgsPerSec: round((rounds * 64) / encodeS, 0),
    encodeMBPerSec: round((rounds * frame.length) / 1e6 / encodeS),
    decodeMsgsPerSec: round((rounds * 64) / decodeS, 0),
    decodeMBPerSec: round((rounds * frame.length) / 1e6 / decodeS),
  };
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '3'));
  const window = Number(arg('window', '64'));
  const shapes: Shape[] = [
    { entriesPerAppend: 1, entryBytes: 128 },
    { entriesPerAppend: 16, entryBytes: 256 },
    { entriesPerAppend: 64, entryBytes: 1024 },
    { entriesPerAppend: 4, entryBytes: 64 * 1024 },
  ];
  const stream: Record<string, number>[] = [];
  for (const shape of shapes) stream.push(await streamAppends(shape, seconds, window));
  const codec = shapes.map(codecOnly);
  printTable(`TcpTransport: leader -> 2 followers over loopback, window ${window} appends per follower, ${seconds} s each`, stream);
  printTable('codec alone (64 appends per frame)', codec);
  // The machine may be shared: the load average says how much of it this run had.
  console.log(`load average: ${loadavg()[0]!.toFixed(1)}`);
  const summary = stream.map((r) => ({
    metric: `TCP appends, ${r.entriesPerAppend} x ${r.entryBytes} B entries, window ${window}`,
    unit: 'entries/s',
    value: r.entriesPerSec ?? null,
    better: 'higher' as const,
    note: `${r.payloadMBPerSec} MB/s payload`,
  }));
  printResult('transport', { seconds, window, loadAverage: round(loadavg()[0]!, 1), stream, codec }, summary);
}

await main();
