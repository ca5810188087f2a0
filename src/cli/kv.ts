// `minkube kv get|put|del`: one request each through the API client; --json prints the answer as it came.
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
