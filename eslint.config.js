// Lint: type-checked typescript-eslint rules, a fence around the pure Raft core, and one around every src/ folder
// from the layering table (scripts/layers.mjs).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { allowed } from './scripts/layers.mjs';

const folders = Object.keys(allowed);

/**
 * The no-restricted-imports patterns that keep src/<from> to its arrows: a relative import, from any depth
 * ('../kv/x.js', '../../kv/x.js'), into a src/ folder the table does not allow it. Matching by name assumes no folder
 * has a subfolder named like a src/ folder; the layering test resolves paths and would catch what this misses, and
 * dynamic import(), which this rule does not see.
 */
const fence = (from) =>
  folders
    .filter((to) => to !== from && !allowed[from].includes(to))
    .map((to) => ({
      regex: `^(\\.\\./)+${to}(/|$)`,
      caseSensitive: true,
      message: `src/${from} may not import src/${to}: arrows between folders point one way (scripts/layers.mjs).`,
    }));

const impure = ['node:*', 'fs', 'net', 'http', 'dgram', 'child_process', 'os', 'crypto', 'pino', 'classic-level', 'dockerode', 'msgpackr', 'fastify'];

export default tseslint.config(
  // test/api/fixtures/*.mjs: plain JavaScript a worker thread loads without a TypeScript loader (side-thread.test.ts).
  { ignores: ['node_modules/**', 'dist/**', 'bench/results/**', 'coverage/**', '.tmp/**', 'test/api/fixtures/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js', 'scripts/*.mjs', 'bench/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The launcher, the build script and the benchmarks' probes: plain Node JavaScript, outside the type-checked sources.
    files: ['bin/*.js', 'scripts/*.mjs', 'bench/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly', performance: 'readonly' } },
  },
  ...folders
    .filter((from) => from !== 'raft')
    .map((from) => ({ files: [`src/${from}/**/*.ts`], rules: { 'no-restricted-imports': ['error', { patterns: fence(from) }] } })),
  {
    // fs.mkdir's { recursive: true } spins forever where mkdir answers ENOENT in a directory that exists (/proc).
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: "CallExpression:matches([callee.name=/^mkdir(Sync)?$/], [callee.property.name=/^mkdir(Sync)?$/]) > ObjectExpression > Property[key.name='recursive']",
        message: 'make a directory and its parents with makeDirs (src/lib/make-dirs.ts): fs.mkdir({ recursive: true }) can loop forever.',
      }],
    },
  },
  {
    files: ['src/raft/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: impure, message: 'src/raft is pure: no I/O, no node:* modules, no logging.' },
          // One rule per file: ESLint replaces a rule's options block by block, so raft's folder fence joins it here.
          ...fence('raft'),
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'Date', message: 'src/raft counts ticks; time comes from the caller.' },
        { name: 'setTimeout', message: 'src/raft has no timers.' },
        { name: 'setInterval', message: 'src/raft has no timers.' },
        { name: 'setImmediate', message: 'src/raft has no timers.' },
        { name: 'performance', message: 'src/raft has no clock.' },
        { name: 'process', message: 'src/raft does no I/O.' },
      ],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'inject a Random through the config.' }],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // Tests read JSON answers whose shape is what they assert; typing every body would only restate the asserts.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
);
