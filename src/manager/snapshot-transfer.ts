// InstallSnapshot outside the Raft core (as etcd does it): the leader streams a snapshot's bytes to a follower in
// chunks over HTTP (a connection of its own, so heartbeats never wait behind it), and the follower hands the
// complete, verified bytes to its core. A transfer resumes where it stopped: the follower keeps what it received and
// answers every chunk with the offset it expects next.
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import { defaultHttpClient } from '../client/default.js';
import { parseJson, type HttpClient } from '../client/http.js';
import { backoffCeilingMs, fullJitterMs } from '../lib/backoff.js';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import type { NodeId, Term } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { systemRandom, type Random } from '../lib/random.js';
import type { SnapshotMeta } from '../raft/types.js';
import { headerToQuery, SNAPSHOT_CHUNK_PATH, type ChunkReply, type SnapshotChunkHeader } from '../contracts/snapshot-chunks.js';

interface PartialTransfer {
  readonly key: string;
  readonly header: SnapshotChunkHeader;
  /**
   * The announced size, allocated at the first chunk (untouched pages cost nothing) and filled as chunks arrive; the
   * checksum runs along. Joining 40 MiB of chunks and checksumming them at the last one held the loop ~0.1-0.5 s.
   */
  readonly data: Buffer;
  crc: number;
  offset: number;
  touchedMs: number;
}

/**
 * The follower's side: one transfer at a time (a newer one replaces it), held in memory until complete. A transfer
 * left idle for limits.snapshotTransferIdleMsMax is forgotten.
 */
export class SnapshotReceiver {
  private partial: PartialTransfer | null = null;

  constructor(
    private readonly o: {
      logger: Logger;
      nowMs: () => number;
      /** The complete, verified bytes: step them into the core. */
      onComplete: (header: SnapshotChunkHeader, data: Uint8Array) => void;
      /**
       * Whether a snapshot at least as new as `meta` is already received and on its way in (being prepared, offered
       * or installed): a leader that asks again meanwhile (its probes are refused until the install) is told at once
       * that it is done, instead of sending every byte again.
       */
      underWay?: (meta: SnapshotChunkHeader['meta']) => boolean;
    },
  ) {}

  receive(h: SnapshotChunkHeader, chunk: Uint8Array): ChunkReply {
    const now = this.o.nowMs();
    const key = `${h.from}/${h.term}/${h.meta.index}/${h.meta.term}/${h.sizeBytes}/${h.crc32}`;
    let p = this.partial;
    if (p !== null && p.key !== key && now - p.touchedMs < limits.snapshotTransferIdleMsMax && h.term < p.header.term) {
      throw new MinkubeError('INVALID_PARAM', `a snapshot transfer from a newer term (${p.header.term}) is under way`);
    }
    if (p === null || p.key !== key) {
      if (h.offset !== 0) return { offset: 0, done: false };
      if (this.o.underWay?.(h.meta) === true) {
        this.o.logger.info({ from: h.from, index: h.meta.index }, 'snapshot not received again: one as new is being installed');
        return { offset: h.sizeBytes, done: true };
      }
      p = { key, header: h, data: Buffer.allocUnsafeSlow(h.sizeBytes), crc: 0, offset: 0, touchedMs: now };
      this.partial = p;
      this.o.logger.info({ from: h.from, index: h.meta.index, sizeBytes: h.sizeBytes }, 'receiving a snapshot');
    }
    p.touchedMs = now;
    if (h.offset !== p.offset) return { offset: p.offset, done: false };
    if (p.offset + chunk.length > h.sizeBytes) throw new MinkubeError('INVALID_BODY', `snapshot chunk: ${p.offset + chunk.length} bytes exceed the announced size ${h.sizeBytes}`);
    if (chunk.length === 0 && h.sizeBytes > 0) return { offset: p.offset, done: false };
    p.data.set(chunk, p.offset);
    // zlib.crc32 answers 0 for an empty view, so only non-empty chunks are added (an empty one never gets here).
    p.crc = crc32(chunk, p.crc);
    p.offset += chunk.length;
    if (p.offset < h.sizeBytes) return { offset: p.offset, done: false };
    this.partial = null;
    const data = p.data;
    if (p.crc !== h.crc32) throw new MinkubeError('INVALID_BODY', 'snapshot: the received bytes do not match their checksum; the transfer starts over');
    this.o.logger.info({ from: h.from, index: h.meta.index, sizeBytes: h.sizeBytes }, 'snapshot received');
    this.o.onComplete(h, data);
    return { offset: h.sizeBytes, done: true };
  }
}

