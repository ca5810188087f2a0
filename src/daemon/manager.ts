// Starts one manager process from the cluster config: storage, transport, Raft driver, state machine, the task
// service and the leader-only loops (started and stopped by role changes), HTTP API.
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { pino, type Logger } from 'pino';
import { clusterSettingsOf, configInvalid, joinedConfigFile, joinedManagerConfig, loadClusterConfig, parseClusterConfig, type ClusterConfig } from '../config/cluster.js';
import { buildManagerApp } from '../api/manager-app.js';
import { writeStartedManagerCredentials } from '../client/credentials.js';
import { ApiClient } from '../client/api-client.js';
import { HttpClient, isPlainHttp } from '../client/http.js';
import { clusterSettingsViewProblem, type ClusterSettingsView } from '../contracts/services.js';
import { writeFileWhole } from '../lib/write-whole.js';
import { joinWithToken } from './join.js';
import { applyRenewedTls, localSigner, startCertRenewal } from './renewal.js';
import { adminTokenMarkFor, bootstrapRecordFor, ensureAdminToken, loadApiCa, loadNodeSecurity, type NodeSecurity, type ServerTls } from './security.js';
import { nodeTlsDir, readNodeTls } from '../security/pki-files.js';
import { identityFromCertificate, peerCertificateIssuedAtMs } from '../security/ca.js';
import { storageFailed } from '../storage/common.js';
import type { ManagerConfig } from '../config/cluster.js';
import { commandVersion, commandVersionUnsaid, fitCommand, validateCommand } from '../kv/commands.js';
import { ClusterVersion, commandVersionSaid, fitToCluster } from '../manager/cluster-version.js';
import { setIntervalOn, systemClock } from '../lib/clock.js';
import { ensureDataDir } from '../lib/data-dir.js';
import { listenFailed, MinkubeError } from '../lib/errors.js';
import { serializeError } from '../lib/log-errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { SeededRandom } from '../lib/random.js';
import { damageFound, LevelRaftStorage } from '../storage/level.js';
import { CheckedStorage } from '../storage/checked.js';
import { FileMarker, markerPathFor } from '../storage/marker.js';
import { TcpTransport, type TransportTls } from '../transport/tcp.js';
import { ManagerServiceImpl } from '../manager/service.js';
import { httpClusterView, RemovalWatch } from '../manager/removal-watch.js';
import { forceRefused, RaftNodeDriver, type Member } from '../manager/node.js';
import { loopbackSourceOf, splitHostPort } from '../lib/address.js';
import { LeaderLoops } from '../manager/leader-loops.js';
import { TaskServiceImpl } from '../manager/task-service.js';
import { ServiceServiceImpl } from '../manager/service-service.js';
import { HttpWorkerApi, type WorkerApi } from '../manager/worker-client.js';
import { TaskTraces, tracedWorkerApi } from '../manager/tracing.js';
import { startTracing } from './otel.js';
import { Closers } from './closers.js';
import { askToJoin, notAManager, prepareJoin, selfConfig } from '../manager/join.js';
import { MembershipServiceImpl } from '../manager/membership.js';
import { httpChunkPoster, type ChunkPoster } from '../manager/snapshot-transfer.js';
import { AuthServiceImpl } from '../manager/auth-service.js';
import { JoinServiceImpl } from '../manager/join-service.js';
import { AuditLog } from '../manager/audit.js';
import { startBackups } from '../manager/backup-loop.js';
import { Retention } from '../manager/retention.js';
import { managerAppSecurity } from './manager-security.js';
import { liveRateLimits, logLevelOf, Reloader, signalCaller } from './reload.js';
import type { ReloadReport } from '../api/routes/admin.js';
import { attachManagerMetrics, managerObservability } from './metrics.js';
import { ManagerMetrics, withTaskMetrics } from '../manager/metrics.js';
import { DashboardFeed, httpPeerView, teeTaskListener } from '../manager/events.js';
import { DnsServer } from '../manager/dns/server.js';
import { StateDnsView } from '../manager/dns/state-view.js';
import { PlacementServiceImpl } from '../manager/placement-service.js';
import { collectAfterSnapshot, collectionsExposed, startIdleCollector } from './gc.js';

export interface StartManagerOptions {
  /** Optional for a manager added at runtime (`self` then gives its addresses; tuning takes the defaults). */
  configPath?: string;
  id: string;
  logger?: Logger;
  /** Join a running cluster through the API of any of its managers (a new, empty data directory). */
  join?: string;
  /** With join, in a secure cluster: a join token (minkube token create --role manager) that buys this manager's certificate. */
  joinToken?: string;
  /**
   * Disaster recovery: start as the only voter of a new cluster from this node's data; refused when its storage is
   * damaged (it lost writes it acknowledged) unless 'accept-data-loss'.
   */
  forceNewCluster?: boolean | 'accept-data-loss';
  /** This manager's addresses when the config file does not list it (a manager added at runtime). */
  self?: SelfAddresses;
  /** Without `self` and a config file: the data directory of a manager that joined from flags alone (its cluster.json says the rest). */
  dataDir?: string;
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
  /** Re-reads the config file and applies what can change live, as SIGHUP (its audit line says so). */
  reload(): Promise<ReloadReport>;
}

