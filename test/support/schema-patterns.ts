// Every regular expression a JSON schema checks strings against (`pattern`, and a record's key patterns), with where
// it is: what the tests that hold 400s to worded rules walk (lib/schema-problems.ts patternInWords).

export interface FoundPattern {
  readonly pattern: string;
  readonly at: string;
}

/** `resolveRef` follows a `$ref` (an OpenAPI document's); each target is walked once. */
export function patternsIn(schema: unknown, at: string, resolveRef?: (ref: string) => unknown, seen = new Set<string>()): FoundPattern[] {
  if (typeof schema !== 'object' || schema === null) return [];
  if (Array.isArray(schema)) return schema.flatMap((s, i) => patternsIn(s, `${at}[${i}]`, resolveRef, seen));
  return Object.entries(schema as Record<string, unknown>).flatMap(([k, v]): FoundPattern[] => {
    if (k === 'pattern' && typeof v === 'string') return [{ pattern: v, at }];
    if (k === 'patternProperties' && typeof v === 'object' && v !== null) {
      return [...Object.keys(v as object).map((p) => ({ pattern: p, at: `${at} (keys)` })), ...patternsIn(v, `${at}.${k}`, resolveRef, seen)];
    }
    if (k === '$ref' && typeof v === 'string' && resolveRef !== undefined && !seen.has(v)) {
      seen.add(v);
      return patternsIn(resolveRef(v), v, resolveRef, seen);
    }
    return patternsIn(v, `${at}.${k}`, resolveRef, seen);
  });
}
