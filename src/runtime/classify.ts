// Turns any failure from a runtime (dockerode HTTP errors, socket errors, spawn errors, aborts) into a RuntimeFailure
// with a reason and a failure class, so the worker decides retry-or-fail in one place. Pure: no I/O.
import { RuntimeFailure, type RuntimeFailureReason } from './types.js';

interface ErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  syscall?: unknown;
  statusCode?: unknown;
  json?: unknown;
}

const unreachableCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOTSOCK',
]);
const timeoutCodes = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ABORT_ERR', 'UND_ERR_CONNECT_TIMEOUT']);

// The OCI runtime's words when the command cannot be executed: missing, not executable, wrong format.
const commandNotFound =
  /executable file not found|exec: "[^"]*": (stat [^:]*: )?(no such file or directory|permission denied|exec format error|not a directory|is a directory)/i;
const noSpace = /no space left on device|ENOSPC|disk quota exceeded/i;
// Start failures the daemon reports as 400 although the host, not the spec, is at fault.
const hostPressure = /cannot allocate memory|resource temporarily unavailable|too many open files|device or resource busy/i;
const imageMissing = /no such image|image .*not found|pull access denied|manifest unknown|repository does not exist|not found: manifest/i;

/** Classifies err; a RuntimeFailure passes through unchanged. */
export function classifyRuntimeError(err: unknown): RuntimeFailure {
  if (err instanceof RuntimeFailure) return err;
  const e: ErrorShape = typeof err === 'object' && err !== null ? (err as ErrorShape) : { message: String(err) };
  const message = messageOf(e);
  return new RuntimeFailure(reasonFor(e, message), message, { cause: err });
}

function reasonFor(e: ErrorShape, message: string): RuntimeFailureReason {
  const code = typeof e.code === 'string' ? e.code : undefined;
  const syscall = typeof e.syscall === 'string' ? e.syscall : '';
  if (code === 'ENOSPC' || noSpace.test(message)) return 'out-of-space';
  // Node refused to send the request: a name from the spec (an image with a space) cannot go in its path.
  if (code === 'ERR_UNESCAPED_CHARACTERS') return 'invalid-spec';
  if (syscall.startsWith('spawn') && (code === 'ENOENT' || code === 'EACCES' || code === 'ENOEXEC')) {
    return 'command-not-found';
  }
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || (code !== undefined && timeoutCodes.has(code))) {
    return 'timeout';
  }
  if (code !== undefined && unreachableCodes.has(code)) return 'daemon-unreachable';
  // ENOENT/EACCES on connect: the socket file is missing or not ours.
  if (syscall === 'connect' && (code === 'ENOENT' || code === 'EACCES')) return 'daemon-unreachable';
  if (typeof e.statusCode === 'number') return reasonForStatus(e.statusCode, message);
  if (/socket hang up/i.test(message)) return 'daemon-unreachable';
  return 'unknown';
}

function reasonForStatus(status: number, message: string): RuntimeFailureReason {
  if (commandNotFound.test(message)) return 'command-not-found';
  if (status === 404) return imageMissing.test(message) ? 'image-not-found' : 'container-not-found';
  if (status === 409) return /already in use/i.test(message) ? 'name-conflict' : 'daemon-error';
  if (status >= 500) return 'daemon-error';
  if (status >= 400) return hostPressure.test(message) ? 'daemon-error' : 'invalid-spec';
  return 'unknown';
}

/** dockerode puts the daemon's own words in json.message; its err.message wraps them in "(HTTP code N) ...". */
function messageOf(e: ErrorShape): string {
  const json = e.json;
  if (typeof json === 'object' && json !== null) {
    const inner = (json as { message?: unknown }).message;
    if (typeof inner === 'string' && inner !== '') return inner;
  }
  if (typeof e.message === 'string' && e.message !== '') return e.message.trim();
  if (typeof e.code === 'string') return e.code;
  return 'unknown runtime failure';
}
