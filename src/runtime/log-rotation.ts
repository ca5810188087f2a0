// The process runtime's log files: when a running process's log is looked at next (sooner as it grows faster), what
// a rotation keeps, and where a follower reads next across rotations. Decisions here; the runtime does the I/O.
import type { FSWatcher } from 'node:fs';
import * as fs from 'node:fs/promises';

/** One running process's log checks (see ProcessRuntime.checkDueLogs), on the runtime's monotonic clock. */
export interface LogCheck {
  /** When it is looked at next. */
  dueMs: number;
  /** The last look, and the size it left the file at (0 after a rotation). */
  lastMs: number;
  lastSize: number;
  /** The first change the watch reported since the last look; null: none. */
  changedMs: number | null;
  /** How long after the last look the file may next need one, at the rate it grew (see nextCheckSpacingMs). */
  spacingMs: number;
  /** The watch on the file; null without one (not wanted, or the host refused it): then only dueMs brings looks. */
  watcher: FSWatcher | null;
}

export function newLogCheck(nowMs: number, spacingMs: number): LogCheck {
  return { dueMs: nowMs + spacingMs, lastMs: nowMs, lastSize: 0, changedMs: null, spacingMs, watcher: null };
}

/**
 * When a log's next look is due for a change its watch reported at nowMs: as soon as its spacing allows, at most
 * afterChangeMsMax after its last look (never before nowMs). Later than the look already due: that one stands.
 */
export function dueAfterChangeMs(check: LogCheck, nowMs: number, afterChangeMsMax: number): number {
  return Math.min(check.dueMs, Math.max(nowMs, check.lastMs + Math.min(check.spacingMs, afterChangeMsMax)));
}

/**
 * How long after a look the log needs the next one: before it can pass its bound at the rate it last grew (grownBytes
 * over overMs), within [minMs, maxMs]. A log that did not grow waits maxMs (its watch brings a look forward).
 */
export function nextCheckSpacingMs(o: { grownBytes: number; overMs: number; sizeBytes: number; boundBytes: number; minMs: number; maxMs: number }): number {
  if (o.grownBytes <= 0) return o.maxMs;
  const msToBound = (Math.max(0, o.boundBytes - o.sizeBytes) * Math.max(1, o.overMs)) / o.grownBytes;
  return Math.min(o.maxMs, Math.max(o.minMs, Math.floor(msToBound)));
}

/**
 * A log's rotations by one runtime instance: `count` so far; the last one put bytes [base, end) of the file, as it was
 * before that rotation, in .1 (base = end: none, the disk had no room for them).
 */
export interface Rotation {
  count: number;
  base: number;
  end: number;
}

/** Where a follower is: `offset` bytes into the file as it was after `generation` rotations. */
export interface FollowPosition {
  generation: number;
  offset: number;
}

/**
 * Where a follower at `at` reads next: what is left of the generation .1 holds (oldBytes from oldPosition in .1), or,
 * with oldBytes 0, the live file from the returned offset. A follower a whole generation behind, or behind the start
 * of .1, skips what no file keeps any more; one that read the rotated generation to its end goes on at 0.
 */
export function followSource(at: FollowPosition, r: Rotation): { at: FollowPosition; oldPosition: number; oldBytes: number; skipped: boolean } {
  if (at.generation >= r.count) return { at, oldPosition: 0, oldBytes: 0, skipped: false };
  // A whole generation behind, or behind the start of .1: what lay between is no longer kept.
  const skipped = at.generation < r.count - 1 || at.offset < r.base;
  const offset = at.generation < r.count - 1 ? r.base : Math.max(at.offset, r.base);
  if (offset < r.end) return { at: { generation: r.count - 1, offset }, oldPosition: offset - r.base, oldBytes: r.end - offset, skipped };
  return { at: { generation: r.count, offset: 0 }, oldPosition: 0, oldBytes: 0, skipped };
}