/**
 * How the sender reaches follower `to` (whose certificate must name it: a chunk holds every secret): POST one chunk,
 * answer the follower's reply. Injected so tests need no HTTP.
 */
export type ChunkPoster = (apiAddress: string, header: SnapshotChunkHeader, chunk: Uint8Array, timeoutMs: number, to: string) => Promise<ChunkReply>;

/**
 * Posts chunks through `http` (its TLS material and token apply): a follower's 'host:port' is https when the client
 * has TLS material. A refusal throws the MinkubeError the follower described.
 */
export function httpChunkPoster(http: HttpClient): ChunkPoster {
  return async (apiAddress, header, chunk, timeoutMs, to) => {
    const path = `${SNAPSHOT_CHUNK_PATH}?${headerToQuery(header)}`;
    const res = await http.requestOk({ method: 'POST', url: http.baseUrlOf(apiAddress), path, headers: octetStream, body: chunk, timeoutMs, server: { role: 'manager', id: to } });
    const body = parseJson(res.text) as Partial<ChunkReply> | undefined;
    if (typeof body?.offset !== 'number') throw new MinkubeError('INTERNAL', `POST ${res.url}: the follower answered ${res.status} without an offset`);
    return { offset: body.offset, done: body.done === true };
  };
}

const octetStream: Readonly<Record<string, string>> = { 'content-type': 'application/octet-stream' };

export interface SnapshotSource {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
  readonly crc32: number;
}

/** Consecutive failed streams to one peer: the backoff before the next report, and when they were last logged. */
interface FailureStreak {
  failures: number;
  /** Failures since the last warning (the first one is logged at once). */
  unloggedFailures: number;
  lastWarnMonoMs: number;
  /** A failure report waiting out its backoff (the peer counts as streaming meanwhile). */
  timer: Timer | null;
}

/**
 * The leader's side: at most one stream per follower; every stream ends with exactly one report. A failure is
 * reported at once the first time, then after the one backoff (limits.snapshotRetryMsMin doubling to Max): the core
 * asks for a new stream within a heartbeat of a report, so a peer whose API port is closed was otherwise tried (and
 * logged twice) every 100 ms. Failures are logged at warn at most once per limits.snapshotFailureLogIntervalMs per
 * peer, with how many there were since; a finished stream ends the streak.
 */
export class SnapshotSender {
  private readonly streaming = new Set<NodeId>();
  private readonly streaks = new Map<NodeId, FailureStreak>();
  private closed = false;

  constructor(
    private readonly o: {
      selfId: NodeId;
      logger: Logger;
      /** The newest snapshot this node holds (it may be newer than the one the core named). */
      source: () => Promise<SnapshotSource | null>;
      apiAddressOf: (id: NodeId) => string | undefined;
      report: (peer: NodeId, status: 'finish' | 'failure') => void;
      post?: ChunkPoster;
      /** The manager's clock: monoMs times a stream and the warnings, setTimeout waits out the backoff (default the system's). */
      clock?: Clock;
      /** The backoff's jitter (default systemRandom; the driver passes its seeded one so the simulator replays it). */
      random?: Random;
      chunkBytes?: number;
      chunkTimeoutMs?: number;
    },
  ) {}

  get active(): number {
    return this.streaming.size;
  }

  /** Consecutive failed streams to `peer` since the last finished one. */
  failuresOf(peer: NodeId): number {
    return this.streaks.get(peer)?.failures ?? 0;
  }

  /** Starts streaming to `to` unless a stream to it is under way (the core asks again after a failure). */
  send(to: NodeId, term: Term): void {
    if (this.streaming.has(to) || this.closed) return;
    this.streaming.add(to);
    void this.stream(to, term).then(
      () => this.finished(to),
      (err: unknown) => this.failed(to, err instanceof Error ? err.message : String(err)),
    );
  }

  /** Drops the failure reports waiting out their backoff (the driver stops). */
  close(): void {
    this.closed = true;
    for (const streak of this.streaks.values()) streak.timer?.cancel();
    this.streaks.clear();
  }

  private get clock(): Clock {
    return this.o.clock ?? systemClock;
  }

