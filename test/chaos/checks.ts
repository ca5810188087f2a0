// The fault test's verdicts over a recorded run: linearizable key histories, no acknowledged write lost, no task run
// twice at once, every succeeded task actually ran. Each returns failures (and warnings) as readable lines.
import { describeKv, toRegisterHistories, type KvOpRecord } from './history.js';
import { checkRegisterHistories, explainIllegal, registerModel, resolveVersions, type CheckResult } from './linearizability.js';

export interface Findings {
  readonly failures: string[];
  readonly warnings: string[];
}

export interface LinearizabilitySummary extends Findings {
  readonly results: Record<string, { verdict: CheckResult['verdict']; steps: number; operations: number }>;
}

/** Every key's history must be linearizable; a search over budget is a warning, not a verdict. */
export function checkLinearizable(records: readonly KvOpRecord[], budget: { stepsMax: number; timeMs: number }): LinearizabilitySummary {
  const byKey = toRegisterHistories(records);
  const byId = new Map(records.map((r) => [r.id, r]));
  const results = checkRegisterHistories(byKey, { stepsMax: budget.stepsMax, deadlineMs: performance.now() + budget.timeMs });
  const failures: string[] = [];
  const warnings: string[] = [];
  const summary: LinearizabilitySummary['results'] = {};
  for (const [key, r] of results) {
    const ops = byKey.get(key)!;
    summary[key] = { verdict: r.verdict, steps: r.steps, operations: ops.length };
    if (r.verdict === 'unknown') warnings.push(`key ${key}: linearizability not decided (${r.reason}; ${ops.length} operations)`);
    if (r.verdict !== 'illegal') continue;
    const lines = explainIllegal(registerModel, resolveVersions(ops), r.longestPrefix, (op) => describeKv(byId.get(op.id)!));
    failures.push([`key ${key}: the history is not linearizable`, ...lines.map((l) => `  ${l}`)].join('\n'));
  }
  return { failures, warnings, results: summary };
}

/**
 * The final read of each key must show a state some write could leave last: the write that produced it (values are
 * unique) must not have completed before an acknowledged write or delete began; an absent key needs a delete that
 * could come after every acknowledged put. Weaker than linearizability, but it names the lost write.
 */
export function checkLostWrites(records: readonly KvOpRecord[], keys: readonly string[]): string[] {
  const failures: string[] = [];
  for (const key of keys) {
    const mine = records.filter((r) => r.key === key);
    const final = mine.filter((r) => r.client === 'final' && r.status === 'ok').at(-1);
    if (final === undefined) {
      failures.push(`key ${key}: no final read succeeded after the heal`);
      continue;
    }
    const acked = mine.filter((r) => r.kind !== 'read' && r.status === 'ok' && r.output?.kind === 'written');
    const failure = final.output?.kind === 'value' ? lostBeforeValue(key, final, mine, acked) : lostBeforeAbsence(key, final, mine, acked);
    if (failure !== null) failures.push(failure);
  }
  return failures;
}

function lostBeforeValue(key: string, final: KvOpRecord, mine: readonly KvOpRecord[], acked: readonly KvOpRecord[]): string | null {
  const value = final.output?.kind === 'value' ? final.output.value : '';
  const producer = mine.find((r) => (r.kind === 'put' || r.kind === 'cas') && r.value === value);
  if (producer === undefined) return `key ${key}: the final read ${describeKv(final)} shows a value no client wrote`;
  if (producer.status === 'fail') return `key ${key}: the final value comes from a write that was refused: ${describeKv(producer)}`;
  if (producer.status !== 'ok' || producer.returnMs === null) return null;
  const end = producer.returnMs;
  const later = acked.filter((y) => y !== producer && y.callMs > end).at(-1);
  if (later === undefined) return null;
  return `key ${key}: acknowledged write lost: ${describeKv(later)} began after ${describeKv(producer)} completed, yet the final read ${describeKv(final)} shows the older value`;
}

function lostBeforeAbsence(key: string, final: KvOpRecord, mine: readonly KvOpRecord[], acked: readonly KvOpRecord[]): string | null {
  const deletes = mine.filter((r) => r.kind === 'delete' && (r.status === 'unknown' || (r.status === 'ok' && r.output?.kind === 'written')));
  const before = (d: KvOpRecord, y: KvOpRecord): boolean => d.status === 'ok' && d.returnMs !== null && d.returnMs < y.callMs;
  const lost = acked.filter((y) => y.kind !== 'delete' && deletes.every((d) => before(d, y))).at(-1);
  if (lost === undefined) return null;
  return `key ${key}: acknowledged write lost: ${describeKv(lost)} was acknowledged, no delete could follow it, yet the final read ${describeKv(final)} finds no key`;
}

/** One run of a task's command, from the run file. */
export interface TaskRun {
  readonly marker: string;
  readonly pid: number;
  readonly startMs: number;
  endMs: number | null;
  stopped: boolean;
}

/** Parses the lines the task command appends: "start MARK PID MS" and "end MARK PID MS [term]". */
export function parseRuns(text: string): TaskRun[] {
  const runs = new Map<string, TaskRun>();
  for (const line of text.split('\n')) {
    const [what, marker, pid, ms, flag] = line.trim().split(/\s+/);
    if (marker === undefined || pid === undefined || ms === undefined) continue;
    const key = `${marker} ${pid}`;
    if (what === 'start') runs.set(key, { marker, pid: Number(pid), startMs: Number(ms), endMs: null, stopped: false });
    else if (what === 'end') {
      const run = runs.get(key);
      if (run === undefined) continue;
      run.endMs = Number(ms);
      run.stopped = flag === 'term';
    }
  }
  return [...runs.values()];
}

/**
 * No task runs as two processes at once. A run without an end is still running if its process lives (it counts
 * until now); if the process is gone it was killed without its trap running, and its end is unknown, so it is
 * reported as a warning and not counted as an overlap.
 */
export function checkOverlaps(runs: readonly TaskRun[], alive: (pid: number) => boolean, nowEpochMs: number, describeTask: (marker: string) => string): Findings {
  const failures: string[] = [];
  const warnings: string[] = [];
  const byMarker = new Map<string, TaskRun[]>();
  for (const r of runs) byMarker.set(r.marker, [...(byMarker.get(r.marker) ?? []), r]);
  for (const [marker, list] of byMarker) {
    const spans = list.map((r) => {
      if (r.endMs !== null) return { r, end: r.endMs };
      if (alive(r.pid)) return { r, end: nowEpochMs };
      warnings.push(`task ${marker}: pid ${r.pid} started at ${r.startMs} and died without writing its end`);
      return { r, end: r.startMs };
    });
    spans.sort((a, b) => a.r.startMs - b.r.startMs);
    for (let i = 0; i < spans.length; i++) {
      for (let j = i + 1; j < spans.length; j++) {
        const [a, b] = [spans[i]!, spans[j]!];
        if (b.r.startMs >= a.end) continue;
        failures.push(`task ${marker} ran as two processes at once: pid ${a.r.pid} [${a.r.startMs}, ${a.end}] and pid ${b.r.pid} [${b.r.startMs}, ${b.end}] (epoch ms); ${describeTask(marker)}`);
      }
    }
  }
  return { failures, warnings };
}
