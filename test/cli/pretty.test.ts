// Log lines made readable for `minkube up`, and when it announces a leader.
import { describe, expect, it } from 'vitest';
import type { ClusterView } from '../../src/contracts/services.js';
import { clockTime, LeaderTracker, leaderOf, leaderOfStatuses, prettyLogLine } from '../../src/cli/pretty.js';
import { formatTable } from '../../src/cli/output.js';

const at = new Date(2026, 0, 2, 3, 4, 5, 67);

describe('prettyLogLine', () => {
  it('shows time, level, term and role, message, and the other fields', () => {
    const line = JSON.stringify({ level: 30, time: at.toISOString(), pid: 1, hostname: 'h', node: 'm1', term: 3, role: 'leader', msg: 'became leader', leaderId: 'm1', lag: { m2: 0 } });
    expect(prettyLogLine(line)).toBe('03:04:05.067 INFO  [t3 leader] became leader leaderId=m1 lag={"m2":0}');
  });

  it('accepts epoch-millisecond times, shows an error message, and leaves out what is absent', () => {
    const line = JSON.stringify({ level: 50, time: at.getTime(), msg: 'request failed', err: { type: 'Error', message: 'disk on fire', stack: 'Error: ...' } });
    expect(prettyLogLine(line)).toBe('03:04:05.067 ERROR request failed err="disk on fire"');
  });

  it('shows an error given as a string, and never throws on an odd one (null, a number, an array)', () => {
    const line = (err: unknown): string => JSON.stringify({ level: 30, time: at.getTime(), msg: 'cannot reach peer', err });
    expect(prettyLogLine(line('ECONNREFUSED'))).toBe('03:04:05.067 INFO  cannot reach peer err="ECONNREFUSED"');
    for (const err of [null, 7, [1], { message: 3 }]) expect(prettyLogLine(line(err))).toBe('03:04:05.067 INFO  cannot reach peer');
  });

  it('colours when asked', () => {
    const line = JSON.stringify({ level: 40, time: at.getTime(), msg: 'slow', term: 1 });
    expect(prettyLogLine(line, { colour: true })).toBe('03:04:05.067 \x1b[33mWARN \x1b[0m \x1b[36m[t1]\x1b[0m slow');
  });

  it('passes anything that is not a pino line through unchanged', () => {
    for (const line of ['plain text', '{not json', '{"no":"level"}', '', '[1,2]']) expect(prettyLogLine(line)).toBe(line);
  });

  it('cuts long extra fields', () => {
    const line = JSON.stringify({ level: 30, time: at.getTime(), msg: 'm', blob: 'x'.repeat(1000) });
    expect(prettyLogLine(line).length).toBeLessThan(300);
  });

  it('clockTime copes with missing or bad times', () => {
    expect(clockTime(undefined)).toBe('--:--:--.---');
    expect(clockTime('yesterday')).toBe('--:--:--.---');
  });
});

const view = (id: string, role: ClusterView['role'], term: number): ClusterView => ({
  id,
  role,
  term,
  leaderId: role === 'leader' ? id : null,
  commitIndex: 0,
  appliedIndex: 0,
  firstIndex: 1,
  lastIndex: 0,
  snapshotIndex: 0,
  storage: 'ok',
  storageReason: null,
  storageTargetIndex: null,
  noQuorumReason: null,
  members: [{ id, raftAddress: 'h:1', apiAddress: `127.0.0.9:80${id.slice(1)}`, voter: true, reachable: true }],
});

describe('leader announcements', () => {
  it('leaderOf picks the self-declared leader of the highest term', () => {
    expect(leaderOf([view('m1', 'leader', 2), null, view('m3', 'leader', 3)])).toEqual({ id: 'm3', term: 3, apiUrl: 'http://127.0.0.9:803' });
    expect(leaderOf([view('m1', 'follower', 2), null])).toBeNull();
  });

  it('announces a new leader or term once, and a lost leader only after several empty polls', () => {
    const t = new LeaderTracker(3);
    expect(t.observe([null, null])).toBeNull();
    expect(t.observe([view('m2', 'leader', 1), view('m1', 'follower', 1)])).toBe('leader: m2 (term 1) at http://127.0.0.9:802');
    expect(t.observe([view('m2', 'leader', 1)])).toBeNull();
    expect(t.observe([view('m2', 'leader', 4)])).toBe('leader: m2 (term 4) at http://127.0.0.9:802');
    expect(t.observe([null])).toBeNull();
    expect(t.observe([view('m1', 'candidate', 5)])).toBeNull();
    expect(t.observe([null])).toBe('leader: none (was m2, term 4)');
    expect(t.observe([null])).toBeNull();
    expect(t.observe([view('m1', 'leader', 6)])).toBe('leader: m1 (term 6) at http://127.0.0.9:801');
  });

  it('announces a lost leader only once none was seen for lostAfterMs too', () => {
    let now = 0;
    const t = new LeaderTracker(2, 'http', 3000, () => now);
    t.observe([view('m2', 'leader', 1)]);
    for (const at of [100, 1000, 2000, 3000]) {
      now = at;
      expect(t.observe([null])).toBeNull();
    }
    now = 3100;
    expect(t.observe([null])).toBe('leader: none (was m2, term 1)');
    now = 3200;
    expect(t.observe([view('m2', 'leader', 1)])).toBe('leader: m2 (term 1) at http://127.0.0.9:802');
  });

  it('from GET /status answers (no term): the id most managers name, announced without a term, and no news for the leader already known', () => {
    const urls = new Map([['m1', 'https://127.0.0.9:801'], ['m2', 'https://127.0.0.9:802']]);
    expect(leaderOfStatuses([null, 'm2', 'm1', 'm2'], urls)).toEqual({ id: 'm2', term: null, apiUrl: 'https://127.0.0.9:802' });
    expect(leaderOfStatuses([null, null], urls)).toBeNull();
    expect(leaderOfStatuses(['m7'], urls)).toEqual({ id: 'm7', term: null, apiUrl: '' });
    const t = new LeaderTracker(2, 'https');
    expect(t.observe([view('m1', 'leader', 3)])).toBe('leader: m1 (term 3) at https://127.0.0.9:801');
    expect(t.observeLeader(leaderOfStatuses(['m1'], urls))).toBeNull();
    expect(t.observeLeader(leaderOfStatuses(['m2'], urls))).toBe('leader: m2 at https://127.0.0.9:802');
    expect(t.observeLeader(null)).toBeNull();
    expect(t.observeLeader(null)).toBe('leader: none (was m2)');
    expect(t.observeLeader(leaderOfStatuses(['m7'], urls))).toBe('leader: m7');
  });
});

describe('formatTable', () => {
  it('pads every column but the last', () => {
    expect(formatTable([['A', 'BB', 'C'], ['long', 'x', 'y']])).toBe('A     BB  C\nlong  x   y');
  });

  it('right-aligns numeric columns', () => {
    expect(formatTable([['NAME', 'N'], ['a', '7'], ['b', '123']], { numeric: (i) => i === 1 })).toBe('NAME    N\na       7\nb     123');
  });

  it('as Markdown (the benchmarks\' reports): pipes escaped, numeric columns marked right-aligned in the rule', () => {
    expect(formatTable([['name', 'ms'], ['a|b', '1.5'], ['long name', '123']], { markdown: true, numeric: (i) => i === 1 })).toBe(
      ['| name      |  ms |', '|-----------|----:|', '| a\\|b      | 1.5 |', '| long name | 123 |'].join('\n'),
    );
  });
});