export async function startManager(opts: StartManagerOptions): Promise<RunningManager> {
  const start = opts.configPath !== undefined ? { config: await loadClusterConfig(opts.configPath) } : await startWithoutConfig(opts);
  const config = start.config;
  if (config.insecure && opts.joinToken !== undefined) {
    // It would join without it: a token given is never ignored without a word.
    const insecure = opts.configPath === undefined ? `--join ${opts.join ?? ''} is plain http://, an insecure cluster's` : `${opts.configPath} is an insecure cluster's config (insecure: true)`;
    throw new MinkubeError('CONFIG_INVALID', `a join token (--token or --token-file) was given, but ${insecure}: an insecure cluster takes no join token; drop it, or give a secure cluster's config`);
  }
  const tuning: ManagerTuning = {};
  if (opts.join !== undefined) tuning.join = opts.join;
  if (opts.joinToken !== undefined) tuning.joinToken = opts.joinToken;
  if (opts.forceNewCluster !== undefined && opts.forceNewCluster !== false) tuning.forceNewCluster = opts.forceNewCluster;
  const self = opts.self ?? start.self;
  if (self !== undefined) tuning.self = self;
  if (opts.configPath !== undefined) tuning.configPath = opts.configPath;
  else tuning.withoutConfigFile = true;
  if (start.joinedConfig !== undefined) tuning.configPath = start.joinedConfig;
  if (start.askSettingsInto !== undefined) tuning.askSettingsInto = start.askSettingsInto;
  const dataDir = self?.dataDir ?? config.managers.find((m) => m.id === opts.id)?.dataDir;
  const joiningFresh = opts.join !== undefined && dataDir !== undefined && (await isEmptyDir(dataDir));
  try {
    if (opts.configPath === undefined && opts.join !== undefined && config.insecure && opts.self !== undefined) {
      await ensureDataDir(opts.self.dataDir);
      await writeFile(join(opts.self.dataDir, insecureMemberFile), `joined the insecure cluster behind ${opts.join}: started from flags alone, this manager runs without TLS\n`);
    }
    return await startManagerFromConfig(config, opts.id, opts.logger, tuning);
  } catch (err) {
    if (joiningFresh) await forgetFailedJoin(dataDir);
    throw err;
  }
}

async function isEmptyDir(dir: string): Promise<boolean> {
  const held = await readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : null));
  return held !== null && held.length === 0;
}

/**
 * A join that failed into a data directory that was empty leaves no database behind (nor the insecure-member record,
 * nor the marker beside it): started again from flags alone without --join, a database with no log in it would make
 * this manager the one voter of a new cluster, where a directory with nothing in it is refused (give --join). Only
 * when the log is still empty: a join the cluster took in before the answer was lost may have sent it entries, and
 * those are kept (it is a member). A certificate a join token bought stays: the next --join uses it.
 */
async function forgetFailedJoin(dataDir: string): Promise<void> {
  try {
    const storage = await LevelRaftStorage.open(dataDir);
    let empty: boolean;
    try {
      empty = (await storage.lastIndex()) === 0 && storage.snapshotInfo() === null && (await storage.hardState()).term === 0;
    } finally {
      await storage.close();
    }
    if (!empty) return;
    const tls = nodeTlsDir(dataDir);
    for (const name of await readdir(dataDir)) {
      const path = join(dataDir, name);
      if (path !== tls) await rm(path, { recursive: true, force: true });
    }
    // The join's own marker (it acknowledged nothing), never one an earlier member of that name left: that one says
    // what the member had acknowledged (a join refused because the id is still a voter must leave it for a restart).
    const marker = await new FileMarker(markerPathFor(dataDir)).read();
    if (marker.kind !== 'ok' || (marker.marker.ackedIndex === 0 && marker.marker.term === 0)) await rm(markerPathFor(dataDir), { force: true });
  } catch {
    // Best effort: the start's own error is the one to report.
  }
}

/**
 * How a manager without --config starts. Joining now (--join, no log yet): on the defaults until the cluster has
 * said its settings (askSettingsInto: where to keep them; startParts asks once it holds its certificate). Joined
 * from flags alone before: from the config it kept then, `<dataDir>/cluster.json` (joinedConfig; `self` from it when
 * only --data-dir was given). A data directory that joined before this file was kept has none: the defaults, as then.
 */
async function startWithoutConfig(opts: StartManagerOptions): Promise<{ config: ClusterConfig; self?: SelfAddresses; joinedConfig?: string; askSettingsInto?: string }> {
  const dataDir = opts.self?.dataDir ?? opts.dataDir;
  if (dataDir === undefined) return { config: configForSelf(opts) };
  const path = join(resolve(dataDir), joinedConfigFile);
  if (opts.join !== undefined && !existsSync(join(resolve(dataDir), 'CURRENT'))) return { config: configForSelf(opts), askSettingsInto: path };
  if (!existsSync(path)) {
    if (opts.self === undefined) {
      throw new MinkubeError('CONFIG_INVALID', `${path} does not exist: only a manager that joined from flags alone keeps its config there; start this one with --raft-address, --api-address and --data-dir, or with --config FILE`);
    }
    return { config: configForSelf(opts) };
  }
  const config = await loadClusterConfig(path);
  const listed = config.managers.find((m) => m.id === opts.id);
  if (opts.self === undefined && listed === undefined) throw new MinkubeError('CONFIG_INVALID', `${path} lists no manager ${opts.id} (managers: ${config.managers.map((m) => m.id).join(', ')})`);
  // Its own data directory wherever the file says it was (moved since, say), and the flags' addresses when given.
  const self = opts.self ?? { raftAddress: listed!.raftAddress, apiAddress: listed!.apiAddress, dataDir };
  // The same refusals as without the file: a data directory that holds no log, or neither a certificate nor an insecure join.
  configForSelf({ ...opts, self });
  return { config, self, joinedConfig: path };
}

/**
 * A manager without a config file: just itself, every knob at its default. It joins a cluster, or (restarted without
 * --join) is a member of one already: insecure exactly when it joins through a plain http:// URL, or, restarted, when
 * its data directory holds a log and no certificate (it joined an insecure cluster).
 */
export function configForSelf(opts: StartManagerOptions): ClusterConfig {
  const self = opts.self;
  if (self === undefined) throw new MinkubeError('CONFIG_INVALID', 'without --config, a manager needs --raft-address, --api-address and --data-dir');
  const dataDir = resolve(self.dataDir);
  const member = existsSync(join(dataDir, 'CURRENT'));
  if (opts.join === undefined && !member) {
    throw new MinkubeError('CONFIG_INVALID', `without --config, a manager joins a running cluster (--join URL, with --token for a secure one); ${dataDir} holds no earlier membership`);
  }
  if (opts.join === undefined && !existsSync(nodeTlsDir(dataDir)) && !existsSync(join(dataDir, insecureMemberFile))) {
    // A log, but neither a certificate nor a join through http://: a restored snapshot, say. Never insecure by omission.
    throw new MinkubeError('CONFIG_INVALID', `${dataDir} holds no certificate, and this manager never joined an insecure cluster: start it with --config FILE (a config that lists ${opts.id}; the CA beside it signs its certificate, or insecure: true in it)`);
  }
  const insecure = opts.join !== undefined ? isPlainHttp(opts.join) : !existsSync(nodeTlsDir(dataDir));
  return parseClusterConfig({ ...(insecure ? { insecure } : {}), managers: [{ id: opts.id, ...self }] }, process.cwd(), 'the command line');
}

