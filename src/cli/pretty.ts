// Readable log lines for `minkube up`: pino JSON becomes "HH:MM:SS.mmm INFO  [t3 leader] msg key=value", and the
// leader tracker decides when to announce a new leader. Pure functions, so they are tested without processes.
import type { ClusterView } from '../contracts/services.js';

const levelNames: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const levelColours: Record<number, string> = { 10: '90', 20: '90', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Fields shown in fixed places, or not worth a column on a terminal. */
const hiddenFields = new Set(['time', 'level', 'msg', 'term', 'role', 'pid', 'hostname', 'node', 'v', 'err']);
const extrasCharsMax = 240;

export interface PrettyOptions {
  colour: boolean;
}

/** One pino JSON line made readable; any other line is returned as it is. */
export function prettyLogLine(line: string, options: PrettyOptions = { colour: false }): string {
  if (!line.startsWith('{')) return line;
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof rec !== 'object' || rec === null || typeof rec.level !== 'number' || rec.msg === undefined) return line;
  try {
    return prettyRecord(rec, options);
  } catch {
    // A line this printer cannot make sense of is shown as it came: `minkube up` must outlive any log line.
    return line;
  }
}

function prettyRecord(rec: Record<string, unknown>, options: PrettyOptions): string {
  const level = rec.level as number;
  const paint = (code: string | undefined, s: string): string => (options.colour && code !== undefined ? `\x1b[${code}m${s}\x1b[0m` : s);
  const parts = [clockTime(rec.time), paint(levelColours[level], (levelNames[level] ?? String(level)).padEnd(5))];
  const raft = [typeof rec.term === 'number' ? `t${rec.term}` : '', typeof rec.role === 'string' ? rec.role : ''].filter((s) => s !== '');
  if (raft.length > 0) parts.push(paint('36', `[${raft.join(' ')}]`));
  parts.push(typeof rec.msg === 'string' ? rec.msg : JSON.stringify(rec.msg));
  const extras = extraFields(rec);
  if (extras !== '') parts.push(paint('90', extras));
  return parts.join(' ');
}

function extraFields(rec: Record<string, unknown>): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (hiddenFields.has(k) || v === undefined) continue;
    out.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  const err = rec.err;
  if (typeof err === 'string') out.push(`err=${JSON.stringify(err)}`);
  else if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') out.push(`err=${JSON.stringify((err as { message: string }).message)}`);
  const s = out.join(' ');
  return s.length > extrasCharsMax ? `${s.slice(0, extrasCharsMax - 1)}…` : s;
}

/** HH:MM:SS.mmm of a pino time (epoch ms or an ISO string), in local time; the raw value if it is neither. */
export function clockTime(time: unknown): string {
  const d = typeof time === 'number' || typeof time === 'string' ? new Date(time) : null;
  if (d === null || Number.isNaN(d.getTime())) return '--:--:--.---';
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export interface LeaderInfo {
  id: string;
  term: number;
  apiUrl: string;
}

/** A leader as a tracker announces it: the term is unknown when it was learnt from GET /status, which names none. */
export interface AnnouncedLeader {
  id: string;
  term: number | null;
  /** '' when unknown (a leader the config does not name). */
  apiUrl: string;
}

/** The leader by the views that answered: the one that says it leads, at the highest term. */
export function leaderOf(views: readonly (ClusterView | null)[], scheme: 'http' | 'https' = 'http'): LeaderInfo | null {
  let best: ClusterView | null = null;
  for (const v of views) {
    if (v !== null && v.role === 'leader' && (best === null || v.term > best.term)) best = v;
  }
  if (best === null) return null;
  const self = best.members.find((m) => m.id === best.id);
  return { id: best.id, term: best.term, apiUrl: self ? `${scheme}://${self.apiAddress}` : '' };
}

/**
 * The leader by the open GET /status answers (no token needed): the id most managers that answered name, the first
 * named on a tie; its URL from the managers' addresses as the config gives them. No term: /status names none.
 */
export function leaderOfStatuses(leaders: readonly (string | null)[], apiUrls: ReadonlyMap<string, string>): AnnouncedLeader | null {
  const votes = new Map<string, number>();
  for (const id of leaders) if (id !== null) votes.set(id, (votes.get(id) ?? 0) + 1);
  let best: string | null = null;
  for (const [id, n] of votes) if (best === null || n > votes.get(best)!) best = id;
  return best === null ? null : { id: best, term: null, apiUrl: apiUrls.get(best) ?? '' };
}

/**
 * Says what to print as polls come in: a new leader or term at once; "no leader" only after `lostAfterPolls`
 * polls in a row without one, over at least `lostAfterMs`, so slow answers on a busy host do not print a false alarm
 * (at a load of 70, three polls that each timed out printed "none" and then the same leader and term again).
 */
export class LeaderTracker {
  private current: AnnouncedLeader | null = null;
  private missing = 0;
  private missingSinceMs = 0;

  constructor(
    private readonly lostAfterPolls = 3,
    private readonly scheme: 'http' | 'https' = 'http',
    private readonly lostAfterMs = 0,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  observe(views: readonly (ClusterView | null)[]): string | null {
    return this.observeLeader(leaderOf(views, this.scheme));
  }

  /** As observe, from a leader found otherwise (leaderOfStatuses); a term it does not know is no change of term. */
  observeLeader(leader: AnnouncedLeader | null): string | null {
    if (leader === null) {
      if (this.current === null) return null;
      if (this.missing++ === 0) this.missingSinceMs = this.nowMs();
      if (this.missing < this.lostAfterPolls || this.nowMs() - this.missingSinceMs < this.lostAfterMs) return null;
      const was = this.current;
      this.current = null;
      this.missing = 0;
      return `leader: none (was ${was.id}${was.term === null ? '' : `, term ${was.term}`})`;
    }
    this.missing = 0;
    if (this.current?.id === leader.id && (leader.term === null || this.current.term === leader.term)) return null;
    this.current = leader;
    return `leader: ${leader.id}${leader.term === null ? '' : ` (term ${leader.term})`}${leader.apiUrl === '' ? '' : ` at ${leader.apiUrl}`}`;
  }
}
