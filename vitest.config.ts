import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // 2 cores: tests with real processes must not starve each other's timers.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
