// How `minkube up` and the test harness launch a manager's or a worker's node: the flags and environment that keep its
// memory small (README, "Memory"). bin/minkube.js's first line gives a node run directly the same ones; a flag given
// later wins, and a variable already set in the environment is kept.

/**
 * Semi-spaces of 8 MiB instead of Node 20's 16: the young generation commits 16 MiB instead of 32. And `gc` exposed,
 * for a manager to ask for a collection after a snapshot (src/daemon/gc.ts says why).
 */
export const nodeLaunchFlags: readonly string[] = ['--max-semi-space-size=8', '--expose-gc'];

/**
 * glibc's mmap threshold fixed at 32 KiB. By default it rises (up to 32 MiB) each time a large block is freed, after
 * which the main thread's buffers (Raft entries, request bodies, LevelDB batches) are carved from the brk heap,
 * which only shrinks from its top: freed holes stay resident, and a busy manager's RSS crept by ~30 MiB per 100,000
 * tasks (bench/retention.ts; malloc_trim(0) on one gave back 51 MiB). Fixed, buffers of 32 KiB and more are mapped
 * on their own and returned to the system when freed.
 */
export const nodeLaunchEnv: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '32768' };
