import pg from 'pg';
import QueryStream from 'pg-query-stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, type ReplicaConfig, type Router } from 'pg-replica-router';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { boundedConfig, DEFAULT_REPLICA_READ_MS } from '../../lib/nodes.js';
import { proxyNode, type FaultProxy } from '../../lib/testing/fault-proxy.js';
import { nodeByPort, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

// A replica stops answering (a partition, a hung host) without closing its connections. The
// monitor's polls have their own timeouts, so it marks the replica down after `downAfter` failed
// polls; a read of the application already routed there must not wait for ever meanwhile: it
// gives up within a bound and goes elsewhere.
let cluster: Cluster;
/** The node as the application role reaches it (the proxy keeps the user of the connection string). */
const asApp = (node: NodeHandle) => ({ host: node.host, port: node.port, connectionString: urlAs(node) });
let proxy: FaultProxy;
let r1ThroughProxy: string;
const routers: Router[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  ({ proxy, connectionString: r1ThroughProxy } = await proxyNode(asApp(cluster.replicas[0]!)));
  await cluster.primary.query('create table notes (id int primary key, body text)');
  await cluster.primary.query("insert into notes values (1, 'one')");
  await cluster.waitForReplicas();
});

afterEach(async () => {
  proxy.setMode('pass');
  for (const router of routers.splice(0)) await router.close();
});

afterAll(async () => {
  proxy?.setMode('pass');
  await proxy?.close();
  await cluster?.stop();
});

/** A router whose only replica, r1, is reached through the proxy. */
async function routerWith(r1: Partial<ReplicaConfig> = {}): Promise<Router> {
  const router = createRouter({
    primary: { connectionString: urlAs(cluster.primary) },
    replicas: [{ name: 'r1', connectionString: r1ThroughProxy, ...r1 }],
    monitor: { intervalMs: 100 },
    logger: false,
  });
  routers.push(router);
  await settle(router, cluster);
  return router;
}

const READ = 'select body, inet_server_port() as port from notes where id = 1';

/** Reads note 1 through the router; resolves with the node that served it. */
async function read(router: Router): Promise<string> {
  const { rows } = await router.query(READ);
  expect(rows[0]?.body).toBe('one');
  return nodeByPort(cluster, rows[0]?.port);
}

/** How `promise` ended within `ms`: its value, its error, or still pending (left running). */
async function within<T>(
  ms: number,
  promise: Promise<T>,
): Promise<
  { state: 'resolved'; value: T; ms: number } | { state: 'rejected'; error: unknown; ms: number } | { state: 'pending'; ms: number }
> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(
      (value) => ({ state: 'resolved' as const, value }),
      (error: unknown) => ({ state: 'rejected' as const, error }),
    ),
    new Promise<{ state: 'pending' }>((resolve) => (timer = setTimeout(() => resolve({ state: 'pending' }), ms))),
  ]);
  clearTimeout(timer);
  return { ...outcome, ms: performance.now() - started };
}

