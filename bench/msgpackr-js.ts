// Imported first by a benchmark that measures the state machine in its own process: msgpackr reads its native string
// reader's switch when it loads, and bin/minkube.js starts every node with it off (MSGPACKR_NATIVE_ACCELERATION_DISABLED
// =true: the native reader's strings are slices that keep whole decoded messages alive). Kept if already set.
process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ??= 'true';
export {};
