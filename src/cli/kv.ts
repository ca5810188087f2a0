// `minkube kv get|put|del`: one request each through the API client; --json prints the answer as it came.
import { isUtf8 } from 'node:buffer';
import { MinkubeError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { apiClientFor } from './connection.js';
import { printJson, printLine, type Output } from './output.js';

export async function runKvGet(apiUrl: string, key: string, stale: boolean, out: Output): Promise<void> {
  const entry = await apiClientFor(apiUrl, { readRetries: 2 }).kvGet(key, stale ? 'stale' : 'linearizable');
  // Plain output is the value alone, so that $(minkube kv get k) is the value.
  if (out.json) printJson(entry);
  else printLine(entry.value);
}

export async function runKvPut(apiUrl: string, key: string, value: string, ifVersion: number | undefined, out: Output): Promise<void> {
  const r = await apiClientFor(apiUrl).kvPut(key, value, ifVersion);
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
 * the API's largest body, so reading stops past it.
 */
export async function readStdinText(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytes += b.length;
    if (bytes > limits.httpBodyBytesDefault) throw new MinkubeError('PAYLOAD_TOO_LARGE', `the value on standard input is over ${limits.httpBodyBytesDefault} bytes, more than a request may carry`);
    chunks.push(b);
  }
  const value = Buffer.concat(chunks);
  // Values are text: bytes that are not UTF-8 would be stored as U+FFFD, silently and for good.
  if (!isUtf8(value)) throw new MinkubeError('INVALID_PARAM', 'the value on standard input is not UTF-8 text (values are strings: encode binary data first, e.g. with base64)');
  return value.toString('utf8');
}
