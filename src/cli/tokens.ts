// `minkube token create|ls|revoke`: API tokens (and join tokens, with --role manager|worker), with a built-in role or
// a custom policy from a JSON file. `create` prints the token alone, so that TOKEN=$(minkube token create ...) works;
// it is the only time the secret is shown. Only `ls` is retried: creating twice would make two tokens.
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { CreatedApiToken, CreatedJoinToken, TokenList } from '../contracts/services.js';
import { limits } from '../lib/limits.js';
import { joinTokenAccessorPattern } from '../lib/patterns.js';
import { MinkubeError } from '../lib/errors.js';
import { hashSecret, joinTokenAccessor, parseJoinToken } from '../security/tokens.js';
import type { ApiClient } from '../client/api-client.js';
import { apiClientFor } from './connection.js';
import { formatTable, printJson, printLine, type Output } from './output.js';

export interface TokenCreateFlags {
  /** Exactly one of role and policy. */
  role?: string;
  /** A policy file's content, { name, rules }: the API checks its shape and names the field it refuses. */
  policy?: Record<string, unknown>;
  name?: string;
  ttlS?: number;
  keyPrefix?: string;
}

const tokensPath = '/v1/auth/tokens';
/** The roles whose token is a join token (a new manager's or worker's), which has no name. */
const joinRoles: readonly string[] = ['manager', 'worker'];
const unitS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** '90m' -> 5400. A commander argument parser: a bad duration is a usage error (exit 2) saying what is expected. */
export function parseDurationS(text: string): number {
  const m = /^([1-9][0-9]{0,9})([smhd])$/.exec(text);
  const seconds = m === null ? 0 : Number(m[1]) * unitS[m[2]!]!;
  if (seconds < 1 || seconds > limits.tokenTtlSMax) {
    throw new InvalidArgumentError(`expected a duration such as 3600s, 90m, 24h or 30d (at most ${limits.tokenTtlSMax / 86_400}d).`);
  }
  return seconds;
}

/** A commander argument parser for --policy: the file's JSON object; unreadable or not an object is a usage error. */
export function parsePolicyFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`${file}: expected an object { "name": ..., "rules": [{ "effect", "resource", "verbs", "keyPrefix"? }] }`);
  }
  return parsed as Record<string, unknown>;
}

export async function runTokenCreate(apiUrl: string, flags: TokenCreateFlags, out: Output): Promise<void> {
  const body: Record<string, unknown> = {};
  if (flags.role !== undefined) body.role = flags.role;
  if (flags.policy !== undefined) body.policy = flags.policy;
  if (flags.name !== undefined) body.name = flags.name;
  if (flags.keyPrefix !== undefined) body.keyPrefix = flags.keyPrefix;
  if (flags.ttlS !== undefined) body.ttlS = flags.ttlS;
  const created = await apiClientFor(apiUrl).request<CreatedApiToken | CreatedJoinToken>('POST', tokensPath, { body });
  if (out.json) printJson(created);
  else printLine(created.token);
}

export async function runTokenList(apiUrl: string, out: Output): Promise<void> {
  const page = await apiClientFor(apiUrl, { readRetries: 2 }).request<TokenList>('GET', tokensPath);
  if (out.json) {
    printJson(page);
    return;
  }
  const rows = [['ACCESSOR', 'NAME', 'ROLE', 'CREATED', 'EXPIRES']];
  const nowMs = Date.now();
  // A custom policy's token shows its policy's name, which is never a built-in role's: no marker needed. An admin token
  // stored with a key prefix (made before that was refused) is an admin all the same: say so rather than seem bounded.
  for (const t of page.items) {
    const role = t.keyPrefix === undefined ? t.role : `${t.role} (${t.keyPrefix}${t.role === 'admin' ? ' ignored' : ''})`;
    rows.push([t.accessor, t.name, role, t.createdAt, expiresText(t.expiresAt, nowMs)]);
  }
  // Join tokens have no name; their accessor (join-...) and role (manager, worker: never a policy's name) say what they are.
  for (const j of page.joinTokens ?? []) rows.push([j.accessor, '-', j.role, j.createdAt, expiresText(j.expiresAt, nowMs)]);
  printLine(formatTable(rows));
}

/**
 * EXPIRES as `token ls` shows it: `never`, the time, or the time and `(expired)` once past (by this host's clock): the
 * list keeps an expired token until it is revoked, and every manager refuses it meanwhile.
 */
function expiresText(expiresAt: string | null, nowMs: number): string {
  if (expiresAt === null) return 'never';
  return Date.parse(expiresAt) <= nowMs ? `${expiresAt} (expired)` : expiresAt;
}

/**
 * The accessor a `token revoke` argument names: an accessor (16 hex digits, or join-<16 hex> for a join token), a
 * whole token (`mk_<accessor>_<secret>`, or a join token `MKTKN-1-...` whose accessor is derived from it here: the
 * secret is never sent), or a token's name, looked up in the list (names are unique).
 */
