// A node's data directory, made on first start. A path that cannot be one is the config's problem, said as such.
import { chmod, mkdir } from 'node:fs/promises';
import { MinkubeError } from './errors.js';
import { errnoReason } from './errno.js';

/**
 * Makes `dir` and its parents when missing; CONFIG_INVALID naming the path, its key and why when it cannot. The
 * directory is the node's user's alone (0700, made so and set so at every start): it holds what must stay secret
 * (the Raft log with its secretEnv values and session key, a worker's task output), and the files LevelDB and the
 * runtimes write in it follow the umask (0644 by default).
 */
export async function ensureDataDir(dir: string, key = 'dataDir'): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const reason = errnoReason(err, { EEXIST: 'a file of that name is in the way' });
    throw new MinkubeError('CONFIG_INVALID', `${key} ${dir} cannot be used as a directory: ${reason}`, { cause: err });
  }
  // A directory made before (by an older version, or by hand) is closed too; one this user does not own is left be.
  await chmod(dir, 0o700).catch(() => undefined);
}
