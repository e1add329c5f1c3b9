import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, redisStore, type LsnStore, type Router } from 'pg-replica-router';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { proxyNode, type FaultProxy } from '../../lib/testing/fault-proxy.js';
import { cachedAtLeast, naivePool, nodeByPort, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

// One store write is lost (it fails for one session) and right after it the primary becomes
// unreachable, while the replicas still stream from it. Only that session's position is missing
// from the store, and the process knows it exactly: that session must still read its write
// (never from the replica that has not replayed it), and every other session must go on reading
// from the replicas. Before the fix one failed write made every later load of the process wait
// for a primary position newer than the failure: all reads went to the unreachable primary.
let cluster: Cluster;
let router: Router;
let proxy: FaultProxy;
let redis: Redis;
/** Keys whose store writes fail; the failure cuts the primary off at once (no primary sample is newer). */
const failFor = new Set<string>();

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table lost_writes (id int primary key, v int)');
  await cluster.primary.query('insert into lost_writes values (1, 1)');
  const asApp = (node: NodeHandle) => ({ host: node.host, port: node.port, connectionString: urlAs(node) });
  const proxied = await proxyNode(asApp(cluster.primary));
  proxy = proxied.proxy;
  redis = new Redis(cluster.redis!.url);
  redis.on('error', () => {});
  const redisPositions = redisStore(redis);
  // A store wrapper that fails the write of chosen keys: the point is the router's reaction to a
  // write it knows was not stored (as after a timeout), not how Redis fails.
  const store: LsnStore = {
    get: (key) => redisPositions.get(key),
    async raise(key, next, loaded) {
      if (failFor.has(key)) {
        proxy.setMode('blackhole');
        throw new Error('store write lost');
      }
      await redisPositions.raise(key, next, loaded);
    },
    onLoss: (listener) => redisPositions.onLoss!(listener),
  };
  router = createRouter({
    primary: { connectionString: proxied.connectionString, connectionTimeoutMillis: 1000, query_timeout: 1500 },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: urlAs(r) })),
    monitor: { intervalMs: 100, timeoutMs: 500 },
    store,
    storeTimeoutMs: 1000, // a busy machine must not time out the other writes
    logger: false,
  });
  await settle(router, cluster);
});

afterEach(async () => {
  failFor.clear();
  proxy.setMode('pass');
  for (const replica of cluster.replicas) if (replica.running) await replica.resumeReplay();
  await settle(router, cluster);
});

afterAll(async () => {
  proxy?.setMode('pass');
  await router?.close();
  redis?.disconnect();
  await proxy?.close();
  await cluster?.stop();
});

/** Reads row 1 as `session`: the node that served it and the value, or the failure. */
async function read(session: string): Promise<{ node: string; v?: number }> {
  try {
    const { rows } = await router.withSession(session, () =>
      router.query('select inet_server_port() as port, v from lost_writes where id = 1'),
    );
    return { node: nodeByPort(cluster, rows[0]!.port), v: rows[0]!.v };
  } catch (err) {
    return { node: `failed: ${(err as Error).message}` };
  }
}

describe('one store write lost right before the primary becomes unreachable', () => {
  it('the session whose write was lost reads it from a replica that has it; other sessions keep reading from replicas', async () => {
    const others = ['other-1', 'other-2', 'other-3'];
    for (const s of others) expect((await read(s)).v).toBe(1); // each has a stored position
    const first = await read('writer');
    expect(first.v).toBe(1);
    // The replica the writer read on (its stored position names it: it would stay there) stops
    // replaying; the other one goes on.
    const sticky = cluster.replicas.find((r) => r.name === first.node)!;
    const other = cluster.replicas.find((r) => r.name !== first.node)!;
    await sticky.pauseReplay();

    failFor.add('writer');
    await router.withSession('writer', () => router.query('update lost_writes set v = 2 where id = 1'));
    expect(router.topology().counters.storeErrors, 'the write of its position failed').toBeGreaterThan(0);
    const [{ lsn }] = (await cluster.primary.query('select pg_current_wal_insert_lsn()::text as lsn')) as [{ lsn: string }];
    await other.waitForReplay(lsn);
    await cachedAtLeast(router, other.name, lsn);

    // The naive path: the paused replica still answers the old value.
    const naive = naivePool(sticky.connectionString);
    try {
      expect((await naive.query('select v from lost_writes where id = 1')).rows[0].v, 'naive read on the paused replica').toBe(1);
    } finally {
      await naive.end();
    }

    // Before the fix: every read below failed on the unreachable primary.
    for (const s of others) {
      const outcome = await read(s);
      expect(
        cluster.replicas.map((r) => r.name),
        `${s} on a replica`,
      ).toContain(outcome.node);
    }
    expect(await read('writer'), 'its own write, from the replica that replayed it').toEqual({ node: other.name, v: 2 });
    expect(await read('writer'), 'still').toEqual({ node: other.name, v: 2 });
  });
});
