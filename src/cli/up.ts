// `minkube up`: a whole local cluster from one config file, one child process per manager (and worker), their logs
// interleaved with an id prefix and made readable, the current leader announced, and everything stopped on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ClusterView } from '../contracts/services.js';
import { ApiClient } from '../client/api-client.js';
import { credentialsPath, insecureCredentials, writeCredentials } from '../client/credentials.js';
import { HttpClient } from '../client/http.js';
import { loadClusterConfig, type ClusterConfig } from '../config/cluster.js';
import { ensureAdminToken } from '../daemon/security.js';
import { adminTokenPending, ensureLocalPki, readApiCaFile } from '../security/pki-files.js';
import { ensureDataDir } from '../lib/data-dir.js';
import { listenFailed, MinkubeError } from '../lib/errors.js';
import { tryListen } from '../lib/address.js';
import { cliTls } from './connection.js';
import { workerRuntimeExists } from './daemons.js';
import { asMinkubeError, printError } from './output.js';
import { LeaderTracker, leaderOfStatuses, prettyLogLine } from './pretty.js';
import { nodeLaunchEnv, nodeLaunchFlags } from '../daemon/launch.js';

const minkubeBin = fileURLToPath(new URL('../../bin/minkube.js', import.meta.url));
const pollIntervalMs = 250;
const pollTimeoutMs = 500;
/** No leader is announced only once none was seen this long (a leader election takes well under it). */
const leaderLostAfterMs = 3000;
const killAfterMs = 5000;
const prefixColours = ['36', '35', '33', '34', '32', '91', '96', '95'];

interface Child {
  readonly id: string;
  readonly kind: 'manager' | 'worker';
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  running: boolean;
}

export interface UpOptions {
  configPath: string;
  colour?: boolean;
}

/** Runs until SIGINT/SIGTERM (answers 0) or until every child has exited by itself (answers 1). */
export async function runUp(options: UpOptions): Promise<number> {
  const configPath = resolve(options.configPath);
  const config = await loadClusterConfig(configPath);
  const colour = options.colour ?? (process.stdout.isTTY && process.env.NO_COLOR === undefined);
  const withWorkers = config.workers.length > 0 && workerRuntimeExists();
  const unusable = await unusableAddresses(config, withWorkers);
  if (unusable.problems.length > 0) {
    // Nothing started. An address in use: most often this very cluster is running already (another `minkube up`).
    const hint = unusable.taken ? '; is it running already? (minkube status)' : '';
    throw new MinkubeError('LISTEN_FAILED', `cannot start the cluster of ${configPath}${hint}\n${unusable.problems.map((p) => `  - ${p}`).join('\n')}`);
  }
  await checkDataDirs(config, withWorkers, configPath);
  const access = await prepareAccess(config);
  printEndpoints(config, configPath, withWorkers, access);

  const nodes = [...config.managers.map((m) => ({ id: m.id, kind: 'manager' as const })), ...(withWorkers ? config.workers.map((w) => ({ id: w.id, kind: 'worker' as const })) : [])];
  const width = Math.max(...nodes.map((n) => n.id.length));
  const children = nodes.map((n, i) => startChild(n.id, n.kind, configPath, prefixFor(n.id, width, colour ? prefixColours[i % prefixColours.length] : undefined), colour));

  const polling = { active: true };
  void watchLeader(config, polling, access);
  const code = await untilDone(children);
  polling.active = false;
  return code;
}

/** Every address of the nodes up would start that this host does not let a node listen on now, said as LISTEN_FAILED says it. */
async function unusableAddresses(config: ClusterConfig, withWorkers: boolean): Promise<{ problems: string[]; taken: boolean }> {
  const wanted = [
    ...config.managers.flatMap((m) => [
      { id: m.id, key: 'raftAddress', address: m.raftAddress },
      { id: m.id, key: 'apiAddress', address: m.apiAddress },
      ...(m.dnsAddress === undefined ? [] : [{ id: m.id, key: 'dnsAddress', address: m.dnsAddress }]),
    ]),
    ...(withWorkers ? config.workers.map((w) => ({ id: w.id, key: 'apiAddress', address: w.apiAddress })) : []),
  ];
  const problems: string[] = [];
  let taken = false;
  for (const w of wanted) {
    const err = await tryListen(w.address);
    if (err === null) continue;
    taken ||= (err as Partial<NodeJS.ErrnoException>).code === 'EADDRINUSE';
    problems.push(listenFailed(err, w.address, `${w.id}'s ${w.key}`).message);
  }
  return { problems, taken };
}

