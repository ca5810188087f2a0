// Collections a manager asks V8 for. A snapshot compacts the records into the snapshot's buffer (see
// KvStateMachine.captureSnapshotParts): what the manager held before (the records as objects, the previous
// snapshot's buffer: ~40 MiB and more for 100,000 keys + 100,000 tasks) is garbage from then on, but V8 collects it
// only when the heap grows again, and a manager that went quiet after a load kept it all resident
// (bench/snapshot.ts). The heap left is small (the records are bytes outside it), so a major collection costs tens
// of milliseconds: one after each large snapshot, as a task of its own (execution 'async'), and one when a burst of
// applied entries ends (within a second after; the heartbeats of a cluster at rest are no burst). That one also
// compacts: V8 otherwise keeps the pages it freed half-used and committed (in process, 100,000 keys + 100,000
// tasks: heap committed 161 MiB for 67 used; compacted, 85), and a manager that just went quiet has the 50-70 ms
// it takes; bursts that come and go do not pay it more than once per gapMsMin.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { setIntervalOn, type Clock, type Timer } from '../lib/clock.js';
import { limits } from '../lib/limits.js';

type CollectGarbage = (options?: { type: 'major' | 'minor'; execution: 'sync' | 'async' }) => void;

/** V8's collector when node was launched with --expose-gc (src/daemon/launch.ts, bin/minkube.js); else undefined. */
const gc = (globalThis as { gc?: CollectGarbage }).gc;

/** Whether this node can ask V8 for collections (launched with --expose-gc). */
export const collectionsExposed: boolean = gc !== undefined;

/**
 * After this node saved a snapshot of `sizeBytes`: a major collection, as a task of its own, when the snapshot is
 * large enough that what it let go of matters (limits.snapshotCollectBytesMin). The collection is not incremental: it
 * stops the process for about 1.6 ms per MiB of live heap, on every manager at about the same moment (they snapshot
 * at about the same index). For a small state V8's own collections take the garbage soon enough and without that
 * pause; forcing one after each snapshot of 16,384 keys (1.9 MiB) cost bench/kv-go.ts a fifth of its writes at 256
 * clients, and their p99 was half as high again (72 against 105 ms).
 *
 * It is started whatever the heap's size. With a million keys (a heap of 130-150 MiB) these pauses took 114-264 ms
 * under load (--trace-gc on the managers of `npx tsx bench/snapshot.ts --keys 1000000 --tasks 1000 --quiet-s 2`).
 * Passing over those past 100 MiB left the managers about 200 MiB larger 2 s after the load (leader 536 and 546
 * MiB in two runs, against 321 with them), and the longest stall of their loops during it was no shorter (235-410
 * and 219-279 ms, against 288-382).
 */
export function collectAfterSnapshot(sizeBytes: number, collect: (() => void) | undefined = collectSoon): void {
  if (sizeBytes >= limits.snapshotCollectBytesMin) collect?.();
}

const collectSoon = gc === undefined ? undefined : (): void => gc({ type: 'major', execution: 'async' });

/**
 * A major collection now that moves what lives onto as few pages as it can, so that the rest go back to the system.
 * V8 compacts only its most fragmented pages unless told otherwise: the flag is on for this collection alone.
 */
