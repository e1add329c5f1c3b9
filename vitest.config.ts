import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests import the package by its public names, resolved to the sources.
    alias: [
      { find: /^pg-replica-router\/testing$/, replacement: here('./lib/testing/index.ts') },
      { find: /^pg-replica-router\/express$/, replacement: here('./adapters/express/index.ts') },
      { find: /^pg-replica-router\/fastify$/, replacement: here('./adapters/fastify/index.ts') },
      { find: /^pg-replica-router\/(kysely|drizzle|knex|typeorm|prisma|bullmq|nestjs)$/, replacement: here('./adapters/$1/index.ts') },
      { find: /^pg-replica-router$/, replacement: here('./lib/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real PostgreSQL clusters; a 2-core machine runs two files at once.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
