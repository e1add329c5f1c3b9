// Issue 14, case 4: a route that writes A, starts streaming, writes B and ends while the held
// response still waits for a slow store. The position of B must be stored before the response
// completes, so another instance sharing the store sees B.
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisStore, type LsnStore, type Router } from 'pg-replica-router';
import { routerFor, settle } from '../helpers/cluster.js';
import { useExpressApp, type ExpressAppEnv } from '../helpers/express.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Redis store, its writes slowed down (a store under load): the held response waits for it. */
function slowStore(redis: Redis, delayMs: number): LsnStore {
  const inner = redisStore(redis);
  return {
    get: (key) => inner.get(key),
    raise: async (key, next, loaded) => {
      await sleep(delayMs);
      await inner.raise(key, next, loaded);
    },
  };
}

let env: ExpressAppEnv;
let redis: Redis;
let other: Router;

useExpressApp(
  {
    cluster: { redis: true },
    router: (cluster) => {
      redis = new Redis(cluster.redis!.url);
      return { store: slowStore(redis, 300), storeTimeoutMs: 3000 };
    },
    setup: ['create table events (id int primary key, body text)'],
    consistency: { session: (req) => (req.headers['x-user'] as string | undefined) ?? undefined },
    routes: (app, router, cluster) => {
      app.post('/stream', async (_req, res) => {
        await router.query("insert into events values (1, 'A')");
        await cluster.waitForReplicas(); // every replica has A...
        await Promise.all(cluster.replicas.map((r) => r.pauseReplay())); // ...and will not get B
        res.write('A written\n'); // the first byte: the position of A is being stored (slowly)
        await sleep(100); // A's position is read by now; its store write takes 300 ms more
        await router.query("insert into events values (2, 'B')");
        res.end('B written\n'); // queued behind the held first byte
      });
    },
    cleanup: async () => {
      await other?.close();
      redis?.disconnect();
    },
  },
  (ready) => {
    env = ready;
  },
);

describe('a streamed response that writes after its first byte', () => {
  it('stores the position of every write before the response completes; another instance sees the last one', async () => {
    const { cluster, url } = env;
    other = routerFor(cluster, { store: redisStore(redis) }); // a second instance sharing the store
    await other.query('select 1');
    await settle(other, cluster);
    try {
      const response = await fetch(`${url}/stream`, { method: 'POST', headers: { 'x-user': 'u1' } });
      expect(await response.text()).toBe('A written\nB written\n');
      // The response is complete: B's position must already be in the store.
      const { rows } = await other.withSession('u1', () => other.query('select body from events where id = 2'));
      expect(rows.map((r) => r.body)).toEqual(['B']);
      // Naive: the replicas lack B, so a read there (what a floor of A allows) misses it.
      const replicaRead = await other.withConsistency('eventual', () => other.query('select body from events where id = 2'));
      expect(replicaRead.rows).toEqual([]);
    } finally {
      await Promise.all(cluster.replicas.map((r) => r.resumeReplay()));
    }
  });
});
