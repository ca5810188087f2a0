// A system call's error (ENOENT, EADDRINUSE, ...) in words, for messages that name a path or an address a user gave.

const common: Readonly<Record<string, string>> = {
  ENOTDIR: 'a file stands where one of its parent directories should be',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EIO: 'the disk failed to read or write (an input/output error)',
};

/** Why a file system call failed: `specific` words for this kind of path first, then the common ones, else the code. */
export function errnoReason(err: unknown, specific: Readonly<Record<string, string>> = {}): string {
  const e = err as Partial<NodeJS.ErrnoException> | null;
  const code = e?.code;
  return (code !== undefined ? (specific[code] ?? common[code]) : undefined) ?? code ?? e?.message ?? String(err);
}

/** The codes of a disk that refuses a write: full, over quota, read-only, failing. A storage failure, never bad input. */
export const diskRefusalCodes: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO']);
