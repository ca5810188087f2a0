// The contract between the managers' HTTP API and the manager runtime: the API validates and translates HTTP,
// the service does the work. Failures are thrown as MinkubeError (NO_LEADER, KV_VERSION_MISMATCH, TIMEOUT, ...).
import type { TaskRecord, TaskSpec, TaskState, WorkerAvailability, WorkerRecord } from './task-model.js';
import type { MinkubeError } from '../lib/errors.js';
import type { Role } from '../raft/types.js';
import type { Policy } from '../security/policy.js';
import type { Assignment, HeartbeatRequest, HeartbeatResponse, RegisterRequest } from './worker.js';

/**
 * Who asked for a command, kept small since it rides in every entry: an API token's accessor (`a`) or a node's id
 * (`n`), with the role. Never a secret. Managers older than this field ignore it, so adding it needed no new `v`.
 */
export type EntryPrincipal = { readonly a: string; readonly r: string } | { readonly n: string; readonly r: string };

/**
 * The header a manager forwarding a client's request to the leader (a membership change, a leadership transfer) names
 * that client in, as an EntryPrincipal in JSON: the leader believes it from a manager's certificate only.
 */
export const forwardedPrincipalHeader = 'x-minkube-forwarded-principal';
/**
 * How long the client waits for the answer, in ms: a manager answers within that (less than its own
 * api.requestTimeoutMs when shorter), so a client that gives up sooner than the cluster's timeout still gets a clean
 * NO_LEADER rather than a timeout of its own with the outcome unknown.
 */
export const clientTimeoutHeader = 'x-minkube-timeout-ms';

export interface RequestContext {
  /** The x-request-id of the HTTP request (the client's, or generated). */
  readonly requestId: string;
  /**
   * Absolute, on the monotonic reading (Clock.monoMs; performance.now() in production): past this the answer is no
   * longer wanted. Never a wall time: a step of the wall clock must neither time a request out nor let it wait longer.
   */
  readonly deadlineMs: number;
  /** Who asked, as a proposal carries it to every manager's audit log; absent without authentication (insecure). */
  readonly principal?: EntryPrincipal;
  /** The request's W3C trace context (src/api/tracing.ts), carried into its proposal; absent when untraced. */
  readonly traceparent?: string;
}

export interface ClusterMemberView {
  readonly id: string;
  readonly raftAddress: string;
  readonly apiAddress: string;
  readonly voter: boolean;
  /** As seen from the answering manager. */
  readonly reachable: boolean;
  /**
   * The member's storage as its latest answer to the answering manager said (docs/storage-faults.md): "recovering"
   * votes for no one and counts for no quorum until repaired; null when it has not said (not heard from yet).
   */
  readonly storage?: 'ok' | 'recovering' | null;
  /**
   * The newest command version the member understands: the answering manager's own for itself; for another member, as
   * it told the answering manager when that one leads (it asks every member, see README "Upgrading"); null when not
   * known here (a follower answering, a member not asked yet). A member that predates the field is counted as 10.
   */
  readonly commandVersion?: number | null;
}

/** The build a node runs: the package's version, and the git commit when the build recorded one. */
export interface BuildView {
  readonly version: string;
  readonly commit?: string;
}

export interface ClusterView {
  /** The answering manager. */
  readonly id: string;
  readonly role: Role;
  readonly term: number;
  readonly leaderId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly ClusterMemberView[];
  /** The log this node holds: entries firstIndex..lastIndex, after its snapshot at snapshotIndex (0: none). */
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  /**
   * This manager's storage: "recovering" after it found, at start-up, its log damaged or shorter than what it had
   * acknowledged; it refuses stale reads, votes for no one and counts for no quorum until it has learnt again from
   * the leader everything it had acknowledged (docs/storage-faults.md).
   */
  readonly storage: 'ok' | 'recovering';
  /** Why it is recovering (null when ok). */
  readonly storageReason: string | null;
  /** Recovering: the index it must hold again (what it had acknowledged; null when not known); null when ok. */
  readonly storageTargetIndex: number | null;
  /** Why no leader can be elected now, when too few voters have intact storage (null otherwise). */
  readonly noQuorumReason: string | null;
  /** Scheduled backups as this manager knows them (null: none configured); filled in by the route. */
  readonly backup?: BackupStatus | null;
  /** The answering manager's own command version and build. */
  readonly commandVersion?: number;
  readonly build?: BuildView;
  /** Leader only: the version the cluster runs at, the lowest its members understand (null on a follower). */
  readonly clusterCommandVersion?: number | null;
}

