// The `err` serializer of every logger a node makes: pino's, except that a cause's message already in the message
// (a RuntimeFailure's "docker list: connect ECONNREFUSED ..." wraps its cause's words) is not appended again.
import { stdSerializers } from 'pino';

export function serializeError(err: unknown): unknown {
  const out = stdSerializers.err(err as Error) as unknown;
  if (!(err instanceof Error) || typeof out !== 'object' || out === null) return out;
  return { ...out, message: messageWithNewCauses(err) };
}

/** err's message, then each cause's in turn (": "-joined) unless the text so far already holds it; at most 8 deep. */
export function messageWithNewCauses(err: Error): string {
  let text = err.message;
  let cause: unknown = err.cause;
  for (let depth = 0; cause instanceof Error && depth < 8; depth++, cause = cause.cause) {
    if (cause.message !== '' && !text.includes(cause.message)) text += `: ${cause.message}`;
  }
  return text;
}
