// The one table `npm run bench` prints and writes to bench/results/latest.md: a row per headline number, and when a
// peer (etcd) ran the same workload, its number and the Minkube / peer ratio. Pure, so test/bench can check it.
import { formatTable } from '../src/cli/output.js';

export type Better = 'higher' | 'lower';

/** One headline number of a benchmark; each benchmark ends its JSON line with a list of these (`summary`). */
export interface SummaryRow {
  /** What was measured, with the actual sizes: "KV writes/s, 64 clients". */
  readonly metric: string;
  readonly unit: string;
  /** Minkube's number; null when the benchmark was skipped or failed (the note says which). */
  readonly value: number | null;
  /** The same workload on the peer, when one ran. */
  readonly peer?: number | null;
  readonly better: Better;
  readonly note?: string;
}

export interface TableRow extends SummaryRow {
  readonly bench: string;
}

/** 1,234,567 / 123 / 12.3 / 1.23: enough digits to compare, no more. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return n.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: digits });
}

function cell(n: number | null | undefined, unit: string): string {
  return n === null || n === undefined ? '-' : `${formatNumber(n)} ${unit}`;
}

/** Minkube / peer, with the direction that is better; '-' when either side is missing or the peer's is zero. */
export function ratioCell(row: SummaryRow): string {
  if (row.value === null || row.peer === null || row.peer === undefined || row.peer === 0) return '-';
  return `${(row.value / row.peer).toFixed(2)} (${row.better} is better)`;
}

/** A Markdown table, padded so that it also reads as plain text; the peer columns only when a peer ran. */
export function formatSummary(rows: readonly TableRow[], peerName: string | null): string {
  const header = ['benchmark', 'metric', 'Minkube', ...(peerName === null ? [] : [peerName, `Minkube / ${peerName}`]), 'note'];
  const body = rows.map((r) => [
    r.bench,
    r.metric,
    cell(r.value, r.unit),
    ...(peerName === null ? [] : [cell(r.peer, r.unit), ratioCell(r)]),
    r.note ?? '',
  ]);
  return formatTable([header, ...body], { markdown: true, numeric: (i) => i >= 2 && i < header.length - 1 });
}


/** The median of the finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
