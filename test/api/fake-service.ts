// An in-memory ManagerService for API and CLI tests: a versioned map, a fixed cluster view, injectable failures.
import type { ClusterView, KvEntry, KvVersion, ManagerService, ReadConsistency, ReadyState, RequestContext } from '../../src/api/service.js';
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

  constructor(public view: ClusterView = defaultView()) {}

  cluster(): ClusterView {
    return this.view;
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

export function defaultView(overrides: Partial<ClusterView> = {}): ClusterView {
  return {
    id: 'm1',
    role: 'leader',
    term: 3,
    leaderId: 'm1',
    commitIndex: 10,
    appliedIndex: 10,
    members: [
      { id: 'm1', raftAddress: '127.0.0.1:7001', apiAddress: '127.0.0.1:8001', voter: true, reachable: true },
      { id: 'm2', raftAddress: '127.0.0.2:7002', apiAddress: '127.0.0.2:8002', voter: true, reachable: false },
    ],
    ...overrides,
  };
}
