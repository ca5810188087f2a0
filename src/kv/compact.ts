// Compaction of a map's records into a snapshot's bytes in one pass (TaskStore.captureContent; the kv records compact a slice at a time: KvTable).
import { assert } from '../lib/assert.js';

/**
 * Turns each record captured as `held[i]` under `keys[i]` into `starts[i]`, where its row starts in the snapshot's
 * bytes, if `map` still holds that very value; a record replaced or removed since the capture is left as it is.
 * Answers how many were turned. Within one generation (see the callers) a number stays the row it was, only ever
 * replaced by a record, so the same value as at the capture means the same record, read or not.
 */
export function compactInto<V>(map: Map<string, V | number>, keys: readonly string[], held: readonly (V | number)[], starts: readonly number[]): number {
  assert(starts.length === keys.length && held.length === keys.length, 'a compaction needs every captured record');
  let turned = 0;
  for (let i = 0; i < keys.length; i++) {
    if (map.get(keys[i]!) !== held[i]) continue;
    map.set(keys[i]!, starts[i]!);
    turned++;
  }
  return turned;
}
