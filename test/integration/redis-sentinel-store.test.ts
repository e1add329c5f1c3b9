// The Redis store across a Sentinel failover that forgets acknowledged writes (asynchronous
// replication): a real master, replica and three sentinels (test/helpers/redis-sentinel.ts),
// ioredis connected through the sentinels. Replication is cut, a session writes (its position
// acknowledged by the master only), the master dies and the sentinels promote the replica,
// which never had that position. The router hears the failover (ioredis's connection closes and
// reconnects to the new master): the session's next request still reads its write. A router whose
// store reports no loss loads the older position the promoted replica holds and reads stale.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisStore, type LsnStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';
import { SENTINEL_MASTER, startRedisSentinel, type RedisSentinel } from '../helpers/redis-sentinel.js';

let pg: Cluster;
let redis: RedisSentinel;
const clients: Redis[] = [];
let writer: Router;
let reader: Router; // another instance of the service, on its own client
let naive: Router; // the same, with a store that reports no loss
let naiveClient: Redis;
let readerClient: Redis;
const losses: string[] = [];

const sentinelClient = () => {
  const client = new Redis({ sentinels: redis.sentinels, name: SENTINEL_MASTER, maxRetriesPerRequest: 5 });
  client.on('error', () => {}); // the master's death is expected here
  clients.push(client);
  return client;
};

/** The Redis store as it was before it reported losses: `onLoss` left out. */
function withoutLossSigns(store: LsnStore): LsnStore {
  return { get: (key) => store.get(key), raise: (key, next, loaded) => store.raise(key, next, loaded) };
}

beforeAll(async () => {
  [pg, redis] = await Promise.all([startTestCluster({ replicas: 1 }), startRedisSentinel()]);
  await pg.primary.query('create table notes (id serial primary key, author text)');
  await pg.waitForReplicas();
  writer = routerFor(pg, { store: redisStore(sentinelClient()) });
  readerClient = sentinelClient();
  const readerStore = redisStore(readerClient);
  const readerOnLoss = readerStore.onLoss!.bind(readerStore);
  reader = routerFor(pg, {
    store: { ...withoutLossSigns(readerStore), onLoss: (listener) => readerOnLoss((reason) => (losses.push(reason), listener(reason))) },
  });
  naiveClient = sentinelClient();
  naive = routerFor(pg, { store: withoutLossSigns(redisStore(naiveClient)) });
  for (const router of [writer, reader, naive]) await settle(router, pg);
}, 120_000);

afterAll(async () => {
  for (const router of [writer, reader, naive]) await router?.close();
  for (const client of clients) client.disconnect();
  await redis?.stop();
  await pg?.stop();
});

const read = (router: Router, session: string) =>
  router.withSession(session, () =>
    router
      .query<{ n: number; port: number }>("select count(*)::int as n, inet_server_port() as port from notes where author = 'ann'")
      .then(({ rows }) => ({ n: rows[0]!.n, node: nodeByPort(pg, rows[0]!.port) })),
  );

describe('Redis behind Sentinel: a failover to a replica that missed acknowledged positions', () => {
  it("the session's next request reads its write on every instance that heard the failover; one whose store reports no loss reads stale", async () => {
    const r1 = pg.replicas[0]!;
    // The session's first position is in the store, replicated, before the cut.
    await writer.withSession('ann', () => writer.query("insert into notes (author) values ('ann')"));
    await pg.waitForReplicas();
    // Its first request stored "read on the primary" (a key the store did not hold may have been
    // forgotten), covered in the background by the next primary position: wait for the plain floor.
    const store = redisStore(clients[0]!);
    await expect.poll(async () => (await store.get('ann'))?.node, { timeout: 10_000 }).toBeUndefined();
    await redis.replicated(); // the first position is on the replica too
    // The other instances have used the store (not for ann: their reads would store where they read).
    for (const router of [reader, naive]) await read(router, 'someone-else');
    const oldMaster = await redis.masterPort();

    // Replication stops; the session writes again (acknowledged by the master alone); r1 misses it.
    redis.replication.setMode('blackhole');
    await r1.pauseReplay();
    try {
      await writer.withSession('ann', () => writer.query("insert into notes (author) values ('ann')"));
      expect(await r1.query("select count(*)::int as n from notes where author = 'ann'")).toEqual([{ n: 1 }]); // r1: stale
      // The master dies; the sentinels promote the replica, which never got the second position.
      await redis.master.kill();
      await expect.poll(() => redis.masterPort(), { timeout: 20_000, interval: 200 }).not.toBe(oldMaster);
      await expect.poll(() => redis.replica.cli('role').then((role) => role.split('\n')[0]), { timeout: 20_000 }).toBe('master');
      await expect.poll(() => losses.filter((l) => l !== 'first use').length, { timeout: 20_000, interval: 100 }).toBeGreaterThan(0);

      // The naive instance first (the other one, reading on the primary, stores a higher position),
      // once its client has reconnected to the new master (before, a failed store read would send
      // its read to the primary, which would store a higher position too): the promoted replica's
      // older position, stale.
      await expect
        .poll(
          () =>
            naiveClient.ping().then(
              () => 'ok',
              () => 'not yet',
            ),
          { timeout: 20_000, interval: 200 },
        )
        .toBe('ok');
      expect(await read(naive, 'ann')).toEqual({ n: 1, node: 'r1' });
      // The instance that heard the failover, reconnected too: the floor it loads from the same
      // older value is raised to a primary position taken after the sign.
      await readerClient.ping();
      expect(await read(reader, 'ann')).toEqual({ n: 2, node: 'primary' });
      expect(await read(writer, 'ann')).toEqual({ n: 2, node: 'primary' });
    } finally {
      await r1.resumeReplay();
    }
  });
});
