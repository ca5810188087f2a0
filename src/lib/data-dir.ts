// A node's data directory, made on first start. A path that cannot be one is the config's problem, said as such.
import { chmod } from 'node:fs/promises';
import { MinkubeError } from './errors.js';
import { errnoReason } from './errno.js';
import { makeDirs } from './make-dirs.js';

/**
 * Makes `dir` and its parents when missing; CONFIG_INVALID naming the path, its key and why when it cannot. The
 * directory is the node's user's alone (0700, made so and set so at every start): it holds what must stay secret
 * (the Raft log with its secretEnv values and session key, a worker's task output), and the files LevelDB and the
 * runtimes write in it follow the umask (0644 by default).
 */
export async function ensureDataDir(dir: string, key = 'dataDir'): Promise<void> {
  await makeDirs(dir, 0o700).catch((err: unknown) => {
    throw unusableDataDir(dir, key, err);
  });
  // A directory made before (by an older version, or by hand) is closed too; one this user does not own is left be.
  await chmod(dir, 0o700).catch(() => undefined);
}

/** CONFIG_INVALID for a data directory `dir` (given as `key`) that could not be made, saying why (`err`). */
export function unusableDataDir(dir: string, key: string, err: unknown): MinkubeError {
  const reason = errnoReason(err, { EEXIST: 'a file of that name is in the way' });
  return new MinkubeError('CONFIG_INVALID', `${key} ${dir} cannot be used as a directory: ${reason}`, { cause: err });
}
