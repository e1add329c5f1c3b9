import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, memoryStore, type Router } from 'pg-replica-router';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { PRIMARY_POSITION_SQL } from '../../lib/position-sql.js';
import { proxyNode, type FaultProxy } from '../../lib/testing/fault-proxy.js';
import { nodeByPort, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

// The primary stops answering (a partition, a hung host) without closing any connection, right
// after a write was acknowledged: the position read at the end of the scope must not hold the
// response for as long as TCP allows.
let cluster: Cluster;
/** The node as the application role reaches it (the proxy keeps the user of the connection string). */
const asApp = (node: NodeHandle) => ({ host: node.host, port: node.port, connectionString: urlAs(node) });
let router: Router;
let proxy: FaultProxy;
let primaryThroughProxy: string;
const store = memoryStore();

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  ({ proxy, connectionString: primaryThroughProxy } = await proxyNode(asApp(cluster.primary)));
  router = createRouter({
    primary: { connectionString: primaryThroughProxy },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: urlAs(r) })),
    monitor: { intervalMs: 100 },
    store,
    logger: false,
  });
  await router.query('create table notes (id int primary key, body text)');
  await settle(router, cluster);
});

afterEach(async () => {
  proxy.setMode('pass');
  await settle(router, cluster);
});

afterAll(async () => {
  proxy?.setMode('pass');
  await router?.close();
  await proxy?.close();
  await cluster?.stop();
});

/** Whether `promise` settles within `ms`, and how long it took (it is left running if not). */
async function settlesWithin(ms: number, promise: Promise<unknown>): Promise<{ settled: boolean; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return { settled, ms: performance.now() - started };
}

describe('a primary blackholed right after a write', () => {
  it('naive: the position query on the blackholed primary waits with no end', async () => {
    const naive = new pg.Pool({ connectionString: primaryThroughProxy, max: 1 });
    try {
      await naive.query('select 1'); // an open, idle connection, as the router's pool has
      proxy.setMode('blackhole');
      const query = naive.query(PRIMARY_POSITION_SQL);
      expect((await settlesWithin(3000, query)).settled, 'still waiting after 3 s').toBe(false);
      proxy.setMode('pass'); // healed: the held query gets its answer
      await query;
    } finally {
      await naive.end();
    }
  });

  it('withSession returns within a bound; the position is stored as "primary"; the next read still sees the write', async () => {
    const errorsBefore = router.topology().counters.positionErrors;
    const scope = router.withSession('writer', async () => {
      await router.query("insert into notes values (1, 'written')");
      // Acknowledged; the scope is still open, so its position is read when it ends.
      proxy.setMode('blackhole');
    });
    const outcome = await settlesWithin(8000, scope);
    expect(outcome.settled, 'withSession returned while the primary was blackholed').toBe(true);
    expect(outcome.ms, 'a liveness bound, not a speed target').toBeLessThan(5000);
    await scope; // a request that succeeded stays a success
    expect(router.topology().counters.positionErrors).toBe(errorsBefore + 1);
    // Fail safe: "primary", so the next read samples the primary before it uses a replica.
    expect((await store.get('writer'))?.node).toBe('primary');

    proxy.setMode('pass');
    await settle(router, cluster);
    const { rows } = await router.withSession('writer', () =>
      router.query('select body, inet_server_port() as port from notes where id = 1'),
    );
    expect(rows[0]?.body).toBe('written');
    expect(['primary', 'r1']).toContain(nodeByPort(cluster, rows[0]?.port));
  });

  it('also when the position read needs a new connection (a connect the primary never answers)', async () => {
    // Idle connections close at once, so the position read has to connect through the blackhole.
    const own = createRouter({
      primary: { connectionString: primaryThroughProxy, idleTimeoutMillis: 1 },
      monitor: { intervalMs: 100 },
      store,
      logger: false,
    });
    try {
      await own.query('select 1');
      const errorsBefore = own.topology().counters.positionErrors;
      const scope = own.withSession('connects', async () => {
        await own.query("insert into notes values (2, 'written')");
        proxy.setMode('blackhole');
        await new Promise((resolve) => setTimeout(resolve, 100)); // the write's connection is gone
      });
      const outcome = await settlesWithin(8000, scope);
      expect(outcome.settled, 'withSession returned while the primary was blackholed').toBe(true);
      expect(outcome.ms).toBeLessThan(5000);
      expect(own.topology().counters.positionErrors).toBe(errorsBefore + 1);
      expect((await store.get('connects'))?.node).toBe('primary');
    } finally {
      proxy.setMode('pass');
      await own.close();
    }
  });
});
