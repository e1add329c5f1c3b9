// Issue 14, case 15 (for the store): Redis stops answering without closing any connection (a
// partition, a hung host). Requests must not hang on it, and the guarantees must hold: reads that
// need a floor go to the primary, positions that could not be stored travel in the response's
// token. When the partition heals, an instance whose connection was cut meanwhile (here: Redis
// restarted behind the partition from an older snapshot) must treat stored floors as possibly lost.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyFor, redisStore, type LsnStore, type Router } from 'pg-replica-router';
import { startFaultProxy, type Cluster, type FaultProxy } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let proxy: FaultProxy;
let direct: Redis;
const clients: Redis[] = [];
const routers: Router[] = [];
const noteSql = 'select body, inet_server_port() as port from notes where id = $1';

/** An instance: its own ioredis client through the proxy (the application's, with its defaults). */
function instance(options: { naive?: boolean } = {}): Router {
  const client = new Redis({ host: proxy.host, port: proxy.port });
  client.on('error', () => {});
  clients.push(client);
  const positions = redisStore(client);
  // Naive: the same store without signs of loss (what the router had before it could hear them).
  const store: LsnStore = options.naive ? { get: (k) => positions.get(k), raise: (k, n, l) => positions.raise(k, n, l) } : positions;
  const router = routerFor(cluster, {
    store,
    tokenSecret: 'blackhole test secret, 16+ bytes',
    storeTimeoutMs: 50,
    storeBreaker: { failures: 3, cooldownMs: 300 },
    logger: false,
  });
  routers.push(router);
  return router;
}

async function write(router: Router, key: string, note: number, body: string): Promise<string> {
  return router.withSession(key, async () => {
    await router.query('insert into notes values ($1, $2) on conflict (id) do update set body = excluded.body', [note, body]);
    return router.currentToken();
  });
}

async function read(router: Router, key: string, note: number, token?: string): Promise<{ body: unknown; node: string }> {
  const run = () => router.withSession(key, () => router.query(noteSql, [note]));
  const { rows } = token === undefined ? await run() : await router.withToken(token, run);
  return { body: rows[0]?.body ?? null, node: nodeByPort(cluster, rows[0]?.port) };
}

const timed = async <T>(work: () => Promise<T>, took: number[]): Promise<T> => {
  const started = performance.now();
  try {
    return await work();
  } finally {
    took.push(performance.now() - started);
  }
};

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table notes (id int primary key, body text)');
  await cluster.waitForReplicas();
  proxy = await startFaultProxy({ host: cluster.redis!.host, port: cluster.redis!.port });
  direct = new Redis(cluster.redis!.url);
  direct.on('error', () => {});
});

afterAll(async () => {
  for (const replica of cluster?.replicas ?? []) if (replica.running) await replica.resumeReplay();
  await Promise.all(routers.map((r) => r.close()));
  for (const client of clients) client.disconnect();
  direct?.disconnect();
  await proxy?.close();
  await cluster?.stop();
});

describe('Redis blackholed (answers nothing, closes nothing)', () => {
  it('no request hangs, none reads stale; positions that could not be stored travel in tokens; after the heal a reconnect counts as a possible loss', async () => {
    // a and b serve requests during the partition; c and naive are idle then (no failed store call).
    const [a, b, c, naive] = [instance(), instance(), instance(), instance({ naive: true })];
    const all = [a, b, c, naive];
    await Promise.all(all.map((r) => r.query('select 1')));
    await Promise.all(all.map((r) => settle(r, cluster)));
    await write(a, 'user:1', 1, 'v1');
    await write(a, 'user:2', 2, 'w1');
    await write(a, 'user:3', 3, 'x1');
    await cluster.waitForReplicas();
    await Promise.all(all.map((r) => settle(r, cluster)));
    // Every instance has loaded before (a process's first load is raised to the primary anyway).
    for (const router of all) await read(router, 'warm-up', 0);
    await direct.save(); // a snapshot with the positions of 'w1' and 'x1'
    await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
    await write(a, 'user:2', 2, 'w2'); // stored (acknowledged) after the snapshot
    await write(a, 'user:3', 3, 'x2');
    const acknowledged = await direct.get(redisKeyFor('user:2'));

    proxy.setMode('blackhole');
    const took: number[] = [];
    const token = await timed(() => write(a, 'user:1', 1, 'v2'), took); // its position cannot be stored
    expect(token).toMatch(/^1\./);
    // The next request of the session, on another instance: with the token (as the response
    // carried it) and without (the store cannot say; reads that need a floor go to the primary).
    expect(await timed(() => read(b, 'user:1', 1, token), took)).toEqual({ body: 'v2', node: 'primary' });
    for (let i = 0; i < 10; i++) {
      expect(await timed(() => read(b, 'user:1', 1), took)).toEqual({ body: 'v2', node: 'primary' });
      await timed(() => write(a, `other:${i}`, 100 + i, 'during'), took);
    }
    // Naive: a replica, which any read at level 'eventual' may use, lacks the write.
    expect((await b.withConsistency('eventual', () => b.query(noteSql, [1]))).rows[0]?.body).toBe('v1');
    for (const router of [a, b]) {
      expect(router.topology().store.opened).toBeGreaterThanOrEqual(1); // the breaker opened...
      expect(router.topology().store.shortCircuits).toBeGreaterThan(0); // ...and later calls did not wait at all
    }
    // A correctness bound, not a speed measurement: nothing waits on the silent store.
    expect(Math.max(...took)).toBeLessThan(1000);

    // Behind the partition, Redis restarts from the older snapshot: every client connection is
    // cut (the proxy closes it when Redis does), and each client reconnects into the partition.
    const lossesBefore = all.map((r) => r.topology().store.losses);
    await cluster.redis!.kill();
    await cluster.redis!.start();
    await direct.ping();
    expect(await direct.get(redisKeyFor('user:2'))).not.toBe(acknowledged); // 'w2' is gone from the store
    proxy.setMode('pass');
    await Promise.all(clients.map((c) => c.ping())); // reconnected, through the healed path
    await new Promise((resolve) => setTimeout(resolve, 400)); // past the breakers' cooldown
    const lossesAfter = all.map((r) => r.topology().store.losses);
    expect.soft(lossesAfter[0]! - lossesBefore[0]!).toBeGreaterThan(0);
    expect.soft(lossesAfter[1]! - lossesBefore[1]!).toBeGreaterThan(0);
    expect.soft(lossesAfter[2]! - lossesBefore[2]!).toBeGreaterThan(0);

    // Naive (the store never says it reconnected; this router made no failed write): the old
    // position of user:3, and a replica that has replayed only 'x1'.
    expect(await read(naive, 'user:3', 3)).toMatchObject({ body: 'x1' });
    // c saw the cut (and nothing else: no failed store call): stored floors are raised to a
    // primary position observed after it. b also had failed writes, which did the same before.
    expect.soft(await read(c, 'user:2', 2)).toEqual({ body: 'w2', node: 'primary' });
    expect(await read(b, 'user:3', 3)).toEqual({ body: 'x2', node: 'primary' });
    expect(c.topology().store.state).toBe('closed');
    if (process.env.PGRR_FIGURES)
      console.log(JSON.stringify({ requests: took.length, slowestMs: Math.max(...took), store: a.topology().store }));
  });
});
