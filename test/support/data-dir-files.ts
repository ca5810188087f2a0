// What a data directory holds, file by file, to check that a failed start left it exactly as it was.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** LevelDB's own info log and lock, which every open (even one that fails) rewrites: not the data. */
const REWRITTEN_BY_EVERY_OPEN = new Set(['LOG', 'LOG.old', 'LOCK']);

/** Every file under `dir` (relative path, sorted) with its size and sha256, LevelDB's LOG, LOG.old and LOCK left out. */
export function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (sub: string): void => {
    for (const name of readdirSync(join(dir, sub)).sort()) {
      const rel = sub === '' ? name : `${sub}/${name}`;
      const path = join(dir, rel);
      if (statSync(path).isDirectory()) walk(rel);
      else if (!REWRITTEN_BY_EVERY_OPEN.has(name)) out[rel] = `${statSync(path).size} ${createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)}`;
    }
  };
  walk('');
  return out;
}
