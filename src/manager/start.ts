// Starts one manager process from the cluster config: storage, transport, Raft driver, state machine, the task
// service and the leader-only loops (started and stopped by role changes), HTTP API.
import { randomBytes, randomInt } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { loadClusterConfig, parseClusterConfig, type ClusterConfig } from '../config/cluster.js';
import { buildManagerApp } from '../api/manager-app.js';
import { validateCommand } from '../kv/commands.js';
import { systemClock } from '../lib/clock.js';
import { MinkubeError } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { SeededRandom } from '../lib/random.js';
import { LevelRaftStorage } from '../storage/level.js';
import { TcpTransport } from '../transport/tcp.js';
import { ManagerServiceImpl } from './service.js';
import { RaftNodeDriver, type Member } from './node.js';
import { splitHostPort } from './address.js';
import { LeaderLoops } from './leader-loops.js';
import { TaskServiceImpl } from './task-service.js';
import { HttpWorkerApi, type WorkerApi } from './worker-client.js';
import { askToJoin, prepareJoin, selfConfig, type JoinPlan } from './join.js';
import { MembershipServiceImpl } from './membership.js';
import type { ChunkPoster } from './snapshot-transfer.js';

export interface StartManagerOptions {
  /** Optional for a manager added at runtime (`self` then gives its addresses; tuning takes the defaults). */
  configPath?: string;
  id: string;
  logger?: Logger;
  /** Join a running cluster through the API of any of its managers (a new, empty data directory). */
  join?: string;
  /** Disaster recovery: start as the only voter of a new cluster from this node's data. */
  forceNewCluster?: boolean;
  /** This manager's addresses when the config file does not list it (a manager added at runtime). */
  self?: SelfAddresses;
}

export interface SelfAddresses {
  raftAddress: string;
  apiAddress: string;
  dataDir: string;
}

export interface RunningManager {
  readonly id: NodeId;
  readonly apiUrl: string;
  stop(): Promise<void>;
  /** Resolves when the manager stops by itself (a fatal storage error), with that error. */
  readonly stopped: Promise<Error | null>;
}

export async function startManager(opts: StartManagerOptions): Promise<RunningManager> {
  const config = opts.configPath !== undefined ? await loadClusterConfig(opts.configPath) : configForSelf(opts);
  const tuning: ManagerTuning = {};
  if (opts.join !== undefined) tuning.join = opts.join;
  if (opts.forceNewCluster === true) tuning.forceNewCluster = true;
  if (opts.self !== undefined) tuning.self = opts.self;
  return startManagerFromConfig(config, opts.id, opts.logger, tuning);
}

/** A manager without a config file: just itself, every knob at its default. */
function configForSelf(opts: StartManagerOptions): ClusterConfig {
  if (opts.self === undefined) throw new MinkubeError('CONFIG_INVALID', 'without --config, a manager needs --raft-address, --api-address and --data-dir');
  return parseClusterConfig({ managers: [{ id: opts.id, ...opts.self }] }, process.cwd(), 'the command line');
}

/** Knobs tests may turn, and the start-up modes of `minkube manager`; the config decides everything else. */
export interface ManagerTuning {
  workers?: WorkerApi;
  join?: string;
  forceNewCluster?: boolean;
  self?: SelfAddresses;
  snapshotPoster?: ChunkPoster;
}

