// Starts one worker process from the cluster config: container runtime, re-adoption of its containers, the HTTP API,
// then registration, heartbeats and reconciliation in the background. `minkube worker --config F --id ID` calls this.
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { readFile } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { buildWorkerApp } from '../api/worker-app.js';
import { HttpClient, normaliseBaseUrl } from '../client/http.js';
import { checkAddress, clusterConfigDefaults, joinedConfigFile, loadClusterConfig, parseClusterConfig, type ClusterConfig, type WorkerConfig } from '../config/cluster.js';
import { joinWithToken } from './join.js';
import { applyRenewedTls, remoteSigner, startCertRenewal } from './renewal.js';
import { systemClock } from '../lib/clock.js';
import { loadApiCa, loadNodeSecurity } from './security.js';
import { readNodeTls } from '../security/pki-files.js';
import { loopbackSourceOf, splitHostPort } from '../lib/address.js';
import { ensureDataDir } from '../lib/data-dir.js';
import { writeFileWhole } from '../lib/write-whole.js';
import { listenFailed, MinkubeError } from '../lib/errors.js';
import { serializeError } from '../lib/log-errors.js';
import { createRuntime, sandboxNameFor, type ContainerRuntime } from '../runtime/index.js';
import { lockDataDir } from '../storage/dir-lock.js';
import { EngineHealth, watchedRuntime } from '../worker/engine-health.js';
import { workerInstance } from '../worker/instance.js';
import { FileKeptLogs } from '../worker/kept-logs.js';
import { WorkerAgent, type WorkerAgentOptions } from '../worker/agent.js';
import { holderEngineOf, isRemovedRefusal, WorkerLoops } from '../worker/loops.js';
import { heartbeatHedgeMs, HttpManagerLink } from '../worker/managers.js';
import { createHostStatsSource } from '../worker/stats.js';
import { defaultPortRange, PortAllocator } from '../worker/ports.js';
import { systemRandom } from '../lib/random.js';
import { logLevelOf, Reloader } from './reload.js';
import { startTracing } from './otel.js';
import { Closers } from './closers.js';
import type { ReloadReport } from '../api/routes/admin.js';
import type { JoinReply } from '../contracts/services.js';
import { workerObservability } from './metrics.js';

export interface StartWorkerOptions {
  /** The cluster config that lists this worker; or, without it, a worker that joined with a token (join / dataDir). */
  configPath?: string;
  id: string;
  logger?: Logger;
  /** Join a secure cluster with a join token first; the worker's config is then kept in dataDir. */
  join?: { url: string; token: string; apiAddress: string; dataDir: string; runtime?: string; labels?: Record<string, string> };
  /** A worker that joined before: its config is `<dataDir>/cluster.json`. */
  dataDir?: string;
}

export interface RunningWorker {
  readonly id: string;
  readonly apiUrl: string;
  readonly agent: WorkerAgent;
  readonly loops: WorkerLoops;
  /** Stops the loops and the API; leaves the containers running for the next worker process to re-adopt. */
  stop(): Promise<void>;
  /**
   * Resolves when the worker stopped by itself: with WORKER_REPLACED once another instance registered its id, or
   * UNAUTHENTICATED once a manager refused its certificate as issued before the worker's removal (its copies of the
   * tasks stopped first, in both cases, unless the instance that replaced it runs on this same Docker engine: then
   * they are left running for it), or CONFIG_INVALID once its certificate expired unrenewed (paused past its
   * expiry: its tasks keep running for the next start). The process then exits non-zero (src/cli/daemons.ts).
   */
  readonly stopped: Promise<Error | null>;
  /** Re-reads the config file and applies what can change live (SIGHUP): the log level, api.tlsCaFile. */
  reload(): Promise<ReloadReport>;
}

/** Knobs tests may turn; the config decides everything else. */
export type WorkerTuning = Pick<WorkerAgentOptions, 'assignWaitMs' | 'finishedRetentionMs' | 'tasksMax'>;

