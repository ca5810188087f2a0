// The one error registry: every failure Minkube reports has a stable code, an HTTP status and a default message.
// The API answers { "error": { "code", "message" } } for every failure; the CLI prints the same and exits non-zero.
import { errnoReason } from './errno.js';

export const errorRegistry = {
  // 400: the request itself is wrong
  INVALID_BODY: { status: 400, message: 'the request body is invalid' },
  INVALID_JSON: { status: 400, message: 'the request body is not valid JSON' },
  INVALID_KEY: { status: 400, message: 'the key is invalid' },
  INVALID_PARAM: { status: 400, message: 'a query or path parameter is invalid' },
  INVALID_TASK_SPEC: { status: 400, message: 'the task spec is invalid' },
  INVALID_MEMBER: { status: 400, message: 'the member is invalid' },
  /** A proposed command that does not decode, or (at apply) an entry a peer put in the log before proposals were checked. */
  INVALID_COMMAND: { status: 400, message: 'the command is invalid; it was not applied' },
  /** Node's HTTP parser refused the request (bad request line or headers). */
  BAD_REQUEST: { status: 400, message: 'the request could not be parsed' },
  /** Plain HTTP sent to a port that speaks HTTPS only (a secure cluster's): the connection is closed after it. */
  HTTPS_REQUIRED: { status: 400, message: 'this port speaks HTTPS only' },
  REQUEST_TIMEOUT: { status: 408, message: 'the request was not received in time' },
  HEADERS_TOO_LARGE: { status: 431, message: 'the request headers are too large or too many' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'the content type is not supported' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  // 401 / 403: who is calling, and what they may do
  UNAUTHENTICATED: { status: 401, message: 'the request carries no valid credentials' },
  FORBIDDEN: { status: 403, message: 'the caller is not permitted to do this' },
  /** A submission past its namespace's quota (tasksMax, cpus or memoryMb); the message names the limit. */
  QUOTA_EXCEEDED: { status: 403, message: 'the namespace quota would be exceeded' },
  // 404
  NOT_FOUND: { status: 404, message: 'no such route' },
  KV_KEY_NOT_FOUND: { status: 404, message: 'no such key' },
  TASK_NOT_FOUND: { status: 404, message: 'no such task' },
  WORKER_NOT_FOUND: { status: 404, message: 'no such worker' },
  MEMBER_NOT_FOUND: { status: 404, message: 'no such member' },
  TOKEN_NOT_FOUND: { status: 404, message: 'no such token' },
  SERVICE_NOT_FOUND: { status: 404, message: 'no such service' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  /** The task's record or its container was removed by retention (tasks.retention, workers.containerRetentionS). */
  TASK_LOGS_GONE: { status: 410, message: "the task's container was removed; its logs are gone" },
  // 409: conflicts with the current state
  KV_VERSION_MISMATCH: { status: 409, message: 'the key is not at the expected version' },
  TASK_STALE_FENCING_TOKEN: { status: 409, message: 'the assignment is older than one already seen for this task' },
  TASK_ALREADY_FINAL: { status: 409, message: 'the task has already ended' },
  MEMBERSHIP_CHANGE_REFUSED: { status: 409, message: 'the membership change was refused' },
  LEADER_TRANSFER_FAILED: { status: 409, message: 'leadership could not be transferred' },
  JOIN_REFUSED: { status: 409, message: 'the node may not join with that id' },
  /**
   * A command newer than a member of the cluster understands (its command version, GET /health): the leader proposes
   * nothing that member would stop on. The message names the members to upgrade.
   */
  UPGRADE_REQUIRED: { status: 409, message: 'a manager of the cluster is too old for this command; upgrade it first' },
  /** A worker registering at the address of another worker that is not down, or at a manager's. */
  WORKER_ADDRESS_IN_USE: { status: 409, message: 'another worker or a manager uses that address' },
  /**
   * A heartbeat or assignment fetch from a worker instance other than the one its id is registered by now: another
   * process registered that id since (the newest registration holds it). The caller must stop and exit.
   */
  WORKER_REPLACED: { status: 409, message: 'another instance of this worker id registered since; this one must stop' },
  /** Removing a worker's record (worker rm) that is not down, or down with tasks still placed on it. */
  WORKER_NOT_DOWN: { status: 409, message: 'only a down worker with no task placed on it can be removed' },
  TOKEN_EXISTS: { status: 409, message: 'a token with this name or accessor already exists' },
  TOKEN_LIMIT_REACHED: { status: 409, message: 'the cluster holds as many tokens as it may; revoke some first' },
  /** A reload with nothing to re-read (a node started without a config file). */
  RELOAD_REFUSED: { status: 409, message: 'the configuration cannot be reloaded' },
  SERVICE_EXISTS: { status: 409, message: 'a service with this name exists' },
  /** No previous version is kept (a service never updated, or its previous version was dropped). */
  SERVICE_ROLLBACK_REFUSED: { status: 409, message: 'the service has no previous version to roll back to' },
  SERVICE_VERSION_MISMATCH: { status: 409, message: 'the service is not at the expected version' },
  // 422: understood, but contradicts an earlier request
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'the Idempotency-Key was used for a different request' },
  // 429 / 503 / 504: try again
  RATE_LIMITED: { status: 429, message: 'too many requests from this caller; retry later' },
  QUEUE_FULL: { status: 429, message: 'too many requests are in flight; retry later' },
  /** A worker's answer to an assignment while it holds limits.workerTasksMax tasks and none can be evicted yet. */
  WORKER_FULL: { status: 429, message: 'the worker holds as many tasks as it may; retry later' },
  NO_LEADER: { status: 503, message: 'no leader is known; the cluster may have lost its quorum' },
  PROPOSAL_DROPPED: { status: 503, message: 'the proposal was dropped; retry' },
  UNCOMMITTED_LIMIT: { status: 503, message: 'too much uncommitted data; retry later' },
  NOT_READY: { status: 503, message: 'the node is not ready' },
  WORKER_UNAVAILABLE: { status: 503, message: 'the worker did not answer' },
  UNREACHABLE: { status: 503, message: 'the server could not be reached' },
  TIMEOUT: { status: 504, message: 'the request timed out; its outcome is unknown' },
  // 500: our fault or the environment's
  STORAGE_CORRUPT: { status: 500, message: 'the data directory is corrupt' },
  /** The data directory could not be opened or written (the disk is full, read-only or failing): the manager stops. */
  STORAGE_FAILED: { status: 500, message: 'the data directory could not be written' },
  STORAGE_RECOVERING: { status: 503, message: 'this manager is repairing its storage from the leader' },
  /** A backup file (minkube snapshot save) that is truncated, altered or not one: refused by inspect and restore. */
  SNAPSHOT_INVALID: { status: 400, message: 'the snapshot file is invalid' },
  /**
   * `snapshot restore` refused before writing anything: another manager of the config answers (restore rebuilds a
   * cluster from one manager, so every manager must be stopped; --force), or the file is another cluster's backup
   * (--from-other-cluster).
   */
  RESTORE_REFUSED: { status: 409, message: 'the restore was refused; nothing was written' },
  CONFIG_INVALID: { status: 400, message: 'the cluster config is invalid' },
  RUNTIME_ERROR: { status: 500, message: 'the container runtime failed' },
  /** A node could not bind one of its addresses (raftAddress, apiAddress, dnsAddress): in use, not this host's, or privileged. */
  LISTEN_FAILED: { status: 500, message: 'cannot listen on the address' },
  /** `minkube up`: every node it started has exited by itself (each said why before). */
  CLUSTER_EXITED: { status: 500, message: 'every node of the cluster has exited' },
  /** A node started on a data directory that another running node holds open. */
  DATA_DIR_IN_USE: { status: 500, message: 'the data directory is in use by another process' },
  INTERNAL: { status: 500, message: 'internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorRegistry;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class MinkubeError extends Error {
  override readonly name = 'MinkubeError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message ?? errorRegistry[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = errorRegistry[code].status;
    this.details = options.details;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    if (this.details !== undefined) body.error.details = this.details;
    return body;
  }
}

export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.hasOwn(errorRegistry, s);
}

/** Rebuilds an error that crossed the wire (a forwarded request, a CLI call) from its body. */
export function errorFromBody(body: unknown, fallbackStatus: number): MinkubeError {
  const e = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  if (e && isErrorCode(e.code)) {
    return new MinkubeError(e.code, typeof e.message === 'string' ? e.message : undefined, { details: e.details });
  }
  return new MinkubeError(fallbackStatus >= 500 ? 'INTERNAL' : 'INVALID_BODY', `unexpected answer (HTTP ${fallbackStatus})`);
}

/** Why binding an address failed, in words, by the system's code. */
const listenReasons: Record<string, string> = {
  EADDRINUSE: 'the address is in use (by another process, or another node of the same config)',
  EADDRNOTAVAIL: 'no network interface of this host has that address',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
};

/** LISTEN_FAILED naming the address, the config key it came from and why, for a bind or listen that failed. */
export function listenFailed(err: unknown, address: string, key: string): MinkubeError {
  return new MinkubeError('LISTEN_FAILED', `cannot listen on ${address} (${key}): ${errnoReason(err, listenReasons)}`, { cause: err });
}
