// `minkube manager --join URL`: a new manager starts with an empty data directory, learns the members from any
// manager's API, starts as a node that knows no configuration, and asks the cluster to add it (as a learner; the
// leader promotes it once it has caught up). The data directory remembers that it joined, for later restarts.
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { ApiClient, unexpectedAnswer } from '../client/api-client.js';
import { parseJson, type HttpClient } from '../client/http.js';
import type { ClusterConfig, ManagerConfig } from '../config/cluster.js';
import { checkAddress } from '../config/cluster.js';
import { memberViewProblem, membersViewProblem, type MembersView } from '../contracts/services.js';
import { sleepOn, systemClock, type Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import type { LevelRaftStorage } from '../storage/level.js';
import { markerPathFor } from '../storage/marker.js';
import type { Member } from './members.js';

const JOINED_META_KEY = 'joined';
/** How long a joining manager keeps asking (the cluster may be electing, or busy with another change). */
const JOIN_TIMEOUT_MS = 60_000;
const JOIN_RETRY_MS = 500;

export interface JoinPlan {
  /** The addresses to start with: the members the cluster named (or the config's, on a restart). */
  readonly members: readonly Member[];
  /**
   * On a restart: the members the cluster named when this manager joined, kept in its data directory. The original
   * members of a config's cluster appear in no config entry, so without these a manager started from flags alone
   * would not know their addresses. Taken only for ids the log and snapshot say nothing of.
   */
  readonly learnt?: readonly Member[];
}

export interface JoinOptions {
  join?: string;
  forceNewCluster?: boolean | 'accept-data-loss';
  self?: { raftAddress: string; apiAddress: string; dataDir: string };
}

/** This manager's entry: the flags' addresses when given, else the config's. */
export function selfConfig(config: ClusterConfig, id: string, o: JoinOptions): ManagerConfig {
  if (o.join !== undefined && o.forceNewCluster !== undefined && o.forceNewCluster !== false) throw new MinkubeError('CONFIG_INVALID', '--join and --force-new-cluster cannot be used together');
  if (o.self !== undefined) {
    const problems = (['raftAddress', 'apiAddress'] as const).flatMap((k) => {
      const p = checkAddress(o.self![k]);
      return p === null ? [] : [`--${k === 'raftAddress' ? 'raft-address' : 'api-address'}: ${p}`];
    });
    if (problems.length > 0) throw new MinkubeError('CONFIG_INVALID', problems.join('; '));
    return { id, ...o.self };
  }
  const listed = config.managers.find((m) => m.id === id);
  if (listed !== undefined) return listed;
  throw new MinkubeError(
    'CONFIG_INVALID',
    `no manager with id "${id}" in the config (managers: ${config.managers.map((m) => m.id).join(', ')}); a manager added at runtime needs --raft-address, --api-address and --data-dir`,
  );
}

/**
 * null for a member of the config's bootstrap cluster; a plan for a node that joins now or joined before. A data
 * directory that already holds a member's state cannot join again (it would vote with a log the cluster forgot).
 */
export async function prepareJoin(storage: LevelRaftStorage, self: ManagerConfig, o: JoinOptions, configMembers: readonly Member[], logger: Logger, http?: HttpClient): Promise<JoinPlan | null> {
  const joined = await storage.getMeta(JOINED_META_KEY);
  const joinedBefore = joined !== undefined;
  if (o.join === undefined) return joinedBefore ? { members: configMembers, learnt: membersKept(joined) } : null;
  const hs = await storage.hardState();
  const holdsState = hs.term > 0 || (await storage.lastIndex()) > 0 || storage.snapshotInfo() !== null;
  if (holdsState && !joinedBefore) {
    throw new MinkubeError('CONFIG_INVALID', `the data directory ${self.dataDir} holds a cluster member's state; --join needs a new, empty data directory (drop --join to restart this member)`);
  }
  const client = new ApiClient(o.join, http === undefined ? { readRetries: 5 } : { readRetries: 5, http });
  const view = await membersAt(client);
  if (holdsState && !view.members.some((m) => m.id === self.id)) {
    throw new MinkubeError('CONFIG_INVALID', `manager ${self.id} was removed from the cluster; its data must not be reused: empty ${self.dataDir} and join again`);
  }
  // An empty data directory for an id that is still a voter: the member's data was lost or emptied. Joining would be a
  // no-op for the cluster (it is a member already), and this manager would vote with an empty log. A learner is let
  // in again (a join whose answer was lost before any entry reached it): it votes for no one.
  const listedAs = view.members.find((m) => m.id === self.id);
  if (!holdsState && !joinedBefore && listedAs?.voter === true) {
    // Without --join it recovers its log from the leader, voting for no one meanwhile, only while its marker says
    // what it had acknowledged: without a marker an empty log would be trusted.
    const marker = markerPathFor(self.dataDir);
    const recover = existsSync(marker) ? `; or start it without --join: it recovers its log from the leader (its marker ${marker} says what it had)` : '';
    throw new MinkubeError(
      'JOIN_REFUSED',
      `${self.id} is a voter of the cluster, and ${self.dataDir} is empty: its data was lost or emptied, and a voter with an empty log must not vote; ` +
        `remove it first (minkube member remove ${self.id}), then start it again with --join${recover}`,
    );
  }
  const members = view.members.filter((m) => m.id !== self.id).map((m) => ({ id: nodeId(m.id), raftAddress: m.raftAddress, apiAddress: m.apiAddress }));
  await storage.putMeta(JOINED_META_KEY, new TextEncoder().encode(JSON.stringify({ members })));
  logger.info({ via: client.baseUrl, members: view.members.map((m) => m.id), leaderId: view.leaderId }, 'joining the cluster');
  return { members: [...members, { id: nodeId(self.id), raftAddress: self.raftAddress, apiAddress: self.apiAddress }] };
}

/** Asks the cluster to add this manager, retrying passing failures for up to a minute (of `clock`'s time). */
export async function askToJoin(url: string, self: ManagerConfig, logger: Logger, http?: HttpClient, clock: Clock = systemClock): Promise<void> {
  const client = new ApiClient(url, http === undefined ? {} : { http });
  const deadlineMs = clock.monoMs() + JOIN_TIMEOUT_MS;
  const req = { id: self.id, raftAddress: self.raftAddress, apiAddress: self.apiAddress };
  for (;;) {
    let added: Awaited<ReturnType<ApiClient['addMember']>>;
    try {
      added = await client.addMember(req);
    } catch (err) {
      if (!(err instanceof MinkubeError) || !passing(err) || clock.monoMs() + JOIN_RETRY_MS > deadlineMs) throw err;
      logger.info({ err: `${err.code}: ${err.message}` }, 'the cluster did not add this manager yet; retrying');
      await sleepOn(clock, JOIN_RETRY_MS);
      continue;
    }
    // Not retried: an answer that is not a member will not become one.
    const problem = memberViewProblem(added.member);
    if (problem !== null) throw notAManager(client.baseUrl, 'POST', membersPath, `the member added${problem}`);
    logger.info({ created: added.created, voter: added.member.voter }, added.created ? 'added to the cluster as a learner' : 'already a member of the cluster');
    return;
  }
}

/**
 * The members as GET /v1/cluster/members answers them. --join may name anything: an answer that is not JSON, or not
 * the members (a server that is no manager's API), is UNREACHABLE naming the URL and what was wrong, as a join that
 * finds no manager there.
 */
async function membersAt(client: ApiClient): Promise<MembersView> {
  const text = await client.requestText('GET', membersPath);
  const view = parseJson(text);
  const problem = view === undefined ? 'not JSON' : membersViewProblem(view);
  if (problem !== null) throw notAManager(client.baseUrl, 'GET', membersPath, problem);
  return view as MembersView;
}

const membersPath = '/v1/cluster/members';

/** A join's URL answered what no Minkube manager would (its `problem`, a path into the answer): UNREACHABLE naming it. */
export function notAManager(baseUrl: string, method: string, path: string, problem: string): MinkubeError {
  // The API client's words (unexpectedAnswer), without its cause: the join tells its own failures apart by code alone.
  return new MinkubeError('UNREACHABLE', `${unexpectedAnswer(method, `${baseUrl}${path}`, problem).message}: is --join ${baseUrl} a manager of the cluster?`);
}

function passing(err: MinkubeError): boolean {
  if (err.code === 'MEMBERSHIP_CHANGE_REFUSED') return (err.details as { retryable?: unknown } | undefined)?.retryable === true;
  return ['NO_LEADER', 'TIMEOUT', 'UNREACHABLE', 'NOT_READY', 'PROPOSAL_DROPPED'].includes(err.code);
}

/** The members kept when this manager joined (an older data directory kept only the byte 1: none). */
function membersKept(value: Uint8Array): Member[] {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(value)) as { members?: unknown };
    if (!Array.isArray(parsed.members)) return [];
    return parsed.members.flatMap((m: { id?: unknown; raftAddress?: unknown; apiAddress?: unknown }) =>
      typeof m.id === 'string' && typeof m.raftAddress === 'string' && typeof m.apiAddress === 'string' ? [{ id: nodeId(m.id), raftAddress: m.raftAddress, apiAddress: m.apiAddress }] : [],
    );
  } catch {
    return [];
  }
}