async function accessorOf(client: ApiClient, ref: string): Promise<string> {
  // In any case: the manager matches accessors (lower-case hex) case-insensitively, and a name of that shape after.
  if (/^[0-9a-f]{16}$/i.test(ref) || new RegExp(joinTokenAccessorPattern, 'i').test(ref)) return ref;
  const whole = /^mk_([0-9a-f]{16})_/.exec(ref);
  if (whole !== null) return whole[1]!;
  const join = parseJoinToken(ref);
  if (join !== null) return joinTokenAccessor(hashSecret(join.secret));
  // A token's shape cut short or mistyped: said so (without echoing what may be part of a secret), as the manager
  // refuses it as :ref, rather than looked up as a name no token can have (names of these shapes are refused).
  if (ref.startsWith('MKTKN-')) {
    throw new MinkubeError('INVALID_PARAM', 'not a whole join token (MKTKN-1-<64 hex digest>-<secret>): give the whole token, or its accessor (join-<16 hex>: minkube token ls shows it)');
  }
  if (/^mk_[^_]+_./.test(ref)) {
    throw new MinkubeError('INVALID_PARAM', 'not a whole API token (mk_<16 hex accessor>_<secret>): give the whole token, or its accessor or name (minkube token ls shows both)');
  }
  const page = await client.request<TokenList>('GET', tokensPath);
  const named = page.items.find((t) => t.name === ref);
  if (named === undefined) throw new MinkubeError('TOKEN_NOT_FOUND', `no token named "${ref}" (give its name or accessor: minkube token ls shows both)`);
  return named.accessor;
}

export async function runTokenRevoke(apiUrl: string, ref: string, out: Output): Promise<void> {
  const client = apiClientFor(apiUrl);
  const accessor = await accessorOf(client, ref);
  const r = await client.request<{ accessor: string; revoked: true }>('DELETE', `${tokensPath}/${encodeURIComponent(accessor)}`);
  if (out.json) printJson(r);
  else printLine(`revoked ${r.accessor}`);
}

/** Registers `token create|ls|revoke` on the program (main.ts calls this, as it does for the other groups). */
export function addTokenCommands(program: Command, globals: (cmd: Command) => { api: string; out: Output }): void {
  const token = program.command('token').description('API tokens for clients, and join tokens for new managers and workers');
  token
    .command('create')
    .description('create a token and print it (the only time its secret is shown); --role manager|worker makes a join token')
    .option('--role <role>', 'admin | operator | developer | viewer, or manager | worker for a join token')
    .option('--policy <file>', 'instead of --role: a custom policy, a JSON file { "name", "rules": [{ "effect", "resource", "verbs", "keyPrefix"? }] }', parsePolicyFile)
    .option('--name <name>', 'a unique name (default: ROLE-ACCESSOR); API tokens only: a join token (--role manager|worker) has none')
    .option('--ttl <duration>', 'how long it lives, e.g. 3600s, 90m, 24h, 30d, never past the token making it (default: an API token never expires, a join token 24h; either ends with the token making it when that expires first)', parseDurationS)
    .option('--key-prefix <prefix>', "limit the role's key permissions to keys under this prefix (with --role, not admin; a policy names its keys)")
    .action(async (flags: { role?: string; policy?: Record<string, unknown>; name?: string; ttl?: number; keyPrefix?: string }, cmd: Command) => {
      if ((flags.role === undefined) === (flags.policy === undefined)) cmd.error('error: give exactly one of --role <role> and --policy <file>');
      if (flags.policy !== undefined && flags.keyPrefix !== undefined) cmd.error('error: --key-prefix is not taken with --policy; its kv rules name the keys');
      if (flags.name !== undefined && joinRoles.includes(flags.role ?? '')) cmd.error(`error: --name is for API tokens: a join token (--role ${flags.role}) has no name; token ls shows it by its accessor (join-...)`);
      const g = globals(cmd);
      const f: TokenCreateFlags = {};
      if (flags.role !== undefined) f.role = flags.role;
      if (flags.policy !== undefined) f.policy = flags.policy;
      if (flags.name !== undefined) f.name = flags.name;
      if (flags.ttl !== undefined) f.ttlS = flags.ttl;
      if (flags.keyPrefix !== undefined) f.keyPrefix = flags.keyPrefix;
      await runTokenCreate(g.api, f, g.out);
    });
  token
    .command('ls')
    .alias('list')
    .description('the API tokens, oldest first, then the join tokens: accessor, name, role, created, expires (never their secrets)')
    .action(async (_flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runTokenList(g.api, g.out);
    });
  token
    .command('revoke <token>')
    .description('revoke an API token (by its accessor, its name, or the token itself) or a join token (by its join-... accessor or the token itself): every manager refuses it once the revocation is committed')
    .action(async (ref: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      await runTokenRevoke(g.api, ref, g.out);
    });
}
