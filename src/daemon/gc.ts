// Collections a manager asks V8 for. A snapshot compacts the records into the snapshot's buffer (see
// KvStateMachine.captureSnapshotParts): what the manager held before (the records as objects, the previous
// snapshot's buffer: ~40 MiB and more for 100,000 keys + 100,000 tasks) is garbage from then on, but V8 collects it
// only when the heap grows again, and a manager that went quiet after a load kept it all resident
// (bench/snapshot.ts). The heap left is small (the records are bytes outside it), so a major collection costs tens
// of milliseconds: one after each snapshot, and one when the manager goes quiet after applying entries. Each runs as
// a task of its own (execution 'async'), not inside the caller.
import { setIntervalOn, type Clock, type Timer } from '../lib/clock.js';

type CollectGarbage = (options?: { type: 'major' | 'minor'; execution: 'sync' | 'async' }) => void;

/** V8's collector when node was launched with --expose-gc (src/daemon/launch.ts, bin/minkube.js); else undefined. */
const gc = (globalThis as { gc?: CollectGarbage }).gc;

export function collectGarbageSoon(): void {
  gc?.({ type: 'major', execution: 'async' });
}

export interface IdleCollectorOptions {
  clock: Clock;
  /** Something that moves while the manager works: its applied index. */
  progress: () => number;
  collect?: () => void;
  /** How often progress is looked at: a collection comes one to two of these after it stopped. */
  checkEveryMs?: number;
}

/** Collects once each time the manager goes quiet: a check that finds no progress since one that found some. */
export function startIdleCollector(o: IdleCollectorOptions): Timer {
  const collect = o.collect ?? collectGarbageSoon;
  let seen = o.progress();
  let moved = false;
  return setIntervalOn(
    o.clock,
    () => {
      const now = o.progress();
      if (now !== seen) {
        seen = now;
        moved = true;
      } else if (moved) {
        moved = false;
        collect();
      }
    },
    o.checkEveryMs ?? 5000,
  );
}
