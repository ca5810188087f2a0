// `minkube status`: asks one manager for the members, then every member for its own view; one row per member (a
// learner shows as "learner", "learner (down)" or "learner (not following)", never as campaigning). A member that
// answers but will not show its view (NOT_READY while it cannot check a token yet) is reachable, and its open
// GET /status tells its role and storage.
import type { ApiClient } from '../client/api-client.js';
import { apiClientFor, cliCredentials, keepCredentialApis } from './connection.js';
import type { ClusterMemberView, ClusterView, StatusSelf } from '../contracts/services.js';
import { MinkubeError, type ErrorCode } from '../lib/errors.js';
import { formatTable, printJson, printLine, type Output } from './output.js';
import { leaderOf } from './pretty.js';

const memberTimeoutMs = 1000;

export interface MemberStatus {
  id: string;
  apiAddress: string;
  /** It answered: with its view, or refusing to show it (then `error` and `errorCode` say why). */
  reachable: boolean;
  leader: boolean;
  /**
   * false for a learner (it receives the log, votes in nothing, and is promoted once caught up), as the leader's
   * configuration says when a leader answered (else the configuration of the manager asked first).
   */
  voter: boolean;
  /** Its role as it says; a learner's is always "learner" (it cannot campaign). null: down, or it named none. */
  role: string | null;
  /**
   * Only for a learner whose own answer names a role a learner cannot have (candidate, precandidate: its own
   * configuration is not the leader's, so it does not follow the leader): the role it names.
   */
  ownRole?: string;
  term: number | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  /** "ok", or "recovering" while it repairs lost or damaged storage from the leader (null: down, or an older manager). */
  storage: 'ok' | 'recovering' | null;
  /**
   * While recovering: why (null when it did not show its view: the reason names its data directory, which its open
   * GET /status does not give), and the index it must hold again (null when not known); else both null.
   */
  storageReason: string | null;
  storageTargetIndex: number | null;
  /**
   * The newest command version it understands, as it says (or, when it does not show its view, as the leader was told);
   * absent: not known (down, or a manager that predates the field, which understands 10).
   */
  commandVersion?: number;
  /** Its build as it says ("0.1.0 (commit 1a2b3c4)"); absent: not known. */
  build?: string;
  /** Why its own view is missing: the message, and the code of the error (its answer's, or UNREACHABLE, TIMEOUT). */
  error?: string;
  errorCode?: ErrorCode;
  /**
   * Whether the leader reaches it (its GET /v1/cluster: the member spoke to it within two election timeouts); null
   * when no leader answered. A member this client did not reach but the leader does is slow to answer, or out of this
   * client's reach, not down.
   */
  reachableFromLeader?: boolean | null;
}

/** What `minkube status --json` prints. */
export interface StatusReport {
  leaderId: string | null;
  /** The leader's term, when a member that leads answered. */
  term: number | null;
  members: MemberStatus[];
  noQuorumReason: string | null;
  /** The command version the cluster runs at, as its leader judges it (the lowest its members understand); null: not known. */
  clusterCommandVersion?: number | null;
}

/** "ok", or "recovering COMMIT/TARGET" (its progress towards what it had acknowledged), or "-". */
function storageCell(m: MemberStatus): string {
  if (m.storage !== 'recovering') return m.storage ?? '-';
  return m.storageTargetIndex === null ? 'recovering' : `recovering ${m.commitIndex ?? 0}/${m.storageTargetIndex}`;
}

/** Why a member's view is missing; answered: the member itself answered so (it runs), rather than none reached. */
export interface MemberFailure {
  readonly code: ErrorCode;
  readonly message: string;
  readonly answered: boolean;
}

/** A member's own answers: its view, or why not and then, when it answered, its open GET /status's `self`. */
export interface MemberView {
  readonly view: ClusterView | null;
  readonly error?: MemberFailure;
  readonly self?: StatusSelf | null;
}

function failureOf(err: unknown): MemberFailure {
  if (!(err instanceof MinkubeError)) return { code: 'INTERNAL', message: String(err), answered: false };
  // The client's own failures (no connection, no answer in time) carry a cause or are TIMEOUT; a server's answer neither.
  const answered = err.cause === undefined && err.code !== 'TIMEOUT' && err.code !== 'UNREACHABLE';
  return { code: err.code, message: err.message, answered };
}

const roles: ReadonlySet<unknown> = new Set(['leader', 'follower', 'candidate', 'precandidate']);
const index = (v: unknown): boolean => v === null || (Number.isSafeInteger(v) && (v as number) >= 0);

