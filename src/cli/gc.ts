// `minkube gc`: removes, through Raft, the finished task records due now under tasks.retention (POST /v1/gc, admin
// or operator tokens) and prints how many.
import type { Command } from 'commander';
import type { GcResult } from '../contracts/services.js';
import { apiClientFor } from './connection.js';
import { printJson, printLine, type Output } from './output.js';

/** Removing a large backlog takes several Raft entries. */
const GC_TIMEOUT_MS = 120_000;

export async function runGc(apiUrl: string, out: Output): Promise<void> {
  const r = await apiClientFor(apiUrl, { timeoutMs: GC_TIMEOUT_MS }).request<GcResult>('POST', '/v1/gc');
  if (out.json) printJson(r);
  else printLine(`removed ${r.removed} finished task record${r.removed === 1 ? '' : 's'}; ${r.tasks} kept`);
}

export function addGcCommand(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  program
    .command('gc')
    .description('remove the finished task records due now under tasks.retention (oldest first) and print how many')
    .action(async (_flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runGc(g.api, g.out);
    });
}
