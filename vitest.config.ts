import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run the workspace packages from source, so no build is needed between edits.
    alias: {
      '@faas/protocol': fileURLToPath(new URL('./packages/protocol/src/index.ts', import.meta.url)),
      '@faas/sdk': fileURLToPath(new URL('./packages/sdk/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Docker-backed suites share one engine on a 2-core machine: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
