import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, memoryStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { proxyNode, type FaultProxy } from '../../lib/testing/fault-proxy.js';
import { nodeByPort, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

// Issue 14, case 15 (the primary's part): the primary stops answering (a partition, a hung host)
// without closing connections, or answers a write too late. A write must not hang for as long
// as TCP allows; it fails with a clear code, its outcome unknown; and the session's reads after
// that must still see it if it committed — also when it commits after the failure (the partition
// delivers the held bytes when it heals; a slow statement runs on after the client gave up).
let cluster: Cluster;
let proxy: FaultProxy;
let primaryThroughProxy: string;
const routers: Router[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  ({ proxy, connectionString: primaryThroughProxy } = await proxyNode({ ...cluster.primary, connectionString: urlAs(cluster.primary) }));
  await cluster.primary.query('create table notes (id int primary key, body text)');
  await cluster.primary.query('grant select, insert on notes to app');
  await cluster.waitForReplicas();
});

afterEach(async () => {
  proxy.setMode('pass');
  for (const replica of cluster.replicas) if (replica.running) await replica.resumeReplay();
});

afterAll(async () => {
  proxy?.setMode('pass');
  for (const router of routers) await router.close().catch(() => {});
  await proxy?.close();
  await cluster?.stop();
});

/** A router whose primary is reached through the proxy; `primary` adds pg settings. */
async function routerWith(primary: Partial<pg.PoolConfig> = {}, through = primaryThroughProxy): Promise<Router> {
  const router = createRouter({
    primary: { connectionString: through, ...primary },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: urlAs(r) })),
    monitor: { intervalMs: 100, timeoutMs: 500 },
    store: memoryStore(),
    logger: false,
  });
  routers.push(router);
  await settle(router, cluster);
  return router;
}

/** How `promise` ended within `ms`: its value, its error, or still pending (left running). */
async function within<T>(
  ms: number,
  promise: Promise<T>,
): Promise<{ state: 'resolved' | 'rejected' | 'pending'; value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<{ state: 'pending' }>((resolve) => (timer = setTimeout(() => resolve({ state: 'pending' }), ms)));
  const settled = promise.then(
    (value) => ({ state: 'resolved' as const, value }),
    (error: unknown) => ({ state: 'rejected' as const, error }),
  );
  try {
    return await Promise.race([settled, pending]);
  } finally {
    clearTimeout(timer);
  }
}

const rowOnPrimary = async (id: number) => (await cluster.primary.query('select body from notes where id = $1', [id])).length > 0;

describe('bounds on the primary', () => {
  it("the primary's pool gets a connect and an answer bound by default, as replicas do", async () => {
    const router = await routerWith();
    const options = (engineOf(router)!.nodes.primary.pool as unknown as { options: pg.PoolConfig }).options;
    expect(options.connectionTimeoutMillis).toBe(1000); // 2 × monitor.timeoutMs: nothing was sent yet, always safe
    expect(options.Client, 'a client class that bounds each statement').not.toBe(pg.Client);
    const own = (
      engineOf(await routerWith({ query_timeout: 0, connectionTimeoutMillis: 0 }))!.nodes.primary.pool as unknown as {
        options: pg.PoolConfig;
      }
    ).options;
    expect([own.connectionTimeoutMillis, own.query_timeout, own.Client]).toEqual([0, 0, undefined]);
  });

  it('naive: a write on the blackholed primary waits with no end', async () => {
    const naive = new pg.Pool({ connectionString: primaryThroughProxy, max: 1 });
    try {
      await naive.query('select 1');
      proxy.setMode('blackhole');
      const write = naive.query("insert into notes values (100, 'naive')");
      expect((await within(3000, write)).state, 'still waiting after 3 s').toBe('pending');
      proxy.setMode('pass');
      await write;
    } finally {
      await naive.end();
    }
  });

  it('a write on an open connection fails within the bound (ERR_PGRR_NODE_TIMEOUT); after the heal the session reads it once it committed', async () => {
    // statement_timeout 1 s: the client gives up 1 s + 2 × monitor.timeoutMs later, on a server that does not answer.
    const router = await routerWith({ statement_timeout: 1000 });
    await router.withSession('writer', () => router.query("insert into notes values (1, 'before')"));
    await settle(router, cluster);
    await cluster.replicas[0]!.pauseReplay(); // r1 will not have the write: reading it there is stale
    proxy.setMode('blackhole');
    const started = performance.now();
    const attempt = await within(
      15_000,
      router.withSession('writer', () => router.query("insert into notes values (2, 'ambiguous')")),
    );
    expect(attempt.state).toBe('rejected');
    expect(attempt.error).toMatchObject({ code: 'ERR_PGRR_NODE_TIMEOUT' });
    expect(performance.now() - started).toBeLessThan(12_000);
    proxy.setMode('pass'); // the partition heals: the held insert reaches the primary now
    const read = await router.withSession('writer', () =>
      router.query('select count(*)::int as n, inet_server_port() as port from notes where id = 2'),
    );
    // The held bytes reach the primary as the partition heals, well before anything the router
    // sends on a new connection: the insert committed after its error was returned.
    expect(await rowOnPrimary(2)).toBe(true);
    expect(read.rows[0]!.n, 'the session reads the write that committed after its failure').toBe(1);
    expect(nodeByPort(cluster, read.rows[0]!.port)).toBe('primary');
    // Naive: the replica does not have it.
    expect(await cluster.replicas[0]!.query('select count(*)::int as n from notes where id = 2')).toEqual([{ n: 0 }]);
  });

  it('a write that times out on a slow primary is ended there before the error returns: it cannot commit behind the session', async () => {
    // No proxy: the primary answers, but the write waits on a lock for longer than the client bound.
    const router = await routerWith({ query_timeout: 1500 }, urlAs(cluster.primary));
    await settle(router, cluster);
    await cluster.replicas[0]!.pauseReplay();
    const holder = new pg.Client({ connectionString: cluster.primary.connectionString });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table notes in exclusive mode');
      const attempt = await within(
        10_000,
        router.withSession('slow', () => router.query("insert into notes values (3, 'late')")),
      );
      expect(attempt.state).toBe('rejected');
      expect(attempt.error).toMatchObject({ code: 'ERR_PGRR_NODE_TIMEOUT' });
      await holder.query('commit'); // the lock goes: an insert still waiting would commit now
    } finally {
      await holder.end();
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const read = await router.withSession('slow', () => router.query('select count(*)::int as n from notes where id = 3'));
    const committed = await rowOnPrimary(3);
    expect(read.rows[0]!.n, `the session reads what the primary holds (committed: ${committed})`).toBe(committed ? 1 : 0);
    expect(committed, 'the router ended the backend of the timed-out insert').toBe(false);
  });

  it('read-your-writes level: a write whose position read timed out is covered before a replica read', async () => {
    const router = await routerWith();
    await cluster.replicas[0]!.pauseReplay();
    const ryw = <T>(fn: () => Promise<T>) => router.withSession('ryw', () => router.withConsistency('read-your-writes', fn));
    await ryw(async () => {
      await router.query("insert into notes values (4, 'acknowledged')");
      proxy.setMode('blackhole'); // the position read at the end of the scope gets no answer: stored as "primary"
    });
    proxy.setMode('pass');
    const read = await ryw(() => router.query('select count(*)::int as n, inet_server_port() as port from notes where id = 4'));
    expect(read.rows[0]!.n, 'the acknowledged write is read back').toBe(1);
    expect(await cluster.replicas[0]!.query('select count(*)::int as n from notes where id = 4')).toEqual([{ n: 0 }]); // naive: stale
  });
});