/**
 * A manager's own part of its open GET /status (no token): what `minkube status` shows for a member that cannot show
 * its GET /v1/cluster (one that cannot check a token yet: recovering its storage with nothing applied, say). Its
 * storage state, but not why (the reason names its data directory), and log positions only while it recovers (its
 * progress; the open page gives none of a healthy manager).
 */
export interface StatusSelf {
  readonly id: string;
  readonly role: Role;
  readonly storage: 'ok' | 'recovering';
  /** Recovering: the index it must hold again (null when not known); null when ok. */
  readonly storageTargetIndex: number | null;
  /** Recovering: its commit index (its progress towards storageTargetIndex); null when ok. */
  readonly commitIndex: number | null;
}

export type ReadConsistency = 'linearizable' | 'stale';

export interface KvVersion {
  readonly key: string;
  readonly version: number;
}

export interface KvEntry {
  readonly key: string;
  readonly value: string;
  readonly version: number;
}

export interface ReadyState {
  readonly ready: boolean;
  readonly reason?: string;
}

export interface ManagerService {
  cluster(): ClusterView;
  /**
   * NOT_READY saying why when this manager is not in the configuration it knows (removed, or a joiner not added yet),
   * else null. Such a manager serves nothing: GET /v1/cluster refuses with it rather than show a stale view.
   */
  notMemberError?(): MinkubeError | null;
  /** The API addresses of every manager this one has known, removed ones included (CORS origins); default: cluster()'s. */
  knownApiAddresses?(): string[];
  /** ifVersion: 0 means "must not exist", N means "must be at version N", undefined means unconditional. */
  kvPut(key: string, value: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion>;
  /** Throws KV_KEY_NOT_FOUND for a missing key. */
  kvGet(key: string, consistency: ReadConsistency, ctx: RequestContext): Promise<KvEntry>;
  /** Answers the version (log index) of the delete. */
  kvDelete(key: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion>;
  ready(): ReadyState;
}

// ---- tasks and workers (the tasks issue): served when the app is built with a TasksService ----

/** Every list in the API: a page of items and the cursor of the next page (null on the last one). */
export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor: string | null;
}

export interface TaskListQuery {
  readonly state?: TaskState;
  readonly workerId?: string;
  /** Only tasks whose name contains this. */
  readonly name?: string;
  readonly limit: number;
  /** The last id of the previous page. */
  readonly cursor?: string;
  readonly consistency: ReadConsistency;
}

export interface TasksService {
  /** Creates a pending task (or answers the one an earlier call with the same idempotency key created). */
  submitTask(spec: TaskSpec, idempotencyKey: string | undefined, ctx: RequestContext): Promise<TaskRecord>;
  /**
   * Creates all the tasks in one Raft entry, or none (QUEUE_FULL), answering them in the order given. Task i of a
   * batch with idempotency key K is known by `K` and i: a retried batch answers the tasks the first one created.
   */
  submitTasks(specs: readonly TaskSpec[], idempotencyKey: string | undefined, ctx: RequestContext): Promise<TaskRecord[]>;
  /** Throws TASK_NOT_FOUND. */
  getTask(id: string, consistency: ReadConsistency, ctx: RequestContext): Promise<TaskRecord>;
  listTasks(query: TaskListQuery, ctx: RequestContext): Promise<Page<TaskRecord>>;
  /** Desired state stop. Stopping a stopped task answers it again; a task that succeeded or failed is TASK_ALREADY_FINAL. */
  stopTask(id: string, ctx: RequestContext): Promise<TaskRecord>;
  /** The newest lines of the task's output, from the worker that ran its latest attempt. */
  taskLogs(id: string, tailLines: number, ctx: RequestContext): Promise<string>;
  /**
   * taskLogs, then the output as the worker writes it, until that attempt's container has exited (or, if the worker
   * stops answering, until the record shows the attempt over). `signal` ends it early.
   */
  followTaskLogs(id: string, tailLines: number, ctx: RequestContext, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
  /** WORKER_ADDRESS_IN_USE (409) for a manager's or a live worker's address; JOIN_REFUSED (409) for a manager's id. */
  registerWorker(req: RegisterRequest, ctx: RequestContext): Promise<WorkerRecord>;
  workerHeartbeat(id: string, req: HeartbeatRequest, ctx: RequestContext): Promise<HeartbeatResponse>;
  /**
   * Linearizable: the worker's scheduled and running tasks with their fencing tokens and desired states; refused
   * (WORKER_REPLACED) for an instance other than the one the id is registered by.
   */
  workerAssignments(id: string, ctx: RequestContext, instance?: string): Promise<Assignment[]>;
  /**
   * Of these task ids, those this cluster has a record of or removed one of (tasks.retention): its tasks, whose
   * copies an earlier instance of a worker left are stale. Read from this manager's state as it is (GET assignments
   * asks right after its barrier).
   */
  knownTaskIds(ids: readonly string[]): string[];
  listWorkers(query: { limit: number; cursor?: string; consistency: ReadConsistency }, ctx: RequestContext): Promise<Page<WorkerRecord>>;
  getWorker(id: string, consistency: ReadConsistency, ctx: RequestContext): Promise<WorkerRecord>;
  /** Forgets a retired worker's record: only one that is down with no task placed on it (WORKER_NOT_DOWN). */
  removeWorker(id: string, ctx: RequestContext): Promise<{ id: string; removed: true }>;
  /** Drain, pause or activate a worker (WORKER_NOT_FOUND); answers the worker as getWorker does. */
  setWorkerAvailability(id: string, availability: WorkerAvailability, ctx: RequestContext): Promise<WorkerRecord>;
}

// ---- membership (the snapshots-and-membership issue): served when the app is built with a MembershipService ----

/** A manager that asks to join: the addresses the others reach it at. */
export interface MemberRequest {
  readonly id: string;
  readonly raftAddress: string;
  readonly apiAddress: string;
}

/** The configuration as the leader sees it (the implementation forwards to the leader). */
export interface MembersView {
  readonly leaderId: string | null;
  /** Voters and learners; a learner (voter: false) is promoted by the leader once it has caught up. */
  readonly members: readonly ClusterMemberView[];
}

/**
 * Why `value` is not a MembersView (as GET /v1/cluster/members answers one), or null: the fields a joining manager
 * reads and dials, the first one missing or wrong named by its path (`members[1].raftAddress: missing`). A join reads it from a URL it was
 * given, which may be anything but a manager's API.
 */
export function membersViewProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected an object';
  const members = (value as { members?: unknown }).members;
  if (!Array.isArray(members)) return members === undefined ? 'members: missing' : 'members: expected a list';
  for (const [i, m] of members.entries()) {
    const problem = memberViewProblem(m);
    if (problem !== null) return `members[${i}]${problem}`;
  }
  return null;
}

/** Why `value` is not a ClusterMemberView (its id, addresses and voter flag), or null; said after the member's path. */
export function memberViewProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return ': expected an object';
  const m = value as Partial<Record<keyof ClusterMemberView, unknown>>;
  for (const key of ['id', 'raftAddress', 'apiAddress'] as const) {
    if (typeof m[key] !== 'string' || m[key] === '') return `.${key}: ${m[key] === undefined ? 'missing' : 'expected a non-empty string'}`;
  }
  return typeof m.voter === 'boolean' ? null : `.voter: ${m.voter === undefined ? 'missing' : 'expected true or false'}`;
}

