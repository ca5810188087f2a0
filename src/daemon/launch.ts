// How `minkube up` and the test harness launch a manager's or a worker's node: the flags that keep its memory small
// (README, "Memory"). bin/minkube.js's first line gives a node run directly the same ones; a flag given later wins.

/** Semi-spaces of 8 MiB instead of Node 20's 16: the young generation commits 16 MiB instead of 32. */
export const nodeLaunchFlags: readonly string[] = ['--max-semi-space-size=8'];
