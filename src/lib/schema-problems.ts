// How a TypeBox error reads in a 400 or a config error: one wording for the API's request checks and the config
// file's, with the rules a pattern stands for said in words (a label key) rather than as the regular expression.
import { labelKeyPattern, labelKeyRule, labelValuePattern, labelValueRule } from './constraints.js';

/** Patterns whose rule a message says in words. */
const patternRules = new Map<string, string>([
  [labelKeyPattern, `not a valid label key (${labelKeyRule})`],
  [labelValuePattern, `not a valid label value (${labelValueRule})`],
]);

/**
 * The problem of one TypeBox error, as `<field>: <problem>` ends: `unknownWord` ('unknown field', 'unknown key') for
 * a property the schema does not name, except under a record whose keys follow a pattern, where the key is invalid.
 */
export function describeSchemaProblem(message: string, schema: unknown, unknownWord: string): string {
  if (message === 'Expected required property') return 'missing';
  if (message === 'Unexpected property') {
    const keyPatterns = Object.keys((schema as { patternProperties?: object }).patternProperties ?? {});
    const keyPattern = keyPatterns.length === 1 ? keyPatterns[0]! : null;
    if (keyPattern === null) return unknownWord;
    return patternRules.get(keyPattern) ?? `not a valid key (expected one to match '${keyPattern}')`;
  }
  const pattern = (schema as { pattern?: unknown }).pattern;
  if (typeof pattern === 'string' && message.startsWith('Expected string to match')) return patternRules.get(pattern) ?? message.replace(/^Expected/, 'expected');
  const anyOf = (schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (anyOf?.every((s) => s.const !== undefined)) return `expected one of ${anyOf.map((s) => JSON.stringify(s.const)).join(', ')}`;
  return message.replace(/^Expected/, 'expected');
}
