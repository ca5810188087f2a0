// `minkube manager` and `minkube worker`: start one long-running node in this process and stop it on SIGINT/SIGTERM.
// The runtimes are imported lazily, so every other command works in a checkout where they are missing or broken.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { baseUrlProblem, isPlainHttp } from '../client/http.js';
import { labelsProblem } from '../lib/constraints.js';
import { errnoReason } from '../lib/errno.js';
import { MinkubeError } from '../lib/errors.js';
import { nodeLaunchEnv, nodeLaunchFlags } from '../daemon/launch.js';
import { parseJoinToken } from '../security/tokens.js';
import { printError } from './output.js';

export interface RunningNode {
  stop(): Promise<void>;
  /** Resolves when the node stops by itself, with the error that stopped it (if the runtime offers it). */
  readonly stopped?: Promise<Error | null>;
  /** SIGHUP: re-read the config file and apply what can change live (the node logs what it did). */
  reload?(): Promise<unknown>;
}

interface WorkerModule {
  startWorker(opts: { configPath?: string; id: string; join?: { url: string; token: string; apiAddress: string; dataDir: string; runtime?: string; labels?: Record<string, string> }; dataDir?: string }): Promise<RunningNode>;
}

export interface WorkerFlags {
  config?: string;
  id?: string;
  join?: string;
  token?: string;
  /** --token-file: the join token read from a file (a --token is in `ps` for anyone on the host to read). */
  tokenFile?: string;
  apiAddress?: string;
  dataDir?: string;
  runtime?: string;
  /** --label k=v, repeated (with --join). */
  label?: string[];
}

const stopTimeoutMs = 10_000;
// The worker runtime arrives with the tasks issue; a computed specifier keeps the type checker from requiring it.
const workerModulePath = '../daemon/worker.js';

export interface ManagerFlags {
  config?: string;
  id: string;
  join?: string;
  token?: string;
  tokenFile?: string;
  forceNewCluster?: boolean;
  /** With forceNewCluster: go on though this manager's storage is damaged. */
  acceptDataLoss?: boolean;
  raftAddress?: string;
  apiAddress?: string;
  dataDir?: string;
}

/**
 * --token-file FILE: the join token from a file (whitespace around it dropped), so that it is not on the command line,
 * where `ps` shows it to anyone on the host. CONFIG_INVALID for both flags, an unreadable file or an empty one.
 */
async function withTokenFile<F extends { token?: string; tokenFile?: string }>(f: F): Promise<F> {
  if (f.tokenFile === undefined) return f;
  if (f.token !== undefined) throw new MinkubeError('CONFIG_INVALID', '--token and --token-file: give one of them');
  let text: string;
  try {
    text = await readFile(f.tokenFile, 'utf8');
  } catch (err) {
    throw new MinkubeError('CONFIG_INVALID', `--token-file ${f.tokenFile}: cannot read it (${errnoReason(err, { ENOENT: 'no such file' })})`, { cause: err });
  }
  const token = text.trim();
  if (token === '') throw new MinkubeError('CONFIG_INVALID', `--token-file ${f.tokenFile}: the file is empty`);
  // Said of the file (never echoing what it holds: part of it may be a secret), not as a --token the user never gave.
  if (parseJoinToken(token) === null) {
    throw new MinkubeError('CONFIG_INVALID', `--token-file ${f.tokenFile} holds no join token (expected MKTKN-1-<digest>-<secret>; make one with \`minkube token create --role worker|manager\`)`);
  }
  return { ...f, token };
}

/** --join: a manager's API as an http(s) URL (or host:port, taken as https); anything else is CONFIG_INVALID at once. */
function checkJoinUrl(join: string | undefined): void {
  const problem = join === undefined ? null : baseUrlProblem(join);
  if (problem !== null) {
    throw new MinkubeError('CONFIG_INVALID', `--join ${join!}: ${problem}; give a manager's API, http://HOST:PORT in an insecure cluster, https://HOST:PORT in a secure one`);
  }
}

