// What the managers' API answers, as far as its clients read it: per route, the fields a command relies on, each a
// required field of the route's documented answer (test/contracts/answers.test.ts checks them against the OpenAPI
// document). Fields added later (optional, or read with a default) are left out, so an older manager still passes.
// The API client checks every 2xx answer of these routes before a caller reads it (client/api-client.ts).
import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { describeSchemaProblem } from '../lib/schema-problems.js';
import { Nullable } from '../lib/nullable.js';

const Str = Type.String();
const Int = Type.Integer();

const KvEntryAnswer = Type.Object({ key: Str, value: Str, version: Int });
const KvVersionAnswer = Type.Object({ key: Str, version: Int });

const MemberAnswer = Type.Object({ id: Str, raftAddress: Str, apiAddress: Str, voter: Type.Boolean(), reachable: Type.Boolean() });
const MembersAnswer = Type.Object({ leaderId: Nullable(Str), members: Type.Array(MemberAnswer) });
const ClusterAnswer = Type.Object({
  id: Str,
  role: Str,
  term: Int,
  leaderId: Nullable(Str),
  commitIndex: Int,
  appliedIndex: Int,
  members: Type.Array(MemberAnswer),
});
const LeaderAnswer = Type.Object({ leaderId: Str, term: Int });

/** A page of a list route: `nextCursor` null on the last one (a command follows it until then). */
const page = (item: TSchema) => Type.Object({ items: Type.Array(item), nextCursor: Nullable(Str) });

const SubmittedAnswer = Type.Object({ id: Str, state: Str });
const TaskAnswer = Type.Object({
  id: Str,
  spec: Type.Object({ image: Str }),
  state: Str,
  desiredState: Str,
  workerId: Nullable(Str),
  attempt: Int,
  containerId: Nullable(Str),
  exitCode: Nullable(Int),
  error: Nullable(Type.Object({ class: Str, message: Str })),
  createdAt: Str,
  updatedAt: Str,
  history: Type.Array(Type.Object({ state: Str, attempt: Int, atMs: Int, workerId: Nullable(Str) })),
});

const WorkerAnswer = Type.Object({
  id: Str,
  apiAddress: Str,
  state: Str,
  runtime: Str,
  lastHeartbeatAt: Nullable(Str),
  stats: Nullable(Type.Object({ memoryTotalBytes: Type.Number(), memoryAvailableBytes: Type.Number() })),
  taskCount: Int,
});

const TokenListAnswer = Type.Object({
  items: Type.Array(Type.Object({ accessor: Str, name: Str, role: Str, createdAt: Str, expiresAt: Nullable(Str) })),
});

const ServiceAnswer = Type.Object({
  name: Str,
  replicas: Type.Object({ desired: Int, running: Int, healthy: Int }),
  version: Int,
  rollout: Type.Object({ state: Str }),
  spec: Type.Object({ image: Str }),
  tasks: Type.Array(Type.Object({ taskId: Str })),
});

/** Method, route (fastify's syntax: `:name` one segment, a final `*` the rest of the path) and the answer's shape. */
const answers: readonly (readonly [string, string, TSchema])[] = [
  ['GET', '/v1/kv/*', KvEntryAnswer],
  ['PUT', '/v1/kv/*', KvVersionAnswer],
  ['DELETE', '/v1/kv/*', KvVersionAnswer],
  ['GET', '/v1/cluster', ClusterAnswer],
  ['GET', '/v1/cluster/members', MembersAnswer],
  ['DELETE', '/v1/cluster/members/:id', MembersAnswer],
  ['POST', '/v1/cluster/leader', LeaderAnswer],
  ['POST', '/v1/tasks', SubmittedAnswer],
  ['POST', '/v1/tasks/batch', Type.Object({ items: Type.Array(SubmittedAnswer) })],
  ['GET', '/v1/tasks', page(TaskAnswer)],
  ['GET', '/v1/tasks/:id', TaskAnswer],
  ['DELETE', '/v1/tasks/:id', TaskAnswer],
  ['GET', '/v1/workers', page(WorkerAnswer)],
  ['PUT', '/v1/workers/:id/availability', WorkerAnswer],
  ['DELETE', '/v1/workers/:id', Type.Object({ id: Str, removed: Type.Literal(true) })],
  ['GET', '/v1/auth/tokens', TokenListAnswer],
  ['POST', '/v1/auth/tokens', Type.Object({ token: Str })],
  ['DELETE', '/v1/auth/tokens/:ref', Type.Object({ accessor: Str, revoked: Type.Literal(true) })],
  ['GET', '/v1/services', page(ServiceAnswer)],
  ['POST', '/v1/services', ServiceAnswer],
  ['GET', '/v1/services/:name', ServiceAnswer],
  ['PATCH', '/v1/services/:name', ServiceAnswer],
  ['POST', '/v1/services/:name/rollback', ServiceAnswer],
  ['DELETE', '/v1/services/:name', Type.Object({ name: Str, stopping: Int })],
];

/** The table as (method, route, schema), for the test that holds it to the documented answers. */
export function documentedAnswers(): readonly (readonly [string, string, TSchema])[] {
  return answers;
}

interface AnswerCheck {
  readonly method: string;
  readonly pattern: RegExp;
  readonly schema: TSchema;
  check?: TypeCheck<TSchema>;
}

let checks: AnswerCheck[] | undefined;

function routePattern(route: string): RegExp {
  const body = route
    .split('/')
    .map((seg) => (seg === '*' ? '.+' : seg.startsWith(':') ? '[^/]+' : seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${body}$`);
}

/**
 * Why `body`, the 2xx answer to `method path` (a query after `?` ignored), is not what the route answers: its first
 * problem by its field's path (`version: missing`, `members[0].voter: expected boolean`), or null when it is (or the
 * route is not in the table). Compiled once per route, with its first answer.
 */
export function answerProblem(method: string, path: string, body: unknown): string | null {
  checks ??= answers.map(([m, route, schema]) => ({ method: m, pattern: routePattern(route), schema }));
  const q = path.indexOf('?');
  const bare = q === -1 ? path : path.slice(0, q);
  const entry = checks.find((c) => c.method === method && c.pattern.test(bare));
  if (entry === undefined) return null;
  entry.check ??= TypeCompiler.Compile(entry.schema);
  if (entry.check.Check(body)) return null;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'expected an object';
  const first = entry.check.Errors(body).First();
  if (first === undefined) return 'invalid';
  return `${fieldName(first.path)}: ${describeSchemaProblem(first.message, first.schema, 'unknown field')}`;
}

/** '/members/0/voter' -> 'members[0].voter' */
function fieldName(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^[0-9]+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out === '' ? 'the answer' : out;
}
