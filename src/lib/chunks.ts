// Splitting a list into requests: consecutive runs bounded by a count and by a byte size.

/**
 * Consecutive runs of `items`, each at most `countMax` long and, unless one item alone is larger, at most `bytesMax`
 * by `sizeOf`. The order is kept; an empty list gives no runs.
 */
export function chunksUnder<T>(items: readonly T[], countMax: number, bytesMax: number, sizeOf: (item: T) => number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length > 0 && (current.length >= countMax || bytes + size > bytesMax)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