/**
 * `<dataDir>/insecure-member`: written when a manager from flags alone joins through an http:// URL, so that started
 * again from its flags it is insecure by that record, never because it lacks a certificate.
 */
const insecureMemberFile = 'insecure-member';
/** How long a member's GET /health is waited for when the leader asks its command version, and how often it asks again. */
const clusterVersionAskTimeoutMs = 2000;
const clusterVersionRetryMs = 5000;

/** Knobs tests may turn, and the start-up modes of `minkube manager`; the config decides everything else. */
export interface ManagerTuning {
  workers?: WorkerApi;
  join?: string;
  joinToken?: string;
  forceNewCluster?: boolean | 'accept-data-loss';
  self?: SelfAddresses;
  snapshotPoster?: ChunkPoster;
  /** The file `config` came from: what a reload re-reads (none: a reload is refused). */
  configPath?: string;
  /**
   * Started from flags alone (no config file): the config lists this manager, but no CA stands beside a file, so its
   * certificate comes from a join token (or from its data directory, after that), never from a CA made in the
   * working directory. Its config is `<dataDir>/cluster.json` (configPath) once it joined with this build.
   */
  withoutConfigFile?: boolean;
  /**
   * Joining from flags alone: ask the cluster its settings and keep them, with this manager, in this file (its
   * `<dataDir>/cluster.json`), then run on them (takeClusterSettings).
   */
  askSettingsInto?: string;
}

/**
 * Whether this manager runs on the default settings while its leadership applies them to the cluster: started from
 * flags alone with no config kept at its join (it joined before this build kept one, or the cluster did not say).
 */
function onDefaults(tuning: ManagerTuning): boolean {
  return tuning.withoutConfigFile === true && tuning.configPath === undefined && tuning.askSettingsInto === undefined;
}

/** Where the log lines' term and role come from. */
interface LogView {
  read: () => { term: number; role: string };
}

export async function startManagerFromConfig(config: ClusterConfig, id: string, parentLogger?: Logger, tuning: ManagerTuning = {}): Promise<RunningManager> {
  const self = selfConfig(config, id, tuning);
  // Every line carries the node id, and the term and role at the time it was written: read from the Raft core once
  // it is open (a term can change with no change of role, and the line saying a role changed is written before the
  // node's listeners hear of it).
  const view: LogView = { read: () => ({ term: 0, role: 'follower' }) };
  const logger =
    parentLogger?.child({ node: id }) ??
    pino({
      level: logLevelOf(config),
      base: { node: id },
      mixin: () => view.read(),
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: serializeError },
    });
  if (onDefaults(tuning)) warnOnDefaults(logger);
  // Before anything is written: a data directory, a CA, a marker.
  if (tuning.forceNewCluster !== undefined && tuning.forceNewCluster !== false) await refuseForcingNothing(self.id, self.dataDir);
  const source = tuning.configPath === undefined ? 'the config' : resolve(tuning.configPath);
  const operator = { tls: await loadOperatorTls(config, source, logger), apiCaPem: await loadApiCa(config, source, logger) };
  // What start-up opened, closed in reverse when a later step fails (and by stop()).
  const opened = new Closers();
  try {
    return await startParts(config, self, logger, tuning, view, opened, operator);
  } catch (err) {
    await opened.closeAll(logger);
    throw diskRefused(err, self.dataDir);
  }
}

/** The leader applies these from its own config: nothing replicates them, so say what leading costs here. */
function warnOnDefaults(logger: Logger): void {
  logger.warn(
    'started without a config file: while this manager leads, the cluster runs on the defaults of tasks.retention, tasks timings, backup (none) and tls.certLifetimeS, whatever the config of the others says; start it with --config to keep them',
  );
}

/**
 * --force-new-cluster from a data directory that is missing or empty: refused before anything is made there (a
 * database, a CA, credentials), so that what the message suggests next (snapshot restore into it) still works. The
 * driver refuses a directory that holds no log and no snapshot too (RaftNodeDriver.open).
 */
