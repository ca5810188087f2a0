// Chooses the worker's container runtime: Docker when asked or when it answers, else plain processes.
import type { Logger } from 'pino';
import { limits } from '../lib/limits.js';
import { DockerRuntime, dockerEndpoint, type DockerRuntimeOptions } from './docker.js';
import { ProcessRuntime } from './process.js';
import type { ContainerRuntime } from './types.js';

export { classifyRuntimeError } from './classify.js';
export { DockerRuntime, dockerEndpoint, sandboxLabel, sandboxNameFor, type DockerRuntimeOptions } from './docker.js';
export { MemoryHost, MemoryRuntime, type MemoryBehaviour, type MemoryRuntimeOptions } from './memory.js';
export { ProcessRuntime, type ProcessRuntimeOptions } from './process.js';
export * from './types.js';

export type RuntimeChoice = 'docker' | 'process' | 'auto';

export interface CreateRuntimeOptions {
  /** Where the process runtime keeps its records and logs. */
  stateDir: string;
  logger: Logger;
  docker?: Omit<DockerRuntimeOptions, 'logger'>;
  /** 'auto' only: how long Docker has to answer. */
  pingTimeoutMs?: number;
}

/**
 * 'docker' and 'process' are taken as given (the caller's ping() reports an unreachable daemon). 'auto' pings Docker
 * and falls back to processes, with a warning, when it does not answer.
 */
export async function createRuntime(kind: RuntimeChoice, opts: CreateRuntimeOptions): Promise<ContainerRuntime> {
  const docker = (): DockerRuntime => new DockerRuntime({ ...opts.docker, logger: opts.logger });
  const processes = (): ProcessRuntime => new ProcessRuntime({ stateDir: opts.stateDir, logger: opts.logger });
  switch (kind) {
    case 'docker': {
      // Asked for by name: a Docker that does not answer stops the start, said as such (auto falls back instead).
      const chosen = docker();
      await chosen.ping();
      return chosen;
    }
    case 'process':
      return processes();
    case 'auto': {
      const endpoint = dockerEndpoint(opts.docker?.socketPath);
      try {
        // Inside the try: a malformed DOCKER_HOST throws from the constructor, and that too means "no Docker".
        const candidate = docker();
        await candidate.ping(opts.pingTimeoutMs ?? limits.runtimePingTimeoutMsDefault);
        opts.logger.info({ endpoint }, 'using the Docker runtime');
        return candidate;
      } catch (err) {
        opts.logger.warn({ err, endpoint }, `Docker is not reachable at ${endpoint}; falling back to the process runtime`);
        return processes();
      }
    }
  }
}
