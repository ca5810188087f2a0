// The client's table of answers (src/contracts/answers.ts) against the routes' documented answers (the OpenAPI
// document, made from the routes' own schemas): every value a route may answer passes the client's check, so the
// check asks only for fields the route promises; and the check names the first field it misses.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerProblem, documentedAnswers } from '../../src/contracts/answers.js';
import { everyRouteApp } from '../support/every-route-app.js';

type Schema = {
  $ref?: string; type?: string | string[]; const?: unknown; enum?: unknown[]; anyOf?: Schema[]; items?: Schema;
  properties?: Record<string, Schema>; required?: string[];
};
type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>>; components: { schemas: Record<string, Schema> } };

let app: FastifyInstance;
let doc: Doc;
beforeAll(async () => {
  app = everyRouteApp(true);
  doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<Doc>();
});
afterAll(() => app.close());

function resolved(s: Schema): Schema {
  return s.$ref === undefined ? s : resolved(doc.components.schemas[s.$ref.replace('#/components/schemas/', '')]!);
}

const typesOf = (s: Schema): string[] => (s.type === undefined ? [] : [s.type].flat());

/**
 * Why the client's schema might refuse a value the server's accepts (empty: it accepts every one), structurally:
 * each field the client requires, the server requires, of a type the client takes.
 */
function refusable(client: Schema, server: Schema, at: string): string[] {
  const s = resolved(server);
  if (s.anyOf !== undefined) return s.anyOf.flatMap((branch) => refusable(client, branch, at));
  if (client.anyOf !== undefined) {
    const each = client.anyOf.map((branch) => refusable(branch, s, at));
    return each.some((p) => p.length === 0) ? [] : each.flat();
  }
  // The document says a literal as a one-value enum.
  const only = s.const ?? (s.enum?.length === 1 ? s.enum[0] : undefined);
  if (client.const !== undefined) return only === client.const ? [] : [`${at}: the client takes only ${JSON.stringify(client.const)}`];
  const [type] = typesOf(client);
  const serverTypes = only === undefined ? typesOf(s) : [typeof only];
  const takes = (t: string): boolean => t === type || (type === 'number' && t === 'integer');
  if (serverTypes.length === 0 || !serverTypes.every(takes)) return [`${at}: the client takes ${type}, the route answers ${JSON.stringify(serverTypes)}`];
  if (type === 'array') return refusable(client.items!, s.items!, `${at}[]`);
  if (type !== 'object') return [];
  return (client.required ?? []).flatMap((name) => {
    if (!(s.required ?? []).includes(name)) return [`${at}.${name}: required by the client, not by the route`];
    return refusable(client.properties![name]!, s.properties![name]!, `${at}.${name}`);
  });
}

describe("the client's table of answers", () => {
  it("asks of each route only fields its documented answer requires, of the documented types", () => {
    const problems: string[] = [];
    for (const [method, route, schema] of documentedAnswers()) {
      const path = route.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{key}');
      const responses = doc.paths[path]?.[method.toLowerCase()]?.responses ?? {};
      const ok = Object.entries(responses).filter(([status]) => status.startsWith('2'));
      if (ok.length === 0) problems.push(`${method} ${path}: not in the document`);
      for (const [status, r] of ok) {
        const json = r.content?.['application/json']?.schema;
        if (json === undefined) problems.push(`${method} ${path} ${status}: no JSON answer documented`);
        else problems.push(...refusable(schema as Schema, json, `${method} ${path} ${status}`));
      }
    }
    expect(problems).toEqual([]);
  });

  it('names the first field missing or wrong, by its path', () => {
    expect(answerProblem('GET', '/v1/kv/a/b', { key: 'a/b', value: 'v', version: 3 })).toBeNull();
    expect(answerProblem('GET', '/v1/kv/a?consistency=stale', { key: 'a', value: 'v' })).toBe('version: missing');
    expect(answerProblem('PUT', '/v1/kv/a', [])).toBe('expected an object');
    expect(answerProblem('PUT', '/v1/kv/a', null)).toBe('expected an object');
    const m = { id: 'm1', raftAddress: 'h:1', apiAddress: 'h:2', voter: true, reachable: true };
    expect(answerProblem('GET', '/v1/cluster/members', { leaderId: null, members: [m, { ...m, voter: 'yes' }] })).toBe('members[1].voter: expected boolean');
  });

  it("takes fields it does not read, and leaves routes it has no entry for alone", () => {
    // An older manager's answer lacks what came later (storage, noQuorumReason, backup): not read without a default.
    const cluster = { id: 'm1', role: 'leader', term: 2, leaderId: 'm1', commitIndex: 5, appliedIndex: 5, members: [], newer: { anything: 1 } };
    expect(answerProblem('GET', '/v1/cluster', cluster)).toBeNull();
    expect(answerProblem('GET', '/v1/tasks/t1/logs', {})).toBeNull();
    expect(answerProblem('POST', '/v1/workers/w1/heartbeat', {})).toBeNull();
  });
});
