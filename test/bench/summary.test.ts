// The table `npm run bench` prints: numbers readable at a glance, ratios that say which direction is better, and a
// skipped benchmark shown as a row rather than missing.
import { describe, expect, it } from 'vitest';
import { formatNumber, formatSummary, median, ratioCell, type TableRow } from '../../bench/summary.js';

const rows: TableRow[] = [
  { bench: 'kv-write', metric: 'KV writes, 64 clients, 5 s', unit: 'ops/s', value: 1234.4, peer: 2000, better: 'higher' },
  { bench: 'kv-write', metric: 'KV write p99, 64 clients', unit: 'ms', value: 12.345, peer: 6.1, better: 'lower' },
  { bench: 'containers', metric: '50 containers, submitted -> all running', unit: 's', value: null, better: 'lower', note: 'skipped: docker engine not running' },
];

describe('bench summary table', () => {
  it('shows large numbers with separators and small ones with a few decimals', () => {
    expect(formatNumber(1234567.8)).toBe('1,234,568');
    expect(formatNumber(12.345)).toBe('12.3');
    expect(formatNumber(1.2345)).toBe('1.23');
    expect(formatNumber(0)).toBe('0');
  });

  it('gives Minkube / peer with the better direction, and a dash when either side is missing', () => {
    expect(ratioCell(rows[0]!)).toBe('0.62 (higher is better)');
    expect(ratioCell(rows[1]!)).toBe('2.02 (lower is better)');
    expect(ratioCell(rows[2]!)).toBe('-');
    expect(ratioCell({ ...rows[0]!, peer: 0 })).toBe('-');
  });

  it('is a Markdown table whose rows all have the same width, with peer columns only when a peer ran', () => {
    const withPeer = formatSummary(rows, 'etcd').split('\n');
    expect(withPeer[0]).toMatch(/^\| benchmark +\| metric +\| +Minkube \| +etcd \| +Minkube \/ etcd \| note +\|$/);
    expect(new Set(withPeer.map((l) => l.length)).size).toBe(1);
    expect(withPeer).toHaveLength(2 + rows.length);
    expect(withPeer[4]).toContain('skipped: docker engine not running');
    const alone = formatSummary(rows, null);
    expect(alone).not.toContain('etcd');
    expect(alone).toContain('1,234 ops/s');
  });

  it('escapes pipes inside cells', () => {
    expect(formatSummary([{ ...rows[0]!, note: 'a | b' }], null)).toContain('a \\| b');
  });

  it('takes the median of the finite values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 5])).toBe(5);
    expect(median([])).toBeNaN();
  });
});
