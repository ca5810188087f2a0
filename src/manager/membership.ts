// Membership changes and leadership transfer on behalf of the HTTP API. The leader does the work through its Raft
// driver; a follower forwards the request to the leader's API and answers what the leader answered.
import { endpointKey } from '../lib/address.js';
import type { Logger } from 'pino';
import { ApiClient } from '../client/api-client.js';
import { mayHaveArrived, type HttpClient } from '../client/http.js';
import type { WorkerState } from '../contracts/task-model.js';
import { forwardedPrincipalHeader, type ClusterMemberView, type ClusterSettingsView, type MemberRequest, type MembersView, type MembershipService, type RequestContext } from '../contracts/services.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import type { ConfChangeRejection, RaftStatus } from '../raft/types.js';
import { encodeMemberContext, encodeRemoveContext, type ChangeRequester } from './members.js';
import { workerHoldingId } from './node-ids.js';
import type { RaftNodeDriver } from './node.js';

/**
 * A waiting request looks at the driver again after every Ready it handles (a leader, a commit, a configuration may
 * have changed), and at least this often (the core's view of which peers are active changes without a Ready).
 */
const POLL_MS = 20;

export interface MembershipOptions {
  driver: () => RaftNodeDriver<unknown>;
  reachable: (id: NodeId) => boolean;
  logger: Logger;
  /** How long a leadership transfer may take before LEADER_TRANSFER_FAILED. */
  electionTimeoutMs: number;
  /** The manager's one pool (its certificate, in a secure cluster), for forwarding to the leader's API. */
  http?: HttpClient;
  /** The worker registered with an id, as this manager has applied it (none: undefined): a member add may not take its id. */
  worker: (id: string) => { readonly state: WorkerState } | undefined;
  /**
   * This manager's running settings that must agree across managers (ClusterSettingsView), read at each request: a
   * reload changes the live ones in place.
   */
  settings: () => ClusterSettingsView['settings'];
  /** Default the system's. */
  clock?: Clock;
}

export class MembershipServiceImpl implements MembershipService {
  private readonly clock: Clock;

