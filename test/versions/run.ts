// npm run test:versions — the integration core on the oldest and newest supported PostgreSQL majors
// (PG_MAJORS=13,18 by default; any pinned major in postgres-majors.json), each on binaries from
// install.ts: the same test files, a cluster of that major (PG_BIN), the same application role.
// The full suite runs on the machine's own PostgreSQL (npm test); test/integration/server-version
// checks that each run is on the major it names.
import { spawnSync } from 'node:child_process';
import { installMajor, MAJORS } from './install.js';

/**
 * Read-your-writes, monotonic reads, failover and the replica fault drills, what version-dependent
 * SQL they rest on, and the topologies: cascading replicas, PgBouncer in front of each node.
 */
export const CORE = [
  'test/integration/server-version.test.ts',
  'test/integration/read-your-writes.test.ts',
  'test/integration/monotonic-reads.test.ts',
  'test/integration/failover.test.ts',
  'test/integration/timeline-after-promotion.test.ts',
  'test/integration/monitor.test.ts',
  'test/integration/app-role-lag.test.ts',
  'test/integration/waiting.test.ts',
  'test/integration/round-trips.test.ts',
  'test/integration/cluster.test.ts',
  'test/integration/cluster-app-role.test.ts',
  'test/integration/page-boundary.test.ts',
  'test/integration/cascading.test.ts',
  'test/integration/pgbouncer.test.ts',
  'test/faults/replicas.test.ts',
];

const majors = (process.env.PG_MAJORS ?? `${MAJORS[0]},${MAJORS[MAJORS.length - 1]}`).split(',').map(Number);
const failed: number[] = [];
for (const major of majors) {
  const binDir = installMajor(major);
  console.log(`\n== PostgreSQL ${major} (${binDir})`);
  const run = spawnSync('npx', ['vitest', 'run', ...CORE], {
    stdio: 'inherit',
    env: { ...process.env, PG_BIN: binDir, PGRR_PG_MAJOR: String(major) },
  });
  if (run.status !== 0) failed.push(major);
}
if (failed.length) {
  console.error(`\nthe integration core failed on PostgreSQL ${failed.join(', ')}`);
  process.exit(1);
}
console.log(`\nthe integration core passed on PostgreSQL ${majors.join(', ')}`);
