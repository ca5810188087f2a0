// `mkdir -p` without fs.mkdir's { recursive: true }, which loops forever where mkdir answers ENOENT inside a
// directory that exists (/proc, /sys): every directory Minkube makes with its parents is made here.
import { mkdir, stat } from 'node:fs/promises';
import { dirname, parse, resolve, sep } from 'node:path';

/**
 * Makes `dir` and each missing parent (with `mode`), and answers the first directory it made, or undefined when `dir`
 * was there: what fs.mkdir(dir, { recursive: true }) answers. Node's version makes the parent again after each ENOENT
 * and retries, with no bound: where the parent exists and mkdir still answers ENOENT (a file system that makes no
 * directories, as /proc), it spins at full CPU and never hears a signal. Here each level is tried once, from the top:
 * one that exists must be a directory, and an ENOENT under a directory that exists is an error that says so.
 */
export async function makeDirs(dir: string, mode = 0o777): Promise<string | undefined> {
  const target = resolve(dir);
  // Most calls find the directory there (a kept log saved at each task's end): one mkdir, not one per level.
  try {
    await mkdir(target, { mode });
    return target;
  } catch (err) {
    if ((err as Partial<NodeJS.ErrnoException>).code === 'EEXIST' && (await isDirectory(target))) return undefined;
  }
  let made: string | undefined;
  for (const path of levelsOf(target)) {
    try {
      await mkdir(path, { mode });
      made ??= path;
    } catch (err) {
      // There already (EEXIST; or a refusal, EACCES or EROFS, to make what exists).
      if (await isDirectory(path)) continue;
      const code = (err as Partial<NodeJS.ErrnoException>).code;
      // A file in a parent's place: the next level's mkdir says so (ENOTDIR), as the recursive call did.
      if (code === 'EEXIST' && path !== target) continue;
      const parent = dirname(path);
      if (code === 'ENOENT' && (await isDirectory(parent))) {
        // No errno code of its own: the words are the reason (errnoReason and storageFailed say them as they are).
        throw new Error(`no directory can be made in ${parent}: its file system answers ENOENT to mkdir ${path} although ${parent} exists`, { cause: err });
      }
      throw err;
    }
  }
  return made;
}

/** '/a/b/c' -> ['/a', '/a/b', '/a/b/c']: the root is left out (it always exists). */
function levelsOf(path: string): string[] {
  const { root } = parse(path);
  const names = path.slice(root.length).split(sep).filter((name) => name !== '');
  return names.map((_, i) => root + names.slice(0, i + 1).join(sep));
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