  constructor(private readonly o: MembershipOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /** Deadlines and waits here are on the monotonic reading, as the request's deadline is (RequestContext). */
  private monoMs(): number {
    return this.clock.monoMs();
  }

  /** Until the driver's next Ready, or POLL_MS. */
  private nextChange(): Promise<void> {
    return this.driver.whenChanged(POLL_MS);
  }

  private get driver(): RaftNodeDriver<unknown> {
    return this.o.driver();
  }

  /** The configuration as this node sees it. */
  localView(): MembersView {
    const st = this.driver.status();
    return { leaderId: st.leaderId, members: memberViews(this.driver, st, this.o.reachable) };
  }

  async listMembers(ctx: RequestContext): Promise<MembersView> {
    const forwarded = await this.viaLeader(ctx, 'GET', (leader) => leader.listMembers(this.forwardOptions(ctx)));
    return forwarded !== null ? forwarded.answer : this.localView();
  }

  /**
   * The leader's, not this manager's: the leader applies its own (nothing replicates them), so what the cluster runs
   * now is what the leader runs, whatever this follower's config says.
   */
  async clusterSettings(ctx: RequestContext): Promise<ClusterSettingsView> {
    const forwarded = await this.viaLeader(ctx, 'GET', (leader) => leader.clusterSettings(this.forwardOptions(ctx)));
    return forwarded !== null ? forwarded.answer : { leaderId: this.driver.id, settings: this.o.settings() };
  }

  async addMember(req: MemberRequest, ctx: RequestContext): Promise<{ created: boolean; member: ClusterMemberView }> {
    const forwarded = await this.viaLeader(ctx, 'POST', (leader) => leader.addMember({ id: req.id, raftAddress: req.raftAddress, apiAddress: req.apiAddress }, this.forwardOptions(ctx)));
    if (forwarded !== null) return forwarded.answer;
    const id = nodeId(req.id);
    const existing = this.localView().members.find((m) => m.id === id);
    if (existing !== undefined) {
      if (existing.raftAddress === req.raftAddress && existing.apiAddress === req.apiAddress) return { created: false, member: existing };
      throw refused(`member ${id} exists with other addresses (raft ${existing.raftAddress}, api ${existing.apiAddress}); remove it first`);
    }
    if (endpointKey(req.raftAddress) === endpointKey(req.apiAddress)) throw refused(`the raft and API addresses are the same (${req.raftAddress})`);
    const wanted = [req.raftAddress, req.apiAddress].map(endpointKey);
    for (const m of this.localView().members) {
      const used = [m.raftAddress, m.apiAddress].find((a) => a !== '' && wanted.includes(endpointKey(a)));
      if (used !== undefined) throw refused(`member ${m.id} already uses the address ${used}`);
    }
    const index = await this.propose(() => {
      // One name, one node (node-ids.ts), decided from the applied state and the commands not applied yet in the very
      // turn the change enters the log: a worker's registration of this id is either seen here, or appended after
      // the change, where the leader refuses it (validateCommand, given the configuration), so both never commit.
      const held = workerHoldingId(id, this.o.worker(id), this.driver.unappliedCommands());
      if (held !== null) throw held;
      return { type: 'addLearner', nodeId: id, context: encodeMemberContext(req, requesterOf(ctx)) };
    }, ctx);
    this.driver.directory.set(id, req);
    await this.waitCommitted(index, ctx);
    const member = this.localView().members.find((m) => m.id === id) ?? { id, raftAddress: req.raftAddress, apiAddress: req.apiAddress, voter: false, reachable: false };
    return { created: true, member };
  }

  async removeMember(idText: string, ctx: RequestContext): Promise<MembersView> {
    const forwarded = await this.viaLeader(ctx, 'DELETE', (leader) => leader.removeMember(idText, this.forwardOptions(ctx)));
    if (forwarded !== null) return forwarded.answer;
    const id = nodeId(idText);
    const st = this.driver.status();
    if (!st.voters.includes(id) && !st.learners.includes(id)) throw new MinkubeError('MEMBER_NOT_FOUND', `no member "${idText}"`);
    if (st.voters.includes(id)) await this.waitQuorumAfterRemoval(id, ctx);
    const context = encodeRemoveContext(requesterOf(ctx), this.clock.nowMs());
    const index = await this.propose(() => ({ type: 'remove', nodeId: id, context }), ctx);
    await this.waitCommitted(index, ctx);
    this.o.logger.info({ member: id, index }, 'member removed');
    return id === this.driver.id ? this.viewAfterOwnRemoval(id, ctx) : this.localView();
  }

  /**
   * A leader that removed itself steps down, and nobody tells it who leads next (it is no member): the view is the
   * one a remaining member answers once it knows its leader (it waits for one), else this node's, with no leader.
   */
  private async viewAfterOwnRemoval(self: NodeId, ctx: RequestContext): Promise<MembersView> {
    const local = this.localView();
    const untilMs = Math.min(ctx.deadlineMs, this.monoMs() + 3 * this.o.electionTimeoutMs + 500);
    for (const m of local.members) {
      const timeoutMs = untilMs - this.monoMs();
      if (timeoutMs <= 0) break;
      if (m.id === self || m.apiAddress === '') continue;
      try {
        const client = new ApiClient(m.apiAddress, { timeoutMs, server: { role: 'manager', id: m.id }, ...(this.o.http === undefined ? {} : { http: this.o.http }) });
        const view = await client.listMembers({ requestId: ctx.requestId, timeoutMs });
        if (view.leaderId !== null && view.leaderId !== self) return view;
      } catch {
        // that member did not answer in time: ask the next
      }
    }
    return local;
  }

  async transferLeader(target: string | null, ctx: RequestContext): Promise<{ leaderId: string; term: number }> {
    const forwarded = await this.viaLeader(ctx, 'POST', (leader) => leader.transferLeader(target, this.forwardOptions(ctx)));
    if (forwarded !== null) return forwarded.answer;
    const st = this.driver.status();
    if (target !== null) {
      const id = nodeId(target);
      if (st.learners.includes(id)) throw new MinkubeError('LEADER_TRANSFER_FAILED', `${target} is a learner; only a voter can lead`);
      if (!st.voters.includes(id)) throw new MinkubeError('MEMBER_NOT_FOUND', `no member "${target}"`);
      if (id === this.driver.id) return { leaderId: id, term: st.term };
    }
    const r = this.driver.transferLeadership(target === null ? null : nodeId(target));
    if (!r.ok) throw new MinkubeError('LEADER_TRANSFER_FAILED', r.reason);
    // The transfer either completes within an election timeout or is abandoned by the core.
    const deadlineMs = Math.min(ctx.deadlineMs, this.monoMs() + 3 * this.o.electionTimeoutMs + 500);
    while (this.monoMs() < deadlineMs) {
      const now = this.driver.status();
      if (now.leaderId !== null && now.leaderId !== this.driver.id) return { leaderId: now.leaderId, term: now.term };
      await this.nextChange();
    }
    const now = this.driver.status();
    throw new MinkubeError('LEADER_TRANSFER_FAILED', `leadership did not move to ${r.target} in time (leader: ${now.leaderId ?? 'none'}); if ${r.target} was told to take over but could not act yet, it may still do so`);
  }

  // ---- helpers ----

  /**
   * null when this node leads; else `call`'s answer from the leader's API. A leader that answers NOT_READY could not
   * serve it and applied nothing (it removed itself and handed over, and this node has not heard of its successor
   * yet; or it is shutting down): the request waits for another leader, and goes there. Passed on, that answer would
   * say "this manager is not a member" of a manager that is one, and every manager asked in that gap would say the same.
   * A failure on the way to the leader is answered as forwardFailure says (`method`: the request's).
   */
  private async viaLeader<T>(ctx: RequestContext, method: string, call: (leader: ApiClient) => Promise<T>): Promise<{ answer: T } | null> {
    for (;;) {
      const leader = await this.leaderOrForward(ctx);
      if (leader === null) return null;
      try {
        return { answer: await call(leader.client) };
      } catch (err) {
        if (!(err instanceof MinkubeError) || err.cause !== undefined) throw forwardFailure(err, method, { id: leader.id, url: leader.client.baseUrl });
        if (err.code !== 'NOT_READY') throw err;
        await this.untilLeaderOtherThan(leader.id, err, ctx);
      }
    }
  }

  /** null when this node leads; else the leader and a client of its API. NO_LEADER when no leader is known by the deadline. */
  private async leaderOrForward(ctx: RequestContext): Promise<{ id: NodeId; client: ApiClient } | null> {
    for (;;) {
      const st = this.driver.status();
      if (st.role === 'leader') return null;
      if (st.leaderId !== null) {
        const address = this.driver.directory.get(st.leaderId)?.apiAddress;
        if (address === undefined) throw new MinkubeError('NO_LEADER', `the leader ${st.leaderId} has no known API address`);
        const timeoutMs = Math.max(1, ctx.deadlineMs - this.monoMs());
        // The forwarded request names its caller (forwardOptions): it goes to the leader's certificate only.
        const server = { role: 'manager', id: st.leaderId } as const;
        return { id: st.leaderId, client: new ApiClient(address, { timeoutMs, server, ...(this.o.http === undefined ? {} : { http: this.o.http }) }) };
      }
      const notMember = this.driver.notMemberError();
      if (notMember !== null) throw notMember;
      if (this.monoMs() + POLL_MS >= ctx.deadlineMs) throw this.driver.noLeaderError();
      await this.nextChange();
    }
  }

  /** Until this node knows a leader other than `was` (or none); NO_LEADER, naming `was`'s answer, at the deadline. */
  private async untilLeaderOtherThan(was: NodeId, answer: MinkubeError, ctx: RequestContext): Promise<void> {
    while (this.driver.status().leaderId === was) {
      if (this.monoMs() + POLL_MS >= ctx.deadlineMs) {
        throw new MinkubeError('NO_LEADER', `the leader this manager knows, ${was}, cannot serve the request (${answer.message}), and no other leader is known yet; retry`);
      }
      await this.nextChange();
    }
  }

  /** The request id goes on, and the caller is named: the leader's audit lines name them, not this manager. */
  private forwardOptions(ctx: RequestContext): { requestId: string; timeoutMs: number; headers?: Record<string, string> } {
    const options = { requestId: ctx.requestId, timeoutMs: Math.max(1, ctx.deadlineMs - this.monoMs()) };
    return ctx.principal === undefined ? options : { ...options, headers: { [forwardedPrincipalHeader]: JSON.stringify(ctx.principal) } };
  }

  /** Proposes a change, retrying while another change is in progress, until the deadline. */
  private async propose(change: () => Parameters<RaftNodeDriver<unknown>['proposeConfChange']>[0], ctx: RequestContext): Promise<number> {
    for (;;) {
      const r = this.driver.proposeConfChange(change());
      if (r.ok) return r.index;
      if (!retryable(r.reason) || this.monoMs() + POLL_MS >= ctx.deadlineMs) throw rejection(r.reason);
      await this.nextChange();
    }
  }

  /**
   * The core forgets which peers it heard from at every check-quorum round and relearns it within a heartbeat: a voter
   * counts as live once seen active at any look within an election timeout (one look just after a round saw none),
   * and a refusal stands only when the check fails for that whole time. Whether a voter recovers its storage is
   * taken from the latest look.
   */
  private async waitQuorumAfterRemoval(id: NodeId, ctx: RequestContext): Promise<void> {
    const untilMs = Math.min(ctx.deadlineMs - POLL_MS, this.monoMs() + this.o.electionTimeoutMs + 2 * POLL_MS);
    const heard = new Set<NodeId>();
    for (;;) {
      const st = this.driver.status();
      for (const [peer, pr] of st.progress) if (pr.recentActive) heard.add(peer);
      const problem = quorumProblemAfterRemoval(st, id, heard);
      if (problem === null) return;
      if (this.monoMs() >= untilMs) throw refused(problem);
      await this.nextChange();
    }
  }

  private async waitCommitted(index: number, ctx: RequestContext): Promise<void> {
    while (this.driver.status().commitIndex < index) {
      if (this.monoMs() >= ctx.deadlineMs) throw new MinkubeError('TIMEOUT', `the membership change at index ${index} is not committed yet; its outcome is unknown`);
      await this.nextChange();
    }
  }
}

/**
 * What a follower answers when its request to the leader failed on the way (the leader's own answer passes on as it
 * is: it carries no cause). The caller never contacted the leader's URL, so the message names the leader as such. A
 * write that may have reached the leader (sent, then the connection broke, or no answer came in time) may be applied
 * there: 504 TIMEOUT, its outcome unknown (README, Errors: a 503 means not applied). One surely not sent (a refused
 * connection, a failed lookup or TLS handshake) and any read are 503 UNREACHABLE.
 */
export function forwardFailure(err: unknown, method: string, leader: { id: string; url: string }): unknown {
  if (!(err instanceof MinkubeError) || err.cause === undefined) return err;
  const who = `the leader ${leader.id} (${leader.url})`;
  if (method !== 'GET' && mayHaveArrived(err)) {
    const what = err.code === 'TIMEOUT' ? `did not answer in time (${causeReason(err.cause)})` : `closed the connection before answering (${causeReason(err.cause)})`;
    return new MinkubeError('TIMEOUT', `this manager forwarded the request to ${who}, which ${what}; the outcome is unknown`, { cause: err });
  }
  // The client's own words say why best here (a TLS refusal in a sentence); the URL in them is the leader's.
  const outcome = method === 'GET' ? 'a read changes nothing: retry' : 'it was not sent, so nothing was applied';
  return new MinkubeError('UNREACHABLE', `this manager could not forward the request to ${who}: ${err.message}; ${outcome}`, { cause: err });
}

/** A transport failure's reason in a few words: a system error by its code (ECONNRESET), others by their message. */
function causeReason(cause: unknown): string {
  const c = cause as { code?: unknown; message?: unknown } | null | undefined;
  if (typeof c?.code === 'string' && /^E[A-Z]+$/.test(c.code)) return c.code;
  return typeof c?.message === 'string' ? c.message : String(cause);
}

/** Who asked, carried in the change's context so that every manager's audit line names them. */
function requesterOf(ctx: RequestContext): ChangeRequester {
  return ctx.principal === undefined ? { reqId: ctx.requestId } : { pr: ctx.principal, reqId: ctx.requestId };
}

/** Voters then learners, with their addresses and whether this node reaches them. */
export function memberViews(driver: Pick<RaftNodeDriver<unknown>, 'id' | 'directory'>, st: RaftStatus, reachable: (id: NodeId) => boolean): ClusterMemberView[] {
  const view = (id: NodeId, voter: boolean): ClusterMemberView => {
    const a = driver.directory.get(id);
    return { id, raftAddress: a?.raftAddress ?? '', apiAddress: a?.apiAddress ?? '', voter, reachable: id === driver.id || reachable(id) };
  };
  return [...st.voters.map((id) => view(id, true)), ...st.learners.map((id) => view(id, false))];
}

/**
 * Why removing voter `id` would leave too few voters able to elect a leader and commit, or null when it would not.
 * Such a voter is live (this leader, or one `heard` from lately) and not recovering its storage (docs/storage-faults.md:
 * it votes for no one and counts towards no commit, so with too few others the removal itself never commits, and once
 * this leader steps down nobody can be elected).
 */
export function quorumProblemAfterRemoval(st: RaftStatus, id: NodeId, heard: ReadonlySet<NodeId>): string | null {
  const remaining = st.voters.filter((v) => v !== id);
  if (remaining.length === 0) return `${id} is the last voter`;
  const recovering = remaining.filter((v) => v !== st.id && (st.peersRecovering.includes(v) || st.progress.get(v)?.recovering === true));
  const live = remaining.filter((v) => v === st.id || (heard.has(v) && !recovering.includes(v)));
  const quorum = Math.floor(remaining.length / 2) + 1;
  if (live.length >= quorum) return null;
  const which = live.length === 0 ? 'none is' : `only ${live.length} ${live.length === 1 ? 'is' : 'are'}`;
  const liveList = live.length === 0 ? '' : ` (${live.join(', ')})`;
  const recoveringNote =
    recovering.length === 0
      ? ''
      : `; ${recovering.join(', ')} ${recovering.length === 1 ? 'is' : 'are'} recovering lost or damaged storage and ${recovering.length === 1 ? 'votes' : 'vote'} for no one until repaired (retry once repaired)`;
  return `removing ${id} would leave ${remaining.length} voters of which ${which} live with intact storage${liveList}; a quorum needs ${quorum}${recoveringNote}`;
}

function retryable(reason: ConfChangeRejection): boolean {
  return reason === 'CONF_CHANGE_IN_PROGRESS' || reason === 'PROPOSAL_DROPPED';
}

function rejection(reason: ConfChangeRejection): MinkubeError {
  switch (reason) {
    case 'NOT_LEADER':
      return new MinkubeError('NO_LEADER', 'this manager stopped leading; retry');
    case 'CONF_CHANGE_IN_PROGRESS':
    case 'PROPOSAL_DROPPED':
      return new MinkubeError('MEMBERSHIP_CHANGE_REFUSED', 'another membership change is in progress (or leadership is moving); retry shortly', {
        details: { retryable: true },
      });
    case 'UNKNOWN_MEMBER':
      return new MinkubeError('MEMBER_NOT_FOUND', 'no such member');
    case 'ALREADY_MEMBER':
      return refused('already a member');
    case 'NOT_A_LEARNER':
    case 'LEARNER_NOT_CAUGHT_UP':
    case 'INVALID_CHANGE':
      return refused(`the change is not valid now (${reason})`);
    case 'LAST_VOTER':
      return refused('it is the last voter');
    case 'VOTERS_RECOVERING':
      return refused('the voters left with intact storage would not form a quorum (others are recovering lost or damaged storage); retry once they are repaired');
    default:
      return refused(String(reason));
  }
}

function refused(message: string): MinkubeError {
  return new MinkubeError('MEMBERSHIP_CHANGE_REFUSED', message);
}
