// Hot reload (SIGHUP, POST /v1/admin/reload): re-reads the node's config file, applies the keys that can change while
// it runs, and names every other changed key as refused (it needs a restart) or ignored (this kind of node does not
// use it). Live keys are changed in place in the config object the node's parts were given, so every part that reads
// them per use (the rate limiter, the leader's loops) sees the new value at its next use; side effects (log level,
// TLS certificate) go through appliers. Each reload asked for is a line of this manager's audit log.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { RateLimitOptions } from '../api/rate-limit.js';
import type { ReloadCaller, ReloadReport } from '../api/routes/admin.js';
import { configInvalid, loadClusterConfig, timingProblems, type ClusterConfig } from '../config/cluster.js';
import type { AuditService } from '../contracts/services.js';
import { MinkubeError } from '../lib/errors.js';
import { targetList } from '../manager/audit.js';
import { readApiCaFile } from '../security/pki-files.js';

export type NodeKind = 'manager' | 'worker';

/** Why each key that cannot change live needs a restart, by its first path segment(s); the first match wins. */
const restartReasons: readonly [string, string][] = [
  ['insecure', 'TLS and tokens are chosen when a node starts: restart every node'],
  ['managers', "the cluster's members change with `minkube member add|remove`; a node's own addresses and data directory need a restart"],
  ['workers', "a worker's address, runtime and data directory are read when it starts: restart it"],
  ['raft', 'Raft timings and snapshot thresholds are read when a manager starts: restart it'],
  ['api.bodyLimitBytes', "the HTTP server's limits are set when it starts: restart the node"],
  ['api.requestTimeoutMs', "the HTTP server's limits are set when it starts: restart the node"],
  ['tasks.workerHeartbeatIntervalMs', 'the heartbeat timers are set when a node starts: restart it'],
  ['tasks.reconcileIntervalMs', 'the reconcile timers are set when a node starts: restart it'],
  ['tls', 'read when a node starts: restart it'],
  ['backup', 'the backup schedule is set when a manager starts: restart it'],
  ['metrics', 'the metrics routes are set up when a node starts: restart it'],
];

/** Keys each kind of node applies live (a key matches a prefix when it is the prefix or below it). */
const liveKeys: Readonly<Record<NodeKind, readonly string[]>> = {
  manager: [
    'log.level', 'api.rateLimits', 'api.rateLimitAnonymous', 'api.tlsCertFile', 'api.tlsKeyFile', 'api.tlsCaFile',
    'tasks.workerTtlMs', 'tasks.lostGraceMs', 'tasks.backoffBaseMs', 'tasks.backoffCapMs', 'tasks.assignTimeoutMs', 'tasks.stopTimeoutMs',
    'taskRetention',
  ],
  worker: ['log.level', 'api.tlsCaFile'],
};

/** Keys a kind of node does not read at all: a change is neither applied nor refused there. */
const unusedKeys: Readonly<Record<NodeKind, readonly string[]>> = {
  manager: ['workers'],
  worker: [
    'raft', 'api.rateLimits', 'api.rateLimitAnonymous', 'api.tlsCertFile', 'api.tlsKeyFile', 'tasks.workerTtlMs', 'tasks.lostGraceMs',
    'tasks.backoffBaseMs', 'tasks.backoffCapMs', 'tasks.assignTimeoutMs', 'taskRetention', 'backup', 'tls',
  ],
};

/** The key as the file spells it (the parsed config keeps tasks.retention as taskRetention). */
const fileKeyOf = (key: string): string => (under(key, 'taskRetention') ? `tasks.retention${key.slice('taskRetention'.length)}` : key);

const under = (key: string, prefix: string): boolean => key === prefix || key.startsWith(`${prefix}.`);

export type KeyClass = { kind: 'live' } | { kind: 'ignored' } | { kind: 'restart'; reason: string };

