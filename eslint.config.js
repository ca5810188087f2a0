// Lint: type-checked typescript-eslint rules, and a fence around the pure Raft core.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const impure = ['node:*', 'fs', 'net', 'http', 'dgram', 'child_process', 'os', 'crypto', 'pino', 'classic-level', 'dockerode', 'msgpackr', 'fastify'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'bench/results/**', 'coverage/**', '.tmp/**'] },
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
  {
    files: ['src/raft/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: impure, message: 'src/raft is pure: no I/O, no node:* modules, no logging.' },
          { group: ['../*', '!../lib', '!../lib/*'], message: 'src/raft imports only src/lib.' },
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
