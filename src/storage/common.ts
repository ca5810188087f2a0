// Rules both storage implementations share: what a save may ask for, which ranges exist, the empty hard state, and
// what a snapshot does to the log's bounds.
import { crc32 } from 'node:zlib';
import { assert } from '../lib/assert.js';
import { diskRefusalCodes, errnoReason } from '../lib/errno.js';
import { MinkubeError } from '../lib/errors.js';
import { logIndex, term } from '../lib/ids.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import type { SnapshotBytes, SnapshotInfo } from './types.js';

export const emptyHardState: HardState = { term: term(0), vote: null, commit: logIndex(0) };

/**
 * Asserts that `entries` can be saved into a log holding [first, last]: contiguous, starting inside the log or right
 * after it (a fresh log starts at `first`), and after the snapshot's index: entries it covers are committed, never
 * rewritten (a log cut below the snapshot would leave a gap before the next append). Returns the last index after
 * the save.
 */
export function checkSave(entries: readonly Entry[], first: number, last: number, snapshotIndex = 0): number {
  if (entries.length === 0) return last;
  const start = entries[0]!.index;
  assert(start >= first, `saving from index ${start} would rewrite entries before the first index ${first}`);
  assert(start > snapshotIndex, `saving from index ${start} would rewrite entries the snapshot at index ${snapshotIndex} covers`);
  assert(start <= last + 1, `saving from index ${start} leaves a gap after the last index ${last}`);
  for (let i = 1; i < entries.length; i++) {
    assert(entries[i]!.index === start + i, `the entries to save are not contiguous at index ${start + i}`);
  }
  return start + entries.length - 1;
}

export function checkRange(lo: number, hi: number, first: number, last: number): void {
  assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), `range [${lo}, ${hi}) is not made of integers`);
  assert(lo <= hi, `range [${lo}, ${hi}) is reversed`);
  if (lo === hi) return;
  assert(lo >= first && hi <= last + 1, `range [${lo}, ${hi}) is outside the stored log [${first}, ${last}]`);
}

/**
 * Asserts that a snapshot at `meta` may replace `current`, compacting the log through `compactThrough` (the index
 * itself for a received snapshot): it must be newer, and compactThrough may not pass it.
 */
export function checkSnapshot(meta: SnapshotMeta, compactThrough: number, current: SnapshotInfo | null): void {
  assert(Number.isSafeInteger(meta.index) && Number.isSafeInteger(meta.term) && meta.term >= 0, `snapshot meta ${meta.index}/${meta.term} is not made of integers`);
  const currentIndex = current?.meta.index ?? 0;
  assert(meta.index > currentIndex, `a snapshot at index ${meta.index} is not newer than the current one at index ${currentIndex}`);
  assert(Number.isSafeInteger(compactThrough) && compactThrough >= 0, `compactThrough ${compactThrough} is not an index`);
  assert(compactThrough <= meta.index, `compacting through ${compactThrough} would pass the snapshot's index ${meta.index}`);
}

/**
 * The log's bounds after a snapshot at `snapshotIndex` compacts it through `compactThrough`. The log never ends
 * below the snapshot (the next append goes right after one or the other): when no entry is left above
 * compactThrough, or the entries left all lie below the snapshot's index, the log empties to [index + 1, index].
 * The caller deletes every stored index below the new first.
 */
export function compactedBounds(first: number, last: number, snapshotIndex: number, compactThrough: number): { first: number; last: number } {
  if (last <= compactThrough || last < snapshotIndex) return { first: snapshotIndex + 1, last: snapshotIndex };
  return { first: Math.max(first, compactThrough + 1), last };
}

/** The stored description of a snapshot: a copy of its meta (callers may reuse theirs), its size and crc32. */
export function snapshotInfoOf(meta: SnapshotMeta, data: SnapshotBytes): SnapshotInfo {
  const copy: SnapshotMeta = { index: meta.index, term: meta.term, voters: [...meta.voters], learners: [...meta.learners] };
  if (data instanceof Uint8Array) return { meta: copy, sizeBytes: data.length, crc32: crc32(data) };
  // The checksum of the parts joined, without joining them (zlib's crc32 takes the running value).
  let sizeBytes = 0;
  let sum = 0;
  for (const part of data) {
    sizeBytes += part.length;
    if (part.length > 0) sum = crc32(part, sum);
  }
  return { meta: copy, sizeBytes, crc32: sum };
}

/** The snapshot's bytes as one buffer (joined when it came in parts). */
export function joinedSnapshot(data: SnapshotBytes): Uint8Array {
  return data instanceof Uint8Array ? data : Buffer.concat(data);
}

/** Why `data` is not the snapshot `info` describes, or null when it is. */
export function snapshotDataProblem(info: SnapshotInfo, data: Uint8Array): string | null {
  if (data.length !== info.sizeBytes) return `the snapshot holds ${data.length} bytes, not ${info.sizeBytes}`;
  return crc32(data) === info.crc32 ? null : 'the snapshot fails its checksum';
}

/** What LevelDB says (it has no errno code, only its message) when the system refused a write, in words. */
const levelReasons: readonly (readonly [RegExp, string])[] = [
  [/no space left on device/i, 'no space left on the device'],
  [/disk quota exceeded/i, 'the disk quota is exceeded'],
  [/read-only file system/i, 'the file system is read-only'],
  [/permission denied|operation not permitted/i, 'permission denied'],
  [/input\/output error/i, 'the disk failed to read or write (an input/output error)'],
];

/** The errno codes of a disk that refuses (lib/errno's), and of a data directory refusing access: as levelReasons. */
const refusalCodes: ReadonlySet<string> = new Set([...diskRefusalCodes, 'EACCES', 'EPERM']);

/**
 * The error in `err`'s chain (itself, or what caused it) that says the system refused to read or write the data
 * directory (a full disk, a read-only or failing one), in LevelDB's words or as an errno; null when none does. Such a
 * failure is never damage: nothing may be repaired, dropped or set aside for it, since the files are as they were.
 */
export function diskRefusal(err: unknown): Error | null {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && refusalCodes.has(code)) return e;
    if (levelReasons.some(([re]) => re.test(e.message))) return e;
  }
  return null;
}

/**
 * STORAGE_FAILED for a data directory the system would not let us open or write (a full disk, a read-only or failing
 * one): `what` failed, and why in words, not INTERNAL, which is for Minkube's own faults.
 */
export function storageFailed(what: string, err: unknown, then = 'start this manager again'): MinkubeError {
  const message = err instanceof Error ? err.message : String(err);
  const known = (err as { code?: unknown } | null)?.code;
  const reason = typeof known === 'string' && /^E[A-Z]+$/.test(known) ? errnoReason(err) : (levelReasons.find(([re]) => re.test(message))?.[1] ?? message);
  const hint = /no space|quota/.test(reason) ? ` (free some space, then ${then})` : '';
  return new MinkubeError('STORAGE_FAILED', `${what}: ${reason}${hint}`, { cause: err });
}
