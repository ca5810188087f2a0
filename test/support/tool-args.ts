// The command-line options of the developer tools run through npm (sim, sim:soak, chaos): --help prints the usage
// and exits 0; an unknown option or a missing value prints the problem and the usage and exits 2, never a stack trace.

/** The option every tool takes beside its own. */
export const helpOption = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * What `parse` (a parseArgs call whose options include helpOption) answers, or the exit code when the tool should
 * stop: 0 once --help printed the usage, 2 after a usage error.
 */
export function parsedOrExit<T extends { values: { help?: boolean | undefined } }>(parse: () => T, usage: string): T | number {
  let parsed: T;
  try {
    parsed = parse();
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (parsed.values.help === true) {
    console.log(usage);
    return 0;
  }
  return parsed;
}