export async function startManagerFromConfig(config: ClusterConfig, id: string, parentLogger?: Logger, tuning: ManagerTuning = {}): Promise<RunningManager> {
  const self = selfConfig(config, id, tuning);
  const view = { term: 0, role: 'follower' as string };
  // Every line carries the node id, and the term and role at the time it was written.
  const logger =
    parentLogger?.child({ node: id }) ??
    pino({
      level: process.env.MINKUBE_LOG_LEVEL ?? 'info',
      base: { node: id },
      mixin: () => ({ term: view.term, role: view.role }),
      timestamp: pino.stdTimeFunctions.isoTime,
    });
  const members: Member[] = config.managers.map((m) => ({ id: nodeId(m.id), raftAddress: m.raftAddress, apiAddress: m.apiAddress }));
  const tickMs = config.raft.heartbeatIntervalMs;
  const electionTicks = Math.max(2, Math.round(config.raft.electionTimeoutMs / tickMs));

  const storage = await LevelRaftStorage.open(self.dataDir);
  let join: JoinPlan | null = null;
  try {
    join = await prepareJoin(storage, self, tuning, members, logger);
  } catch (err) {
    await storage.close();
    throw err;
  }
  const seed = join?.members ?? members;
  const host = splitHostPort(self.raftAddress).host;
  const transport = await TcpTransport.start({
    id: nodeId(self.id),
    listen: self.raftAddress,
    localAddress: host,
    peers: new Map(seed.filter((m) => m.id !== self.id).map((m) => [m.id, m.raftAddress])),
    logger: logger.child({ component: 'transport' }),
  });
  const clientId = `${self.id}.${randomBytes(6).toString('hex')}`;
  const service = new ManagerServiceImpl({ id: nodeId(self.id), clientId, logger, transport });
  const random = new SeededRandom(randomInt(0x7fffffff));
  const workers = tuning.workers ?? new HttpWorkerApi();
  const common = { store: service.kv.tasks, raft: service, tasks: config.tasks, workers, clock: systemClock, random: random.fork() };
  const loops = new LeaderLoops({ ...common, logger: logger.child({ component: 'leader' }), proposalTimeoutMs: config.api.requestTimeoutMs });
  const tasks = new TaskServiceImpl({ ...common, logger: logger.child({ component: 'tasks' }), onHeartbeat: (w) => loops.workerSeen(w) });
  service.kv.tasks.listener = loops;
  const driver = await RaftNodeDriver.open({
    id: nodeId(self.id),
    members: seed,
    join: join !== null,
    forceNewCluster: tuning.forceNewCluster === true,
    snapshotThresholdEntries: config.raft.snapshotThresholdEntries,
    snapshotThresholdBytes: config.raft.snapshotThresholdBytes,
    ...(tuning.snapshotPoster === undefined ? {} : { snapshotPoster: tuning.snapshotPoster }),
    storage,
    transport,
    stateMachine: service.stateMachine,
    logger,
    clock: systemClock,
    random,
    clientId,
    tickMs,
    electionTicks,
    heartbeatTicks: 1,
    proposalQueueMax: limits.proposalQueueMax,
    validate: validateCommand,
    onRoleChange: (role, _leader, term) => {
      view.role = role;
      view.term = term;
      loops.onRoleChange(role, term);
    },
  });
  service.attach(driver);
  driver.start();

  const membership = new MembershipServiceImpl({
    driver: () => driver as RaftNodeDriver<unknown>,
    reachable: (peer) => transport.reachable(peer),
    logger: logger.child({ component: 'membership' }),
    electionTimeoutMs: config.raft.electionTimeoutMs,
  });
  const app = buildManagerApp({
    service,
    tasks,
    membership,
    raftPeer: driver,
    logger: logger.child({ component: 'api' }),
    bodyLimitBytes: config.api.bodyLimitBytes,
    requestTimeoutMs: config.api.requestTimeoutMs,
  });
  const api = splitHostPort(self.apiAddress);
  await app.listen({ host: api.host, port: api.port });
  logger.info({ api: self.apiAddress, raft: self.raftAddress, dataDir: self.dataDir }, 'manager started');

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      loops.close();
      await app.close();
      await driver.stop();
      await transport.close();
      await storage.close();
      logger.info('manager stopped');
    })());
  const stopped = driver.stoppedPromise.then(async (err) => {
    await stop();
    return err;
  });
  if (join !== null && tuning.join !== undefined) {
    try {
      await askToJoin(tuning.join, self, logger);
    } catch (err) {
      await stop();
      throw err;
    }
  }
  return { id: nodeId(self.id), apiUrl: `http://${self.apiAddress}`, stop, stopped };
}