  private finished(to: NodeId): void {
    const streak = this.streaks.get(to);
    if (streak !== undefined && streak.failures > 0) this.o.logger.info({ peer: to, failures: streak.failures }, 'a snapshot was sent after failed attempts');
    this.streaks.delete(to);
    this.end(to, 'finish');
  }

  private failed(to: NodeId, reason: string): void {
    const now = this.clock.monoMs();
    let streak = this.streaks.get(to);
    if (streak === undefined) {
      streak = { failures: 0, unloggedFailures: 0, lastWarnMonoMs: now, timer: null };
      this.streaks.set(to, streak);
    }
    streak.failures++;
    streak.unloggedFailures++;
    const delayMs = snapshotRetryDelayMs(streak.failures, () => (this.o.random ?? systemRandom).next());
    if (streak.failures === 1 || now - streak.lastWarnMonoMs >= limits.snapshotFailureLogIntervalMs) {
      const since = streak.failures === 1 ? {} : { failuresSinceLastWarning: streak.unloggedFailures, failures: streak.failures };
      this.o.logger.warn({ peer: to, err: reason, ...since, retryInMs: Math.round(delayMs) }, 'sending a snapshot failed; retrying later');
      streak.unloggedFailures = 0;
      streak.lastWarnMonoMs = now;
    } else {
      this.o.logger.debug({ peer: to, err: reason, failures: streak.failures, retryInMs: Math.round(delayMs) }, 'sending a snapshot failed; retrying later');
    }
    if (delayMs === 0 || this.closed) return this.end(to, 'failure');
    const s = streak;
    s.timer = this.clock.setTimeout(() => {
      s.timer = null;
      if (!this.closed) this.end(to, 'failure');
    }, delayMs);
  }

  private end(to: NodeId, status: 'finish' | 'failure'): void {
    this.streaming.delete(to);
    this.o.report(to, status);
  }

  /** Streams the newest snapshot to `to`; throws saying why when it cannot be sent whole. */
  private async stream(to: NodeId, term: Term): Promise<void> {
    const address = this.o.apiAddressOf(to);
    const source = await this.o.source();
    if (address === undefined) throw new Error('cannot send a snapshot: the peer has no known API address');
    if (source === null) throw new Error('cannot send a snapshot: this node holds none');
    const post = this.o.post ?? httpChunkPoster(defaultHttpClient());
    const chunkBytes = this.o.chunkBytes ?? limits.snapshotChunkBytes;
    const { data } = source;
    const base = { from: this.o.selfId, term, meta: source.meta, sizeBytes: data.length, crc32: source.crc32 };
    const started = this.clock.monoMs();
    // Retries after a failure are logged at debug: the failures themselves are summarised at warn.
    const level = this.failuresOf(to) === 0 ? 'info' : 'debug';
    this.o.logger[level]({ peer: to, index: source.meta.index, sizeBytes: data.length }, 'sending a snapshot');
    let offset = 0;
    // Each round trip either moves forward or learns the receiver's offset; twice the chunks (+ slack) bounds it.
    const roundsMax = 2 * Math.ceil(data.length / chunkBytes) + 8;
    for (let round = 0; round < roundsMax; round++) {
      const chunk = data.subarray(offset, Math.min(data.length, offset + chunkBytes));
      const reply = await post(address, { ...base, offset }, chunk, this.o.chunkTimeoutMs ?? limits.snapshotChunkTimeoutMs, to);
      if (reply.done) {
        this.o.logger.info({ peer: to, index: source.meta.index, sizeBytes: data.length, ms: Math.round(this.clock.monoMs() - started) }, 'snapshot sent');
        return;
      }
      if (reply.offset < 0 || reply.offset > data.length) throw new Error(`the follower asked for offset ${reply.offset} of a ${data.length}-byte snapshot`);
      offset = reply.offset;
    }
    throw new Error(`the follower did not take the snapshot within ${roundsMax} round trips`);
  }
}

/**
 * How long failure number `failures` (1 for the first) of a streak waits before it is reported: the first not at all,
 * then the one backoff's ceiling for retry failures - 1, halved, plus up to as much again in jitter.
 */
export function snapshotRetryDelayMs(failures: number, draw: () => number): number {
  if (failures <= 1) return 0;
  const growth = { baseMs: limits.snapshotRetryMsMin, capMs: limits.snapshotRetryMsMax };
  return backoffCeilingMs(failures - 1, growth) / 2 + fullJitterMs(failures - 1, growth, draw) / 2;
}
