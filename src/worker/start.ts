// Starts one worker process from the cluster config: container runtime, re-adoption of its containers, the HTTP API,
// then registration, heartbeats and reconciliation in the background. `minkube worker --config F --id ID` calls this.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { buildWorkerApp } from '../api/worker-app.js';
import { HttpClient } from '../client/http.js';
import { loadClusterConfig, type ClusterConfig } from '../config/cluster.js';
import { loadNodeSecurity } from '../daemon/security.js';
import { MinkubeError } from '../lib/errors.js';
import { createRuntime, sandboxNameFor } from '../runtime/index.js';
import { WorkerAgent, type WorkerAgentOptions } from './agent.js';
import { WorkerLoops } from './loops.js';
import { HttpManagerLink } from './managers.js';
import { createHostStatsSource } from './stats.js';

export interface StartWorkerOptions {
  configPath: string;
  id: string;
  logger?: Logger;
}

export interface RunningWorker {
  readonly id: string;
  readonly apiUrl: string;
  readonly agent: WorkerAgent;
  readonly loops: WorkerLoops;
  /** Stops the loops and the API; leaves the containers running for the next worker process to re-adopt. */
  stop(): Promise<void>;
}

/** Knobs tests may turn; the config decides everything else. */
export type WorkerTuning = Pick<WorkerAgentOptions, 'assignWaitMs' | 'finishedRetentionMs' | 'tasksMax'>;

export async function startWorker(opts: StartWorkerOptions): Promise<RunningWorker> {
  const config = await loadClusterConfig(opts.configPath);
  return startWorkerFromConfig(config, opts.id, opts.logger);
}

export async function startWorkerFromConfig(config: ClusterConfig, id: string, parentLogger?: Logger, tuning: WorkerTuning = {}): Promise<RunningWorker> {
  const self = config.workers.find((w) => w.id === id);
  if (self === undefined) {
    const known = config.workers.map((w) => w.id).join(', ') || 'none';
    throw new MinkubeError('CONFIG_INVALID', `no worker with id "${id}" in the config (workers: ${known})`);
  }
  // Every line carries the worker id.
  const logger = parentLogger?.child({ worker: id }) ?? pino({ level: process.env.MINKUBE_LOG_LEVEL ?? 'info', base: { worker: id }, timestamp: pino.stdTimeFunctions.isoTime });
  const dataDir = self.dataDir ?? resolve('data', id);
  await mkdir(dataDir, { recursive: true });
  const security = await loadNodeSecurity(config, { id, role: 'worker', dataDir, addresses: [self.apiAddress] }, true, logger);
  // Docker tasks join one network sandbox per worker id, which outlives this process like the tasks do.
  const runtime = await createRuntime(self.runtime, {
    stateDir: dataDir,
    logger: logger.child({ component: 'runtime' }),
    docker: { networkSandbox: sandboxNameFor(id) },
  });
  const agent = new WorkerAgent({
    ...tuning,
    workerId: id,
    runtime,
    logger: logger.child({ component: 'agent' }),
    stopTimeoutMs: config.tasks.stopTimeoutMs,
    hostStats: createHostStatsSource({ diskPath: dataDir }),
  });
  const app = buildWorkerApp({
    agent,
    logger: logger.child({ component: 'api' }),
    bodyLimitBytes: config.api.bodyLimitBytes,
    requestTimeoutMs: config.api.requestTimeoutMs,
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
  try {
    // Before serving: a leader asking about a task must get the re-adopted answer, never "no such task".
    await agent.adopt();
    const { host, port } = splitHostPort(self.apiAddress);
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    await agent.close();
    await runtime.close();
    throw err;
  }
  // The worker's one pool: its certificate is how the managers know it (no token).
  const http = new HttpClient(security === null ? {} : { tls: security.clientTls() });
  const link = new HttpManagerLink({ managers: config.managers.map((m) => m.apiAddress), timeoutMs: config.api.requestTimeoutMs + 500, http });
  const loops = new WorkerLoops({
    agent,
    link,
    registration: { id, apiAddress: self.apiAddress, runtime: runtime.kind },
    heartbeatIntervalMs: config.tasks.workerHeartbeatIntervalMs,
    reconcileIntervalMs: config.tasks.reconcileIntervalMs,
    logger: logger.child({ component: 'loops' }),
  });
  loops.start();
  logger.info({ api: self.apiAddress, runtime: runtime.kind, dataDir, managers: config.managers.length }, 'worker started');

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await loops.stop();
      await http.close();
      await app.close();
      await agent.close();
      await runtime.close();
      logger.info('worker stopped; its containers keep running');
    })());
  return { id, apiUrl: `${security === null ? 'http' : 'https'}://${self.apiAddress}`, agent, loops, stop };
}

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(i + 1)) };
}
