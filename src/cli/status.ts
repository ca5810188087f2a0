// `minkube status`: asks one manager for the members, then every member for its own view; one row per member (a
// learner shows as "learner").
import { apiClientFor } from './connection.js';
import type { ClusterView } from '../contracts/services.js';
import { formatTable, printJson, printLine, type Output } from './output.js';
import { leaderOf } from './pretty.js';

const memberTimeoutMs = 1000;

export interface MemberStatus {
  id: string;
  apiAddress: string;
  reachable: boolean;
  leader: boolean;
  /** false for a learner (it receives the log, votes in nothing, and is promoted once caught up). */
  voter: boolean;
  role: string | null;
  term: number | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  /** "ok", or "recovering" while it repairs lost or damaged storage from the leader (null: down, or an older manager). */
  storage: 'ok' | 'recovering' | null;
  /** While recovering: why, and the index it must hold again (null when not known). */
  storageReason?: string;
  storageTargetIndex?: number | null;
  error?: string;
}

/** "ok", or "recovering COMMIT/TARGET" (its progress towards what it had acknowledged), or "-". */
function storageCell(m: MemberStatus): string {
  if (m.storage !== 'recovering') return m.storage ?? '-';
  return m.storageTargetIndex === null || m.storageTargetIndex === undefined ? 'recovering' : `recovering ${m.commitIndex ?? 0}/${m.storageTargetIndex}`;
}

export async function runStatus(apiUrl: string, out: Output): Promise<void> {
  const first = await apiClientFor(apiUrl, { readRetries: 2 }).cluster();
  const views = await Promise.all(
    first.members.map(async (m): Promise<{ view: ClusterView | null; error?: string }> => {
      if (m.id === first.id) return { view: first };
      try {
        return { view: await apiClientFor(m.apiAddress, { timeoutMs: memberTimeoutMs }).cluster() };
      } catch (err) {
        return { view: null, error: (err as Error).message };
      }
    }),
  );
  const leader = leaderOf(views.map((v) => v.view));
  const leaderId = leader?.id ?? first.leaderId;
  const members: MemberStatus[] = first.members.map((m, i) => {
    const { view, error } = views[i]!;
    const row: MemberStatus = {
      id: m.id,
      apiAddress: m.apiAddress,
      reachable: view !== null,
      leader: m.id === leaderId,
      voter: m.voter,
      role: view === null ? null : !m.voter && view.role === 'follower' ? 'learner' : view.role,
      term: view?.term ?? null,
      commitIndex: view?.commitIndex ?? null,
      appliedIndex: view?.appliedIndex ?? null,
      storage: view?.storage ?? null,
    };
    if (view?.storage === 'recovering') {
      row.storageReason = view.storageReason ?? '';
      row.storageTargetIndex = view.storageTargetIndex ?? null;
    }
    if (error !== undefined) row.error = error;
    return row;
  });
  const noQuorumReason = views.map((v) => v.view?.noQuorumReason ?? null).find((r) => r !== null) ?? null;
  if (out.json) {
    printJson({ leaderId, term: leader?.term ?? null, members, noQuorumReason });
    return;
  }
  const dash = (v: string | number | null): string => (v === null ? '-' : String(v));
  const rows = [['', 'ID', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'STORAGE', 'REACHABLE', 'API']];
  for (const m of members) {
    rows.push([m.leader ? '*' : '', m.id, m.reachable ? dash(m.role) : 'down', dash(m.term), dash(m.commitIndex), dash(m.appliedIndex), storageCell(m), m.reachable ? 'yes' : 'no', m.apiAddress]);
  }
  printLine(formatTable(rows));
  printLine(leaderId === null ? 'leader: none known' : `leader: ${leaderId}${leader ? ` (term ${leader.term})` : ''}`);
  for (const m of members) if (m.storage === 'recovering') printLine(`${m.id} is recovering its storage: ${m.storageReason ?? ''}`);
  if (noQuorumReason !== null) printLine(`no leader: ${noQuorumReason}`);
}