/**
 * The leader's running settings that must agree across managers (config/cluster.ts ClusterSettingsSchema: its file's
 * keys, defaults spelt out): a manager joining from flags alone keeps them as its config.
 */
export interface ClusterSettingsView {
  /** The manager whose settings these are: the leader when it answered. */
  readonly leaderId: string;
  readonly settings: { readonly [section: string]: unknown };
}

/** Why `value` is not a ClusterSettingsView (a leader's id and an object of settings), or null: a join reads it from a URL it was given. */
export function clusterSettingsViewProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected an object';
  const v = value as { leaderId?: unknown; settings?: unknown };
  if (typeof v.leaderId !== 'string' || v.leaderId === '') return `leaderId: ${v.leaderId === undefined ? 'missing' : 'expected a non-empty string'}`;
  if (typeof v.settings !== 'object' || v.settings === null || Array.isArray(v.settings)) return `settings: ${v.settings === undefined ? 'missing' : 'expected an object'}`;
  return null;
}

export interface MembershipService {
  /** The leader's configuration (a follower asks the leader; NO_LEADER when none answers in time). */
  listMembers(ctx: RequestContext): Promise<MembersView>;
  /** The leader's cluster-wide settings, as it runs them now (a follower asks the leader, as for listMembers). */
  clusterSettings(ctx: RequestContext): Promise<ClusterSettingsView>;
  /**
   * Adds a manager as a learner and resolves once that change is committed; the leader promotes it to a voter when
   * it has caught up. Adding a member that already exists with the same addresses answers it again (a joining
   * node retries). MEMBERSHIP_CHANGE_REFUSED (409) for an id or address already used by another member, or while
   * another change is in progress; JOIN_REFUSED (409) for the id of a worker, registered (in any state) or registering.
   */
  addMember(req: MemberRequest, ctx: RequestContext): Promise<{ readonly created: boolean; readonly member: ClusterMemberView }>;
  /**
   * Removes a voter or learner (the leader too: it hands over first) and resolves once committed, with the new
   * configuration. MEMBER_NOT_FOUND (404); MEMBERSHIP_CHANGE_REFUSED (409) when the remaining voters that are live
   * and not recovering their storage would not form a quorum (the message names those recovering), when it is the
   * last voter, or while another change is in progress.
   */
  removeMember(id: string, ctx: RequestContext): Promise<MembersView>;
  /**
   * Hands leadership to `id` (null: the most caught-up voter) and resolves when the new leader is elected.
   * MEMBER_NOT_FOUND; LEADER_TRANSFER_FAILED (409) for a learner or a voter recovering its storage (at once), or when
   * the transfer did not complete in time.
   */
  transferLeader(id: string | null, ctx: RequestContext): Promise<{ readonly leaderId: string; readonly term: number }>;
}