/**
 * Every data directory up's nodes (or, in a secure cluster, up itself: their certificates go in DIR/tls) will use,
 * made as `minkube manager` and `worker` make theirs, before the CA, the certificates or any node: a path that cannot
 * be one is CONFIG_INVALID, each said as the node itself would say it, instead of an INTERNAL from the first file
 * written under it.
 */
async function checkDataDirs(config: ClusterConfig, withWorkers: boolean, configPath: string): Promise<void> {
  const nodes = [
    ...config.managers.map((m) => ({ id: m.id, dataDir: m.dataDir })),
    ...(withWorkers || !config.insecure ? config.workers.map((w) => ({ id: w.id, dataDir: w.dataDir ?? resolve('data', w.id) })) : []),
  ];
  const problems: string[] = [];
  for (const n of nodes) {
    const problem = await ensureDataDir(n.dataDir).then(
      () => null,
      (e: unknown) => asMinkubeError(e).message,
    );
    if (problem !== null) problems.push(`${n.id}: ${problem}`);
  }
  if (problems.length > 0) {
    throw new MinkubeError('CONFIG_INVALID', `cannot start the cluster of ${configPath}\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** How up (and, through the credentials file, every later command) reaches the cluster. */
interface Access {
  scheme: 'http' | 'https';
  http: HttpClient;
  /** Where the credentials went (an insecure cluster's name only its managers). */
  credentialsPath: string;
  /** A closed cluster's: the folder's admin token, which `http` sends, and a client that sends none (open routes). */
  admin?: { clusterDir: string; token: string; open: HttpClient };
}

/**
 * A closed cluster needs a CA, a certificate per node and an admin token: made here before any node starts (the
 * nodes would make them too, but one maker is simpler to watch), and handed to the CLI in the credentials file.
 */
async function prepareAccess(config: ClusterConfig): Promise<Access> {
  if (config.insecure) {
    // The file still names the managers (http, no CA, no token), so later commands reach this cluster with no flags,
    // never the one a file from an earlier secure cluster names.
    const path = credentialsPath();
    await writeCredentials(insecureCredentials(config.managers.map((m) => `http://${m.apiAddress}`)), path);
    return { scheme: 'http', http: new HttpClient(), credentialsPath: path };
  }
  const nodes = [
    ...config.managers.map((m) => ({ id: m.id, role: 'manager' as const, dataDir: m.dataDir, addresses: [m.raftAddress, m.apiAddress] })),
    ...config.workers.map((w) => ({ id: w.id, role: 'worker' as const, dataDir: w.dataDir ?? resolve('data', w.id), addresses: [w.apiAddress] })),
  ];
  // Read first: a file that cannot be read stops `up` before it makes anything (CONFIG_INVALID naming the key).
  const apiCa = config.api.tlsCaFile === undefined ? undefined : await readApiCaFile(config.api.tlsCaFile);
  const { clusterId, caCertPem } = await ensureLocalPki({ clusterDir: config.clusterDir, nodes, certLifetimeS: config.tls.certLifetimeS });
  const token = await ensureAdminToken(config.clusterDir);
  const path = credentialsPath();
  await writeCredentials({ clusterId, apis: config.managers.map((m) => `https://${m.apiAddress}`), ca: caCertPem, token, ...(apiCa === undefined ? {} : { apiCa }) }, path);
  const trust = { tls: cliTls(caCertPem, clusterId), ...(apiCa === undefined ? {} : { apiCaPem: apiCa }) };
  return { scheme: 'https', http: new HttpClient({ ...trust, token }), credentialsPath: path, admin: { clusterDir: config.clusterDir, token, open: new HttpClient(trust) } };
}

function printEndpoints(config: ClusterConfig, configPath: string, withWorkers: boolean, access: Access): void {
  const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
  const lines = [`minkube up: ${count(config.managers.length, 'manager')}${withWorkers ? ` and ${count(config.workers.length, 'worker')}` : ''} from ${configPath}`];
  for (const m of config.managers) lines.push(`  ${m.id}  api ${access.scheme}://${m.apiAddress}  raft ${m.raftAddress}  data ${m.dataDir}`);
  for (const w of config.workers) lines.push(`  ${w.id}  api ${access.scheme}://${w.apiAddress}  runtime ${w.runtime}${withWorkers ? '' : '  (not started: no worker runtime in this checkout)'}`);
  if (access.scheme === 'http') {
    lines.push('INSECURE (insecure: true in the config): no TLS, no tokens; anyone who reaches these ports can run commands.');
    lines.push(`The API addresses are in ${access.credentialsPath}: minkube commands use it from any folder.`);
  }
  // Said before any manager runs, so up cannot know yet whether the token is live: watchLeader warns if it is not.
  else lines.push(`TLS on; the CA, the admin token and the API addresses are in ${access.credentialsPath}: minkube commands use it from any folder while that token is not revoked.`);
  lines.push('Ctrl-C stops them all (tasks keep running until stopped: a worker re-adopts its tasks when it starts again).');
  process.stdout.write(`${lines.join('\n')}\n`);
}

function prefixFor(id: string, width: number, colourCode: string | undefined): string {
  const label = `${id.padEnd(width)} |`;
  return colourCode === undefined ? label : `\x1b[${colourCode}m${label}\x1b[0m`;
}

function startChild(id: string, kind: 'manager' | 'worker', configPath: string, prefix: string, colour: boolean): Child {
  const proc = spawn(process.execPath, [...nodeLaunchFlags, minkubeBin, kind, '--config', configPath, '--id', id], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...nodeLaunchEnv, ...process.env } });
  const pipe = (stream: NodeJS.ReadableStream, sink: NodeJS.WriteStream): void => {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => sink.write(`${prefix} ${prettyLogLine(line, { colour })}\n`));
  };
  pipe(proc.stdout!, process.stdout);
  pipe(proc.stderr!, process.stderr);
  const child: Child = {
    id,
    kind,
    proc,
    running: true,
    exited: new Promise<void>((done) => {
      proc.once('error', (err) => {
        process.stderr.write(`${prefix} cannot start: ${err.message}\n`);
        child.running = false;
        done();
      });
      proc.once('exit', (code, signal) => {
        child.running = false;
        done();
        if (code !== 0 || signal !== null) process.stderr.write(`${prefix} exited (${signal ?? `code ${code}`})\n`);
      });
    }),
  };
  return child;
}