export function compactHeapNow(): void {
  if (gc === undefined) return;
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    gc();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

export interface IdleCollectorOptions {
  clock: Clock;
  /** Something that moves while the manager works: its applied index. */
  progress: () => number;
  collect?: () => void;
  /** How often progress is looked at: a collection comes quietChecksMin to one more of these after a burst ended. */
  checkEveryMs?: number;
  /**
   * Entries applied between two checks that still count as quiet: a cluster at rest applies its workers' heartbeats
   * and the scheduler's placements, and its applied index never stands still.
   */
  quietEntriesMax?: number;
  /** The least time between two collections: a burst that ends sooner waits for it (while still quiet). */
  gapMsMin?: number;
  /**
   * Quiet checks in a row before a collection: one quiet half-second in the middle of a load (a stall, a pause
   * between two phases of it) is no end of a burst, and a pause added to a stall is what costs a leader its term.
   */
  quietChecksMin?: number;
  /**
   * Entries waiting now (in the log, not applied yet: proposals on their way through a slow disk). A check that finds
   * more than quietEntriesMax is not quiet, however few entries were applied since the one before: with a million
   * keys, all three managers wrote a 100 MiB snapshot at once and applied nothing for about a second under a full
   * load, and each started a compacting collection of 316 ms in the middle of it. A few are always on their way at
   * rest (a follower appends a heartbeat's entry a heartbeat before it learns it committed): no work waiting; taken
   * for it, they made followers of an idle cluster compact every 10-16 s.
   */
  backlog?: () => number;
  /**
   * The longest pause a collection may be expected to take: none is started that would take longer. A compacting
   * collection stops the process for about 1.6 ms per MiB of live heap (100 MiB: 160 ms; 190 MiB: 310 ms), and a
   * leader silent for an election timeout is replaced.
   */
  pauseMsMax?: number;
  /** Bytes of live heap now (default: V8's used heap). */
  heapUsedBytes?: () => number;
  /** Told of each collection done or passed over (for a log line). */
  onCollect?: (c: { done: boolean; heapUsedMiB: number; expectedMs: number; tookMs: number | null }) => void;
}

/** What a compacting collection was first expected to cost per MiB of live heap; each one done corrects it. */
const pauseMsPerMiBInitial = 2;

/**
 * Compacts once each time a burst of work ends: at the quietChecksMin-th check in a row that finds the manager quiet
 * (at most quietEntriesMax entries applied since the check before, and none waiting) after one that found it busy, and at least
 * gapMsMin after the last collection. Not again while it stays quiet, and never when its pause would pass pauseMsMax.
 */
export function startIdleCollector(o: IdleCollectorOptions): Timer {
  const collect = o.collect ?? compactHeapNow;
  const quietEntriesMax = o.quietEntriesMax ?? 100;
  const gapMsMin = o.gapMsMin ?? 10_000;
  const pauseMsMax = o.pauseMsMax ?? Infinity;
  const heapUsedBytes = o.heapUsedBytes ?? (() => getHeapStatistics().used_heap_size);
  let pauseMsPerMiB = pauseMsPerMiBInitial;
  const quietChecksMin = o.quietChecksMin ?? 2;
  let seen = o.progress();
  let busy = false;
  let quietChecks = 0;
  let lastMs = -Infinity;
  let passedOver = false;
  /** Whether it collected: a heap too large now may be smaller at a later check (V8 collects its garbage too). */
  const collectIfShort = (): boolean => {
    const heapUsedMiB = heapUsedBytes() / 2 ** 20;
    const expectedMs = heapUsedMiB * pauseMsPerMiB;
    if (expectedMs > pauseMsMax) {
      // Told once until one is done, not at every check that passes it over again.
      if (!passedOver) o.onCollect?.({ done: false, heapUsedMiB, expectedMs, tookMs: null });
      passedOver = true;
      return false;
    }
    const startedMs = o.clock.monoMs();
    collect();
    const tookMs = o.clock.monoMs() - startedMs;
    // Up to what this one took per MiB at once when it took longer than expected (a loaded machine: the next one
    // would pass the budget too), halfway down to it when less (a heap of few MiB says little: not below 1 ms per MiB).
    if (heapUsedMiB >= 16) {
      const took = tookMs / heapUsedMiB;
      pauseMsPerMiB = Math.max(1, took > pauseMsPerMiB ? took : (pauseMsPerMiB + took) / 2);
    }
    o.onCollect?.({ done: true, heapUsedMiB, expectedMs, tookMs });
    passedOver = false;
    return true;
  };
  return setIntervalOn(
    o.clock,
    () => {
      const now = o.progress();
      const moved = now - seen;
      seen = now;
      if (moved > quietEntriesMax || (o.backlog?.() ?? 0) > quietEntriesMax) {
        busy = true;
        quietChecks = 0;
        return;
      }
      quietChecks++;
      // A collection passed over is tried again at each quiet check, until it is done.
      if (busy && quietChecks >= quietChecksMin && o.clock.monoMs() - lastMs >= gapMsMin && collectIfShort()) {
        busy = false;
        lastMs = o.clock.monoMs();
      }
    },
    o.checkEveryMs ?? 500,
  );
}
