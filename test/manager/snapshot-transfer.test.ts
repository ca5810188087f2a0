// Snapshot streaming without HTTP: the follower's receiver takes chunks in order and resumes where it stopped, the
// leader's sender reports every stream exactly once, and the chunk header survives its trip through a query string.
import { crc32 } from 'node:zlib';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { MinkubeError } from '../../src/lib/errors.js';
import { logIndex, nodeId, term, type NodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { headerFromQuery, headerToQuery, type ChunkReply, type SnapshotChunkHeader } from '../../src/contracts/snapshot-chunks.js';
import { SnapshotReceiver, SnapshotSender, type ChunkPoster, type SnapshotSource } from '../../src/manager/snapshot-transfer.js';
import type { SnapshotMeta } from '../../src/raft/types.js';
import type { Clock } from '../../src/lib/clock.js';
import { SeededRandom } from '../../src/lib/random.js';
import { ManualClock } from '../support/manual-clock.js';

const logger = pino({ level: 'silent' });
const leader = nodeId('m1');
const follower = nodeId('m2');

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

function metaAt(index: number, snapTerm = 1): SnapshotMeta {
  return { index: logIndex(index), term: term(snapTerm), voters: [leader, follower, nodeId('m3')], learners: [] };
}

function header(data: Uint8Array, offset: number, o: { index?: number; term?: number; crc?: number } = {}): SnapshotChunkHeader {
  return { from: leader, term: term(o.term ?? 2), meta: metaAt(o.index ?? 10), sizeBytes: data.length, crc32: o.crc ?? crc32(data), offset };
}

function receiver(clock = { nowMs: 0 }) {
  const completed: { header: SnapshotChunkHeader; data: Uint8Array }[] = [];
  const r = new SnapshotReceiver({ logger, nowMs: () => clock.nowMs, onComplete: (h, data) => completed.push({ header: h, data: data.slice() }) });
  return { r, completed, clock };
}

function expectCode(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(MinkubeError);
  expect((thrown as MinkubeError).code).toBe(code);
}

describe('SnapshotReceiver', () => {
  it('accepts chunks in order and completes once with the exact bytes', () => {
    const { r, completed } = receiver();
    const data = bytes(10);
    expect(r.receive(header(data, 0), data.subarray(0, 4))).toEqual({ offset: 4, done: false });
    expect(r.receive(header(data, 4), data.subarray(4, 8))).toEqual({ offset: 8, done: false });
    expect(completed).toEqual([]);
    expect(r.receive(header(data, 8), data.subarray(8))).toEqual({ offset: 10, done: true });
    expect(completed).toHaveLength(1);
    expect(Buffer.from(completed[0]!.data).equals(Buffer.from(data))).toBe(true);
    expect(completed[0]!.header.meta.index).toBe(10);
  });

  it('answers an out-of-order chunk with the offset it expects, and keeps what it has', () => {
    const { r, completed } = receiver();
    const data = bytes(12);
    // Nothing received yet: only offset 0 starts a transfer.
    expect(r.receive(header(data, 4), data.subarray(4, 8))).toEqual({ offset: 0, done: false });
    expect(r.receive(header(data, 0), data.subarray(0, 4))).toEqual({ offset: 4, done: false });
    expect(r.receive(header(data, 8), data.subarray(8, 12))).toEqual({ offset: 4, done: false });
    expect(r.receive(header(data, 0), data.subarray(0, 4))).toEqual({ offset: 4, done: false });
    expect(r.receive(header(data, 4), data.subarray(4, 8))).toEqual({ offset: 8, done: false });
    expect(r.receive(header(data, 8), data.subarray(8, 12))).toEqual({ offset: 12, done: true });
    expect(completed).toHaveLength(1);
    expect(Buffer.from(completed[0]!.data).equals(Buffer.from(data))).toBe(true);
  });

  it('answers done at once for a snapshot no newer than one it is installing (the leader asks again meanwhile)', () => {
    const completed: SnapshotChunkHeader[] = [];
    let installing = 0;
    const r = new SnapshotReceiver({ logger, nowMs: () => 0, onComplete: (h) => completed.push(h), underWay: (meta) => installing >= meta.index });
    const data = bytes(10);
    expect(r.receive(header(data, 0), data)).toEqual({ offset: 10, done: true });
    expect(completed).toHaveLength(1);
    installing = 10;
    // The same snapshot again, or an older one: not one byte taken, no second install.
    expect(r.receive({ ...header(data, 0), term: term(3) }, data.subarray(0, 4))).toEqual({ offset: 10, done: true });
    expect(r.receive(header(bytes(6), 0, { index: 9 }), bytes(6).subarray(0, 4))).toEqual({ offset: 6, done: true });
    expect(completed).toHaveLength(1);
    // A newer one is received.
    const newer = bytes(8, 2);
    expect(r.receive(header(newer, 0, { index: 11 }), newer)).toEqual({ offset: 8, done: true });
    expect(completed).toHaveLength(2);
  });

  it('refuses a chunk that runs past the announced size', () => {
    const { r } = receiver();
    const data = bytes(6);
    r.receive(header(data, 0), data.subarray(0, 4));
    expectCode(() => r.receive(header(data, 4), bytes(4)), 'INVALID_BODY');
  });

  it('a bad checksum throws INVALID_BODY and the transfer starts over from 0', () => {
    const { r, completed } = receiver();
    const data = bytes(8);
    const bad = { crc: (crc32(data) + 1) >>> 0 };
    r.receive(header(data, 0, bad), data.subarray(0, 4));
    expectCode(() => r.receive(header(data, 4, bad), data.subarray(4)), 'INVALID_BODY');
    expect(completed).toEqual([]);
    // The partial transfer is gone: a resumed chunk is sent back to 0, and a fresh start completes.
    expect(r.receive(header(data, 4, bad), data.subarray(4))).toEqual({ offset: 0, done: false });
    expect(r.receive(header(data, 0), data.subarray(0, 4))).toEqual({ offset: 4, done: false });
    expect(r.receive(header(data, 4), data.subarray(4))).toEqual({ offset: 8, done: true });
    expect(completed).toHaveLength(1);
  });

  it('a newer transfer (a new index) replaces a partial one', () => {
    const { r, completed } = receiver();
    const old = bytes(8, 1);
    const newer = bytes(6, 2);
    r.receive(header(old, 0, { index: 10 }), old.subarray(0, 4));
    expect(r.receive(header(newer, 0, { index: 20 }), newer.subarray(0, 3))).toEqual({ offset: 3, done: false });
    // The old transfer's progress is forgotten.
    expect(r.receive(header(old, 4, { index: 10 }), old.subarray(4))).toEqual({ offset: 0, done: false });
    expect(r.receive(header(newer, 3, { index: 20 }), newer.subarray(3))).toEqual({ offset: 6, done: true });
    expect(completed.map((c) => c.header.meta.index)).toEqual([20]);
    expect(Buffer.from(completed[0]!.data).equals(Buffer.from(newer))).toBe(true);
  });

  it('refuses a transfer from an older term while a newer one is under way, until that one goes idle', () => {
    const { r, clock } = receiver();
    const data = bytes(8);
    r.receive(header(data, 0, { term: 5 }), data.subarray(0, 4));
    expectCode(() => r.receive(header(data, 0, { term: 4, index: 11 }), data.subarray(0, 4)), 'INVALID_PARAM');
    clock.nowMs += limits.snapshotTransferIdleMsMax;
    expect(r.receive(header(data, 0, { term: 4, index: 11 }), data.subarray(0, 4))).toEqual({ offset: 4, done: false });
  });

  it('takes an empty snapshot in one empty chunk', () => {
    const { r, completed } = receiver();
    const data = new Uint8Array(0);
    expect(r.receive(header(data, 0), data)).toEqual({ offset: 0, done: true });
    expect(completed).toHaveLength(1);
  });
});

describe('snapshot chunk headers', () => {
  const h: SnapshotChunkHeader = {
    from: nodeId('m1'),
    term: term(7),
    meta: { index: logIndex(1234), term: term(6), voters: [nodeId('m1'), nodeId('m-2.x_y')], learners: [nodeId('m4')] },
    sizeBytes: 99_999,
    crc32: 0xffff_ffff,
    offset: 4096,
  };
  const query = (x: SnapshotChunkHeader): Record<string, string> => Object.fromEntries(new URLSearchParams(headerToQuery(x)));

  it('round-trips through a query string (empty learners included)', () => {
    expect(headerFromQuery(query(h))).toEqual(h);
    const noLearners = { ...h, meta: { ...h.meta, learners: [] } };
    expect(headerFromQuery(query(noLearners))).toEqual(noLearners);
  });

  it.each<[string, Record<string, string | undefined>]>([
    ['a missing index', { index: undefined }],
    ['a negative term', { term: '-1' }],
    ['a fractional offset', { offset: '1.5' }],
    ['a non-numeric size', { size: 'big' }],
    ['a size above the limit', { size: String(limits.snapshotBytesMax + 1) }],
    ['a crc above 32 bits', { crc: String(0x1_0000_0000) }],
    ['an empty from', { from: '' }],
    ['a missing from', { from: undefined }],
    ['two senders', { from: 'm1,m2' }],
    ['an empty id in voters', { voters: 'm1,,m2' }],
    ['a bad character in learners', { learners: 'm4;drop' }],
  ])('refuses %s with INVALID_PARAM', (_what, change) => {
    const q: Record<string, string | undefined> = { ...query(h), ...change };
    expectCode(() => headerFromQuery(q), 'INVALID_PARAM');
  });
});

// ---- the sender ----

interface SenderSetup {
  sender: SnapshotSender;
  reports: [NodeId, string][];
  /** Resolves with the next report. */
  nextReport: () => Promise<[NodeId, string]>;
}

function sender(o: {
  post: ChunkPoster;
  source: SnapshotSource | null;
  address: string | undefined;
  chunkBytes?: number;
  clock?: Clock;
  logger?: Logger;
  onReport?: (peer: NodeId, status: string) => void;
}): SenderSetup {
  const reports: [NodeId, string][] = [];
  let waiter: ((r: [NodeId, string]) => void) | null = null;
  const s = new SnapshotSender({
    selfId: leader,
    logger: o.logger ?? logger,
    source: async () => o.source,
    apiAddressOf: (id) => (id === follower || id === nodeId('m3') ? o.address : undefined),
    report: (peer, status) => {
      reports.push([peer, status]);
      o.onReport?.(peer, status);
      const w = waiter;
      waiter = null;
      w?.([peer, status]);
    },
    post: o.post,
    chunkBytes: o.chunkBytes ?? 4,
    ...(o.clock === undefined ? {} : { clock: o.clock, random: new SeededRandom(7) }),
  });
  return { sender: s, reports, nextReport: () => new Promise((resolve) => (waiter = resolve)) };
}

const sourceOf = (data: Uint8Array, index = 10): SnapshotSource => ({ meta: metaAt(index), data, crc32: crc32(data) });
/**
 * One turn of the event loop: every callback of a promise already settled has run. The senders here post through
 * promises only (no timers, no I/O), so whatever a stream would still do has been done by then; no wall time is waited.
 */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('SnapshotSender', () => {
  it('streams every chunk to the receiver and reports finish once', async () => {
    const { r, completed } = receiver();
    const data = bytes(10);
    const offsets: number[] = [];
    const post: ChunkPoster = async (address, h, chunk) => {
      expect(address).toBe('api-m2');
      offsets.push(h.offset);
      return r.receive(h, chunk);
    };
    const { sender: s, reports, nextReport } = sender({ post, source: sourceOf(data), address: 'api-m2' });
    const report = nextReport();
    s.send(follower, term(2));
    expect(await report).toEqual([follower, 'finish']);
    await settle();
    expect(reports).toEqual([[follower, 'finish']]);
    expect(offsets).toEqual([0, 4, 8]);
    expect(completed).toHaveLength(1);
    expect(Buffer.from(completed[0]!.data).equals(Buffer.from(data))).toBe(true);
    expect(s.active).toBe(0);
  });

  it('resumes from the receiver offset after a failed stream: the second stream posts only the rest, plus at most one chunk', async () => {
    const { r, completed } = receiver();
    const data = bytes(40);
    let calls = 0;
    let postedBytes = 0;
    let failAt = 6; // the 6th post fails: 5 chunks (20 bytes) are in
    const post: ChunkPoster = async (_a, h, chunk) => {
      if (++calls === failAt) throw new Error('connection reset');
      postedBytes += chunk.length;
      return r.receive(h, chunk);
    };
    const { sender: s, reports, nextReport } = sender({ post, source: sourceOf(data), address: 'api-m2', chunkBytes: 4 });
    let report = nextReport();
    s.send(follower, term(2));
    expect(await report).toEqual([follower, 'failure']);
    expect(postedBytes).toBe(20);
    expect(completed).toEqual([]);

    failAt = -1;
    postedBytes = 0;
    report = nextReport();
    s.send(follower, term(2));
    expect(await report).toEqual([follower, 'finish']);
    expect(postedBytes).toBeGreaterThanOrEqual(data.length - 20);
    expect(postedBytes).toBeLessThanOrEqual(data.length - 20 + 4);
    expect(completed).toHaveLength(1);
    expect(Buffer.from(completed[0]!.data).equals(Buffer.from(data))).toBe(true);
    expect(reports).toEqual([
      [follower, 'failure'],
      [follower, 'finish'],
    ]);
  });

  it.each<[string, { source: SnapshotSource | null; address: string | undefined; post: ChunkPoster | null }]>([
    ['the poster fails', { source: sourceOf(bytes(8)), address: 'api-m2', post: async () => Promise.reject(new Error('refused')) }],
    ['the peer has no address', { source: sourceOf(bytes(8)), address: undefined, post: null }],
    ['there is no snapshot', { source: null, address: 'api-m2', post: null }],
    ['the receiver answers an impossible offset', { source: sourceOf(bytes(8)), address: 'api-m2', post: async () => ({ offset: 1_000_000, done: false }) }],
    ['the receiver never moves forward', { source: sourceOf(bytes(8)), address: 'api-m2', post: async () => ({ offset: 0, done: false }) }],
  ])('reports failure exactly once when %s', async (_what, o) => {
    let posts = 0;
    const counting: ChunkPoster = async () => {
      posts++;
      return { offset: 0, done: true };
    };
    const setup = sender({ post: o.post ?? counting, source: o.source, address: o.address });
    const report = setup.nextReport();
    setup.sender.send(follower, term(2));
    expect(await report).toEqual([follower, 'failure']);
    await settle();
    expect(setup.reports).toEqual([[follower, 'failure']]);
    expect(setup.sender.active).toBe(0);
    if (o.post === null) expect(posts).toBe(0);
  });

  it('runs one stream per peer at a time (streams to different peers run side by side)', async () => {
    const gates: (() => void)[] = [];
    const post: ChunkPoster = (_a, h) =>
      new Promise<ChunkReply>((resolve) => {
        gates.push(() => resolve({ offset: h.sizeBytes, done: true }));
      });
    const { sender: s, reports } = sender({ post, source: sourceOf(bytes(4)), address: 'api' });
    s.send(follower, term(2));
    s.send(follower, term(2));
    s.send(nodeId('m3'), term(2));
    await settle();
    expect(s.active).toBe(2);
    expect(gates).toHaveLength(2);
    for (const open of gates.splice(0)) open();
    await settle();
    expect(s.active).toBe(0);
    expect(reports.map(([p]) => p).sort()).toEqual(['m2', 'm3']);
    expect(reports.every(([, status]) => status === 'finish')).toBe(true);
    // Once a stream ended, the next send starts a new one.
    s.send(follower, term(2));
    await settle();
    expect(s.active).toBe(1);
    gates.splice(0).forEach((open) => open());
    await settle();
    expect(reports).toHaveLength(3);
  });

  describe('a peer whose API port is closed (every post refused)', () => {
    /**
     * The core's side, as the driver runs it: after a reported failure it asks for a new stream at the next
     * heartbeat (100 ms). Time moves only on the manual clock, one heartbeat at a time.
     */
    function refusedPeer() {
      const clock = new ManualClock();
      const lines: { level: number; msg: string; failuresSinceLastWarning?: number }[] = [];
      const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
      const postsAtMs: number[] = [];
      let refuse = true;
      const post: ChunkPoster = async (_a, h) => {
        postsAtMs.push(clock.monoMs());
        if (refuse) throw new Error('connect ECONNREFUSED 127.0.65.2:20002');
        return { offset: h.sizeBytes, done: true };
      };
      const setup = sender({
        post,
        source: sourceOf(bytes(8)),
        address: 'api-m2',
        clock,
        logger: captured,
        onReport: (peer, status) => {
          if (status === 'failure') clock.setTimeout(() => setup.sender.send(peer, term(2)), 100);
        },
      });
      const runForMs = async (ms: number): Promise<void> => {
        for (let t = 0; t < ms; t += 100) {
          clock.advance(100);
          await settle();
        }
      };
      const warnings = () => lines.filter((l) => l.level === 40 && l.msg === 'sending a snapshot failed; retrying later');
      const infos = () => lines.filter((l) => l.level === 30 && l.msg === 'sending a snapshot');
      return { clock, setup, postsAtMs, runForMs, warnings, infos, refusing: (on: boolean) => (refuse = on) };
    }

    it('retries with a backoff doubling from snapshotRetryMsMin to snapshotRetryMsMax, not at every heartbeat', async () => {
      const peer = refusedPeer();
      peer.setup.sender.send(follower, term(2));
      await settle();
      await peer.runForMs(60_000);
      const gapsMs = peer.postsAtMs.slice(1).map((at, i) => at - peer.postsAtMs[i]!);
      // Every heartbeat would be 600 posts; the backoff reaches its ceiling after 7 doublings, then ~1 post per 3.75 s.
      expect(peer.postsAtMs.length).toBeGreaterThan(10);
      expect(peer.postsAtMs.length).toBeLessThan(40);
      // The first failure is retried at the next heartbeat; later gaps grow, and none exceeds the ceiling (plus a heartbeat).
      expect(gapsMs[0]).toBe(100);
      for (const gap of gapsMs) expect(gap).toBeLessThanOrEqual(limits.snapshotRetryMsMax + 200);
      for (const gap of gapsMs.slice(8)) expect(gap).toBeGreaterThanOrEqual(limits.snapshotRetryMsMax / 2);
      expect(peer.setup.sender.failuresOf(follower)).toBe(peer.postsAtMs.length);
    });

    it('logs the first failure at once, then at most one warning per snapshotFailureLogIntervalMs with the count since', async () => {
      const peer = refusedPeer();
      peer.setup.sender.send(follower, term(2));
      await settle();
      expect(peer.warnings()).toHaveLength(1);
      expect(peer.infos()).toHaveLength(1);
      await peer.runForMs(2 * limits.snapshotFailureLogIntervalMs + 5_000);
      const warnings = peer.warnings();
      expect(warnings.length).toBeGreaterThanOrEqual(2);
      expect(warnings.length).toBeLessThanOrEqual(3);
      expect(warnings[1]!.failuresSinceLastWarning).toBeGreaterThan(1);
      // The retries' own "sending a snapshot" lines are at debug: only the first attempt is at info.
      expect(peer.infos()).toHaveLength(1);
      const counted = warnings.slice(1).reduce((n, w) => n + (w.failuresSinceLastWarning ?? 0), 1);
      expect(counted).toBeLessThanOrEqual(peer.postsAtMs.length);
    });

    it('a finished stream ends the streak: the next failure is reported at once and warned of again', async () => {
      const peer = refusedPeer();
      peer.setup.sender.send(follower, term(2));
      await settle();
      await peer.runForMs(3_000);
      peer.refusing(false);
      // The retry waiting out its backoff comes within the ceiling (plus a heartbeat).
      await peer.runForMs(limits.snapshotRetryMsMax + 200);
      expect(peer.setup.reports.at(-1)).toEqual([follower, 'finish']);
      expect(peer.setup.sender.failuresOf(follower)).toBe(0);
      const warningsBefore = peer.warnings().length;
      const reportsBefore = peer.setup.reports.length;
      peer.refusing(true);
      peer.setup.sender.send(follower, term(2));
      await settle();
      // Reported without the clock moving, and warned of at once.
      expect(peer.setup.reports.slice(reportsBefore)).toEqual([[follower, 'failure']]);
      expect(peer.warnings()).toHaveLength(warningsBefore + 1);
      expect(peer.infos().length).toBeGreaterThanOrEqual(2);
    });
  });
});
