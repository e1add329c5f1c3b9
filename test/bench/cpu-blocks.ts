// Blocks of sequential statements per variant, the variants in a rotating order each round:
// CPU time of this process per statement (process.cpuUsage: user + system) beside wall time,
// medians over the rounds. Sequential statements on one connection per variant, so no variant
// pays for switching backends (which alternating single queries would add to the baseline).

import pg from 'pg';
import { createRouter } from '../../lib/index.js';
import { median } from './rounds.js';

export interface BlockFigures {
  /** Median CPU µs per statement in this process. */
  cpuMicros: number;
  /** Median wall µs per statement. */
  wallMicros: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Runs `rounds` rounds of one block of `blockSize` statements per variant. */
export async function measureBlocks(
  variants: Record<string, (i: number) => Promise<unknown>>,
  { blockSize = 1000, rounds = 7 }: { blockSize?: number; rounds?: number } = {},
): Promise<Record<string, BlockFigures>> {
  const names = Object.keys(variants);
  const cpu = new Map<string, number[]>(names.map((n) => [n, []]));
  const wall = new Map<string, number[]>(names.map((n) => [n, []]));
  for (const name of names) for (let i = 0; i < 200; i++) await variants[name]!(i); // warm-up
  for (let round = 0; round < rounds; round++) {
    const order = names.map((_, k) => names[(k + round) % names.length]!);
    for (const name of order) {
      const run = variants[name]!;
      gc?.(); // each block starts with a clean heap (run with --expose-gc): no variant pays for another's garbage
      const cpuBefore = process.cpuUsage();
      const started = process.hrtime.bigint();
      for (let i = 0; i < blockSize; i++) await run(i);
      const wallNs = Number(process.hrtime.bigint() - started);
      const used = process.cpuUsage(cpuBefore);
      cpu.get(name)!.push((used.user + used.system) / blockSize);
      wall.get(name)!.push(wallNs / 1000 / blockSize);
    }
  }
  const result: Record<string, BlockFigures> = {};
  for (const name of names) {
    result[name] = { cpuMicros: Number(median(cpu.get(name)!).toFixed(1)), wallMicros: Number(median(wall.get(name)!).toFixed(1)) };
  }
  return result;
}

/**
 * CPU and wall time per statement of a select-by-pk on `replica`, in blocks on one connection per
 * variant: a raw pg.Pool; the router's pool (telemetry on, no SDK, and off); a session scope
 * around one read (memory store); a checked-out client.
 */
export async function statementBlocks(
  primaryUrl: string,
  replica: { name: string; connectionString: string },
  sql: string,
): Promise<Record<string, BlockFigures>> {
  const onePool = (connectionString: string) => ({ connectionString, max: 1 });
  const config = { primary: onePool(primaryUrl), replicas: [{ name: replica.name, ...onePool(replica.connectionString) }] };
  const router = createRouter(config);
  const quiet = createRouter({ ...config, telemetry: false });
  const raw = new pg.Pool(onePool(replica.connectionString));
  await Promise.all([router.query('select 1'), quiet.query('select 1')]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const byId = (i: number) => [(i % 1000) + 1];
  try {
    return await measureBlocks({
      rawPool: (i) => raw.query(sql, byId(i)),
      routedPool: (i) => router.query(sql, byId(i)),
      routedPoolTelemetryOff: (i) => quiet.query(sql, byId(i)),
      sessionScope: (i) => router.withSession(`block:${i % 50}`, () => router.query(sql, byId(i))),
      checkedOutClient: async (i) => {
        const client = await router.pool.connect();
        try {
          await client.query(sql, byId(i));
        } finally {
          client.release();
        }
      },
    });
  } finally {
    await Promise.all([router.close(), quiet.close(), raw.end()]);
  }
}
