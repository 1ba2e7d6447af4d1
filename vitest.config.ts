import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // After each file: its API answers are checked against openapi.json (the contract test).
    setupFiles: ['test/support/contract-setup.ts'],
    // A Redis Cluster for the tests that run on one (ops/redis-cluster.sh), stopped after the run.
    globalSetup: ['test/support/redis-cluster-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration files each own a database and a queue prefix; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
