// How the CLI writes: results to stdout (plain or --json), failures to stderr as "error: CODE: message".
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isErrorCode, MinkubeError } from '../lib/errors.js';
import { diskRefusalCodes, errnoReason } from '../lib/errno.js';

export interface Output {
  json: boolean;
}

let stdoutGuarded = false;

/**
 * A command's output to stdout. A reader that goes away (`minkube task ls | head`) ends the command quietly, exit 0,
 * as ls and git do, instead of an unhandled EPIPE with a stack trace. (The daemons' logs do not come through here.)
 */
/** writeOut, then waits for stdout to drain when it is full: for output written as it comes (a followed log). */
export async function writeOutDrained(chunk: Uint8Array): Promise<void> {
  if (!writeOut(chunk)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

export function writeOut(text: string | Uint8Array): boolean {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  return process.stdout.write(text);
}

export function printJson(value: unknown): void {
  // JSON.stringify escapes C0 controls but writes DEL, C1 controls and bidi overrides as they are: escaped here too
  // (they can only stand inside strings, so the text stays the same JSON).
  writeOut(`${JSON.stringify(value, null, 2).replace(jsonUnescaped, escapeChar)}\n`);
}

/**
 * What JSON.stringify leaves raw that a terminal acts on or hides: DEL, C1 controls, bidi marks, embeddings, overrides
 * and isolates, the zero-width space and byte-order mark (two names that look alike), the line and paragraph separators.
 */
const jsonUnescaped = /[\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

function escapeChar(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

export function printLine(line = ''): void {
  writeOut(`${visible(line)}\n`);
}

/**
 * C0 and C1 control characters but tab and newline, and the bidi marks, embeddings, overrides and isolates (U+202E
 * turns the rest of a line around; a right-to-left mark reorders what is around it): what a terminal would act on
 * rather than show; and the zero-width space, the byte-order mark and the line and paragraph separators, which it
 * would hide (two task names that differ only by one look the same).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const terminalControls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * Text as a terminal shows it: a control character (an ESC in a task's name, say, which would clear the screen or
 * retitle the window of whoever lists the tasks) is written as its escape, \u001b. Only human output: --json escapes
 * them itself, and a task's own output (logs) goes out as it was written, as docker logs does.
 */
export function visible(text: string): string {
  return text.replace(terminalControls, escapeChar);
}

/**
 * User data that is a command's whole output (`kv get`'s value) as a terminal should show it: unchanged when it holds
 * nothing a terminal would act on or hide; else each such character as its escape (\u000d for a CR) and, so that an
 * escape is never taken for the same six characters written in the value, each backslash doubled. `escaped` says
 * whether it was (the caller then says so on stderr).
 */
export function terminalText(text: string): { text: string; escaped: boolean } {
  if (text.search(terminalControls) < 0) return { text, escaped: false };
  return { text: text.replaceAll('\\', '\\\\').replace(terminalControls, escapeChar), escaped: true };
}

/**
 * A value a command exists to print: to a file or a pipe exactly as stored, nothing added (`kv get k > f` gives back
 * the bytes `kv put k < f` took, CRs and final newline included, so the round trip can be repeated without the value
 * growing); to a terminal as terminalText shows it, ended with a newline when it does not end with one (so the prompt
 * starts on a line of its own), with a note on stderr when that is not the value as stored. `tty`: whether stdout is
 * a terminal (a test says).
 */
export function printValue(value: string, tty = process.stdout.isTTY === true): void {
  if (!tty) {
    writeOut(value);
    return;
  }
  const shown = terminalText(value);
  writeOut(shown.text.endsWith('\n') ? shown.text : `${shown.text}\n`);
  if (shown.escaped) {
    process.stderr.write('note: the value holds control characters, shown above as \\uXXXX escapes and each \\ as \\\\; redirect the output (> FILE, | cat) for the value as stored\n');
  }
}

export interface TableStyle {
  /** A Markdown table (the benchmarks' reports), padded so that it also reads as plain text. */
  markdown?: boolean;
  /** Right-aligned columns (marked so in a Markdown table's rule). */
  numeric?: (column: number) => boolean;
}

/**
 * A command as a shell would read it back: each word that holds anything but letters, digits and `_./:=@%+-` in single
 * quotes (`sh -c 'echo hi; exit 3'`), so that words with blanks stay visible as one. How `task get` and `service get`
 * show a spec's command.
 */
export function commandText(argv: readonly string[]): string {
  return argv.map((arg) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The one table printer (the CLI's lists and the benchmarks' reports); the first row is the header. Plain: columns
 * separated by two spaces, left-aligned unless numeric.
 */
export function formatTable(rows: readonly (readonly string[])[], style: TableStyle = {}): string {
  const numeric = style.numeric ?? ((): boolean => false);
  const cells = rows.map((row) => row.map((cell) => (style.markdown === true ? visible(cell).replaceAll('|', '\\|') : visible(cell))));
  const widths: number[] = [];
  for (const row of cells) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const pad = (cell: string, i: number): string => (numeric(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0));
  if (style.markdown !== true) {
    return cells.map((row) => row.map((cell, i) => (i === row.length - 1 && !numeric(i) ? cell : pad(cell, i))).join('  ').trimEnd()).join('\n');
  }
  const render = (row: readonly string[]): string => `| ${widths.map((_, i) => pad(row[i] ?? '', i)).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [render(cells[0] ?? []), rule, ...cells.slice(1).map(render)].join('\n');
}

/** Any thrown value as the MinkubeError the user is told about. Unexpected errors keep their message, not their stack. */
export function asMinkubeError(err: unknown): MinkubeError {
  if (err instanceof MinkubeError) return err;
  // One from another copy of the errors module (the daemons' bundles, or the sources run through tsx) is as good.
  const e = err as { name?: unknown; code?: unknown; message?: unknown; details?: unknown } | null;
  if (err instanceof Error && e?.name === 'MinkubeError' && isErrorCode(e.code)) return new MinkubeError(e.code, err.message, { cause: err, details: e.details });
  const message = err instanceof Error ? err.message : String(err);
  return new MinkubeError('INTERNAL', message, { cause: err });
}

/** `hints`: lines below the error on what the user can do about it (connection.ts's failureHints, for a command's failure). */
export function printError(err: unknown, hints: readonly string[] = []): void {
  const e = asMinkubeError(err);
  process.stderr.write(`error: ${e.code}: ${visible(e.message)}${hints.map((h) => `\n  ${h}`).join('')}\n`);
  // A stack helps only for our own bugs, and only when asked for.
  if (e.code === 'INTERNAL' && process.env.MINKUBE_DEBUG === '1') {
    const cause = e.cause instanceof Error ? e.cause : e;
    process.stderr.write(`${cause.stack ?? ''}\n`);
  }
}

/** INVALID_PARAM for a file a command was asked to write and could not, saying why in words. */
export function cannotWrite(path: string, err: unknown): MinkubeError {
  // ENOENT with the folder there: a file system that makes no files (/proc), not a missing folder.
  const folder = existsSync(dirname(path)) ? `its folder ${dirname(path)} takes no new file (ENOENT)` : 'its folder does not exist';
  const reason = errnoReason(err, { ENOENT: folder, EISDIR: 'it is a folder' });
  // A disk that is full, read-only or failing is no bad parameter: said as the storage failure it is.
  const code = (err as Partial<NodeJS.ErrnoException> | null)?.code ?? '';
  const storage = diskRefusalCodes.has(code);
  return new MinkubeError(storage ? 'STORAGE_FAILED' : 'INVALID_PARAM', `cannot write ${path}: ${reason}`, { cause: err });
}

/** Writes a file a command was asked to write (cannotWrite when it cannot). */
/** mode: for a new file (a backup is the owner's alone, 0o600); an existing file keeps its own. */
export async function writeFileOrFail(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  await writeFile(path, data, mode === undefined ? {} : { mode }).catch((err: unknown) => {
    throw cannotWrite(path, err);
  });
}