describe('a replica blackholed', () => {
  it('naive (no connect or read timeout on the replica pool): a read routed to it waits with no end', async () => {
    const router = await routerWith({ connectionTimeoutMillis: 0, query_timeout: 0 });
    expect(await read(router)).toBe('r1'); // an open, idle connection to r1 in the pool
    proxy.setMode('blackhole');
    const pending = read(router);
    expect((await within(4000, pending)).state, 'still waiting after 4 s').toBe('pending');
    proxy.setMode('pass'); // healed: the held read gets its answer
    expect(await pending).toBe('r1');
  });

  it('a read that has to connect to it gives up within a bound and is retried elsewhere; r1 leaves the rotation', async () => {
    // Idle connections close at once, so every read opens a connection (through the blackhole).
    const router = await routerWith({ idleTimeoutMillis: 1 });
    expect(await read(router)).toBe('r1');
    await new Promise((resolve) => setTimeout(resolve, 50));
    proxy.setMode('blackhole');
    const outcome = await within(8000, read(router));
    expect(outcome.state, 'the read was served elsewhere').toBe('resolved');
    expect(outcome.ms, 'a liveness bound, not a speed target').toBeLessThan(5000);
    expect(outcome.state === 'resolved' && outcome.value).toBe('primary');
    expect(router.topology().nodes.find((n) => n.name === 'r1')?.status).toBe('down');
    // The next reads do not try r1 again.
    const next = await within(1000, read(router));
    expect(next.state === 'resolved' && next.value).toBe('primary');
  });

  it('a read sent on an open connection gives up within a bound, and later reads move elsewhere', async () => {
    // A user's own statement_timeout: the server cancels slow statements itself; the client gives
    // up only on a server that does not answer at all, a little after it.
    const router = await routerWith({ statement_timeout: 1000 });
    expect(await read(router)).toBe('r1');
    proxy.setMode('blackhole');
    const outcome = await within(10_000, read(router));
    expect(outcome.state, 'the read did not wait for ever').not.toBe('pending');
    expect(outcome.ms).toBeLessThan(8000);
    // The read timed out on r1 (a connection that answers nothing) and went once more elsewhere.
    expect(outcome.state === 'resolved' && outcome.value).toBe('primary');
    // Once the monitor has marked r1 down (its polls time out), reads go to the primary at once.
    await expect.poll(() => router.topology().nodes.find((n) => n.name === 'r1')?.status, { timeout: 10_000 }).toBe('down');
    const next = await within(1000, read(router));
    expect(next.state === 'resolved' && next.value).toBe('primary');
  });

  it('the replica pools get a connect and a read bound by default; what the user set is kept; the primary gets the same bounds', async () => {
    const optionsOf = (router: Router, name: string) =>
      (engineOf(router)!.nodes.all.find((n) => n.name === name)!.pool as unknown as { options: pg.PoolConfig }).options;
    const router = await routerWith();
    const r1 = optionsOf(router, 'r1');
    expect(r1.connectionTimeoutMillis).toBe(2000); // 2 × monitor.timeoutMs
    expect(r1.Client, 'a client class that bounds each statement').not.toBe(pg.Client);
    expect(r1.query_timeout, 'not for the whole connection: cursors and streams stay unbounded').toBeUndefined();
    expect(DEFAULT_REPLICA_READ_MS).toBe(30_000);
    // The primary gets the same bounds: a write whose answer never came has its backend fenced
    // before the error returns (test/integration/primary-bounds.test.ts).
    const primary = optionsOf(router, 'primary');
    expect(primary.connectionTimeoutMillis).toBe(2000);
    expect(primary.Client, 'a client class that bounds each statement').not.toBe(pg.Client);
    expect(primary.query_timeout).toBeUndefined();
    const own = optionsOf(await routerWith({ connectionTimeoutMillis: 0, query_timeout: 12_345 }), 'r1');
    expect([own.connectionTimeoutMillis, own.query_timeout, own.Client]).toEqual([0, 12_345, undefined]);
  });

  it('the read bound applies to each plain statement, not to cursors and streams, which may stay open as long as their reader likes', async () => {
    const pool = new pg.Pool(
      boundedConfig({ connectionString: cluster.replicas[0]!.connectionString }, 'replica', { connectMs: 2000, readMs: 1000 }),
    );
    try {
      // A statement with no answer in time (here: a slow one) fails, and its connection is dropped.
      const started = performance.now();
      await expect(pool.query('select pg_sleep(3)')).rejects.toThrow(/Query read timeout/);
      expect(performance.now() - started).toBeLessThan(2500);
      expect((await pool.query({ text: 'select $1::int as n', values: [7] })).rows[0].n).toBe(7); // config objects too, unchanged
      await expect(pool.query({ text: 'select pg_sleep(1.5)', query_timeout: 0 } as pg.QueryConfig)).resolves.toBeDefined(); // its own bound (0: none) wins
      // A stream read slowly, for longer than the bound, is not cut off.
      const client = await pool.connect();
      try {
        const stream = client.query(new QueryStream('select n from generate_series(1, 4) n', [], { batchSize: 1, highWaterMark: 1 }));
        const rows: number[] = [];
        for await (const row of stream) {
          rows.push((row as { n: number }).n);
          await new Promise((resolve) => setTimeout(resolve, 700)); // 2.8 s in all
        }
        expect(rows).toEqual([1, 2, 3, 4]);
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  });
});
