// `minkube task why ID` (GET /v1/tasks/:id/placement) and `minkube quota set|ls` (PUT /v1/quotas/:namespace,
// GET /v1/quotas).
import { InvalidArgumentError, type Command } from 'commander';
import type { QuotaView, TaskPlacementView } from '../contracts/placement.js';
import type { Page } from '../contracts/services.js';
import { apiClientFor } from './connection.js';
import { formatTable, printJson, printLine, type Output } from './output.js';

type Globals = (cmd: Command) => { api: string; out: Output };

/** Adds `task why` under the existing `task` command and the `quota` command. */
export function addPlacementCommands(program: Command, globals: Globals): void {
  const task = program.commands.find((c) => c.name() === 'task');
  task
    ?.command('why <id>')
    .description('where a task was placed, or for a pending one why each worker cannot take it (down, a label, no room)')
    .action(async (id: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      const view = await apiClientFor(g.api, { readRetries: 2 }).request<TaskPlacementView>('GET', `/v1/tasks/${encodeURIComponent(id)}/placement`);
      if (g.out.json) printJson(view);
      else for (const line of view.lines) printLine(line);
    });
  const quota = program.command('quota').description('quotas per namespace: how many tasks, cores and MiB its live tasks may hold');
  quota
    .command('set <namespace>')
    .description("replace the namespace's quota (no limit given removes it)")
    .option('--tasks-max <n>', 'live tasks (not ended) at most', parseCount)
    .option('--cpus <c>', 'CPU cores their resources may ask for in all', parseAmount)
    .option('--memory-mb <m>', 'MiB their resources may ask for in all', parseAmount)
    .action(async (namespace: string, flags: { tasksMax?: number; cpus?: number; memoryMb?: number }, cmd: Command) => {
      const g = globals(cmd);
      const body = { ...(flags.tasksMax === undefined ? {} : { tasksMax: flags.tasksMax }), ...(flags.cpus === undefined ? {} : { cpus: flags.cpus }), ...(flags.memoryMb === undefined ? {} : { memoryMb: flags.memoryMb }) };
      const view = await apiClientFor(g.api).request<QuotaView>('PUT', `/v1/quotas/${encodeURIComponent(namespace)}`, { body });
      if (g.out.json) printJson(view);
      else printQuotas([view]);
    });
  quota
    .command('ls')
    .alias('list')
    .description('every quota with what its namespace holds now')
    .action(async (_flags: object, cmd: Command) => {
      const g = globals(cmd);
      const page = await apiClientFor(g.api, { readRetries: 2 }).request<Page<QuotaView>>('GET', '/v1/quotas');
      if (g.out.json) printJson(page);
      else printQuotas(page.items);
    });
}

function printQuotas(items: readonly QuotaView[]): void {
  const limit = (v: number | undefined, used: number): string => `${round(used)}/${v === undefined ? '-' : String(v)}`;
  const rows = items.map((q) => [q.namespace, limit(q.tasksMax, q.usage.tasks), limit(q.cpus, q.usage.cpus), limit(q.memoryMb, q.usage.memoryMb)]);
  printLine(formatTable([['NAMESPACE', 'TASKS', 'CPUS', 'MEMORY_MB'], ...rows]));
}

function round(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}

function parseCount(v: string): number {
  if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError('expected a whole number >= 0');
  return Number(v);
}

function parseAmount(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}