// ---- auth (the API tokens issue): served when the app is built with an AuthService ----

/** An API token as listed: never its secret nor the secret's hash. Times are ISO 8601. */
export interface ApiTokenView {
  readonly accessor: string;
  readonly name: string;
  readonly role: string;
  /** Present when the token is limited to keys under this prefix. */
  readonly keyPrefix?: string;
  /** Present for a custom policy (role is then its name): the rules are not secret. */
  readonly policy?: Policy;
  readonly createdAt: string;
  /** null: never expires. */
  readonly expiresAt: string | null;
}

/** The answer to a create: the only time the whole token (with its secret) is shown. */
export interface CreatedApiToken extends ApiTokenView {
  readonly token: string;
}

export interface CreatedJoinToken {
  readonly token: string;
  /** join-<16 hex>: names the token in lists and revocations (derived from its secret's hash, so it tells nothing of it). */
  readonly accessor: string;
  readonly role: 'manager' | 'worker';
  readonly expiresAt: string;
}

/** A join token as listed: its accessor, never its secret nor the secret's hash. Times are ISO 8601. */
export interface JoinTokenView {
  readonly accessor: string;
  readonly role: 'manager' | 'worker';
  readonly createdAt: string;
  readonly expiresAt: string;
}

/** GET /v1/auth/tokens: the API tokens as a page (one: they are bounded), and the join tokens beside them. */
export interface TokenList extends Page<ApiTokenView> {
  readonly joinTokens: readonly JoinTokenView[];
}

export interface TokenRequest {
  /** Unique among the tokens; absent: `<role>-<accessor>`. */
  readonly name?: string;
  /** A built-in role name (src/security/policy.ts); with a policy, the policy's name. */
  readonly role: string;
  readonly keyPrefix?: string;
  /** A custom policy instead of a built-in role (then role === policy.name, and no keyPrefix). */
  readonly policy?: Policy;
  /** Seconds to live; absent: never expires, or, made by a token that expires, expires with it. */
  readonly ttlS?: number;
}

/** What a manager checks a presented token against, from its own applied state (fits api/auth.ts's TokenRecord). */
export interface TokenLookup {
  readonly accessor: string;
  /** sha256 hex of the secret (compare with security/tokens.ts secretMatches). */
  readonly secretHash: string;
  readonly name: string;
  readonly role: string;
  /** Present when the token is limited to keys under this prefix. */
  readonly keyPrefix?: string;
  /** Present for a custom policy, which then decides instead of the role. */
  readonly policy?: Policy;
  readonly expiresAtMs: number | null;
}