/** Resolves with the exit code: 0 after a signal stopped every child, 1 if they all exited by themselves. */
function untilDone(children: Child[]): Promise<number> {
  return new Promise<number>((done) => {
    let stopping = false;
    const onSignal = (): void => {
      if (stopping) {
        // A second Ctrl-C: no more waiting.
        for (const c of children) if (c.running) c.proc.kill('SIGKILL');
        return;
      }
      stopping = true;
      process.stdout.write(`stopping ${children.filter((c) => c.running).length} processes...\n`);
      void stopAll(children).then(() => done(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // A closed terminal: stop as for Ctrl-C (each node takes SIGHUP as a reload, so it would outlive the terminal).
    process.on('SIGHUP', onSignal);
    void Promise.all(children.map((c) => c.exited)).then(() => {
      if (stopping) return;
      printError(new MinkubeError('CLUSTER_EXITED', 'every node of the cluster has exited: see their errors above'));
      done(1);
    });
  });
}

async function stopAll(children: Child[]): Promise<void> {
  for (const c of children) if (c.running) c.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const c of children) {
      if (!c.running) continue;
      process.stderr.write(`${c.id} did not stop within ${killAfterMs} ms: SIGKILL\n`);
      c.proc.kill('SIGKILL');
    }
  }, killAfterMs);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(timer);
  process.stdout.write('stopped\n');
}

/**
 * Announces the leader as it changes, from every manager's GET /v1/cluster with the folder's admin token; once the
 * managers refuse that token (revoked: docs/security.md advises it after making another admin token) it says so, and
 * goes on from GET /status, which needs no token, rather than be refused (and audited) four times a second.
 */
