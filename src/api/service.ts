// The contract between the managers' HTTP API and the manager runtime: the API validates and translates HTTP,
// the service does the work. Failures are thrown as MinkubeError (NO_LEADER, KV_VERSION_MISMATCH, TIMEOUT, ...).
import type { Role } from '../raft/types.js';

export interface RequestContext {
  /** The x-request-id of the HTTP request (the client's, or generated). */
  readonly requestId: string;
  /** Absolute, Date.now() based: past this the answer is no longer wanted. */
  readonly deadlineMs: number;
}

export interface ClusterMemberView {
  readonly id: string;
  readonly raftAddress: string;
  readonly apiAddress: string;
  readonly voter: boolean;
  /** As seen from the answering manager. */
  readonly reachable: boolean;
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
  /** ifVersion: 0 means "must not exist", N means "must be at version N", undefined means unconditional. */
  kvPut(key: string, value: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion>;
  /** Throws KV_KEY_NOT_FOUND for a missing key. */
  kvGet(key: string, consistency: ReadConsistency, ctx: RequestContext): Promise<KvEntry>;
  /** Answers the version (log index) of the delete. */
  kvDelete(key: string, ifVersion: number | undefined, ctx: RequestContext): Promise<KvVersion>;
  ready(): ReadyState;
}