/**
 * No escalation: the caller is ctx.principal, whose live token record says what it may do (a manager's certificate
 * may do everything; without a principal, an insecure cluster, nothing is checked). A token may create or revoke
 * only a token whose every permission it holds itself, and only a caller with every permission (an admin's) may
 * create or revoke a join token: a manager gets the CA key, a worker its tasks' secretEnv values. FORBIDDEN (403)
 * otherwise, naming the first permission the caller lacks. Time counts too: a token made by a token that expires
 * expires no later (without a ttl it ends with its creator; a longer ttl is FORBIDDEN), API and join tokens alike.
 */
export interface AuthService {
  /** TOKEN_EXISTS (409) for a name in use; TOKEN_LIMIT_REACHED (409); INVALID_BODY for a role that is not one; FORBIDDEN. */
  createToken(req: TokenRequest, ctx: RequestContext): Promise<CreatedApiToken>;
  /** Linearizable: every token not revoked (expired ones until the next create drops them), oldest first. */
  listTokens(ctx: RequestContext): Promise<TokenList>;
  /**
   * ref: an API token's accessor or name, or a join token's accessor (join-<16 hex>), looked up linearizably;
   * TOKEN_NOT_FOUND (404) for none of them; FORBIDDEN.
   */
  revokeToken(ref: string, ctx: RequestContext): Promise<{ readonly accessor: string; readonly revoked: true }>;
  /**
   * ttlS absent: limits.joinTokenTtlSDefault (24 h), or less to end with the caller's token. INVALID_BODY when the
   * cluster is insecure (no CA, so no digest to put in the token); FORBIDDEN.
   */
  createJoinToken(role: 'manager' | 'worker', ttlS: number | undefined, ctx: RequestContext): Promise<CreatedJoinToken>;
  /** Synchronous and local (this manager's applied state): undefined for unknown, revoked or expired tokens. */
  lookupToken(accessor: string): TokenLookup | undefined;
  /** The 32 bytes that sign browser sessions; null until the cluster is bootstrapped. */
  sessionKey(): Uint8Array | null;
}

// ---- joining with a token, and certificate renewal: served by a secure cluster's managers ----

export interface JoinRequest {
  /** MKTKN-1-<CA digest>-<secret>. */
  readonly token: string;
  /** The id the node will have; its CSR must name it. */
  readonly id: string;
  readonly csr: string;
  /** 'host:port' addresses the node serves on (their hosts go into its certificate). */
  readonly addresses: readonly string[];
}

export interface JoinReply {
  readonly certificate: string;
  readonly ca: string;
  /** Managers only: they sign the next joiners' and renewals' certificates. */
  readonly caKey?: string;
  /** The cluster's managers as this manager knows them: a joining worker's managers. */
  readonly managers: readonly { readonly id: string; readonly raftAddress: string; readonly apiAddress: string }[];
}

export interface JoinService {
  caCertPem(): string;
  /**
   * UNAUTHENTICATED for a token that is not one, another CA's, unknown, revoked or expired; JOIN_REFUSED for an id in
   * use. requestId: the HTTP request's, for the audit line of a join whose token checked out.
   */
  join(req: JoinRequest, requestId?: string): Promise<JoinReply>;
  /** A new certificate for the node that presented `current` (verified by TLS), naming the same identity. */
  renew(current: import('node:tls').PeerCertificate, csrPem: string, addresses?: readonly string[]): Promise<{ readonly certificate: string }>;
}

// ---- the audit trail (the closed-cluster issue): served when the app is built with an AuditService ----

/** Who a line names: an API token by its accessor, or a cluster node by its id, with the role. Never a secret. */
export type AuditPrincipal = { readonly token: string; readonly role: string } | { readonly node: string; readonly role: string };

