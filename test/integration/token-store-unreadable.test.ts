// Issue 14, case 6: currentToken() while the store cannot be read, in a scope that neither read
// nor wrote. The token must still make its receiver (a job, another service) see what the
// session wrote earlier: it is issued at the current primary position, never at floor 0.
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { routerFor, useRoutedCluster } from '../helpers/cluster.js';

const SECRET = 'token outage test secret, 16+ bytes';
let cluster: Cluster;
let router: Router;
let redis: Redis;

useRoutedCluster(
  {
    cluster: { redis: true },
    router: { tokenSecret: SECRET, storeTimeoutMs: 50, logger: false },
    setup: ['create table orders (id int primary key, item text)'],
  },
  (c, r) => {
    cluster = c;
    router = r;
  },
);

describe('a token issued while the store is unreadable', () => {
  it('carries at least what the session wrote before; a job using it sees the order', async () => {
    redis = new Redis(cluster.redis!.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
    redis.on('error', () => {});
    const web = routerFor(cluster, { store: redisStore(redis), tokenSecret: SECRET, storeTimeoutMs: 50, logger: false });
    const worker = routerFor(cluster, { tokenSecret: SECRET, logger: false }); // the job's own process
    try {
      await web.query('select 1');
      await worker.query('select 1');
      await cluster.waitForReplicas();
      await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
      // One request writes the order (its position is stored)...
      await web.withSession('user:7', () => web.query("insert into orders values (1, 'book')"));
      // ...the store then becomes unreadable, and the next request only hands a token to a job.
      await cluster.redis!.stop();
      const token = await web.withSession('user:7', () => web.currentToken());
      const { rows } = await worker.withToken(token, () => worker.query('select item from orders where id = 1'));
      expect(rows.map((r) => r.item)).toEqual(['book']);
      // Naive: the paused replicas lack the order (what a floor-0 token would have allowed).
      const onReplica = await worker.withConsistency('eventual', () => worker.query('select item from orders where id = 1'));
      expect(onReplica.rows).toEqual([]);
    } finally {
      await Promise.all(cluster.replicas.map((r) => r.resumeReplay()));
      if (!cluster.redis!.running) await cluster.redis!.start();
      await web.close();
      await worker.close();
      redis.disconnect();
    }
  });
});