async function refuseForcingNothing(id: string, dataDir: string): Promise<void> {
  const held = await readdir(dataDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (held.length > 0) return;
  throw new MinkubeError(
    'CONFIG_INVALID',
    `--force-new-cluster found no log and no snapshot in the data directory of ${id} (${dataDir} is missing or empty): it starts a one-member cluster from a surviving manager's data, and this one holds none (a wrong --id or --data-dir?). To start from a backup, use minkube snapshot restore`,
  );
}

/** The file system's refusals during start-up (its TLS files, its audit log, ...) said as STORAGE_FAILED, not INTERNAL. */
function diskRefused(err: unknown, dataDir: string): unknown {
  const e = err as Partial<NodeJS.ErrnoException> | null;
  if (err instanceof MinkubeError || !['ENOSPC', 'EDQUOT', 'EROFS', 'EIO'].includes(e?.code ?? '')) return err;
  return storageFailed(`starting on the data directory ${dataDir} failed (writing ${e?.path ?? 'a file'})`, err);
}

/** A closed cluster's parts of a manager: its material, who signs joiners, the first admin token. */
async function securityFor(config: ClusterConfig, self: ManagerConfig, tuning: ManagerTuning, logger: Logger, apiCaPem: string | undefined): Promise<{ security: NodeSecurity | null; adminToken: string | null }> {
  const listed = tuning.withoutConfigFile !== true && config.managers.some((m) => m.id === self.id);
  const addresses = [self.raftAddress, self.apiAddress];
  if (!config.insecure && tuning.join !== undefined && tuning.joinToken !== undefined && (await readNodeTls(self.dataDir)) === null) {
    await joinWithToken({ url: tuning.join, token: tuning.joinToken, id: self.id, role: 'manager', dataDir: self.dataDir, addresses, ...(apiCaPem === undefined ? {} : { apiCaPem }) });
    logger.info({ via: tuning.join }, 'joined with a token: certificate issued by the cluster CA');
  }
  // A manager the config file lists gets its certificate from the CA beside the file, unless it joined with a token.
  const security = await loadNodeSecurity(config, { id: self.id, role: 'manager', dataDir: self.dataDir, addresses }, listed && tuning.joinToken === undefined, logger);
  const adminToken = security !== null && listed && tuning.joinToken === undefined ? await ensureAdminToken(config.clusterDir) : null;
  if (security !== null && adminToken !== null) {
    // For a cluster started node by node rather than with `minkube up`: MINKUBE_CONFIG=<clusterDir>/credentials.json.
    await writeStartedManagerCredentials(
      { clusterId: security.clusterId, apis: config.managers.map((m) => `https://${m.apiAddress}`), ca: security.material.caCertPem, token: adminToken, ...(apiCaPem === undefined ? {} : { apiCa: apiCaPem }) },
      `https://${self.apiAddress}`,
      join(config.clusterDir, 'credentials.json'),
    );
  }
  return { security, adminToken };
}

async function startParts(
  config: ClusterConfig,
  self: ManagerConfig,
  logger: Logger,
  tuning: ManagerTuning,
  view: LogView,
  opened: Closers,
  operator: OperatorApi,
): Promise<RunningManager> {
  await ensureDataDir(self.dataDir);
  const { security, adminToken } = await securityFor(config, self, tuning, logger, operator.apiCaPem);
  // The manager's one HTTP pool: to workers, to other managers' APIs, snapshot chunks. Its certificate is its name.
  // It dials from the manager's own API host (on loopback), as the transport dials from its Raft host.
  const localAddress = loopbackSourceOf(self.apiAddress);
  const tls = security === null ? {} : { tls: security.clientTls(), ...(operator.apiCaPem === undefined ? {} : { apiCaPem: operator.apiCaPem }) };
  const http = new HttpClient({ ...tls, ...(localAddress === undefined ? {} : { localAddress }) });
  opened.push('http client', () => http.close());
  // Joining from flags alone: the cluster's settings from here on (asked with the certificate just bought), not the defaults.
  let configPath = tuning.configPath;
  let defaults = onDefaults(tuning);
  if (tuning.askSettingsInto !== undefined && tuning.join !== undefined) {
    const taken = await takeClusterSettings(tuning.join, tuning.askSettingsInto, self, config.insecure, http, logger);
    if (taken !== null) [config, configPath] = [taken, tuning.askSettingsInto];
    else defaults = true;
  }
  const members: Member[] = config.managers.map((m) => ({ id: nodeId(m.id), raftAddress: m.raftAddress, apiAddress: m.apiAddress }));
  const tickMs = config.raft.heartbeatIntervalMs;
  const electionTicks = Math.max(2, Math.round(config.raft.electionTimeoutMs / tickMs));
  // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (else nothing is loaded); closed late, so the last spans leave.
  const tracing = await startTracing('minkube-manager', self.id, logger);
  opened.push('tracing', () => tracing.shutdown());
  const traces = new TaskTraces({ node: self.id, logger: logger.child({ component: 'trace' }) });

  // Salvaging: damage found at start makes the manager recover from the leader instead of stopping. Forcing a new
  // cluster without --accept-data-loss only checks: damage found is refused (there or in the driver's open) with the
  // data directory and its marker left as they were.
  const checkOnly = tuning.forceNewCluster === true;
  if (checkOnly) await refuseForcingDamaged(self.id, self.dataDir);
  const storage = await LevelRaftStorage.open(self.dataDir, {
    salvage: checkOnly ? 'check' : true,
    // Logged at once: the start may still fail after it (the next start's recovering reason says it too).
    onSetAside: (path, reason) => logger.warn({ dataDir: self.dataDir, setAside: path, reason }, `storage: the damaged database was set aside in ${path}`),
  }).catch((err: unknown) => {
    const damage = damageFound(err);
    throw damage === null ? err : forceRefused(self.id, `its storage is damaged: ${damage}`);
  });
  opened.push('storage', () => storage.close());
  const join = await prepareJoin(storage, self, tuning, members, logger, http);
  const checkedStorage = await checkedStorageFor(storage, self.dataDir, tuning.join !== undefined);
  opened.push('storage marker', () => checkedStorage.markerStore.close());
  const seed = join?.members ?? members;
  // A manager removed from the cluster keeps its certificate: the Raft port and the API refuse one issued before the
  // removal (RemovedMembers, learnt from applied removals once the driver is open). Without a peerId (right after the
  // handshake, before the hello), the id looked up is the one the certificate names, a manager's once baseVerifyPeer passed.
  let removedRefusal: (id: string, issuedAtMs: number) => string | null = () => null;
  const baseVerifyPeer = security?.transportTls().verifyPeer;
  const verifyPeer: TransportTls['verifyPeer'] = (cert, peerId) =>
    baseVerifyPeer?.(cert, peerId) ?? removedRefusal(peerId ?? identityFromCertificate(cert)?.id ?? '', peerCertificateIssuedAtMs(cert));
  const transport = await TcpTransport.start({
    id: nodeId(self.id),
    listen: self.raftAddress,
    localAddress: splitHostPort(self.raftAddress).host,
    peers: new Map(seed.filter((m) => m.id !== self.id).map((m) => [m.id, m.raftAddress])),
    logger: logger.child({ component: 'transport' }),
    ...(security === null ? {} : { tls: { ...security.transportTls(), verifyPeer } }),
  });
  opened.push('transport', () => transport.close());
  const clientId = `${self.id}.${randomBytes(6).toString('hex')}`;
  // Closed after the driver and the API (the stack runs newest first), so their last lines are flushed.
  const audit = await AuditLog.open({ dir: self.dataDir, clock: systemClock, logger: logger.child({ component: 'audit' }) });
  opened.push('audit log', () => audit.close());
  const service = new ManagerServiceImpl({
    id: nodeId(self.id), clientId, logger,
    commandVersions: () => ({ lowest: clusterVersion.lowest().version, of: (member) => clusterVersion.versionOf(member) }),
    onApplied: (index, applied) => {
      audit.committed(index, applied);
      traces.applied(index, applied);
    },
  });
  const random = new SeededRandom(randomInt(0x7fffffff));
  const workers = tracedWorkerApi(tuning.workers ?? new HttpWorkerApi({ http }), traces, self.id);
  const common = { store: service.kv.tasks, raft: service, tasks: config.tasks, workers, clock: systemClock, random: random.fork() };
  const loops = new LeaderLoops({ ...common, services: service.kv.services, quotas: service.kv.quotas, preemption: config.scheduler.preemption, logger: logger.child({ component: 'leader' }), proposalTimeoutMs: config.api.requestTimeoutMs });
  opened.push('leader loops', () => loops.close());
  // Finished task records past tasks.retention are removed by the leader; POST /v1/gc removes what is due at once.
  const retention = new Retention({ store: service.kv.tasks, raft: service, policy: config.taskRetention, clock: systemClock, logger: logger.child({ component: 'retention' }), proposalTimeoutMs: config.api.requestTimeoutMs });
  opened.push('retention', () => retention.close());
  const tasks = new TaskServiceImpl({ ...common, logger: logger.child({ component: 'tasks' }), onHeartbeat: (w) => loops.workerSeen(w), managers: () => service.managerApiAddresses(), managerAddresses: () => service.managerAddresses(), managerIds: () => service.managerIds() });
  const services = new ServiceServiceImpl({ services: service.kv.services, tasks: service.kv.tasks, quotas: service.kv.quotas, raft: service, clock: systemClock });
  const placement = new PlacementServiceImpl({ store: service.kv.tasks, quotas: service.kv.quotas, raft: service, clock: systemClock });
  // The dashboard's feed (GET /v1/events) hears of task changes after the leader loops.
  const feed = new DashboardFeed({ cluster: () => service.cluster(), tasks: service.kv.tasks, peerView: httpPeerView(http), clock: systemClock, logger: logger.child({ component: 'events' }) });
  service.kv.tasks.listener = teeTaskListener(loops, feed);
  // Metrics (metrics.enabled): the task store's changes feed scheduling delays and failures after the leader loops.
  const metrics = config.metrics.enabled ? new ManagerMetrics() : null;
  if (metrics !== null && service.kv.tasks.listener !== null) service.kv.tasks.listener = withTaskMetrics(service.kv.tasks.listener, metrics);
  const auth = new AuthServiceImpl({
    store: service.kv.auth,
    raft: service,
    clock: systemClock,
    logger: logger.child({ component: 'auth' }),
    caCertPem: security?.material.caCertPem ?? null,
    bootstrap: adminToken === null ? null : bootstrapRecordFor(adminToken),
    adminTokenMark: adminToken === null ? null : adminTokenMarkFor(config.clusterDir, adminToken),
    proposalTimeoutMs: config.api.requestTimeoutMs,
  });
  // The members' command versions (cluster-version.ts): asked of their GET /health, as the follower probe does.
  type ConfState = ReturnType<RaftNodeDriver<unknown>['conf']>;
  let membersOf: (() => { conf: ConfState; leading: boolean; apiAddressOf: (id: string) => string | undefined }) | null = null;
  const clusterVersion = new ClusterVersion({
    self: self.id,
    own: commandVersion,
    unsaid: commandVersionUnsaid,
    clock: systemClock,
    logger: logger.child({ component: 'cluster-version' }),
    retryMs: clusterVersionRetryMs,
    ask: async (member) => {
      const apiAddress = membersOf?.().apiAddressOf(member);
      if (apiAddress === undefined || apiAddress === '') return null;
      try {
        const res = await http.request({ method: 'GET', url: http.baseUrlOf(apiAddress), path: '/health', timeoutMs: clusterVersionAskTimeoutMs });
        return commandVersionSaid(res.status, res.text, commandVersionUnsaid);
      } catch {
        return null;
      }
    },
  });
  // Called on every proposal: only a new configuration (the core replaces its object on a change) or role is looked at.
  let syncedConf: ConfState | null = null;
  let syncedLeading = false;
  const syncClusterVersion = (): void => {
    const m = membersOf?.();
    if (m === undefined || (m.conf === syncedConf && m.leading === syncedLeading)) return;
    syncedConf = m.conf;
    syncedLeading = m.leading;
    clusterVersion.update(m.leading, [...m.conf.voters, ...m.conf.learners]);
  };
  const fitProposal = fitToCluster(clusterVersion, fitCommand);
  const driver = await RaftNodeDriver.open({
    id: nodeId(self.id),
    members: seed,
    join: join !== null,
    forceNewCluster: tuning.forceNewCluster === true || tuning.forceNewCluster === 'accept-data-loss',
    acceptDataLoss: tuning.forceNewCluster === 'accept-data-loss',
    snapshotThresholdEntries: config.raft.snapshotThresholdEntries,
    snapshotThresholdBytes: config.raft.snapshotThresholdBytes,
    snapshotPoster: tuning.snapshotPoster ?? httpChunkPoster(http),
    storage: checkedStorage,
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
    fit: (data) => {
      syncClusterVersion();
      return fitProposal(data);
    },
    ...(metrics === null ? {} : { observer: metrics }),
    onApplied: (entry) => audit.entryApplied(entry),
    onSnapshotSaved: collectAfterSnapshot,
    onRoleChange: (role, leaderId, term) => {
      queueMicrotask(syncClusterVersion);
      metrics?.roleChanged(leaderId);
      loops.onRoleChange(role, term);
      retention.onRoleChange(role, term);
      auth.onRoleChange(role, term);
      if (role === 'leader' && defaults) {
        logger.warn({ term }, 'leading without a config file: retention, task timings, backups and certificate lifetime are the defaults until a manager with the config leads');
      }
    },
  });
  view.read = () => driver.termAndRole();
  removedRefusal = (id, issuedAtMs) => driver.removed.refusal(id, issuedAtMs);
  traces.replayedThrough = driver.heldAtStartIndex;
  service.attach(driver);
  const observed = { driver: driver as RaftNodeDriver<unknown>, store: service.kv.tasks, transport, http, tls: security?.clientTls(), dataDir: self.dataDir };
  if (metrics !== null) attachManagerMetrics(metrics, observed);
  // A manager that joined, restarted: the addresses of the members it was told of then, for ids nothing else names.
  for (const m of join?.learnt ?? []) if (driver.directory.get(m.id) === undefined) driver.directory.set(m.id, m);
  membersOf = () => {
    return { conf: driver.conf(), leading: driver.termAndRole().role === 'leader', apiAddressOf: (id) => driver.directory.get(id as NodeId)?.apiAddress };
  };
  driver.start();
  opened.push('raft driver', () => driver.stop());
  // Membership changes are seen within a second (a proposal meanwhile looks at once, see fit above).
  const clusterVersionTimer = setIntervalOn(systemClock, syncClusterVersion, 1000);
  opened.push('cluster version', () => {
    clusterVersionTimer.cancel();
    clusterVersion.close();
  });
  // A manager removed while it could not hear of it finds out from the others (see removal-watch.ts).
  const askView = httpClusterView(http, config.api.requestTimeoutMs);
  const removal = new RemovalWatch({
    self: nodeId(self.id),
    clock: systemClock,
    status: () => {
      const { term, leaderId } = driver.status();
      return { term, leaderId, listsSelf: driver.listsSelf() };
    },
    peers: () => driver.directory.entries().filter(([id]) => id !== self.id).map(([id, a]) => ({ id, apiAddress: a.apiAddress })),
    askView,
    onChange: (reason) => driver.markRemoved(reason),
    // Long enough that an ordinary election is over (a few election timeouts), short enough that a follower removed
    // while running, whose removal's commit the leader never sends it, stops answering NO_LEADER within about a second.
    quietMs: Math.max(1000, 3 * config.raft.electionTimeoutMs),
  });
  const removalTimer = setIntervalOn(systemClock, () => removal.tick(), 250);
  opened.push('removal watch', () => removalTimer.cancel());
  const gcLog = logger.child({ component: 'gc' });
  // A node started without --expose-gc (by hand, say) cannot compact: it does not pretend to.
  const idleCollector = !collectionsExposed ? null : startIdleCollector({
    clock: systemClock,
    progress: () => driver.applied,
    backlog: () => driver.status().lastIndex - driver.applied,
    // Followers hear nothing from a paused leader and campaign one election timeout after its last heartbeat: a pause
    // must end a heartbeat interval before that (defaults: 300 - 2 x 50 = 200 ms), and never take more than a third.
    pauseMsMax: Math.max(config.raft.electionTimeoutMs / 3, config.raft.electionTimeoutMs - 2 * config.raft.heartbeatIntervalMs),
    onCollect: (c) => gcLog.info({ ...c, heapUsedMiB: Math.round(c.heapUsedMiB), expectedMs: Math.round(c.expectedMs) }, c.done ? 'compacted the heap (quiet after a burst)' : 'left the heap as it is: compacting it would pause too long'),
  });
  opened.push('idle collector', () => idleCollector?.cancel());
  feed.start();
  opened.push('event feed', () => feed.close());

  const membership = new MembershipServiceImpl({
    driver: () => driver as RaftNodeDriver<unknown>,
    settings: () => clusterSettingsOf(config),
    reachable: (peer) => driver.reachable(peer),
    logger: logger.child({ component: 'membership' }),
    electionTimeoutMs: config.raft.electionTimeoutMs,
    http,
    worker: (workerId) => service.kv.tasks.storedWorker(workerId),
  });
  // GET /v1/snapshot, and the scheduled backups (config backup) that the leader writes.
  const backups = startBackups({ config: config.backup, driver, clock: systemClock, logger: logger.child({ component: 'backup' }), clusterId: security?.clusterId ?? null });
  opened.push('backups', () => backups.close());
  if (metrics !== null && config.backup !== null) {
    metrics.registry.gauge('backup_last_success_timestamp_seconds', 'When the newest scheduled backup in backup.dir was taken (0: none yet).', [], (g) => {
      const at = backups.service.status()?.lastSuccessAt;
      g.set(at == null ? 0 : Date.parse(at) / 1000);
    });
  }
  const joinService =
    security === null
      ? undefined
      : new JoinServiceImpl({
          material: security.material,
          clock: systemClock,
          certLifetimeS: config.tls.certLifetimeS,
          audit,
          joinToken: (hash, nowMs) => service.kv.auth.joinToken(hash, nowMs),
          managers: () => {
            const st = driver.status();
            return [...st.voters, ...st.learners].flatMap((m) => {
              const a = driver.directory.get(m);
              return a === undefined ? [] : [{ id: m as string, raftAddress: a.raftAddress, apiAddress: a.apiAddress, learner: st.learners.includes(m) }];
            });
          },
          worker: (workerId) => service.kv.tasks.storedWorker(workerId),
        });
  // The API's certificate and what a reload does to it are wired once the server exists (below).
  const tlsHooks = { apply: (_cert: string, _key: string): void => undefined, restore: (): void => undefined };
  const reloader = new Reloader({
    node: 'manager', id: self.id, configPath: configPath ?? null, running: config, logger: logger.child({ component: 'reload' }), loggers: [logger],
    applyApiTls: (cert, key) => tlsHooks.apply(cert, key), restoreOwnTls: () => tlsHooks.restore(), audit,
    ...(security === null ? {} : { applyApiCa: (caPem: string | undefined) => http.setApiCa(caPem) }),
  });
  if (operator.apiCaPem !== undefined) reloader.noteApiCa(operator.apiCaPem);
  const app = buildManagerApp({
    service,
    commandVersion,
    tasks,
    services,
    placement,
    backup: backups.service,
    retention,
    membership,
    raftPeer: driver,
    auth,
    audit,
    events: feed,
    logger: logger.child({ component: 'api' }),
    bodyLimitBytes: config.api.bodyLimitBytes,
    requestTimeoutMs: config.api.requestTimeoutMs,
    monoMs: () => systemClock.monoMs(),
    admin: reloader,
    ...managerObservability(metrics, observed),
    ...(security === null
      ? { insecure: true }
      : {
          https: serverTlsFor(security, operator.tls, reloader),
          security: managerAppSecurity(
            security, auth,
            { managerRefusal: (id, issuedAtMs) => removedRefusal(id, issuedAtMs), workerRemovedAtMs: (id) => service.kv.tasks.workerRemovedAtMs(id) },
            () => service.barrier(systemClock.monoMs() + limits.tokenCatchUpMsMax),
            () => driver.storage().state === 'recovering',
          ),
          rateLimits: liveRateLimits(config),
        }),
    ...(joinService === undefined ? {} : { join: joinService }),
  });
  opened.push('api', () => app.close());
  const api = splitHostPort(self.apiAddress);
  await app.listen({ host: api.host, port: api.port }).catch((err: unknown) => {
    throw listenFailed(err, self.apiAddress, 'apiAddress');
  });
  if (self.dnsAddress !== undefined) {
    // Until a ReadIndex barrier has gone through once since start, this manager's state may be the one it stopped with
    // (a restart after downtime): DNS answers SERVFAIL meanwhile, and resolvers ask another manager.
    let caughtUp = false;
    let dnsClosed = false;
    void (async () => {
      while (!caughtUp && !dnsClosed) {
        try {
          await service.barrier(systemClock.monoMs() + limits.dnsCatchUpBarrierMs);
          caughtUp = true;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, limits.dnsCatchUpRetryMs));
        }
      }
    })();
    const view = new StateDnsView({
      caughtUp: () => caughtUp,
      store: service.kv.tasks,
      services: () => service.kv.services.services(),
      clock: systemClock,
      appliedIndex: () => service.kv.appliedIndex,
      leaderId: () => driver.status().leaderId,
      members: () => {
        const st = driver.status();
        return [...st.voters, ...st.learners].flatMap((m) => {
          const a = driver.directory.get(m);
          return a === undefined ? [] : [{ id: m as string, apiAddress: a.apiAddress }];
        });
      },
    });
    const dnsAt = splitHostPort(self.dnsAddress);
    const dnsAddress = self.dnsAddress;
    const dns = await DnsServer.start({ host: dnsAt.host, port: dnsAt.port, view, logger: logger.child({ component: 'dns' }) }).catch((err: unknown) => {
      throw listenFailed(err, dnsAddress, 'dnsAddress');
    });
    opened.push('dns', () => {
      dnsClosed = true;
      return dns.close();
    });
  }
  logger.info({ api: self.apiAddress, raft: self.raftAddress, dns: self.dnsAddress, dataDir: self.dataDir, tls: security !== null }, 'manager started');
  if (security !== null) {
    // A manager signs its own renewal with the CA key it holds; the operator's API certificate is the operator's.
    let material = security.material;
    const apiServer = app.server as unknown as HttpsServer;
    tlsHooks.apply = (cert, key) => apiServer.setSecureContext({ ...security.serverTls(), ca: material.caCertPem, cert, key });
    tlsHooks.restore = () => applyRenewedTls({ server: apiServer }, material);
    const renewal = startCertRenewal({
      dataDir: self.dataDir,
      clock: systemClock,
      logger: logger.child({ component: 'certs' }),
      material: () => material,
      sign: localSigner(security.material, [self.raftAddress, self.apiAddress], { lifetimeDays: config.tls.certLifetimeS / 86_400, clock: systemClock }),
      onRenewed: (m) => {
        material = m;
        const server = config.api.tlsCertFile === undefined ? { server: app.server as unknown as HttpsServer } : {};
        applyRenewedTls({ transport, http: [http], ...server }, m, verifyPeer);
      },
    });
    opened.push('certificate renewal', () => renewal.stop());
  }

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await opened.closeAll(logger);
      logger.info('manager stopped');
    })());
  const stopped = driver.stoppedPromise.then(async (err) => {
    await stop();
    return err;
  });
  if (join !== null && tuning.join !== undefined) await askToJoin(tuning.join, self, logger, http);
  return { id: nodeId(self.id), apiUrl: `${security === null ? 'http' : 'https'}://${self.apiAddress}`, stop, stopped, reload: () => reloader.reload(signalCaller) };
}

