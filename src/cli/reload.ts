// `minkube reload`: the manager behind --api re-reads its config file and applies what can change live
// (POST /v1/admin/reload, admin tokens); prints each changed key and what became of it.
import type { Command } from 'commander';
import { apiClientFor } from './connection.js';
import { formatTable, printJson, printLine, type Output } from './output.js';
import { CliExit } from './tasks.js';

/** POST /v1/admin/reload's answer (src/api/routes/admin.ts). */
interface ReloadAnswer {
  node: string;
  applied: { key: string; from: unknown; to: unknown }[];
  refused: { key: string; reason: string }[];
  ignored: string[];
}

const show = (v: unknown): string => (v === null || v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v));

export async function runReload(apiUrl: string, out: Output): Promise<void> {
  const r = await apiClientFor(apiUrl).request<ReloadAnswer>('POST', '/v1/admin/reload');
  if (out.json) {
    printJson(r);
    return refusedExit(r);
  }
  const rows = [
    ...r.applied.map((a) => [a.key, 'applied', `${show(a.from)} -> ${show(a.to)}`]),
    ...r.refused.map((x) => [x.key, 'refused', x.reason]),
    ...r.ignored.map((k) => [k, 'ignored', `${r.node} does not use it`]),
  ];
  if (rows.length === 0) {
    printLine(`${r.node}: nothing changed`);
    return;
  }
  printLine(`${r.node}: ${r.applied.length} applied, ${r.refused.length} refused (each says why), ${r.ignored.length} ignored`);
  printLine(formatTable([['KEY', 'RESULT', 'DETAIL'], ...rows]));
  refusedExit(r);
}

/** A reload that refused a key ends the command with 1 (after the table): the file and the running values differ. */
function refusedExit(r: ReloadAnswer): void {
  if (r.refused.length === 0) return;
  process.stderr.write(`error: ${r.refused.length} changed ${r.refused.length === 1 ? 'key was' : 'keys were'} refused; ${r.node} keeps running with ${r.refused.length === 1 ? 'its' : 'their'} old ${r.refused.length === 1 ? 'value' : 'values'}\n`);
  throw new CliExit(1);
}

export function addReloadCommand(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  program
    .command('reload')
    .description("make the manager behind --api re-read its config file and apply what can change live (as SIGHUP does)")
    .action(async (_flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runReload(g.api, g.out);
    });
}
