// The CLI's parsers of flag and argument values: a value the managers would refuse is a usage error (exit 2) before
// any request, checked against the bounds the API checks (lib/limits.ts, the contracts' lists), not copies of them.
import { InvalidArgumentError } from 'commander';

/** One of `values`. */
export function oneOf(values: readonly string[]): (text: string) => string {
  return (text) => {
    if (!values.includes(text)) throw new InvalidArgumentError(`expected one of ${values.join(', ')}.`);
    return text;
  };
}

/** A number from min to max. */
export function numberIn(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got ${JSON.stringify(text)}.`);
    return n;
  };
}

/** An integer from min to max. */
export function integerIn(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^-?[0-9]+$/.test(text) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}.`);
    return n;
  };
}

/**
 * What commander would say of missing positional arguments and required options, all at once: it names only the
 * first missing argument, and a missing required option before any argument (`service create` alone said only
 * `required option '--replicas <n>' not specified`).
 */
export function missingRequired(args: readonly [name: string, value: unknown][], options: readonly [flags: string, value: unknown][]): string {
  const names = args.filter(([, v]) => v === undefined).map(([n]) => `'${n}'`);
  const flags = options.filter(([, v]) => v === undefined).map(([f]) => `'${f}'`);
  const parts: string[] = [];
  if (names.length > 0) parts.push(`${names.length === 1 ? 'argument' : 'arguments'} ${andList(names)}`);
  if (flags.length > 0) parts.push(`${flags.length === 1 ? 'option' : 'options'} ${andList(flags)}`);
  return parts.length === 0 ? 'nothing is missing' : `missing required ${parts.join(', and ')}`;
}

function andList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)!}`;
}