/** GET /status's `self`, when it is one (an older manager gives none; a stranger anything). */
function selfOf(body: unknown): StatusSelf | null {
  const self = (body as { self?: unknown } | null)?.self as Partial<Record<keyof StatusSelf, unknown>> | null | undefined;
  if (typeof self !== 'object' || self === null) return null;
  const ok = typeof self.id === 'string' && roles.has(self.role) && (self.storage === 'ok' || self.storage === 'recovering') && index(self.storageTargetIndex) && index(self.commitIndex);
  return ok ? (self as StatusSelf) : null;
}

/**
 * A member's view; when it answered but would not show it (NOT_READY from a manager that cannot check the token yet,
 * say), what its open GET /status says of itself, which needs no token and so hands out no reason text.
 */
export async function viewOf(client: Pick<ApiClient, 'cluster' | 'request'>, signal?: AbortSignal): Promise<MemberView> {
  const options = signal === undefined ? {} : { signal };
  try {
    return { view: await client.cluster(options) };
  } catch (err) {
    const error = failureOf(err);
    if (!error.answered) return { view: null, error };
    const self = await client.request<unknown>('GET', '/status?format=json', options).then(selfOf, () => null);
    return { view: null, error, self };
  }
}

/** A member's row, from its own answers; the member list's entry names it. */
export function memberStatusOf(m: ClusterMemberView, { view, error, self: open }: MemberView, leaderId: string | null, reachableFromLeader: boolean | null = null): MemberStatus {
  // The open page of whatever answers at the member's address: only if it says it is that member.
  const self = view === null && open?.id === m.id ? open : null;
  const role = view?.role ?? self?.role ?? null;
  const storage = view?.storage ?? self?.storage ?? null;
  const row: MemberStatus = {
    id: m.id,
    apiAddress: m.apiAddress,
    reachable: view !== null || error?.answered === true,
    leader: m.id === leaderId,
    voter: m.voter,
    role: role !== null && !m.voter ? 'learner' : role,
    term: view?.term ?? null,
    commitIndex: view?.commitIndex ?? self?.commitIndex ?? null,
    appliedIndex: view?.appliedIndex ?? null,
    storage,
    storageReason: view?.storage === 'recovering' ? (view.storageReason ?? '') : null,
    storageTargetIndex: storage === 'recovering' ? (view?.storageTargetIndex ?? self?.storageTargetIndex ?? null) : null,
    reachableFromLeader,
  };
  const version = view?.commandVersion ?? m.commandVersion ?? null;
  if (version !== null) row.commandVersion = version;
  if (view?.build !== undefined) row.build = view.build.commit === undefined ? view.build.version : `${view.build.version} (commit ${view.build.commit})`;
  // A learner follows; any other role it names means its own configuration is not the leader's.
  if (!m.voter && role !== null && role !== 'follower') row.ownRole = role;
  if (error !== undefined) {
    row.error = error.message;
    row.errorCode = error.code;
  }
  return row;
}

/** Not reached by this client, but the leader reaches it: slow to answer, or out of this client's reach. */
const unansweredButUp = (m: MemberStatus): boolean => !m.reachable && m.reachableFromLeader === true;

/** The ROLE cell: a learner is always marked as one, down or not, and never shown campaigning. */
function roleCell(m: MemberStatus): string {
  if (unansweredButUp(m)) return m.voter ? 'up (leader reaches it)' : 'learner (leader reaches it)';
  if (m.voter) return m.reachable ? (m.role ?? '-') : 'down';
  if (!m.reachable) return 'learner (down)';
  return m.ownRole === undefined ? 'learner' : 'learner (not following)';
}

/** The REACHABLE cell: yes (it answered this client), no answer (CODE) (it did not, but the leader reaches it), or no. */
function reachableCell(m: MemberStatus): string {
  if (m.reachable) return 'yes';
  return unansweredButUp(m) ? `no answer (${m.errorCode ?? 'UNREACHABLE'})` : 'no';
}