/**
 * A follower's output cut at line ends, so that a skip (it fell behind what the files keep) never splices the start
 * of one line to the end of another: the unended last line of what it read is held until its end comes (or the
 * follower lets it go, caught up: a prompt is shown without its end); at a skip what is held is dropped, and what
 * follows the skip is dropped up to its first line end, since it may start mid-line. A line the reader was already
 * shown the start of is ended where the skip cut it. Held lines longer than heldBytesMax are let go in pieces.
 */
export class WholeLines {
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** After a skip: drop up to and through the next line end. */
  private dropping = false;
  /** Whether the last byte given out ended a line (or nothing was given out). */
  private atLineStart = true;

  constructor(private readonly heldBytesMax: number) {}

  /** What of `chunk` (and what was held) can be shown now: whole lines, or a held line past heldBytesMax. */
  push(chunk: Buffer): Buffer {
    let data = chunk;
    if (this.dropping) {
      const end = data.indexOf(0x0a);
      if (end < 0) return Buffer.alloc(0);
      this.dropping = false;
      data = data.subarray(end + 1);
    }
    const last = data.lastIndexOf(0x0a);
    if (last < 0) {
      this.hold(data);
      return this.heldBytes > this.heldBytesMax ? this.release() : Buffer.alloc(0);
    }
    const out = this.give(Buffer.concat([...this.held, data.subarray(0, last + 1)]));
    this.held = [];
    this.heldBytes = 0;
    this.hold(data.subarray(last + 1));
    return out;
  }

  /** What is held, given out as it is (the follower caught up, or its source ended). */
  release(): Buffer {
    const out = this.give(Buffer.concat(this.held));
    this.held = [];
    this.heldBytes = 0;
    return out;
  }

  /** The follower skipped: what is held is dropped; a line already partly shown is ended; the next line start is sought. */
  skip(): Buffer {
    this.held = [];
    this.heldBytes = 0;
    this.dropping = true;
    return this.atLineStart ? Buffer.alloc(0) : this.give(Buffer.from('\n'));
  }

  private hold(data: Buffer): void {
    if (data.length === 0) return;
    this.held.push(data);
    this.heldBytes += data.length;
  }

  private give(out: Buffer): Buffer {
    if (out.length > 0) this.atLineStart = out[out.length - 1] === 0x0a;
    return out;
  }
}

/**
 * The newest bytesMax of data (which starts at base in its file), from the first whole line in them (from where they
 * start when they hold no line end), and where they start.
 */
export function keepNewest(data: Buffer, base: number, bytesMax: number): { data: Buffer; base: number } {
  if (data.length <= bytesMax) return { data, base };
  const start = data.length - bytesMax;
  const lineEnd = data.indexOf(0x0a, start);
  const cut = data[start - 1] === 0x0a || lineEnd < 0 ? start : lineEnd + 1;
  return { data: data.subarray(cut), base: base + cut };
}

/**
 * The last `bytes` of the first `size` bytes of `from`, from the first whole line in them, and where they start in the
 * file.
 */
export async function readWholeLinesTail(from: string, size: number, bytes: number): Promise<{ data: Buffer; base: number }> {
  const start = Math.max(0, size - bytes);
  // One byte more before the tail, when there is one: whether the tail starts a line.
  const before = start > 0 ? 1 : 0;
  const source = await fs.open(from, 'r');
  let data: Buffer;
  try {
    data = Buffer.alloc(size - start + before);
    const { bytesRead } = await source.read(data, 0, data.length, start - before);
    data = data.subarray(0, bytesRead);
  } finally {
    await source.close();
  }
  if (before === 0) return { data, base: start };
  const cut = data[0] === 0x0a ? 0 : data.indexOf(0x0a, 1);
  const skipped = cut < 0 ? 1 : cut + 1;
  return { data: data.subarray(skipped), base: start - 1 + skipped };
}