export async function runManager(flags: ManagerFlags): Promise<number> {
  checkJoinUrl(flags.join);
  const f = await withTokenFile(flags);
  const selfFlags = [f.raftAddress, f.apiAddress, f.dataDir].filter((x) => x !== undefined).length;
  // A manager that joined from flags alone restarts from its data directory: its cluster.json names its addresses.
  const dataDirAlone = selfFlags === 1 && f.dataDir !== undefined && f.config === undefined && f.join === undefined;
  if (selfFlags !== 0 && selfFlags !== 3 && !dataDirAlone) throw new MinkubeError('CONFIG_INVALID', '--raft-address, --api-address and --data-dir go together');
  if (f.config === undefined && selfFlags === 0) throw new MinkubeError('CONFIG_INVALID', 'a manager needs --config, or --raft-address, --api-address and --data-dir');
  if (f.token !== undefined && f.join === undefined) throw new MinkubeError('CONFIG_INVALID', '--token goes with --join');
  if (f.acceptDataLoss === true && f.forceNewCluster !== true) throw new MinkubeError('CONFIG_INVALID', '--accept-data-loss goes with --force-new-cluster');
  if (f.join !== undefined && f.token === undefined && f.config === undefined && !isPlainHttp(f.join)) {
    // Without a config file there is no CA beside one to sign this manager's certificate: only a join token can.
    throw new MinkubeError('CONFIG_INVALID', `a manager joining a secure cluster (${f.join}) without --config needs --token (minkube token create --role manager)`);
  }
  return supervise(async () => {
    const mod = await loadRuntime('the manager runtime', () => import('../daemon/manager.js'), 'manager');
    return mod.startManager({
      id: f.id,
      ...(f.config === undefined ? {} : { configPath: f.config }),
      ...(f.join === undefined ? {} : { join: f.join }),
      ...(f.token === undefined ? {} : { joinToken: f.token }),
      ...(f.forceNewCluster === true ? { forceNewCluster: f.acceptDataLoss === true ? 'accept-data-loss' : true } : {}),
      ...(selfFlags === 3 ? { self: { raftAddress: f.raftAddress!, apiAddress: f.apiAddress!, dataDir: f.dataDir! } } : {}),
      ...(dataDirAlone ? { dataDir: f.dataDir! } : {}),
    });
  });
}

export async function runWorker(flags: WorkerFlags & { id: string }): Promise<number> {
  checkJoinUrl(flags.join);
  const f = await withTokenFile(flags);
  if (f.join !== undefined && (f.token === undefined || f.apiAddress === undefined || f.dataDir === undefined)) {
    throw new MinkubeError('CONFIG_INVALID', 'a worker joining with --join needs --token, --api-address and --data-dir');
  }
  if (f.token !== undefined && f.join === undefined) throw new MinkubeError('CONFIG_INVALID', '--token goes with --join');
  if (f.label !== undefined && f.join === undefined) throw new MinkubeError('CONFIG_INVALID', '--label goes with --join (a worker of a config file takes its labels from the file)');
  const labels = f.label === undefined ? undefined : parseLabels(f.label);
  return supervise(async () => {
    const mod = await loadRuntime('the worker runtime', () => import(workerModulePath) as Promise<WorkerModule>, 'worker');
    const join =
      f.join === undefined
        ? undefined
        : { url: f.join, token: f.token!, apiAddress: f.apiAddress!, dataDir: f.dataDir!, ...(f.runtime === undefined ? {} : { runtime: f.runtime }), ...(labels === undefined ? {} : { labels }) };
    return mod.startWorker({ id: f.id, ...(f.config === undefined ? {} : { configPath: f.config }), ...(join === undefined ? {} : { join }), ...(f.dataDir === undefined ? {} : { dataDir: f.dataDir }) });
  });
}

