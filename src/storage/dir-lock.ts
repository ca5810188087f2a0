// A data directory's lock for a node that keeps no Raft log in it (a worker): LevelDB's LOCK file (an flock the kernel
// releases when the process dies, whatever way it dies), the same lock a manager's database holds, so a second
// process of one id fails with DATA_DIR_IN_USE before it touches anything (its runtime, its containers).
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { MinkubeError } from '../lib/errors.js';
import { storageFailed } from './common.js';

export interface DirLock {
  release(): Promise<void>;
}

/** Holds `<dir>/lock` until release(); DATA_DIR_IN_USE naming `who` when another process holds it. */
export async function lockDataDir(dir: string, who: string): Promise<DirLock> {
  const db = new ClassicLevel(join(dir, 'lock'), { createIfMissing: true });
  try {
    await db.open();
  } catch (err) {
    if ((err as { cause?: { code?: unknown } } | null)?.cause?.code === 'LEVEL_LOCKED') {
      throw new MinkubeError('DATA_DIR_IN_USE', `the data directory ${dir} is in use by another process (${who} still running?): nothing was started`, { cause: err });
    }
    throw storageFailed(`cannot lock the data directory ${dir}`, err, 'start it again');
  }
  return { release: () => db.close() };
}
