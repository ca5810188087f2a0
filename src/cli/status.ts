// `minkube status`: asks one manager for the members, then every member for its own view; one row per member (a
// learner shows as "learner").
import type { ApiClient } from '../client/api-client.js';
import { apiClientFor, cliCredentials, keepCredentialApis } from './connection.js';
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
  /** While recovering: why, and the index it must hold again (null when not known); else both null. */
  storageReason: string | null;
  storageTargetIndex: number | null;
  error?: string;
}

/** "ok", or "recovering COMMIT/TARGET" (its progress towards what it had acknowledged), or "-". */
function storageCell(m: MemberStatus): string {
  if (m.storage !== 'recovering') return m.storage ?? '-';
  return m.storageTargetIndex === null ? 'recovering' : `recovering ${m.commitIndex ?? 0}/${m.storageTargetIndex}`;
}

type MemberView = { view: ClusterView | null; error?: string };

function viewOf(client: ApiClient, signal?: AbortSignal): Promise<MemberView> {
  return client.cluster(signal === undefined ? {} : { signal }).then(
    (view) => ({ view }),
    (err: unknown) => ({ view: null, error: (err as Error).message }),
  );
}

/**
 * Asks every manager the credentials file names (but the first one asked) at once, beside the first: a member's own
 * view is what its row needs, and asking now rather than after the first answer saves a round trip. What the member
 * list then does not name is abandoned.
 */
function askEarly(firstBaseUrl: string): { take(baseUrl: string): Promise<MemberView> | undefined; abandon(): void } {
  const asked = new Map<string, Promise<MemberView>>();
  const abandoned = new AbortController();
  for (const api of cliCredentials()?.apis ?? []) {
    const client = apiClientFor(api, { timeoutMs: memberTimeoutMs });
    if (client.baseUrl !== firstBaseUrl && !asked.has(client.baseUrl)) asked.set(client.baseUrl, viewOf(client, abandoned.signal));
  }
  return {
    take: (baseUrl) => {
      const view = asked.get(baseUrl);
      asked.delete(baseUrl);
      return view;
    },
    abandon: () => {
      if (asked.size > 0) abandoned.abort();
    },
  };
}

export async function runStatus(apiUrl: string, out: Output): Promise<void> {
  const firstClient = apiClientFor(apiUrl, { readRetries: 2 });
  const answer = firstClient.cluster();
  const early = askEarly(firstClient.baseUrl);
  let first: ClusterView;
  try {
    first = await answer;
  } catch (err) {
    early.abandon();
    throw err;
  }
  // A member is reached with the scheme of the manager that named it: a credentials file of another (secure)
  // cluster must not turn this one's bare addresses into https.
  const scheme = new URL(firstClient.baseUrl).protocol;
  const views = await Promise.all(
    first.members.map(async (m): Promise<MemberView> => {
      if (m.id === first.id) return { view: first };
      const client = apiClientFor(`${scheme}//${m.apiAddress}`, { timeoutMs: memberTimeoutMs });
      return early.take(client.baseUrl) ?? viewOf(client);
    }),
  ).finally(() => early.abandon());
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
      storageReason: view?.storage === 'recovering' ? (view.storageReason ?? '') : null,
      storageTargetIndex: view?.storage === 'recovering' ? (view.storageTargetIndex ?? null) : null,
    };
    if (error !== undefined) row.error = error;
    return row;
  });
  const noQuorumReason = views.map((v) => v.view?.noQuorumReason ?? null).find((r) => r !== null) ?? null;
  const leaderView = views.find((v) => v.view !== null && v.view.id === leader?.id && v.view.role === 'leader')?.view;
  if (leaderView != null) await keepCredentialApis(apiUrl, leaderView.members.map((m) => m.apiAddress));
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