/** `--label k=v` flags as a labels map; a bad one is CONFIG_INVALID naming it. */
function parseLabels(flags: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of flags) {
    const i = f.indexOf('=');
    const [k, v] = i < 0 ? [f, ''] : [f.slice(0, i), f.slice(i + 1)];
    const problem = labelsProblem({ [k]: v });
    if (problem !== null || k === '') throw new MinkubeError('CONFIG_INVALID', `--label ${JSON.stringify(f)}: ${problem ?? 'expected k=v'}`);
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Whether the worker runtime is in this checkout (`up` starts workers only then). */
export function workerRuntimeExists(): boolean {
  const base = new URL(workerModulePath, import.meta.url);
  return existsSync(fileURLToPath(base).replace(/\.js$/, '.ts')) || existsSync(fileURLToPath(base));
}

/**
 * A daemon's module as bin/minkube.js offers it (its CommonJS bundle, compiled with V8's code cache: see runCached
 * there), or null when something else runs this file (the sources through tsx, a test).
 */
function bundled<T>(name: 'manager' | 'worker'): T | null {
  const load = (globalThis as Record<symbol, unknown>)[Symbol.for('minkube.loadDaemon')] as ((name: string) => T | null) | undefined;
  return load?.(name) ?? null;
}

async function loadRuntime<T>(what: string, load: () => Promise<T>, name?: 'manager' | 'worker'): Promise<T> {
  try {
    return (name === undefined ? null : bundled<T>(name)) ?? (await load());
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND') throw new MinkubeError('INTERNAL', `${what} cannot be loaded: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}

/**
 * Starts the node and waits for a signal, then stops it and answers the exit code. Signal handlers come first, so a
 * signal during a slow start stops the node once it is up instead of killing the process halfway. Ctrl-C under
 * `minkube up` delivers two signals (the terminal's SIGINT and up's SIGTERM), so only a third forces an exit.
 */
/**
 * A note when this node lacks what bin/minkube.js's first line gives it (`node bin/minkube.js` skips that line): it
 * runs, but a manager cannot compact its heap after bursts and its buffers can stay resident (README, Set up).
 */
function warnWithoutLaunchFlags(): void {
  const missing = [...nodeLaunchFlags.filter((flag) => !process.execArgv.includes(flag)), ...Object.keys(nodeLaunchEnv).filter((name) => process.env[name] === undefined)];
  if (missing.length === 0) return;
  const env = Object.entries(nodeLaunchEnv).map(([k, v]) => `${k}=${v}`).join(' ');
  process.stderr.write(`note: this node runs without ${missing.join(', ')}: run ./bin/minkube.js or npx minkube, which give them, or ${env} node ${nodeLaunchFlags.join(' ')} bin/minkube.js\n`);
}

async function supervise(start: () => Promise<RunningNode>): Promise<number> {
  warnWithoutLaunchFlags();
  let signals = 0;
  let requestStop = (): void => undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals >= 3) {
      process.stderr.write(`error: INTERNAL: ${sig} received ${signals} times; exiting without a clean stop\n`);
      process.exit(1);
    }
    if (signals === 1) requestStop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Without a handler SIGHUP ends the process; before the node is up there is nothing to reload yet.
  let started: RunningNode | null = null;
  process.on('SIGHUP', () => {
    started?.reload?.().catch((err: unknown) => printError(err));
  });
  const node = await start();
  started = node;
  return new Promise<number>((resolve) => {
    requestStop = () => {
      setTimeout(() => {
        printError(new MinkubeError('TIMEOUT', `the node did not stop within ${stopTimeoutMs} ms`));
        process.exit(1);
      }, stopTimeoutMs).unref();
      node.stop().then(
        () => resolve(0),
        (err: unknown) => {
          printError(err);
          resolve(1);
        },
      );
    };
    if (signals > 0) requestStop();
    void node.stopped?.then((err) => {
      if (signals > 0) return;
      if (err !== null) printError(err);
      resolve(err === null ? 0 : 1);
    });
  });
}
