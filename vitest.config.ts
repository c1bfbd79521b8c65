import { defineConfig } from 'vitest/config';

// Tests run against the compiled package in dist/: the worker pool loads its worker as a .js file,
// and CLI tests spawn the real bin, so both must exist before vitest starts (`npm test` builds first).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
