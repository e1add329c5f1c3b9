// Issue 14, case 2: a store that forgets without an error (Redis flushed, or restarted empty).
// Two instances share it; no instance sees a failure. A session whose position was lost must
// still read its write: a missing position is treated as "the primary's position now".
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let a: Router;
let b: Router;
let redis: Redis;

useRoutedCluster({ cluster: { redis: true }, setup: ['create table notes (id int primary key, body text)'] }, (c) => {
  cluster = c;
});

describe('a store that forgets silently', () => {
  it('instance B reads the write instance A made although the store lost its position (flush)', async () => {
    redis = new Redis(cluster.redis!.url);
    a = routerFor(cluster, { store: redisStore(redis) });
    b = routerFor(cluster, { store: redisStore(redis) });
    try {
      await Promise.all([a.query('select 1'), b.query('select 1')]);
      await settle(b, cluster);
      await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
      await a.withSession('user:1', () => a.query("insert into notes values (1, 'saved')"));
      expect(await redis.keys('*')).not.toEqual([]); // A stored the position...
      await redis.flushall(); // ...and the store forgets it, with no error anywhere
      const { rows } = await b.withSession('user:1', () => b.query('select body, inet_server_port() as port from notes where id = 1'));
      expect(rows.map((r) => r.body)).toEqual(['saved']);
      expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary'); // the replicas lack it
      // Naive: the replicas, which a "no position" session would have read, lack the write.
      const naive = await b.withConsistency('eventual', () => b.query('select body from notes where id = 1'));
      expect(naive.rows).toEqual([]);
    } finally {
      await Promise.all(cluster.replicas.map((r) => r.resumeReplay()));
    }
  });

  it('once the replicas have caught up, the same session reads a replica again (one primary sample, no store error)', async () => {
    await cluster.waitForReplicas();
    await settle(b, cluster);
    await redis.flushall();
    const before = b.topology().counters;
    const { rows } = await b.withSession('user:2', () => b.query('select inet_server_port() as port from notes where id = 1'));
    expect(nodeByPort(cluster, rows[0]!.port)).toMatch(/^r[12]$/);
    const after = b.topology().counters;
    expect(after.storeErrors - before.storeErrors).toBe(0);
    expect(after.storeReads - before.storeReads).toBe(1);
    await Promise.all([a.close(), b.close()]);
    redis.disconnect();
  });
});
