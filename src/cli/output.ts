// How the CLI writes: results to stdout (plain or --json), failures to stderr as "error: CODE: message".
import { MinkubeError } from '../lib/errors.js';

export interface Output {
  json: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Left-aligned columns separated by two spaces; the first row is the header. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/** Any thrown value as the MinkubeError the user is told about. Unexpected errors keep their message, not their stack. */
export function asMinkubeError(err: unknown): MinkubeError {
  if (err instanceof MinkubeError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MinkubeError('INTERNAL', message, { cause: err });
}

export function printError(err: unknown): void {
  const e = asMinkubeError(err);
  process.stderr.write(`error: ${e.code}: ${e.message}\n`);
  // A stack helps only for our own bugs, and only when asked for.
  if (e.code === 'INTERNAL' && process.env.MINKUBE_DEBUG === '1') {
    const cause = e.cause instanceof Error ? e.cause : e;
    process.stderr.write(`${cause.stack ?? ''}\n`);
  }
}
