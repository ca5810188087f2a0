// An in-process cluster of real RaftNodeDrivers for snapshot and membership tests: MemoryNetwork, MemoryRaftStorage
// over MemoryDisks that outlive a node (a restart reopens the same disk), the KV state machine of ManagerServiceImpl,
// and a ChunkPoster that hands snapshot chunks straight to the target driver (no HTTP), honouring partitions.
import { pino } from 'pino';
import type { HttpClient } from '../../src/client/http.js';
import { validateCommand } from '../../src/kv/commands.js';
import type { ApplyResult } from '../../src/kv/state-machine.js';
import { systemClock, type Clock } from '../../src/lib/clock.js';
import { MinkubeError } from '../../src/lib/errors.js';
import { nodeId, type NodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { SeededRandom } from '../../src/lib/random.js';
import { MembershipServiceImpl } from '../../src/manager/membership.js';
import { RaftNodeDriver, type Member } from '../../src/manager/node.js';
import { ManagerServiceImpl, type ManagerServiceOptions } from '../../src/manager/service.js';
import type { Entry } from '../../src/raft/types.js';
import type { SnapshotChunkHeader } from '../../src/contracts/snapshot-chunks.js';
import type { ChunkPoster } from '../../src/manager/snapshot-transfer.js';
import { CheckedStorage } from '../../src/storage/checked.js';
import { MemoryMarker } from '../../src/storage/marker.js';
import { emptyMemoryDisk, MemoryRaftStorage, type MemoryDisk } from '../../src/storage/memory.js';
import { MemoryNetwork, type MemoryTransport } from '../../src/transport/memory.js';
import { sleep, waitFor } from '../support/wait.js';

export interface DriverNode {
  readonly id: NodeId;
  readonly driver: RaftNodeDriver<ApplyResult>;
  readonly service: ManagerServiceImpl;
  readonly membership: MembershipServiceImpl;
  readonly storage: MemoryRaftStorage;
  readonly transport: MemoryTransport;
}

export interface DriverClusterOptions {
  /** The bootstrap voters (default m1, m2, m3). */
  ids?: readonly string[];
  snapshotThresholdEntries?: number;
  snapshotThresholdBytes?: number;
  tickMs?: number;
  electionTicks?: number;
  seed?: number;
  /** Drivers check proposals with validateCommand (default true; false builds a cluster as it was before). */
  validate?: boolean;
  /** Each node's fit of its proposals (RaftNodeDriverOptions.fit; default none: proposed as they are). */
  fit?: (id: string) => ((data: Uint8Array) => { readonly data: Uint8Array } | { readonly error: MinkubeError }) | undefined;
  /** Listeners of what each node applies, as daemon/manager.ts wires the audit log: asked for again at every (re)start. */
  listeners?: (id: string) => NodeListeners;
  /** Each member's API address (default api-<id>): real ones for a test that serves the nodes' APIs. */
  apiAddressOf?: (id: string) => string;
  /** The pool a node's membership service forwards to the leader's API with (default none: forwarding fails). */
  membershipHttp?: (id: string) => HttpClient;
  /** Every node's clock (default the system's): a WallStepClock steps their wall readings as NTP would. */
  clock?: Clock;
}

export interface NodeListeners {
  onApplied?: ManagerServiceOptions['onApplied'];
  onEntryApplied?: (entry: Entry) => void;
}

export interface StartOptions {
  /** Start as a node joining a running cluster (it knows every member's address, no configuration). */
  join?: boolean;
  /** Start from an empty disk (a replaced machine with the same id). */
  wipe?: boolean;
  /** Start as `minkube manager --force-new-cluster` does: a one-member cluster from this node's data. */
  forceNewCluster?: boolean;
  /** With forceNewCluster: go on though its storage is damaged (`--accept-data-loss`). */
  acceptDataLoss?: boolean;
  /**
   * Start with its acknowledged-state marker damaged (no intact slot: docs/storage-faults.md), through the production
   * CheckedStorage: it recovers, votes for no one until an entry of a later term than its restart's commits.
   */
  markerDamaged?: boolean;
  /** Start through the production CheckedStorage keeping this marker (a test may damage it or look at it after). */
  marker?: MemoryMarker;
}

export { sleep, waitFor };

/** A marker with no intact slot: what is left of it after `head -c 1024 /dev/urandom > <dataDir>.marker`. */
function damagedMarker(): MemoryMarker {
  const marker = new MemoryMarker();
  marker.damaged = true;
  return marker;
}

export const memberOf = (id: string): Member => ({ id: nodeId(id), raftAddress: `raft-${id}`, apiAddress: `api-${id}` });

export const ctx = (timeoutMs = 10_000): { requestId: string; deadlineMs: number } => ({ requestId: 'test', deadlineMs: performance.now() + timeoutMs });

export class DriverCluster {
  readonly network = new MemoryNetwork();
  readonly disks = new Map<string, MemoryDisk>();
  readonly running = new Map<string, DriverNode>();
  /** Snapshot chunk bytes delivered to each node, and snapshots it installed from a leader. */
  readonly chunkBytesReceived = new Map<string, number>();
  readonly installs = new Map<string, number>();
  /** Chunk posts to fail per target node (a broken connection), before any reaches it. */
  readonly failPosts = new Map<string, number>();
  /** Every chunk post that reached a node: [target, offset, bytes]. */
  readonly posts: [string, number, number][] = [];
  /** Fails a chunk post when it answers true (after failPosts). */
  postFault: ((target: string, header: SnapshotChunkHeader) => boolean) | null = null;
  /** Every member ever started: a joiner learns all of them, as `prepareJoin` would tell it. */
  readonly members: Member[];
  readonly bootstrap: readonly NodeId[];
  private readonly logger = pino({ level: process.env.MINKUBE_TEST_LOG ?? 'silent' });
  private readonly random: SeededRandom;
  private starts = 0;

  constructor(private readonly o: DriverClusterOptions = {}) {
    this.bootstrap = (o.ids ?? ['m1', 'm2', 'm3']).map(nodeId);
    this.members = this.bootstrap.map((id) => this.member(id));
    this.random = new SeededRandom(o.seed ?? 1);
  }

  /** Chunks go straight to the target driver; a node that is down or cut off is unreachable, as over HTTP. */
  readonly poster: ChunkPoster = async (apiAddress, header, chunk) => {
    await new Promise((r) => setImmediate(r));
    const target = [...this.running.values()].find((n) => this.member(n.id).apiAddress === apiAddress);
    if (target === undefined || !this.network.deliverable(header.from, target.id)) throw new Error(`${apiAddress} is unreachable`);
    const failing = this.failPosts.get(target.id) ?? 0;
    if (failing > 0) {
      this.failPosts.set(target.id, failing - 1);
      throw new Error(`${apiAddress}: connection reset`);
    }
    if (this.postFault?.(target.id, header) === true) throw new Error(`${apiAddress}: connection reset`);
    this.posts.push([target.id, header.offset, chunk.length]);
    const reply = target.driver.receiveSnapshotChunk(header, chunk);
    if (reply.done) await target.driver.snapshotOffered(header.meta);
    this.chunkBytesReceived.set(target.id, (this.chunkBytesReceived.get(target.id) ?? 0) + chunk.length);
    return reply;
  };

  /** A member's addresses, as this cluster gives them. */
  member(id: string): Member {
    const m = memberOf(id);
    return this.o.apiAddressOf === undefined ? m : { ...m, apiAddress: this.o.apiAddressOf(id) };
  }

  async startAll(): Promise<void> {
    for (const m of [...this.members]) await this.start(m.id);
  }

  /** Opens a node without starting it (a test may look at what it loaded first). */
  async open(id: string, so: StartOptions = {}): Promise<DriverNode> {
    if (this.running.has(id)) throw new Error(`${id} is running`);
    if (!this.members.some((m) => m.id === id)) this.members.push(this.member(id));
    if (so.wipe === true || !this.disks.has(id)) this.disks.set(id, emptyMemoryDisk());
    const storage = new MemoryRaftStorage(this.disks.get(id));
    const transport = this.network.transport(nodeId(id));
    const clientId = `${id}.${++this.starts}`;
    const logger = this.logger.child({ node: id });
    const members = so.join === true ? [...this.members] : this.members.filter((m) => this.bootstrap.includes(m.id));
    const listeners = this.o.listeners?.(id) ?? {};
    const service = new ManagerServiceImpl({ id: nodeId(id), clientId, logger, ...(listeners.onApplied === undefined ? {} : { onApplied: listeners.onApplied }) });
    const tickMs = this.o.tickMs ?? 10;
    const electionTicks = this.o.electionTicks ?? 10;
    // A refused open (a forced start from damaged storage, say) frees the node's transport for the next try.
    const driver = await RaftNodeDriver.open({
      id: nodeId(id),
      members,
      storage: so.marker !== undefined ? new CheckedStorage(storage, so.marker) : so.markerDamaged === true ? new CheckedStorage(storage, damagedMarker()) : storage,
      transport,
      stateMachine: service.stateMachine,
      logger,
      clock: this.o.clock ?? systemClock,
      random: this.random.fork(),
      clientId,
      tickMs,
      electionTicks,
      heartbeatTicks: 1,
      proposalQueueMax: limits.proposalQueueMax,
      ...(this.o.validate === false ? {} : { validate: validateCommand }),
      ...((f) => (f === undefined ? {} : { fit: f }))(this.o.fit?.(id)),
      snapshotThresholdEntries: this.o.snapshotThresholdEntries ?? 50,
      snapshotThresholdBytes: this.o.snapshotThresholdBytes ?? 1 << 30,
      join: so.join === true,
      ...(so.forceNewCluster === true ? { forceNewCluster: true } : {}),
      ...(so.acceptDataLoss === true ? { acceptDataLoss: true } : {}),
      snapshotPoster: this.poster,
      onRestored: () => this.installs.set(id, (this.installs.get(id) ?? 0) + 1),
      ...(listeners.onEntryApplied === undefined ? {} : { onApplied: listeners.onEntryApplied }),
    }).catch(async (err: unknown) => {
      await transport.close();
      throw err;
    });
    service.attach(driver);
    const http = this.o.membershipHttp?.(id);
    const membership = new MembershipServiceImpl({
      driver: () => driver as RaftNodeDriver<unknown>,
      reachable: (peer) => transport.reachable(peer),
      logger,
      electionTimeoutMs: tickMs * electionTicks,
      worker: (workerId) => service.kv.tasks.storedWorker(workerId),
      settings: () => ({}),
      ...(this.o.clock === undefined ? {} : { clock: this.o.clock }),
      ...(http === undefined ? {} : { http }),
    });
    const node: DriverNode = { id: nodeId(id), driver, service, membership, storage, transport };
    this.running.set(id, node);
    return node;
  }

  async start(id: string, so: StartOptions = {}): Promise<DriverNode> {
    const node = await this.open(id, so);
    node.driver.start();
    return node;
  }

  async stop(id: string): Promise<void> {
    const node = this.running.get(id);
    if (node === undefined) return;
    this.running.delete(id);
    await node.driver.stop();
    await node.transport.close();
    await node.storage.close();
  }

  node(id: string): DriverNode {
    const n = this.running.get(id);
    if (n === undefined) throw new Error(`${id} is not running`);
    return n;
  }

  /** The one running node that leads in the highest term (excluding `not`, say a leader being removed). */
  async leader(timeoutMs = 10_000, not: readonly string[] = []): Promise<DriverNode> {
    return waitFor(
      'a leader',
      () => {
        const leaders = [...this.running.values()].filter((n) => n.driver.status().role === 'leader' && !not.includes(n.id));
        leaders.sort((a, b) => b.driver.status().term - a.driver.status().term);
        return leaders[0];
      },
      timeoutMs,
    );
  }

  /** `count` puts through the leader, `parallel` at a time; a put that fails (leader change) is tried again. */
  async put(count: number, prefix = 'k', parallel = 25, valuePad = 0): Promise<void> {
    const pad = 'x'.repeat(valuePad);
    for (let base = 0; base < count; base += parallel) {
      const batch = Array.from({ length: Math.min(parallel, count - base) }, (_, i) => base + i);
      await Promise.all(batch.map((i) => this.putOne(`${prefix}${i % 97}`, `${prefix}-v${i}${pad}`)));
    }
  }

  async putOne(key: string, value: string, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const leader = await this.leader(Math.max(1, deadline - performance.now()));
      try {
        await leader.service.kvPut(key, value, undefined, { requestId: 'put', deadlineMs: Math.min(deadline, performance.now() + 2000) });
        return;
      } catch (err) {
        if (!(err instanceof MinkubeError) || performance.now() > deadline) throw err;
        await sleep(20);
      }
    }
  }

  /**
   * Waits until every running node applied the same index, at least the leader's commit, the leader (if one is among
   * them) committed all its log, and checks in that same instant that their state machines hold the same bytes.
   * Resolves with the applied index.
   */
  async converged(timeoutMs = 10_000, nodes: readonly string[] = [...this.running.keys()]): Promise<number> {
    let lastProblem = '';
    try {
      return await waitFor(
        'the state machines to agree',
        () => {
          const ns = nodes.map((id) => this.node(id));
          const applied = ns.map((n) => n.driver.applied);
          const commit = Math.max(...ns.map((n) => n.driver.status().commitIndex));
          if (applied.some((a) => a !== applied[0]) || applied[0]! < commit) {
            lastProblem = `applied ${applied.join(',')}, commit ${commit}`;
            return undefined;
          }
          // A leader's log may hold more than it has committed yet: a new leader's first entry, and with it the
          // previous terms' tail that every node still has uncommitted (after a whole-cluster restart), or a write
          // still in flight. Until it commits them, the nodes agree on a state that is not the last one.
          const leader = ns.filter((n) => n.driver.status().role === 'leader').sort((a, b) => b.driver.status().term - a.driver.status().term)[0];
          const leaderSt = leader?.driver.status();
          if (leaderSt !== undefined && leaderSt.commitIndex < leaderSt.lastIndex) {
            lastProblem = `the leader ${leader!.id} committed ${leaderSt.commitIndex} of ${leaderSt.lastIndex}`;
            return undefined;
          }
          const states = ns.map((n) => Buffer.from(n.service.kv.snapshot()));
          if (states.some((s) => !s.equals(states[0]!))) {
            lastProblem = `different state machine bytes at applied ${applied[0]}`;
            return undefined;
          }
          return applied[0]!;
        },
        timeoutMs,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${lastProblem}`);
    }
  }

  async close(): Promise<void> {
    for (const id of [...this.running.keys()]) await this.stop(id);
  }
}
