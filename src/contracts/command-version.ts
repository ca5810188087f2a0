// The newest command version this build's managers understand, where the CLI (`--version`) and the routes can read it
// without loading the state machine. kv/commands.ts says what each version added (versionOf); bump both together.

/** See kv/commands.ts (commandVersion). */
export const commandVersion = 12;

/**
 * The command version counted for a manager that does not say which it understands: the builds before managers said
 * (GET /health's commandVersion) understood 10. A leader proposes nothing newer than its members' lowest.
 */
export const commandVersionUnsaid = 10;