export async function startWorker(opts: StartWorkerOptions): Promise<RunningWorker> {
  if (opts.configPath !== undefined) return startWorkerFromConfig(await loadClusterConfig(opts.configPath), opts.id, opts.logger, {}, { configPath: opts.configPath });
  if (opts.join !== undefined) await joinAsWorker(opts.id, opts.join);
  const dataDir = opts.join?.dataDir ?? opts.dataDir;
  if (dataDir === undefined) throw new MinkubeError('CONFIG_INVALID', 'a worker needs --config, or --join with --token, --api-address and --data-dir, or the --data-dir of a worker that joined');
  const path = join(resolve(dataDir), joinedConfigFile);
  if (!existsSync(path)) throw new MinkubeError('CONFIG_INVALID', `${path} does not exist: this data directory holds no joined worker (start it with --join URL --token T first)`);
  return startWorkerFromConfig(await loadClusterConfig(path), opts.id, opts.logger, {}, { joined: true, configPath: path });
}

type JoinFlags = NonNullable<StartWorkerOptions['join']>;
/** The worker's entry in the config it keeps after joining: what its flags say. */
type JoinedWorker = { id: string; apiAddress: string; runtime: 'docker' | 'process' | 'auto'; dataDir: string; labels?: Record<string, string> };

/**
 * Gets a certificate with the token and writes the worker's config, once the config made of the flags and the
 * cluster's managers is valid: nothing is written otherwise. A data directory holding a worker joined with these same
 * flags is a restart (nothing is asked); one joined with other flags (an attempt that failed, since corrected) joins
 * again with these.
 */
