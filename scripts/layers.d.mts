// Types for scripts/layers.mjs, which plain JavaScript (eslint.config.js) and the TypeScript tests both read.

/** Who may import whom: src/<folder> -> the src/ folders it may import. */
export declare const allowed: Readonly<Record<string, readonly string[]>>;