/**
 * A manager joining from flags alone takes the cluster's settings instead of the defaults: nothing replicates them
 * and the leader applies its own, so a manager that may lead must run with the same. They are asked of the leader
 * (GET /v1/cluster/settings: any manager passes the request on to it), not of the manager --join names: what the
 * leader runs is what the cluster runs now, whatever that manager's own config says (it may lag a reload, or have
 * none). Kept with this manager in `path` (mode 0600), written before anything else starts, so every later start
 * and reload reads them there. null, on the defaults, when the cluster does not know the route (older managers).
 */
async function takeClusterSettings(url: string, path: string, self: ManagerConfig, insecure: boolean, http: HttpClient, logger: Logger): Promise<ClusterConfig | null> {
  const client = new ApiClient(url, { http, readRetries: 5 });
  let view: ClusterSettingsView;
  try {
    view = await client.clusterSettings();
  } catch (err) {
    if (!(err instanceof MinkubeError)) throw err;
    if (err.code === 'NOT_FOUND') {
      logger.warn({ via: client.baseUrl }, 'the cluster does not say its settings (its managers are older than this one)');
      warnOnDefaults(logger);
      return null;
    }
    throw new MinkubeError(err.code, `cannot get the cluster's settings from ${client.baseUrl}: ${err.message}`, { cause: err });
  }
  // The URL may be anything but a manager's API: its answer is checked before anything is made of it.
  const problem = clusterSettingsViewProblem(view);
  if (problem !== null) throw notAManager(client.baseUrl, 'GET', '/v1/cluster/settings', problem);
  const source = `the settings ${client.baseUrl} answered as leader ${view.leaderId}'s (nothing was written to ${path})`;
  const { file, config } = joinedManagerConfig(view.settings, { ...self, dataDir: resolve(self.dataDir) }, insecure, dirname(path), source);
  await writeFileWhole(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  logger.info({ leaderId: view.leaderId, config: path }, "runs with the cluster's settings as its leader runs them, kept in its config");
  return config;
}


/**
 * --force-new-cluster without --accept-data-loss: the storage is judged on a copy of its database (tables, manifests,
 * CURRENT and snapshots linked, write-ahead logs copied) beside the data directory, since LevelDB's own open turns a
 * write-ahead log into a table and drops the records past a damaged one. Damage found is refused (STORAGE_CORRUPT)
 * with the data directory and its marker as they were; the copy goes either way.
 */
async function refuseForcingDamaged(id: string, dataDir: string): Promise<void> {
  const dir = resolve(dataDir);
  const copy = `${dir}.force-check`;
  const linkOrCopy = (from: string, to: string): Promise<void> => link(from, to).catch(() => copyFile(from, to));
  try {
    await rm(copy, { recursive: true, force: true });
    await mkdir(copy, { mode: 0o700 });
    for (const name of await readdir(dir)) {
      const from = join(dir, name);
      if (/^\d+\.log$/.test(name)) await copyFile(from, join(copy, name));
      else if (/^(\d+\.(ldb|sst)|MANIFEST-\d+|CURRENT)$/.test(name)) await linkOrCopy(from, join(copy, name));
      else if (name === 'snapshots') {
        await mkdir(join(copy, name));
        for (const f of await readdir(from)) await linkOrCopy(join(from, f), join(copy, name, f));
      }
    }
  } catch (err) {
    await rm(copy, { recursive: true, force: true }).catch(() => undefined);
    throw storageFailed(`cannot copy the database of ${dir} to ${copy} to check it before --force-new-cluster (nothing in ${dir} was changed)`, err);
  }
  try {
    // Said of the data directory, not of its copy.
    const refused = (reason: string): MinkubeError => forceRefused(id, reason.replaceAll(copy, dir));
    const storage = await LevelRaftStorage.open(copy, { salvage: 'check' }).catch((err: unknown) => {
      const damage = damageFound(err);
      throw damage === null ? err : refused(`its storage is damaged: ${damage}`);
    });
    const marker = new FileMarker(markerPathFor(dir));
    try {
      const checked = await new CheckedStorage(storage, marker).loadChecked({ checkOnly: true });
      if (checked.recovery !== null) throw refused(checked.recovery.reason);
    } finally {
      await storage.close();
      await marker.close();
    }
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/**
 * The storage the driver writes through: it keeps the acknowledged-state marker beside the data directory (outside
 * it, so a data directory replaced by an older copy of itself is found out too). A manager joining now starts with
 * an empty data directory: a marker left by an earlier member of that name says nothing about it.
 */
async function checkedStorageFor(storage: LevelRaftStorage, dataDir: string, joining: boolean): Promise<CheckedStorage> {
  const where = markerPathFor(dataDir);
  const empty = (await storage.lastIndex()) === 0 && storage.snapshotInfo() === null && (await storage.hardState()).term === 0;
  // A `snapshot restore` killed between its two renames left the restored directory in place (its aside copy gone)
  // and its marker aside (backup-restore.ts): that marker is this directory's. Killed before, the directory is empty
  // and the marker is not taken: it speaks of a log that is not here.
  const asideDir = `${resolve(dataDir)}.restoring`;
  const asideMarker = markerPathFor(asideDir);
  if (!empty && !existsSync(where) && !existsSync(asideDir) && existsSync(asideMarker)) await rename(asideMarker, where).catch(() => undefined);
  const marker = new FileMarker(where);
  if (joining && empty) await marker.reset();
  return new CheckedStorage(storage, marker);
}

/** The operator's API certificate and key (api.tlsCertFile/tlsKeyFile), or null: the node's own from the cluster CA. */
interface OperatorTls {
  readonly cert: string;
  readonly key: string;
}

/** What the operator supplies for the API: its certificate, and the CA(s) that signed it when not the cluster CA. */
interface OperatorApi {
  readonly tls: OperatorTls | null;
  /** api.tlsCaFile's certificates, which this manager's client trusts beside the cluster CA (loadApiCa). */
  readonly apiCaPem: string | undefined;
}

/**
 * Reads and checks the operator's certificate and key before start-up writes anything (a data directory, a CA): a file
 * that cannot be read or a pair that cannot be used is the config's fault, CONFIG_INVALID naming the key. Null when the
 * config names none; under insecure: true the files are not used, and a warning says so.
 */
async function loadOperatorTls(config: ClusterConfig, source: string, logger: Logger): Promise<OperatorTls | null> {
  const { tlsCertFile, tlsKeyFile } = config.api;
  if (tlsCertFile === undefined || tlsKeyFile === undefined) return null;
  if (config.insecure) {
    logger.warn({ tlsCertFile, tlsKeyFile }, 'api.tlsCertFile and api.tlsKeyFile are not used: the cluster is insecure (plain HTTP)');
    return null;
  }
  const problems: string[] = [];
  const read = (name: string, file: string): Promise<string> =>
    readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      problems.push(`api.${name}: cannot read ${file} (${err.code ?? err.message})`);
      return '';
    });
  const [cert, key] = await Promise.all([read('tlsCertFile', tlsCertFile), read('tlsKeyFile', tlsKeyFile)]);
  if (problems.length > 0) throw configInvalid(source, problems);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw configInvalid(source, [`api.tlsCertFile, api.tlsKeyFile: ${tlsCertFile} and ${tlsKeyFile} are not a certificate and its key (${(err as Error).message})`]);
  }
  return { cert, key };
}

/** The API's certificate: the operator's (loaded at start by loadOperatorTls) or the node's own from the cluster CA. */
function serverTlsFor(security: NodeSecurity, operator: OperatorTls | null, reloader: Reloader): ServerTls {
  const own = security.serverTls();
  if (operator === null) return own;
  reloader.noteCertificate(operator.cert);
  return { ...own, cert: operator.cert, key: operator.key };
}
