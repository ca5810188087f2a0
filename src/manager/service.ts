// The manager's side of the HTTP API: turns requests into proposals and linearizable reads on the Raft driver.
// Works the same on every manager: the core forwards a follower's proposals and reads to the leader.
import type { Logger } from 'pino';
import type { ClusterView, KvEntry, KvVersion, ManagerService, ReadConsistency, ReadyState, RequestContext } from '../contracts/services.js';
import { encodeCommand, type Command, type EntryPrincipal } from '../kv/commands.js';
import { KvStateMachine, type AppliedCommand, type ApplyResult } from '../kv/state-machine.js';
import { commandVersion } from '../contracts/command-version.js';
import { buildInfo } from '../lib/build-info.js';
import { MinkubeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { memberViews } from './membership.js';
import type { CommandStateMachine, RaftNodeDriver } from './node.js';
import type { ManagerAddresses } from './task-service.js';

export interface ManagerServiceOptions {
  id: NodeId;
  clientId: string;
  logger: Logger;
  /** Told of every command entry applied here, after the state machine (the audit log). Must not throw. */
  onApplied?: (index: number, applied: AppliedCommand) => void;
  /** What the leader knows of its members' command versions (cluster-version.ts), for GET /v1/cluster. */
  commandVersions?: () => { readonly lowest: number | null; of(member: string): number | undefined };
}

export class ManagerServiceImpl implements ManagerService {
  readonly kv = new KvStateMachine();
  /** prepareRestore: a snapshot from the leader is decoded in slices, so installing it never holds up heartbeats. */
  readonly stateMachine: CommandStateMachine<ApplyResult> & { prepareRestore(bytes: Uint8Array): Promise<() => void> } = {
    apply: (index, data) => {
      const applied = this.kv.applyEntry(index, data);
      this.o.onApplied?.(index, applied);
      return applied;
    },
    passed: (index) => this.kv.passEntry(index),
    captureSnapshot: () => this.kv.captureSnapshot(),
    captureSnapshotParts: () => this.kv.captureSnapshotParts(),
    restore: (bytes) => this.kv.restore(bytes),
    prepareRestore: (bytes) => this.kv.prepareRestore(bytes),
  };
  private driverRef: RaftNodeDriver<ApplyResult> | null = null;

  constructor(private readonly o: ManagerServiceOptions) {}

  attach(driver: RaftNodeDriver<ApplyResult>): void {
    this.driverRef = driver;
  }

  private get driver(): RaftNodeDriver<ApplyResult> {
    if (this.driverRef === null) throw new MinkubeError('NOT_READY', 'the manager is starting');
    return this.driverRef;
  }

  /** The API addresses of the managers in this node's configuration (voters, then learners): what workers are told. */
  managerApiAddresses(): string[] {
    if (this.driverRef === null) return [];
    // On every heartbeat a worker sends: the configuration alone, not the whole status.
    const c = this.driverRef.conf();
    return [...c.voters, ...c.learners].flatMap((id) => {
      const a = this.driverRef?.directory.get(id)?.apiAddress;
      return a === undefined || a === '' ? [] : [a];
    });
  }

  /** The managers in this node's configuration (voters, then learners) with their addresses, as far as it knows them. */
  managerAddresses(): ManagerAddresses[] {
    if (this.driverRef === null) return [];
    const c = this.driverRef.conf();
    return [...c.voters, ...c.learners].flatMap((id) => {
      const a = this.driverRef?.directory.get(id);
      return a === undefined ? [] : [{ id, raftAddress: a.raftAddress, apiAddress: a.apiAddress }];
    });
  }

  /** The ids of this node's configuration (voters and learners), its latest in the log, addresses known or not. */
  managerIds(): string[] {
    if (this.driverRef === null) return [];
    const c = this.driverRef.conf();
    return [...c.voters, ...c.learners];
  }

  knownApiAddresses(): string[] {
    return this.driverRef === null ? [] : this.driverRef.directory.entries().map(([, a]) => a.apiAddress);
  }

  notMemberError(): MinkubeError | null {
    return this.driverRef === null ? null : this.driverRef.notMemberError();
  }

  cluster(): ClusterView {
    const s = this.driver.status();
    const storage = this.driver.storage();
    const versions = this.o.commandVersions?.();
    return {
      id: this.o.id,
      role: s.role,
      term: s.term,
      leaderId: s.leaderId,
      commitIndex: s.commitIndex,
      appliedIndex: this.driver.applied,
      members: memberViews(this.driver, s, (id) => this.driver.reachable(id)).map((m) => ({
        ...m,
        storage: m.id === this.o.id ? storage.state : s.peersRecovering.includes(m.id as NodeId) ? 'recovering' : m.reachable ? 'ok' : null,
        commandVersion: m.id === this.o.id ? commandVersion : (versions?.of(m.id) ?? null),
      })),
      commandVersion,
      build: buildInfo(),
      clusterCommandVersion: s.role === 'leader' ? (versions?.lowest ?? null) : null,
      firstIndex: s.firstIndex,
      lastIndex: s.lastIndex,
      snapshotIndex: s.snapshot?.index ?? 0,
      storage: storage.state,
      storageReason: storage.reason,
      storageTargetIndex: storage.targetIndex,
      noQuorumReason: this.driver.noQuorumReason(),
    };
  }

  ready(): ReadyState {
    if (this.driverRef === null) return { ready: false, reason: 'starting' };
    const s = this.driver.status();
    // The driver's one rule for "not a member", which also refuses writes and reads at once.
    if (this.driver.notMemberError() !== null) return { ready: false, reason: 'this manager is not a member of the cluster (removed, or not added yet)' };
    if (this.driver.storage().state === 'recovering') return { ready: false, reason: 'repairing its storage from the leader' };
    if (s.leaderId === null) return { ready: false, reason: 'no leader is known' };
    if (this.driver.applied < s.commitIndex) return { ready: false, reason: `applied ${this.driver.applied} of ${s.commitIndex} committed entries` };
    return { ready: true };
  }

  async kvPut(key: string, value: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion> {
    const cmd: Command = ifVersion === undefined ? { op: 'put', key, value } : { op: 'put', key, value, ifVersion };
    return versionOf(await this.propose(cmd, ctx));
  }

  async kvDelete(key: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion> {
    const cmd: Command = ifVersion === undefined ? { op: 'delete', key } : { op: 'delete', key, ifVersion };
    return versionOf(await this.propose(cmd, ctx));
  }

  async kvGet(key: string, consistency: ReadConsistency, ctx: RequestContext): Promise<KvEntry> {
    if (consistency === 'linearizable') await this.driver.linearizableBarrier(ctx.deadlineMs);
    // A stale read serves this manager's own state: not while it may miss what it had acknowledged.
    else if (this.driver.storage().state === 'recovering') throw new MinkubeError('STORAGE_RECOVERING', 'this manager is repairing its storage from the leader: read through another manager, or without ?consistency=stale');
    const rec = this.kv.get(key);
    if (rec === undefined) throw new MinkubeError('KV_KEY_NOT_FOUND', `no key "${key}"`);
    return { key: rec.key, value: rec.value, version: rec.version };
  }

  private propose(cmd: Command, ctx: RequestContext): Promise<ApplyResult> {
    return this.proposeCommand(cmd, ctx.deadlineMs, ctx.requestId, ctx.principal, ctx.traceparent);
  }

  /**
   * Any command through this manager's client session (the task service and the leader loops use it). traceparent:
   * the request's trace context, carried in the entry so that every manager's apply joins the trace.
   */
  proposeCommand(cmd: Command, deadlineMs: number, requestId: string, principal?: EntryPrincipal, traceparent?: string): Promise<ApplyResult> {
    const { clientId } = this.o;
    const pr = principal === undefined ? {} : { pr: principal };
    const tp = traceparent === undefined ? {} : { tp: traceparent };
    return this.driver.propose((seq, ackSeq) => encodeCommand({ clientId, seq, ackSeq, reqId: requestId, ...pr, ...tp, cmd }), deadlineMs);
  }

  /** Resolves once this manager has applied everything committed before the call. */
  barrier(deadlineMs: number): Promise<void> {
    return this.driver.linearizableBarrier(deadlineMs);
  }
}

function versionOf(r: ApplyResult): KvVersion {
  if (!r.ok) throw new MinkubeError(r.code, r.message, { details: { currentVersion: r.currentVersion } });
  return { key: r.key, version: r.version };
}