/** What a changed key (a dotted path, as diffConfigs gives it) is to this kind of node. */
export function classifyKey(node: NodeKind, key: string): KeyClass {
  if (liveKeys[node].some((p) => under(key, p))) return { kind: 'live' };
  if (unusedKeys[node].some((p) => under(key, p))) return { kind: 'ignored' };
  const reason = restartReasons.find(([p]) => under(key, p))?.[1] ?? 'read only when the node starts: restart it';
  return { kind: 'restart', reason };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Compared and replaced whole: a rate limit (a role's, the anonymous one), so that a default's object, which several
 * configs share, is never changed in place.
 */
const wholeKeys = (path: string): boolean => path === 'api.rateLimitAnonymous' || /^api\.rateLimits\.[^.]+$/.test(path);

/** The dotted paths of every leaf that differs (arrays compare whole: `managers`, `workers`). */
export function diffConfigs(a: unknown, b: unknown, path = ''): string[] {
  if (isPlainObject(a) && isPlainObject(b) && !wholeKeys(path)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffConfigs(a[k], b[k], path === '' ? k : `${path}.${k}`));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

function getIn(o: unknown, key: string): unknown {
  let node = o;
  for (const part of key.split('.')) node = isPlainObject(node) ? node[part] : undefined;
  return node;
}

/** Sets (or, for undefined, deletes) a dotted path in place, making the objects on the way. */
function setIn(o: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = o;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  const last = parts.at(-1)!;
  if (value === undefined) delete node[last];
  else node[last] = typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

export interface ReloaderOptions {
  node: NodeKind;
  id: string;
  /** null: started without a config file (a manager added with flags only): nothing to re-read. */
  configPath: string | null;
  /** The config object the node's parts were given: live keys are changed in it, in place. */
  running: ClusterConfig;
  logger: Logger;
  /** The loggers whose level log.level sets (their children without a level of their own follow). */
  loggers: readonly Logger[];
  /** The managers' operator certificate (api.tlsCertFile/tlsKeyFile), put in the server's secure context. */
  applyApiTls?: (cert: string, key: string) => void;
  /** Back to the node's own certificate when the operator's is removed from the file. */
  restoreOwnTls?: () => void;
  /** Where each reload asked for is recorded (a manager's audit log); none for a worker. */
  audit?: Pick<AuditService, 'served'>;
  /** The CA(s) of api.tlsCaFile (undefined: none), for the node's HTTP client to trust beside the cluster CA. */
  applyApiCa?: (caPem: string | undefined) => void;
}

/** A reload asked for by SIGHUP. */
export const signalCaller: ReloadCaller = { principal: null, route: 'SIGHUP', requestId: null };

/**
 * The rate limiter's options over the running config: read at every request, so a reload's new limits (replaced in
 * the config object) apply to the next request. Buckets keep their tokens; a lowered burst caps them at once.
 */
export function liveRateLimits(config: ClusterConfig): RateLimitOptions {
  return {
    get roles() {
      return config.api.rateLimits;
    },
    get anonymous() {
      return config.api.rateLimitAnonymous;
    },
  };
}

/** The level a node logs at: the file's log.level, else MINKUBE_LOG_LEVEL, else info. */
export function logLevelOf(config: ClusterConfig): string {
  return config.log.level ?? process.env.MINKUBE_LOG_LEVEL ?? 'info';
}

export class Reloader {
  private certFingerprint: string | null = null;
  private apiCaFingerprint: string | null = null;
  private running: Promise<ReloadReport> | null = null;

  constructor(private readonly o: ReloaderOptions) {}

  /** The operator certificate as first loaded, so that the first reload can tell whether it changed. */
  noteCertificate(certPem: string): void {
    this.certFingerprint = fingerprintOf(certPem);
  }

  /** The API CA file's certificates as first loaded (api.tlsCaFile), so that the first reload can tell whether they changed. */
  noteApiCa(caPem: string): void {
    this.apiCaFingerprint = fingerprintsOf(caPem);
  }

  /**
   * One reload at a time: a second signal during one shares its answer (and has an audit line of its own). A file
   * that does not load changes nothing. Without a caller, the signal asked.
   */
  async reload(by: ReloadCaller = signalCaller): Promise<ReloadReport> {
    this.running ??= this.reloadOnce()
      .catch((err: unknown) => {
        this.o.logger.warn({ err }, `config reload failed; nothing was changed: ${(err as Error).message}`);
        throw err;
      })
      .finally(() => {
        this.running = null;
      });
    try {
      const report = await this.running;
      // A reload that changed nothing because every changed key was refused is no success.
      const outcome = report.refused.length > 0 && report.applied.length === 0 ? 'RELOAD_REFUSED' : 'ok';
      this.audited(by, targetList(report.applied.map((a) => a.key)) ?? this.o.configPath, outcome);
      return report;
    } catch (err) {
      this.audited(by, this.o.configPath, err instanceof MinkubeError ? err.code : 'INTERNAL');
      throw err;
    }
  }

  /** target: the keys applied, else the config file read (null: none). */
  private audited(by: ReloadCaller, target: string | null, outcome: string): void {
    this.o.audit?.served({ principal: by.principal, route: by.route, target, outcome, requestId: by.requestId });
  }

  private async reloadOnce(): Promise<ReloadReport> {
    const { node, id, configPath, logger } = this.o;
    if (configPath === null) throw new MinkubeError('RELOAD_REFUSED', `${node} ${id} was started without a config file: there is nothing to re-read`);
    const next = await loadClusterConfig(configPath);
    const running = this.o.running as unknown as Record<string, unknown>;
    const changed = diffConfigs(running, next);
    refuseUnsafeMix(node, configPath, this.o.running, next, changed);
    const report: ReloadReport = { node: id, applied: [], refused: [], ignored: [] };
    // The files' paths the node runs with: put back when their files are refused, so the next reload compares with them.
    const { tlsCertFile, tlsKeyFile, tlsCaFile } = this.o.running.api;
    for (const key of changed) {
      const c = classifyKey(node, key);
      const from = getIn(running, key);
      const to = getIn(next, key);
      const named = fileKeyOf(key);
      if (c.kind === 'ignored') report.ignored.push(named);
      else if (c.kind === 'restart') report.refused.push({ key: named, reason: c.reason });
      else if (key === 'api.tlsCertFile' || key === 'api.tlsKeyFile' || key === 'api.tlsCaFile') setIn(running, key, to); // applied below, with the files
      else {
        setIn(running, key, to);
        if (key === 'log.level') for (const l of this.o.loggers) l.level = logLevelOf(this.o.running);
        report.applied.push({ key: named, from: from ?? null, to: to ?? null });
      }
    }
    if (node === 'manager' && !(await this.reloadTls(report, changed.includes('api.tlsKeyFile') ? { from: tlsKeyFile ?? null, to: this.o.running.api.tlsKeyFile ?? null } : null))) {
      setIn(running, 'api.tlsCertFile', tlsCertFile);
      setIn(running, 'api.tlsKeyFile', tlsKeyFile);
    }
    if (!(await this.reloadApiCa(report, changed.includes('api.tlsCaFile')))) setIn(running, 'api.tlsCaFile', tlsCaFile);
    if (report.refused.length > 0) {
      logger.warn({ refused: report.refused, applied: report.applied, ignored: report.ignored }, `config reload: ${report.refused.length} change(s) need a restart: ${report.refused.map((r) => r.key).join(', ')}`);
    } else {
      logger.info({ applied: report.applied, ignored: report.ignored }, `config reload: ${report.applied.length} change(s) applied`);
    }
    return report;
  }

  /**
   * Re-reads the operator certificate (changed paths, or the same files rotated in place) into the server. The
   * certificate's entry shows fingerprints; a changed key path (`keyPath`) has an entry of its own, with the paths.
   * False when the files were refused (the server keeps the current pair).
   */
  private async reloadTls(report: ReloadReport, keyPath: { from: string | null; to: string | null } | null): Promise<boolean> {
    const { tlsCertFile, tlsKeyFile } = this.o.running.api;
    const keyEntry = keyPath === null ? [] : [{ key: 'api.tlsKeyFile', ...keyPath }];
    if (tlsCertFile === undefined || tlsKeyFile === undefined) {
      if (this.certFingerprint !== null) {
        this.o.restoreOwnTls?.();
        report.applied.push({ key: 'api.tlsCertFile', from: this.certFingerprint, to: null }, ...keyEntry);
        this.certFingerprint = null;
      }
      return true;
    }
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(tlsCertFile, 'utf8'), readFile(tlsKeyFile, 'utf8')]);
      const fingerprint = fingerprintOf(cert);
      if (fingerprint === this.certFingerprint && keyPath === null) return true;
      this.o.applyApiTls?.(cert, key);
      if (fingerprint !== this.certFingerprint) report.applied.push({ key: 'api.tlsCertFile', from: this.certFingerprint, to: fingerprint });
      report.applied.push(...keyEntry);
      this.certFingerprint = fingerprint;
      return true;
    } catch (err) {
      const reason = `the certificate or key cannot be used (${(err as Error).message}); the server keeps the current one`;
      report.refused.push({ key: 'api.tlsCertFile', reason }, ...keyEntry.map((e) => ({ key: e.key, reason })));
      return false;
    }
  }

  /**
   * Re-reads api.tlsCaFile (a changed path, or the same file rotated in place) into the node's HTTP client. Its entry
   * shows the certificates' fingerprints; a file that does not load is refused and the client keeps what it trusts.
   * A node without TLS (no applier) has no use for it. False when the file was refused.
   */
  private async reloadApiCa(report: ReloadReport, pathChanged: boolean): Promise<boolean> {
    if (this.o.applyApiCa === undefined) {
      if (pathChanged) report.ignored.push('api.tlsCaFile');
      return true;
    }
    const path = this.o.running.api.tlsCaFile;
    if (path === undefined) {
      if (this.apiCaFingerprint === null) return true;
      this.o.applyApiCa(undefined);
      report.applied.push({ key: 'api.tlsCaFile', from: this.apiCaFingerprint, to: null });
      this.apiCaFingerprint = null;
      return true;
    }
    try {
      const caPem = await readApiCaFile(path);
      const fingerprints = fingerprintsOf(caPem);
      if (fingerprints === this.apiCaFingerprint) return true;
      this.o.applyApiCa(caPem);
      report.applied.push({ key: 'api.tlsCaFile', from: this.apiCaFingerprint, to: fingerprints });
      this.apiCaFingerprint = fingerprints;
      return true;
    } catch (err) {
      report.refused.push({ key: 'api.tlsCaFile', reason: `${(err as Error).message}; the node keeps trusting what it trusted` });
      return false;
    }
  }
}

/**
 * The file passed its own checks, but a node applies only its live keys: the timing rules must also hold between them
 * and the running values of the keys that wait for a restart (a new workerTtlMs against the old heartbeat interval).
 */
function refuseUnsafeMix(node: NodeKind, configPath: string, running: ClusterConfig, next: ClusterConfig, changed: readonly string[]): void {
  const mixed = structuredClone(running) as unknown as Record<string, unknown>;
  for (const key of changed) if (classifyKey(node, key).kind === 'live') setIn(mixed, key, getIn(next, key));
  const problems = timingProblems(mixed as unknown as ClusterConfig);
  if (problems.length === 0) return;
  throw configInvalid(`${configPath}, applied live to this ${node} (keys that need a restart keep their running values),`, problems);
}

/** 'sha256:AB:CD:...' of a PEM certificate. */
function fingerprintOf(certPem: string): string {
  return `sha256:${new X509Certificate(certPem).fingerprint256}`;
}

/** Each certificate's fingerprint, comma-separated, of a PEM file of several (readApiCaFile's). */
function fingerprintsOf(pem: string): string {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map(fingerprintOf).join(', ');
}