export async function joinAsWorker(id: string, j: JoinFlags): Promise<void> {
  const dataDir = resolve(j.dataDir);
  await ensureDataDir(dataDir, '--data-dir');
  const self = joinedWorker(id, j, dataDir);
  const saved = await savedWorker(dataDir);
  if (saved !== null && sameWorker(saved, self) && (await readNodeTls(dataDir)) !== null) return;
  const configOf = (managers: JoinReply['managers']): { managers: object[]; workers: JoinedWorker[] } => ({
    managers: managers.map((m) => ({ id: m.id, raftAddress: m.raftAddress, apiAddress: m.apiAddress, dataDir: `unused-${m.id}` })),
    workers: [self],
  });
  const source = `the config worker ${id} would keep (workers[0] from its flags, managers from the cluster; nothing was written to ${dataDir})`;
  let config: ReturnType<typeof configOf> | undefined;
  try {
    await joinWithToken({
      url: j.url, token: j.token, id, role: 'worker', dataDir, addresses: [j.apiAddress],
      checkReply: (reply) => {
        config = configOf(reply.managers);
        parseClusterConfig(config, dataDir, source);
      },
    });
  } catch (caught) {
    // The cluster refuses a worker's certificate naming a manager's address (the config check would too, later).
    const err = caught instanceof MinkubeError && caught.code === 'WORKER_ADDRESS_IN_USE' ? new MinkubeError(caught.code, `--api-address ${j.apiAddress}: the cluster refuses it: ${caught.message}`, { cause: caught }) : caught;
    if (saved === null || !(err instanceof MinkubeError)) throw err;
    const kept = `${join(dataDir, joinedConfigFile)} is kept as it was (--api-address ${saved.apiAddress}): to start that one, minkube worker --id ${id} --data-dir ${j.dataDir}`;
    throw new MinkubeError(err.code, `${err.message}; ${kept}`, { cause: err });
  }
  // Whole, and readable by this user only, as a manager's joined config (it names the managers and this worker).
  await writeFileWhole(join(dataDir, joinedConfigFile), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

/** The flags as the worker's config entry; what can be checked before asking the cluster is checked here. */
function joinedWorker(id: string, j: JoinFlags, dataDir: string): JoinedWorker {
  const runtime = j.runtime ?? 'auto';
  if (runtime !== 'docker' && runtime !== 'process' && runtime !== 'auto') throw new MinkubeError('CONFIG_INVALID', `--runtime must be docker, process or auto, not ${runtime}`);
  const problem = checkAddress(j.apiAddress);
  if (problem !== null) throw new MinkubeError('CONFIG_INVALID', `--api-address: ${problem}`);
  const manager = new URL(normaliseBaseUrl(j.url, { tls: { ca: '' } }));
  const managerAddress = `${manager.hostname}:${manager.port === '' ? (manager.protocol === 'https:' ? '443' : '80') : manager.port}`;
  if (managerAddress.toLowerCase() === j.apiAddress.toLowerCase()) {
    throw new MinkubeError('CONFIG_INVALID', `--api-address ${j.apiAddress} is the address of the manager --join names: a worker needs an address of its own`);
  }
  return { id, apiAddress: j.apiAddress, runtime, dataDir, ...(j.labels === undefined ? {} : { labels: j.labels }) };
}

/** The worker entry of `<dataDir>/cluster.json` as written, unchecked (it may be from an attempt that failed); null when there is none. */
async function savedWorker(dataDir: string): Promise<JoinedWorker | null> {
  try {
    const file = JSON.parse(await readFile(join(dataDir, joinedConfigFile), 'utf8')) as { workers?: unknown };
    const first: unknown = Array.isArray(file.workers) ? file.workers[0] : undefined;
    return typeof first === 'object' && first !== null ? (first as JoinedWorker) : null;
  } catch {
    return null;
  }
}

function sameWorker(a: JoinedWorker, b: JoinedWorker): boolean {
  const labels = (w: JoinedWorker): string => JSON.stringify(Object.entries(w.labels ?? {}).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  return a.id === b.id && a.apiAddress === b.apiAddress && a.runtime === b.runtime && labels(a) === labels(b);
}

/** How the worker was started: it joined with a token (its certificate is in its data directory), from which config file. */
type StartHow = { joined?: boolean; configPath?: string };

export async function startWorkerFromConfig(config: ClusterConfig, id: string, parentLogger?: Logger, tuning: WorkerTuning = {}, how: StartHow = {}): Promise<RunningWorker> {
  const self = config.workers.find((w) => w.id === id);
  if (self === undefined) {
    const known = config.workers.map((w) => w.id).join(', ') || 'none';
    throw new MinkubeError('CONFIG_INVALID', `no worker with id "${id}" in the config (workers: ${known})`);
  }
  // Every line carries the worker id.
  const logger = parentLogger?.child({ worker: id }) ?? pino({ level: logLevelOf(config), base: { worker: id }, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: serializeError } });
  // What start-up opened, closed in reverse when a later step fails (and by stop()).
  const opened = new Closers();
  try {
    return await startParts(config, self, logger, tuning, how, opened);
  } catch (err) {
    await opened.closeAll(logger);
    throw err;
  }
}

async function startParts(config: ClusterConfig, self: WorkerConfig, logger: Logger, tuning: WorkerTuning, how: StartHow, opened: Closers): Promise<RunningWorker> {
  const id = self.id;
  // OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (else nothing is loaded); closed last, so the last spans leave.
  const tracing = await startTracing('minkube-worker', id, logger);
  opened.push('tracing', () => tracing.shutdown());
  // Before anything is written: the CA(s) of the managers' operator API certificate, if another CA signed it.
  const apiCaPem = await loadApiCa(config, how.configPath === undefined ? 'the config' : resolve(how.configPath), logger);
  const dataDir = self.dataDir ?? resolve('data', id);
  await ensureDataDir(dataDir);
  // Before anything else touches the directory or the runtime: a second process of this id (a start while it runs)
  // stops here, as a manager's does on its database's lock, and never re-adopts or stops the running one's containers.
  const lock = await lockDataDir(dataDir, `worker ${id}`);
  opened.push('data directory lock', () => lock.release());
  // A worker that joined with a token has its certificate already; one its config lists gets it from the CA beside the file.
  const security = await loadNodeSecurity(config, { id, role: 'worker', dataDir, addresses: [self.apiAddress] }, how.joined !== true, logger);
  // Which of the containers labelled with this worker's id are its own (two clusters may share a Docker engine).
  const instance = await workerInstance(dataDir);
  // Docker tasks join one network sandbox per worker instance, which outlives this process like the tasks do.
  const created = await createRuntime(self.runtime, {
    stateDir: dataDir,
    logger: logger.child({ component: 'runtime' }),
    docker: { networkSandbox: sandboxNameFor(id, instance) },
  });
  opened.push('runtime', () => created.close());
  // The worker judges its engine from its own calls (and pings while in doubt), and says so in its heartbeats: the
  // leader places nothing new on it meanwhile. A process runtime has no engine to lose.
  let loopsStarted: WorkerLoops | null = null;
  const engineHealth: EngineHealth | null = created.kind === 'process'
    ? null
    : new EngineHealth({ clock: systemClock, logger: logger.child({ component: 'engine' }), ping: (): Promise<void> => runtime.ping(), onChange: () => loopsStarted?.engineChanged() });
  if (engineHealth !== null) opened.push('engine health', () => engineHealth.close());
  const runtime: ContainerRuntime = engineHealth === null ? created : watchedRuntime(created, engineHealth, systemClock);
  // One ping at start: an engine that is down already is said in the first heartbeat.
  engineHealth?.check();
  // Which engine runs the containers (Docker: its ID), asked while the rest starts; registered so that an instance
  // this one replaces on the same engine leaves them to this one rather than stop them. Never rejects: unknown
  // (the engine did not answer) registers without.
  const engineAsked = runtime.engine?.();
  // Metrics (metrics.enabled): host figures as each heartbeat reads them, starts, containers read at scrape time.
  const observability = workerObservability(config.metrics.enabled);
  const workerMetrics = observability.metrics;
  const hostStats = createHostStatsSource({ diskPath: dataDir });
  const agent = new WorkerAgent({
    // A finished task's output stays readable this long after the managers stopped listing it (then 410 TASK_LOGS_GONE).
    finishedRetentionMs: (self.containerRetentionS ?? clusterConfigDefaults.containerRetentionS) * 1000,
    ...tuning,
    ...(workerMetrics === null ? {} : { observer: workerMetrics }),
    workerId: id,
    instance,
    runtime,
    logger: logger.child({ component: 'agent' }),
    stopTimeoutMs: config.tasks.stopTimeoutMs,
    // The output of tasks whose containers were removed stays readable across restarts.
    keptLogs: new FileKeptLogs(join(dataDir, 'logs')),
    // Tasks' named ports: addresses on the host the worker's API is reached at.
    ports: new PortAllocator(self.portRange ?? defaultPortRange, self.apiAddress.slice(0, self.apiAddress.lastIndexOf(':')), systemRandom),
    hostStats: workerMetrics === null ? hostStats : async () => {
      const figures = await hostStats();
      workerMetrics.hostStats(figures);
      return figures;
    },
  });
  opened.push('agent', () => agent.close());
  workerMetrics?.attach(() => agent.list());
  const app = buildWorkerApp({
    agent,
    ...observability.app,
    logger: logger.child({ component: 'api' }),
    bodyLimitBytes: config.api.bodyLimitBytes,
    requestTimeoutMs: config.api.requestTimeoutMs,
    monoMs: () => systemClock.monoMs(),
    ...(security === null
      ? {}
      : {
          https: security.serverTls(),
          admitCaller: (cert) => {
            const caller = security.peerIdentity(cert);
            return caller?.role === 'manager' ? null : caller === null ? 'the certificate is not one of this cluster' : `the certificate is a ${caller.role}'s`;
          },
        }),
  });
  opened.push('api', () => app.close());
  // Before serving: a leader asking about a task must get the re-adopted answer, never "no such task".
  await agent.adopt();
  await agent.restoreKeptLogs();
  const { host, port } = splitHostPort(self.apiAddress);
  await app.listen({ host, port }).catch((err: unknown) => {
    throw listenFailed(err, self.apiAddress, 'apiAddress');
  });
  // The worker's one pool: its certificate is how the managers know it (no token).
  const localAddress = loopbackSourceOf(self.apiAddress);
  const tls = security === null ? {} : { tls: security.clientTls(), ...(apiCaPem === undefined ? {} : { apiCaPem }) };
  const http = new HttpClient({ ...tls, ...(localAddress === undefined ? {} : { localAddress }) });
  opened.push('http client', () => http.close());
  // The managers learnt from heartbeats' answers (managers that joined later) are kept for the next start.
  const learntPath = join(dataDir, learntManagersFile);
  let keeping: Promise<void> = Promise.resolve(); // one write at a time, in order
  const link = new HttpManagerLink({
    managers: config.managers.map((m) => m.apiAddress),
    timeoutMs: config.api.requestTimeoutMs + 500,
    heartbeatHedgeMs: heartbeatHedgeMs(config.tasks),
    http,
    onLearned: (managers) => {
      logger.info({ managers }, 'the managers changed: asking these from now on');
      keeping = keeping.then(() => writeLearntManagers(learntPath, managers)).catch((err: unknown) => logger.warn({ err, path: learntPath }, 'cannot keep the managers learnt'));
    },
  });
  const learnt = await readLearntManagers(learntPath, logger);
  if (learnt.length > 0) link.learnManagers(learnt);
  const engine = await engineAsked;
  const loops = new WorkerLoops({
    agent,
    link,
    registration: {
      // The id is registered to this instance: should another one register it later, this one is told and stops.
      id, apiAddress: self.apiAddress, runtime: runtime.kind, labels: self.labels ?? {}, instance, ...(engine === undefined ? {} : { engine }),
      // The host's cores and memory unless the config says what to offer.
      capacity: { cpus: self.capacity?.cpus ?? cpus().length, memoryMb: self.capacity?.memoryMb ?? Math.floor(totalmem() / (1024 * 1024)) },
    },
    heartbeatIntervalMs: config.tasks.workerHeartbeatIntervalMs,
    reconcileIntervalMs: config.tasks.reconcileIntervalMs,
    logger: logger.child({ component: 'loops' }),
    ...(workerMetrics === null ? {} : { observer: workerMetrics }),
    ...(engineHealth === null ? {} : { engine: engineHealth }),
  });
  loopsStarted = loops;
  opened.push('loops', () => loops.stop());
  loops.start();
  // A worker's certificate is renewed by a manager, asked over mutual TLS with the certificate it replaces.
  let material = security?.material;
  let certificateExpired: (err: Error) => void = () => undefined;
  const expired = new Promise<Error>((resolve) => (certificateExpired = resolve));
  const renewal =
    security === null
      ? null
      : startCertRenewal({
          dataDir,
          clock: systemClock,
          logger: logger.child({ component: 'certs' }),
          material: () => material!,
          sign: remoteSigner(http, () => link.managers(), [self.apiAddress]),
          onRenewed: (m) => {
            material = m;
            applyRenewedTls({ server: app.server as unknown as HttpsServer, http: [http] }, m);
          },
          // Paused (or cut off) past its certificate's expiry: no manager renews it now, and retrying for ever would
          // leave it down with its tasks running. It stops (its tasks keep running) and the process exits 1 saying how
          // to come back, as a start with an expired certificate does.
          onExpired: (expiredAt) =>
            certificateExpired(
              new MinkubeError(
                'CONFIG_INVALID',
                `the certificate in ${join(dataDir, 'tls')} expired at ${expiredAt.toISOString()} before this worker could renew it (it was paused, cut off from every manager, or its host's clock is off): start it again (a worker the config lists gets a new certificate from the CA beside the config; one that joined with a token must move ${join(dataDir, 'tls')} aside and join again)`,
              ),
            ),
        });
  if (renewal !== null) opened.push('certificate renewal', () => renewal.stop());
  logger.info({ api: self.apiAddress, runtime: runtime.kind, dataDir, managers: config.managers.length }, 'worker started');
  const hostCpus = cpus().length;
  if (runtime.kind === 'docker' && self.capacity?.cpus !== undefined && self.capacity.cpus > hostCpus) {
    // The leader places by the capacity offered; Docker refuses a container asking for more CPUs than the host has.
    logger.warn({ capacityCpus: self.capacity.cpus, hostCpus }, `capacity.cpus is more than this host's ${hostCpus} CPUs: a task asking for more than ${hostCpus} is placed here and fails to start (docker refuses it)`);
  }

  let stopping: Promise<void> | null = null;
  const stop = (said = 'worker stopped; its containers keep running'): Promise<void> =>
    (stopping ??= (async () => {
      await opened.closeAll(logger);
      logger.info(said);
    })());
  // Another instance registered this id since (WORKER_REPLACED): its tasks are that one's now. Or this worker was
  // removed (`worker rm`) after its certificate was issued: it was down, its tasks were placed elsewhere, and only a
  // new certificate lets the id back. This one stops its copies of them and the process exits non-zero (the error
  // says how to come back), so no task runs twice for it and no worker retries for ever unheard.
  const expiredStop = expired.then(async (err): Promise<Error> => {
    logger.error({ err }, 'the certificate expired and cannot be renewed: stopping (the tasks keep running)');
    await stop();
    return err;
  });
  // Replaced by an instance on this same engine, which adopted the containers: they are left running for it, and so
  // is the network sandbox they may be in.
  const replacedStop = loops.replaced.then(async (err): Promise<Error | null> => {
    const removed = isRemovedRefusal(err);
    try {
      const outcome = await agent.standDown(holderEngineOf(err), removed ? 'this worker was removed from the cluster' : undefined);
      if (outcome.kind === 'left') {
        logger.error({ instance, engine: outcome.engine, tasksLeft: outcome.tasks }, 'this worker was replaced by another instance of its id on this same Docker engine: its containers are left to it; exiting');
        await stop('worker stopped; its containers were left to the instance that holds its id');
        return err;
      }
      const what = removed ? 'this worker was removed from the cluster after its certificate was issued' : 'this worker was replaced by another instance of its id';
      const where = outcome.otherEngine ? ' on another engine' : '';
      logger.error({ instance, copiesStopped: outcome.tasks, engine: outcome.engine, holderEngine: outcome.holderEngine }, `${what}${where}: its copies of the tasks are stopped; exiting`);
      // Nothing on this engine runs for the holder: this instance's network sandbox would be left running for good.
      if (outcome.otherEngine && runtime.kind === 'docker') await removeSandbox(runtime, sandboxNameFor(id, instance), logger);
      await stop('worker stopped; its copies of the tasks were stopped first');
    } catch (failure) {
      logger.error({ err: failure }, 'stopping this replaced worker failed');
    }
    return err;
  });
  const stopped = Promise.race([replacedStop, expiredStop]);
  const reloader = new Reloader({
    node: 'worker', id, configPath: how.configPath ?? null, running: config, logger: logger.child({ component: 'reload' }), loggers: [logger],
    ...(security === null ? {} : { applyApiCa: (caPem: string | undefined) => http.setApiCa(caPem) }),
  });
  if (apiCaPem !== undefined) reloader.noteApiCa(apiCaPem);
  return { id, apiUrl: `${security === null ? 'http' : 'https'}://${self.apiAddress}`, agent, loops, stop, stopped, reload: () => reloader.reload() };
}

/** A replaced instance's network sandbox, once its copies are stopped; a failure is logged (it only costs a container). */
async function removeSandbox(runtime: ContainerRuntime, name: string, logger: Logger): Promise<void> {
  try {
    await runtime.remove(name);
    logger.info({ sandbox: name }, 'network sandbox removed');
  } catch (err) {
    logger.warn({ err, sandbox: name }, `could not remove the network sandbox: docker rm -f ${name}`);
  }
}

/** `<dataDir>/managers.json`: the managers' API addresses as the cluster last told this worker. */
const learntManagersFile = 'managers.json';

async function readLearntManagers(path: string, logger: Logger): Promise<string[]> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as { managers?: unknown };
    if (Array.isArray(parsed.managers) && parsed.managers.every((m) => typeof m === 'string')) return parsed.managers as string[];
    logger.warn({ path }, 'ignoring a malformed list of managers learnt earlier');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, path }, 'ignoring an unreadable list of managers learnt earlier');
  }
  return [];
}

async function writeLearntManagers(path: string, managers: readonly string[]): Promise<void> {
  await writeFileWhole(path, `${JSON.stringify({ managers }, null, 2)}\n`);
}