/** A committed change, written by every manager as it applies the entry. */
export interface AuditCommittedLine {
  /** This manager's line number: the cursor of GET /v1/audit (the same change has another seq on another manager). */
  readonly seq: number;
  /** ISO 8601: the command's own time when it carries one (every manager writes the same), else when it was applied here. */
  readonly time: string;
  readonly index: number;
  /**
   * null: proposed by the cluster itself (leader loops, bootstrap, a learner's promotion, a forced configuration), by
   * a manager older than the field (a membership change's), or an insecure cluster's request.
   */
  readonly principal: AuditPrincipal | null;
  /** The command's op ('put', 'task.submit', 'auth.tokenCreate', ...) or 'config.<change>' for a membership change. */
  readonly op: string;
  /** The key, task or worker id(s), token accessor or member id: never a value, secret or hash. */
  readonly target: string | null;
  /** 'ok', or the error code the state machine answered. */
  readonly outcome: string;
  readonly requestId: string | null;
}

export type AuditRefusal = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'RATE_LIMITED' | 'QUEUE_FULL';

/** A request refused (401, 403, 429), written only by the manager that refused it. */
export interface AuditRefusedLine {
  readonly seq: number;
  readonly time: string;
  /** null when no credential was accepted (401), or the cluster is insecure. */
  readonly principal: AuditPrincipal | null;
  /** 'POST /v1/tasks': the route's template, never the raw URL (which may carry a key). */
  readonly route: string;
  readonly outcome: AuditRefusal;
  readonly requestId: string;
}

/**
 * A request that changed something without a log entry of its own (a leadership transfer, a config reload, a join:
 * a certificate issued), written only by the manager that served it, whatever its outcome.
 */
export interface AuditServedLine {
  readonly seq: number;
  readonly time: string;
  /**
   * null for a reload by SIGHUP (whoever could signal the process), and every request of an insecure cluster; for a
   * join, the join token ({ token: 'join-<16 hex>', role: 'worker' | 'manager' }).
   */
  readonly principal: AuditPrincipal | null;
  /** 'POST /v1/cluster/leader': the route's template; 'SIGHUP' for a reload by signal. */
  readonly route: string;
  /** The transferee ('any' when none was named); a reload's applied keys, else the config file it read; a joiner's id. */
  readonly target: string | null;
  /** 'ok', or the error code answered. */
  readonly outcome: string;
  /** null for a reload by SIGHUP. */
  readonly requestId: string | null;
}

/**
 * Requests without a valid credential refused past one client address's anonymous bucket (429 RATE_LIMITED), counted:
 * the first of a flood is an AuditRefusedLine of its own, the rest are written as one of these per address per
 * interval (limits.auditSummaryIntervalMs), so that an outsider cannot rotate the trail away.
 */
export interface AuditRefusalSummaryLine {
  readonly seq: number;
  /** ISO 8601: when the line was written, at the end of the interval it counts. */
  readonly time: string;
  /** The token (or node) past its rate limit; null for requests without a valid credential, and for client '*'. */
  readonly principal: AuditPrincipal | null;
  readonly outcome: 'RATE_LIMITED';
  /** The client address (the connection's), or '*' for callers past limits.auditSummaryClientsMax in one interval. */
  readonly client: string;
  /** How many refusals the line stands for, each left out of the trail. */
  readonly count: number;
  /** ISO 8601: the first of them. */
  readonly since: string;
  /** Their count by route template; past limits.auditSummaryRoutesMax routes the rest under '(other routes)'. */
  readonly routes: Readonly<Record<string, number>>;
}

export type AuditLine = AuditCommittedLine | AuditServedLine | AuditRefusedLine | AuditRefusalSummaryLine;

export interface AuditQuery {
  /** Only lines at or after this time (ms since the epoch). */
  readonly sinceMs?: number;
  /** Only lines whose principal is this token accessor or node id. */
  readonly principal?: string;
  readonly limit: number;
  /** Only lines after this seq (the nextCursor of the page before). */
  readonly afterSeq?: number;
  /** Not the committed lines of these ops (`worker.heartbeat`, one per worker per second, would bury the rest). */
  readonly excludeOps?: readonly string[];
}

export interface AuditService {
  refused(line: Omit<AuditRefusedLine, 'seq' | 'time'>): void;
  /** A leadership transfer, reload or join this manager served (see AuditServedLine). */
  served(line: Omit<AuditServedLine, 'seq' | 'time'>): void;
  /**
   * A request refused past a rate limit (429 RATE_LIMITED: a token's bucket, or without a valid credential its client
   * address's anonymous bucket): the first of a caller's (principal and address) written in full as refused() writes
   * it, the rest counted into AuditRefusalSummaryLines.
   */
  rateLimited(client: string, line: Omit<AuditRefusedLine, 'seq' | 'time'>): void;
  /**
   * This manager's lines, oldest first. With sinceMs or afterSeq: the first `limit` lines after that point, and a
   * cursor when more follow; without either: the newest `limit` lines and no cursor.
   */
  query(q: AuditQuery): Promise<Page<AuditLine>>;
}

