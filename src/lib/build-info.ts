// Which build this process runs: the package's version, and the git commit when the build recorded one
// (scripts/build.mjs writes dist/build-info.json; run from the sources, or built outside a git checkout, there is none).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  readonly version: string;
  readonly commit?: string;
}

let cached: BuildInfo | null = null;

/** Read once: both files sit two folders above and one above every module (src/x/, dist/x/, the bundles alike). */
export function buildInfo(): BuildInfo {
  if (cached !== null) return cached;
  const version = readJson('../../package.json')?.version;
  const commit = readJson('../build-info.json')?.commit;
  cached = {
    version: typeof version === 'string' ? version : 'unknown',
    ...(typeof commit === 'string' && /^[0-9a-f]{4,40}$/.test(commit) ? { commit } : {}),
  };
  return cached;
}

/** "0.1.0 (commit 3944cbb)", or "0.1.0" without a commit. */
export function buildText(b: BuildInfo): string {
  return b.commit === undefined ? b.version : `${b.version} (commit ${b.commit})`;
}

function readJson(relative: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(readFileSync(fileURLToPath(new URL(relative, import.meta.url)), 'utf8'));
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
