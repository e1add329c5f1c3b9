// The router's own work, without I/O (part of `npm run bench`): classification and the routing
// decision alone, and whole statements over fake node pools and a fake monitor.
import { Classifier } from '../../lib/classifier.js';
import { RoutedPool } from '../../lib/pool.js';
import { decide } from '../../lib/routing-policy.js';
import { memoryStore } from '../../lib/stores/memory.js';
import { fakeEngine } from '../helpers/fake-parts.js';
import { measureBlocks, type BlockFigures } from './cpu-blocks.js';

/** In-process routing work alone: classification (cached) and the decision, no I/O. */
export async function routingWorkMicros(): Promise<{ cachedClassify: number; decide: number }> {
  const classifier = new Classifier();
  await classifier.ready;
  const sql = 'select id, payload from bench where id = $1';
  const n = 200_000;
  let started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) classifier.classifySync(sql);
  const cachedClassify = Number(process.hrtime.bigint() - started) / 1000 / n;
  const replicas = [
    { name: 'r1', healthy: true, replayLsn: 200n, lagMs: 0 },
    { name: 'r2', healthy: true, replayLsn: 150n, lagMs: 0 },
  ];
  started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    decide({ statement: 'read', level: 'session', forcePrimary: false, floor: 100n, floorUnknown: false, writePending: false, replicas });
  }
  const decideMicros = Number(process.hrtime.bigint() - started) / 1000 / n;
  return { cachedClassify: Number(cachedClassify.toFixed(3)), decide: Number(decideMicros.toFixed(3)) };
}

/**
 * The router's own work per statement with no I/O at all: the same pool, session scope and
 * checked-out client paths over fake node pools and a fake monitor (nothing to wait for), so the
 * figure is the routing code alone, free of the database's and the network's noise.
 */
export async function routingWorkPerStatement(): Promise<Record<string, BlockFigures>> {
  const { engine, monitor } = fakeEngine();
  monitor.set('r1', { replayLsn: 1000n });
  monitor.set('r2', { replayLsn: 1000n });
  // Live samples answer too, as real servers do: a session that leaves the node of its uncovered
  // reads covers them with one (without an answer it would read on the primary, and the figure
  // would be the primary's path, not the replica's).
  for (const name of ['primary', 'r1', 'r2']) monitor.live.set(name, 1000n);
  const pool = new RoutedPool(engine);
  // The same over the in-process store, which answers in the same turn (the synchronous path).
  const inMemory = fakeEngine({ store: memoryStore() });
  for (const name of ['r1', 'r2']) inMemory.monitor.set(name, { replayLsn: 1000n });
  for (const name of ['primary', 'r1', 'r2']) inMemory.monitor.live.set(name, 1000n);
  const memoryPool = new RoutedPool(inMemory.engine);
  const sql = 'select id, payload from bench where id = $1';
  const figures = await measureBlocks(
    {
      routedPool: (i) => pool.query(sql, [i]),
      sessionScope: (i) => engine.withSession(`work:${i % 50}`, () => pool.query(sql, [i])),
      sessionScopeMemoryStore: (i) => inMemory.engine.withSession(`work:${i % 50}`, () => memoryPool.query(sql, [i])),
      checkedOutClient: async (i) => {
        const client = await pool.connect();
        try {
          await client.query(sql, [i]);
        } finally {
          client.release();
        }
      },
    },
    { blockSize: 20_000, rounds: 7 },
  );
  await engine.close();
  await inMemory.engine.close();
  return figures;
}
