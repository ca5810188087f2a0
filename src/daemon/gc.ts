// Collections a manager asks V8 for. A snapshot compacts the records into the snapshot's buffer (see
// KvStateMachine.captureSnapshotParts): what the manager held before (the records as objects, the previous
// snapshot's buffer: ~40 MiB and more for 100,000 keys + 100,000 tasks) is garbage from then on, but V8 collects it
// only when the heap grows again, and a manager that went quiet after a load kept it all resident
// (bench/snapshot.ts). The heap left is small (the records are bytes outside it), so a major collection costs tens
// of milliseconds: one after each snapshot, as a task of its own (execution 'async'), and one when a burst of
// applied entries ends (within a second after; the heartbeats of a cluster at rest are no burst). That one also
// compacts: V8 otherwise keeps the pages it freed half-used and committed (in process, 100,000 keys + 100,000
// tasks: heap committed 161 MiB for 67 used; compacted, 85), and a manager that just went quiet has the 50-70 ms
// it takes; bursts that come and go do not pay it more than once per minGapMs.
import { setFlagsFromString } from 'node:v8';
import { setIntervalOn, type Clock, type Timer } from '../lib/clock.js';

type CollectGarbage = (options?: { type: 'major' | 'minor'; execution: 'sync' | 'async' }) => void;

/** V8's collector when node was launched with --expose-gc (src/daemon/launch.ts, bin/minkube.js); else undefined. */
const gc = (globalThis as { gc?: CollectGarbage }).gc;

export function collectGarbageSoon(): void {
  gc?.({ type: 'major', execution: 'async' });
}

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
  /** How often progress is looked at: a collection comes one to two of these after a burst ended. */
  checkEveryMs?: number;
  /**
   * Entries applied between two checks that still count as quiet: a cluster at rest applies its workers' heartbeats
   * and the scheduler's placements, and its applied index never stands still.
   */
  quietEntriesMax?: number;
  /** The least time between two collections: a burst that ends sooner waits for it (while still quiet). */
  minGapMs?: number;
}

/**
 * Compacts once each time a burst of work ends: the first check that finds the manager quiet (at most
 * quietEntriesMax entries applied since the check before) after one that found it busy, and at least minGapMs after
 * the last collection. Not again while it stays quiet.
 */
export function startIdleCollector(o: IdleCollectorOptions): Timer {
  const collect = o.collect ?? compactHeapNow;
  const quietEntriesMax = o.quietEntriesMax ?? 100;
  const minGapMs = o.minGapMs ?? 10_000;
  let seen = o.progress();
  let busy = false;
  let lastMs = -Infinity;
  return setIntervalOn(
    o.clock,
    () => {
      const now = o.progress();
      const moved = now - seen;
      seen = now;
      if (moved > quietEntriesMax) busy = true;
      else if (busy && o.clock.nowMs() - lastMs >= minGapMs) {
        busy = false;
        lastMs = o.clock.nowMs();
        collect();
      }
    },
    o.checkEveryMs ?? 500,
  );
}
