// An in-memory ManagerService for API and CLI tests: a versioned map, a fixed cluster view, injectable failures.
import type {
  ClusterMemberView,
  ClusterSettingsView,
  ClusterView,
  KvEntry,
  KvVersion,
  ManagerService,
  MemberRequest,
  MembershipService,
  MembersView,
  ReadConsistency,
  ReadyState,
  RequestContext,
} from '../../src/contracts/services.js';
import { clusterSettingsOf, parseClusterConfig } from '../../src/config/cluster.js';
import { MinkubeError } from '../../src/lib/errors.js';

export interface FakeCall {
  method: string;
  args: unknown[];
  ctx: RequestContext;
}

export class FakeManagerService implements ManagerService {
  readonly data = new Map<string, { value: string; version: number }>();
  readonly calls: FakeCall[] = [];
  index = 0;
  /** Thrown by the next kv call (then cleared). */
  failNext: Error | null = null;
  readyState: ReadyState = { ready: true };
  /** What notMemberError answers: set it to play a manager that knows it was removed. */
  notMember: MinkubeError | null = null;

  constructor(public view: ClusterView = defaultView()) {}

  cluster(): ClusterView {
    return this.view;
  }

  notMemberError(): MinkubeError | null {
    return this.notMember;
  }

  ready(): ReadyState {
    return this.readyState;
  }

  async kvPut(key: string, value: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion> {
    this.record('kvPut', [key, value, ifVersion], ctx);
    const current = this.data.get(key)?.version ?? 0;
    if (ifVersion !== undefined && ifVersion !== current) throw new MinkubeError('KV_VERSION_MISMATCH', `key "${key}" is at version ${current}`);
    this.data.set(key, { value, version: ++this.index });
    return { key, version: this.index };
  }

  async kvGet(key: string, consistency: ReadConsistency, ctx: RequestContext): Promise<KvEntry> {
    this.record('kvGet', [key, consistency], ctx);
    const r = this.data.get(key);
    if (r === undefined) throw new MinkubeError('KV_KEY_NOT_FOUND', `no key "${key}"`);
    return { key, ...r };
  }

  async kvDelete(key: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion> {
    this.record('kvDelete', [key, ifVersion], ctx);
    const r = this.data.get(key);
    if (ifVersion !== undefined && ifVersion !== (r?.version ?? 0)) throw new MinkubeError('KV_VERSION_MISMATCH', `key "${key}" is at version ${r?.version ?? 0}`);
    if (r === undefined) throw new MinkubeError('KV_KEY_NOT_FOUND', `no key "${key}"`);
    this.data.delete(key);
    return { key, version: ++this.index };
  }

  private record(method: string, args: unknown[], ctx: RequestContext): void {
    this.calls.push({ method, args, ctx });
    const fail = this.failNext;
    if (fail !== null) {
      this.failNext = null;
      throw fail;
    }
  }
}

export function defaultView(overrides: { [K in keyof ClusterView]?: ClusterView[K] } = {}): ClusterView {
  return {
    id: 'm1',
    role: 'leader',
    term: 3,
    leaderId: 'm1',
    commitIndex: 10,
    appliedIndex: 10,
    firstIndex: 1,
    lastIndex: 10,
    snapshotIndex: 0,
    storage: 'ok',
    storageReason: null,
    storageTargetIndex: null,
    noQuorumReason: null,
    members: [
      { id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', voter: true, reachable: true },
      { id: 'm2', raftAddress: '127.0.0.2:7002', apiAddress: '127.0.0.2:8002', voter: true, reachable: false },
    ],
    ...overrides,
  };
}

/** An in-memory MembershipService: a member list and a leader, the same refusals as the contract, injectable failures. */
export class FakeMembershipService implements MembershipService {
  readonly calls: FakeCall[] = [];
  /** Thrown by the next call (then cleared). */
  failNext: Error | null = null;
  term = 3;
  /** What clusterSettings answers (the defaults' shape, with a few non-default values). */
  settings: ClusterSettingsView['settings'] = fakeSettings();

  constructor(
    public members: ClusterMemberView[] = defaultView().members.map((m) => ({ ...m })),
    public leaderId: string | null = 'm1',
  ) {}

  async listMembers(ctx: RequestContext): Promise<MembersView> {
    this.record('listMembers', [], ctx);
    return this.view();
  }

  async clusterSettings(ctx: RequestContext): Promise<ClusterSettingsView> {
    this.record('clusterSettings', [], ctx);
    return { leaderId: this.leaderId ?? 'm1', settings: structuredClone(this.settings) };
  }

  async addMember(req: MemberRequest, ctx: RequestContext): Promise<{ created: boolean; member: ClusterMemberView }> {
    this.record('addMember', [req], ctx);
    const same = this.members.find((m) => m.id === req.id);
    if (same !== undefined && same.raftAddress === req.raftAddress && same.apiAddress === req.apiAddress) return { created: false, member: same };
    if (same !== undefined) throw new MinkubeError('MEMBERSHIP_CHANGE_REFUSED', `id "${req.id}" is used by a member with other addresses`);
    const member: ClusterMemberView = { ...req, voter: false, reachable: true };
    this.members.push(member);
    return { created: true, member };
  }

  async removeMember(id: string, ctx: RequestContext): Promise<MembersView> {
    this.record('removeMember', [id], ctx);
    const i = this.members.findIndex((m) => m.id === id);
    if (i < 0) throw new MinkubeError('MEMBER_NOT_FOUND', `no member "${id}"`);
    if (this.members.filter((m) => m.voter).length === 1 && this.members[i]!.voter) {
      throw new MinkubeError('MEMBERSHIP_CHANGE_REFUSED', `"${id}" is the last voter`);
    }
    this.members.splice(i, 1);
    if (this.leaderId === id) this.leaderId = this.members.find((m) => m.voter)?.id ?? null;
    return this.view();
  }

  async transferLeader(id: string | null, ctx: RequestContext): Promise<{ leaderId: string; term: number }> {
    this.record('transferLeader', [id], ctx);
    const target = id === null ? this.members.find((m) => m.voter && m.id !== this.leaderId) : this.members.find((m) => m.id === id);
    if (target === undefined) throw new MinkubeError('MEMBER_NOT_FOUND', `no member "${id ?? '(any voter)'}"`);
    if (!target.voter) throw new MinkubeError('LEADER_TRANSFER_FAILED', `"${target.id}" is a learner`);
    if (target.id !== this.leaderId) this.term++;
    this.leaderId = target.id;
    return { leaderId: target.id, term: this.term };
  }

  private view(): MembersView {
    return { leaderId: this.leaderId, members: this.members.map((m) => ({ ...m })) };
  }

  private record(method: string, args: unknown[], ctx: RequestContext): void {
    this.calls.push({ method, args, ctx });
    const fail = this.failNext;
    if (fail !== null) {
      this.failNext = null;
      throw fail;
    }
  }
}

/** A leader's settings as GET /v1/cluster/settings spells them: the defaults but the timings of a busy host. */
export function fakeSettings(): ClusterSettingsView['settings'] {
  const settings = clusterSettingsOf(parseClusterConfig({ managers: [{ id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', dataDir: 'm1' }] }, '/tmp'));
  return {
    ...settings,
    raft: { ...settings.raft, heartbeatIntervalMs: 100, electionTimeoutMs: 1000 },
    tasks: { ...settings.tasks, workerHeartbeatIntervalMs: 1000, workerTtlMs: 10_000, lostGraceMs: 5000 },
  };
}