async function watchLeader(config: ClusterConfig, polling: { active: boolean }, access: Access): Promise<void> {
  const clients = config.managers.map((m) => new ApiClient(`${access.scheme}://${m.apiAddress}`, { timeoutMs: pollTimeoutMs, http: access.http }));
  const tracker = new LeaderTracker(3, access.scheme, leaderLostAfterMs);
  while (polling.active) {
    const { answers, revokedBy } = await pollClusterViews(clients, access.admin);
    if (!polling.active) return;
    if (access.admin !== undefined && revokedBy !== null) {
      process.stderr.write(`${revokedTokenWarning(config, access, clients[revokedBy]!.baseUrl)}\n`);
      return watchLeaderOpenly(config, polling, access.scheme, access.admin.open, tracker);
    }
    const message = tracker.observe(answers.map((a) => a.view));
    if (message !== null) process.stdout.write(`${message}\n`);
    await new Promise((r) => setTimeout(r, pollIntervalMs));
  }
}

/** One manager's answer to a poll: its view, or whether it refused the token (401). */
export interface PollAnswer {
  readonly view: ClusterView | null;
  readonly refused: boolean;
}

/**
 * One poll round: every manager's GET /v1/cluster with the folder's admin token, and which of them (an index into
 * `clients`) shows that the token was revoked, or null. Revoked: one answered 401, none let it in, and the token was
 * not a new CA's token still waiting for a leader to add it (admin.token.pending) when the round's requests left.
 * The mark is read before them, not after: the leader clears it once the token's entry is committed, which can be while
 * a request is on its way, and a manager asked before that commit rightly does not know the token (401). A mark gone
 * before the requests leave means the entry was committed before any of them, and a manager answers 401 for a token it
 * does not know only after applying everything committed when the request reached it (a ReadIndex barrier), so a 401
 * then means the token was revoked.
 */
export async function pollClusterViews(
  clients: readonly Pick<ApiClient, 'cluster'>[],
  admin: { clusterDir: string; token: string } | undefined,
): Promise<{ answers: PollAnswer[]; revokedBy: number | null }> {
  const pendingBefore = admin === undefined ? true : await adminTokenPending(admin.clusterDir, admin.token);
  const answers = await Promise.all(clients.map((c) => c.cluster().then((view): PollAnswer => ({ view, refused: false }), (err: unknown): PollAnswer => ({ view: null, refused: isUnauthenticated(err) }))));
  const refusedBy = answers.findIndex((a) => a.refused);
  const revoked = !pendingBefore && refusedBy >= 0 && !answers.some((a) => a.view !== null);
  return { answers, revokedBy: revoked ? refusedBy : null };
}

function isUnauthenticated(err: unknown): boolean {
  return err instanceof MinkubeError && err.code === 'UNAUTHENTICATED';
}

function revokedTokenWarning(config: ClusterConfig, access: Access, refusedBy: string): string {
  return [
    `warning: ${refusedBy} refuses the admin token of ${join(config.clusterDir, 'admin.token')} (401 UNAUTHENTICATED): it was revoked (it is the token named bootstrap, or bootstrap-<accessor> after a CA rotation).`,
    `  ${access.credentialsPath} holds that token, so minkube commands that use it fail: give them a live token,`,
    '  MINKUBE_TOKEN=<an admin token> minkube ..., or a credentials file with one (MINKUBE_CONFIG).',
    '  up follows the leader through GET /status now, which needs no token (it names no term).',
  ].join('\n');
}

/** The leader as the managers' GET /status names it: no token, never rate limited or audited. */
async function watchLeaderOpenly(config: ClusterConfig, polling: { active: boolean }, scheme: 'http' | 'https', open: HttpClient, tracker: LeaderTracker): Promise<void> {
  const clients = config.managers.map((m) => new ApiClient(`${scheme}://${m.apiAddress}`, { timeoutMs: pollTimeoutMs, http: open }));
  const apiUrls = new Map(config.managers.map((m) => [m.id, `${scheme}://${m.apiAddress}`]));
  while (polling.active) {
    const leaders = await Promise.all(clients.map((c) => c.request<{ leader: string | null }>('GET', '/status?format=json').then((s) => s.leader, () => null)));
    if (!polling.active) return;
    const message = tracker.observeLeader(leaderOfStatuses(leaders, apiUrls));
    if (message !== null) process.stdout.write(`${message}\n`);
    await new Promise((r) => setTimeout(r, pollIntervalMs));
  }
}