// ---- the dashboard's live feed (the dashboard issue): GET /v1/events, served when the app is built with an EventsService ----

/** One member as the answering manager sees it, with what the member itself last said (null: it did not answer). */
export interface MemberStatus {
  readonly id: string;
  readonly apiAddress: string;
  readonly voter: boolean;
  /** Raft's view from the answering manager (the transport's connection). */
  readonly reachable: boolean;
  /** Whether the member answered its own GET /v1/cluster at the last poll (the answering manager itself: true). */
  readonly answered: boolean;
  readonly role: Role | null;
  readonly term: number | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  /** The leader's commit index (else the highest known) minus this member's applied index. */
  readonly lag: number | null;
}

/** Rates over one sampling period (limits.eventRateSampleMs). */
export interface RateSample {
  readonly atMs: number;
  /** Raft entries applied per second on the answering manager: every write (keys, tasks, heartbeats, tokens). */
  readonly writesPerS: number;
  /** Tasks that became `scheduled` per second (placements applied). */
  readonly placementsPerS: number;
}

export interface DashboardSnapshot {
  readonly atMs: number;
  /** The answering manager. */
  readonly servedBy: string;
  readonly role: Role;
  readonly term: number;
  readonly leaderId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly MemberStatus[];
  /** At most limits.eventWorkersMax, by id. */
  readonly workers: readonly WorkerRecord[];
  readonly tasks: Readonly<Record<TaskState, number>>;
  readonly rate: RateSample | null;
  /** Only in a stream's first snapshot: the samples of the last minutes, oldest first. */
  readonly history?: readonly RateSample[];
}

/** A task record that changed on the answering manager (applied), without its spec or history. */
export interface TaskChange {
  readonly id: string;
  readonly name: string | null;
  readonly state: TaskState;
  readonly desiredState: 'run' | 'stop';
  readonly workerId: string | null;
  readonly attempt: number;
  readonly exitCode: number | null;
  readonly updatedAt: string;
}

export type DashboardEvent =
  | { readonly type: 'snapshot'; readonly data: DashboardSnapshot }
  /** dropped: changes left out past limits.eventTaskChangesMax in one batch (reload what you show). */
  | { readonly type: 'tasks'; readonly data: { readonly items: readonly TaskChange[]; readonly dropped: number } };

export interface EventsService {
  /** The first event sent is a snapshot with its history; then snapshots and task changes as they happen. */
  subscribe(send: (event: DashboardEvent) => void): { close(): void };
}

// ---- backups and retention (issue 17): served when the app is built with a BackupService / RetentionService ----

/** The scheduled backups: the newest file in backup.dir, and the last attempt's error (null once one succeeds). */
export interface BackupStatus {
  /** ISO 8601; null before the first. */
  readonly lastSuccessAt: string | null;
  readonly lastIndex: number | null;
  readonly lastError: string | null;
}

/** A backup file (src/manager/backup-file.ts framing) of the applied state at one index. */
export interface SnapshotFile {
  readonly index: number;
  readonly term: number;
  /**
   * Hex sha256 of the whole file, as `sha256sum` of a saved copy says (the framing's own checksums, of its header and
   * of its body, are checked by whoever parses the file).
   */
  readonly sha256: string;
  readonly bytes: Uint8Array;
}

export interface BackupService {
  /** After a linearizable barrier: the state as applied here, with everything acknowledged before the call. */
  snapshot(ctx: RequestContext): Promise<SnapshotFile>;
  /** null when the config has no backup section. */
  status(): BackupStatus | null;
}

export interface GcResult {
  /** Finished task records removed now. */
  readonly removed: number;
  /** Task records kept (any state). */
  readonly tasks: number;
}

export interface RetentionService {
  /** Removes, through Raft, every finished task record due under tasks.retention now (oldest first, in batches). */
  gc(ctx: RequestContext): Promise<GcResult>;
}
