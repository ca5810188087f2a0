// Helpers every runtime shares: run-spec validation, label matching, and bounding log text.
import { RuntimeFailure, type RunSpec } from './types.js';

/** Throws RuntimeFailure('invalid-spec') for a spec no runtime could run. */
export function validateRunSpec(spec: RunSpec, opts: { commandRequired: boolean }): void {
  const problem = specProblem(spec, opts.commandRequired);
  if (problem !== undefined) throw new RuntimeFailure('invalid-spec', `invalid run spec: ${problem}`);
}

function specProblem(spec: RunSpec, commandRequired: boolean): string | undefined {
  if (typeof spec.name !== 'string' || spec.name === '') return 'name is empty';
  if (typeof spec.image !== 'string' || spec.image === '') return 'image is empty';
  if (spec.command !== undefined) {
    if (!Array.isArray(spec.command) || spec.command.length === 0) return 'command is an empty list';
    if (!spec.command.every((a) => typeof a === 'string')) return 'command has a non-string argument';
    if (spec.command[0] === '') return 'command[0] is empty';
  } else if (commandRequired) {
    return 'command is required by this runtime';
  }
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    if (k === '' || k.includes('=') || k.includes('\0')) return `env name ${JSON.stringify(k)} is invalid`;
    if (typeof v !== 'string' || v.includes('\0')) return `env ${k} is not a string`;
  }
  for (const [k, v] of Object.entries(spec.labels)) {
    if (k === '' || typeof v !== 'string') return `label ${JSON.stringify(k)} is invalid`;
  }
  const cpus = spec.resources?.cpus;
  if (cpus !== undefined && !(Number.isFinite(cpus) && cpus > 0)) return 'resources.cpus must be a positive number';
  const memoryMb = spec.resources?.memoryMb;
  if (memoryMb !== undefined && !(Number.isFinite(memoryMb) && memoryMb > 0)) {
    return 'resources.memoryMb must be a positive number';
  }
  return undefined;
}

export function labelsMatch(labels: Record<string, string>, filter: Record<string, string>): boolean {
  return Object.entries(filter).every(([k, v]) => labels[k] === v);
}

/** The newest bytesMax bytes of text, cut at a line start when cut at all (never mid-character). */
export function tailBytes(buf: Buffer, bytesMax: number): string {
  if (buf.length <= bytesMax) return buf.toString('utf8');
  let start = buf.length - bytesMax;
  const newline = buf.indexOf(0x0a, start);
  // Cut at a line start when that drops little; a line longer than a quarter of the budget keeps its end instead
  // (a task whose last line is 200 KiB keeps 64 KiB of it, not nothing).
  if (newline !== -1 && newline + 1 < buf.length && newline - start <= bytesMax / 4) start = newline + 1;
  // Without a newline, step past UTF-8 continuation bytes (10xxxxxx) to the next character boundary.
  else while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString('utf8');
}

/** The last n lines of text (a trailing newline does not count as an empty line). */
export function tailLines(text: string, n: number): string {
  if (n <= 0) return '';
  let end = text.length;
  if (text.endsWith('\n')) end--;
  let pos = end;
  for (let i = 0; i < n; i++) {
    if (pos === 0) return text;
    const prev = text.lastIndexOf('\n', pos - 1);
    if (prev === -1) return text;
    pos = prev;
  }
  return text.slice(pos + 1);
}
