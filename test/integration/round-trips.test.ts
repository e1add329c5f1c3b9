import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;

useRoutedCluster(
  { setup: ['create table counters (id int primary key, n int)', 'insert into counters select g, 0 from generate_series(1, 10) g'] },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

/** Extra round trips the router made (beyond the statements themselves) while `fn` ran. */
async function extra(fn: () => Promise<unknown>) {
  const before = router.topology();
  const served = (t: typeof before) => t.nodes.reduce((sum, n) => sum + n.served, 0);
  await fn();
  const after = router.topology();
  return {
    positionReads: after.counters.positionReads - before.counters.positionReads,
    liveChecks: after.counters.liveChecks - before.counters.liveChecks,
    storeReads: after.counters.storeReads - before.counters.storeReads,
    storeWrites: after.counters.storeWrites - before.counters.storeWrites,
    statements: served(after) - served(before),
  };
}

describe('round trips per request kind', () => {
  it('a read-only request on caught-up replicas adds no PostgreSQL round trip and one store read', async () => {
    await settle(router, cluster);
    // The session's first request: the store holds nothing for it, which may mean a position it
    // forgot, so it is owed the primary's position (one sample), and records the node it read
    // from (one store write) ...
    const first = await extra(() => router.withSession('reader', () => router.query('select n from counters where id = 1')));
    expect(first).toMatchObject({ positionReads: 1, storeReads: 1, storeWrites: 1 });
    // (A replica's cached position may trail that fresh sample by WAL the primary wrote since its
    // last poll — a checkpoint, autovacuum — and then one round of live checks settles it: each
    // replica once, in parallel.)
    expect(first.liveChecks).toBeLessThanOrEqual(cluster.replicas.length);
    // ... after that, the steady state:
    const cost = await extra(() =>
      router.withSession('reader', async () => {
        for (let i = 1; i <= 5; i++) await router.query('select n from counters where id = $1', [i]);
      }),
    );
    expect(cost).toEqual({ positionReads: 0, liveChecks: 0, storeReads: 1, storeWrites: 0, statements: 5 });
  });

  it('a request that makes no routable read does not touch the store', async () => {
    const cost = await extra(() => router.withSession('idle', async () => {}));
    expect(cost.storeReads).toBe(0);
    expect(cost.storeWrites).toBe(0);
  });

  it('a request that wrote adds one primary round trip and one store write, however many writes', async () => {
    await router.withSession('writer', () => router.query('select n from counters where id = 1')); // a known session
    const cost = await extra(() =>
      router.withSession('writer', async () => {
        await router.query('select n from counters where id = 1');
        for (let i = 1; i <= 3; i++) await router.query('update counters set n = n + 1 where id = $1', [i]);
        await router.query('select n from counters where id = 1'); // read after write: primary, no extra trip
        const client = await router.pool.connect();
        try {
          await client.query('begin');
          await client.query('update counters set n = n + 1 where id = 4');
          await client.query('commit');
        } finally {
          client.release();
        }
      }),
    );
    expect(cost).toMatchObject({ positionReads: 1, liveChecks: 0, storeReads: 1, storeWrites: 1 });
  });

  it('outside a scope, one position read per write-then-read, none for reads alone', async () => {
    await router.query('select 1'); // turns the set-up's writes into the process session's floor
    await settle(router, cluster);
    // Earlier scopes folded their reads into the process session, some on the primary: once a
    // read of its own has run on a replica, later reads stay there with nothing to cover.
    for (let i = 0; i < 50; i++) {
      const { rows } = await router.query('select inet_server_port() as port');
      if (nodeByPort(cluster, rows[0]!.port) !== 'primary') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const reads = await extra(async () => {
      for (let i = 0; i < 5; i++) await router.query('select n from counters where id = 1');
    });
    expect(reads.positionReads).toBe(0);
    const writes = await extra(async () => {
      await router.query('update counters set n = n + 1 where id = 5');
      await router.query('update counters set n = n + 1 where id = 6');
      await router.query('select n from counters where id = 5');
      await router.query('select n from counters where id = 6');
    });
    expect(writes.positionReads).toBe(1);
  });

  it('concurrent reads that need a live check share its round trips: the counters count round trips, not callers', async () => {
    await settle(router, cluster);
    const cost = await extra(async () => {
      await router.query('update counters set n = n + 1 where id = 7'); // the process session's floor: ahead of every cached replica position
      await Promise.all(Array.from({ length: 20 }, () => router.query('select n from counters where id = 7')));
    });
    expect(cost.statements).toBe(21);
    expect(cost.positionReads).toBe(1); // the write's position, read once before the reads
    // Each replica sampled once, or twice when a read came in while the first sample was in
    // flight (one more, sent after it, serves the rest): never once per read.
    expect(cost.liveChecks).toBeLessThanOrEqual(2 * cluster.replicas.length);
  });
});
