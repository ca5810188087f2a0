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
  error?: string;
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
    };
    if (error !== undefined) row.error = error;
    return row;
  });
  if (out.json) {
    printJson({ leaderId, term: leader?.term ?? null, members });
    return;
  }
  const dash = (v: string | number | null): string => (v === null ? '-' : String(v));
  const rows = [['', 'ID', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'REACHABLE', 'API']];
  for (const m of members) {
    rows.push([m.leader ? '*' : '', m.id, m.reachable ? dash(m.role) : 'down', dash(m.term), dash(m.commitIndex), dash(m.appliedIndex), m.reachable ? 'yes' : 'no', m.apiAddress]);
  }
  printLine(formatTable(rows));
  printLine(leaderId === null ? 'leader: none known' : `leader: ${leaderId}${leader ? ` (term ${leader.term})` : ''}`);
}
