// `minkube kv get|put|del`: one request each through the API client; --json prints the answer as it came.
import { isUtf8 } from 'node:buffer';
import { kvPutBody } from '../client/api-client.js';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { apiClientFor } from './connection.js';
import { printJson, printLine, printValue, type Output } from './output.js';

export async function runKvGet(apiUrl: string, key: string, stale: boolean, out: Output): Promise<void> {
  const entry = await apiClientFor(apiUrl, { readRetries: 2 }).kvGet(key, stale ? 'stale' : 'linearizable');
  // Plain output is the value alone, as stored unless stdout is a terminal: $(minkube kv get k) is the value.
  if (out.json) printJson(entry);
  else printValue(entry.value);
}

export async function runKvPut(apiUrl: string, key: string, value: string, ifVersion: number | undefined, out: Output): Promise<void> {
  // The limit is on the request body: the value as JSON (quotes, backslashes and control characters escaped) in its
  // envelope. Checked against the default here; a cluster with a lower api.bodyLimitBytes answers 413 itself.
  const bodyBytes = Buffer.byteLength(JSON.stringify(kvPutBody(value, ifVersion)));
  const limit = limits.httpBodyBytesDefault;
  if (bodyBytes > limit) {
    throw new MinkubeError('PAYLOAD_TOO_LARGE', `the request body for this value would be ${bodyBytes} bytes of JSON (escapes included), over ${limit}, the most api.bodyLimitBytes allows; nothing was sent`);
  }
  const r = await apiClientFor(apiUrl)
    .kvPut(key, value, ifVersion)
    .catch((err: unknown) => {
      if (!(err instanceof MinkubeError) || err.code !== 'PAYLOAD_TOO_LARGE') throw err;
      throw new MinkubeError('PAYLOAD_TOO_LARGE', `the cluster refused the value: ${err.message}, its api.bodyLimitBytes (this request body was ${bodyBytes} bytes of JSON)`, { cause: err });
    });
  if (out.json) printJson(r);
  else printLine(`${r.key}: version ${r.version}`);
}

export async function runKvDelete(apiUrl: string, key: string, ifVersion: number | undefined, out: Output): Promise<void> {
  const r = await apiClientFor(apiUrl).kvDelete(key, ifVersion);
  if (out.json) printJson(r);
  else printLine(`${r.key}: deleted at version ${r.version}`);
}

/**
 * `kv put KEY < FILE`: standard input as UTF-8 text, as it is (a final newline kept). No request may carry more than
 * the API's largest body, so reading stops past it (runKvPut then measures the body the value makes).
 */
export async function readStdinText(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytes += b.length;
    if (bytes > limits.httpBodyBytesDefault) {
      throw new MinkubeError('PAYLOAD_TOO_LARGE', `the value on standard input is over ${limits.httpBodyBytesDefault} bytes, more than a request body may carry (api.bodyLimitBytes allows at most ${limits.httpBodyBytesDefault}); nothing was sent`);
    }
    chunks.push(b);
  }
  const value = Buffer.concat(chunks);
  // Values are text: bytes that are not UTF-8 would be stored as U+FFFD, silently and for good.
  if (!isUtf8(value)) throw new MinkubeError('INVALID_PARAM', 'the value on standard input is not UTF-8 text (values are strings: encode binary data first, e.g. with base64)');
  return value.toString('utf8');
}