/** The table and the lines after it, as `minkube status` prints them. */
export function statusText(r: StatusReport): string[] {
  const dash = (v: string | number | null): string => (v === null ? '-' : String(v));
  const rows = [['', 'ID', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'STORAGE', 'REACHABLE', 'API']];
  for (const m of r.members) {
    rows.push([m.leader ? '*' : '', m.id, roleCell(m), dash(m.term), dash(m.commitIndex), dash(m.appliedIndex), storageCell(m), reachableCell(m), m.apiAddress]);
  }
  const lines = [formatTable(rows)];
  lines.push(r.leaderId === null ? 'leader: none known' : `leader: ${r.leaderId}${r.term === null ? '' : ` (term ${r.term})`}`);
  for (const m of r.members) {
    if (m.ownRole !== undefined) lines.push(`${m.id} is a learner in the leader's configuration but says it is ${m.ownRole}: it does not follow the leader`);
    if (m.storage === 'recovering') lines.push(`${m.id} is recovering its storage: ${m.storageReason ?? 'why is in its log ("storage recovering"), since it does not show its view'}`);
    if (unansweredButUp(m)) lines.push(`${m.id} did not answer this client (${m.errorCode ?? 'UNREACHABLE'}: ${m.error ?? 'no answer'}), but the leader reaches it: it is slow to answer, or out of this client's reach`);
    if (m.reachable && m.errorCode !== undefined) {
      lines.push(m.errorCode === 'NOT_READY' ? `${m.id} is reachable but not ready (NOT_READY: ${m.error})` : `${m.id} is reachable but did not show its view (${m.errorCode}: ${m.error})`);
    }
  }
  if (r.noQuorumReason !== null) lines.push(`no leader: ${r.noQuorumReason}`);
  lines.push(...versionLines(r));
  return lines;
}

/** Each member's command version and build, and what the cluster runs at when a member holds it back (README "Upgrading"). */
function versionLines(r: StatusReport): string[] {
  if (r.members.every((m) => m.commandVersion === undefined && m.build === undefined)) return [];
  const of = (m: MemberStatus): string => {
    const v = m.commandVersion === undefined ? 'command version unknown' : `command version ${m.commandVersion}`;
    return `${m.id} ${v}${m.build === undefined ? '' : `, ${m.build}`}`;
  };
  const lines = [`versions: ${r.members.map(of).join('; ')}`];
  const newest = Math.max(...r.members.map((m) => m.commandVersion ?? 0));
  const cluster = r.clusterCommandVersion ?? null;
  if (cluster !== null && cluster < newest) {
    const older = r.members.filter((m) => (m.commandVersion ?? 0) < newest).map((m) => m.id);
    // Every member shows the newest, but the leader has not heard each say so yet (it asks every 5 s).
    if (older.length === 0) lines.push(`the cluster runs at command version ${cluster} until the leader has heard every member say ${newest} (it asks every 5 s)`);
    else lines.push(`the cluster runs at command version ${cluster}: upgrade ${older.join(', ')} (see README "Upgrading")`);
  }
  return lines;
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
  const noQuorumReason = views.map((v) => v.view?.noQuorumReason ?? null).find((r) => r !== null) ?? null;
  const leaderView = views.find((v) => v.view !== null && v.view.id === leader?.id && v.view.role === 'leader')?.view;
  // Who is a voter is the leader's configuration's to say: the manager asked first may be behind it.
  const voterNow = new Map(leaderView?.members.map((m) => [m.id, m.voter]) ?? []);
  // So is who is a member: a manager just removed, asked first, still lists itself (and what it knew then) until it
  // learns of its removal, which it may never hear.
  if (leaderView != null && !voterNow.has(first.id)) {
    throw new MinkubeError('NOT_READY', `${first.id} is not a member of the cluster: the leader ${leaderView.id} (term ${leaderView.term}) does not list it (it was removed); ask another manager`);
  }
  const reachesNow = new Map(leaderView?.members.map((m) => [m.id, m.reachable]) ?? []);
  // A member's command version as the leader was told it, for one that does not show its own view.
  const toldLeader = new Map(leaderView?.members.map((m) => [m.id, m.commandVersion ?? null]) ?? []);
  const members = first.members.flatMap((m, i) => (leaderView != null && !voterNow.has(m.id) ? [] : [memberStatusOf({ ...m, voter: voterNow.get(m.id) ?? m.voter, commandVersion: toldLeader.get(m.id) ?? m.commandVersion ?? null }, views[i]!, leaderId, reachesNow.get(m.id) ?? null)]));
  if (leaderView != null) await keepCredentialApis(apiUrl, leaderView.members.map((m) => m.apiAddress));
  const report: StatusReport = { leaderId, term: leader?.term ?? null, members, noQuorumReason, clusterCommandVersion: leaderView?.clusterCommandVersion ?? null };
  if (out.json) printJson(report);
  else for (const line of statusText(report)) printLine(line);
}
