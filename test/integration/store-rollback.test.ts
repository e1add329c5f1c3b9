// Issue 14, case 2: a store that comes back with OLDER values than it acknowledged, without an
// error anywhere: Redis restarted from an older snapshot (RDB/AOF), or a replica promoted after
// asynchronous replication. Instances in separate OS processes share it. A session whose stored
// position went back must still read its last write, on every instance.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyFor, redisStore } from 'pg-replica-router';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor } from '../helpers/cluster.js';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { StoreInstance, type NodeList } from '../fixtures/store-instances.js';

let cluster: Cluster;
let redis: Redis;
let nodes: NodeList;
const instances: StoreInstance[] = [];

async function instance(options: { naive?: boolean; caughtUp?: boolean } = {}): Promise<StoreInstance> {
  // A generous store timeout: a load that timed out would send the read to the primary (fail
  // safe) and hide what this file shows on a busy machine.
  const started = await StoreInstance.start(nodes, cluster.redis!.url, { storeTimeoutMs: 2000, ...options });
  instances.push(started);
  await started.settle(options.caughtUp);
  return started;
}

/** Redis restarts from the snapshot `SAVE` wrote last: what it acknowledged since is gone. */
async function restartFromSnapshot(): Promise<void> {
  await cluster.redis!.kill(); // nothing is saved at exit (save points are off)
  await cluster.redis!.start(); // loads dump.rdb from its directory
}

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table notes (id int primary key, body text)');
  await createAppRole(cluster, ['select, insert, update on notes']);
  nodes = {
    primary: asAppRole(cluster.primary.connectionString),
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: asAppRole(r.connectionString) })),
  };
  redis = new Redis(cluster.redis!.url);
  redis.on('error', () => {});
});

afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  redis?.disconnect();
  await cluster?.stop();
});

describe('a store that comes back with older values (restart from an older snapshot)', () => {
  it("every instance — running or started after the rollback — reads the session's last write", async () => {
    const [a, b, naive] = await Promise.all([instance(), instance(), instance({ naive: true })]);
    // One session per reader, so that no read repairs what the next one loads (a read raised to
    // the primary stores its raised position again).
    const sessions = [1, 2, 3, 4].map((n) => ({ key: `user:${n}`, note: n }));
    for (const s of sessions) await a.write(s.key, s.note, 'first');
    await cluster.waitForReplicas();
    await Promise.all([a.settle(), b.settle(), naive.settle()]);
    // A and B have loaded before the rollback (a process's first load is raised to the primary
    // anyway: what the store lost before it started is unknown; 'late' shows that).
    for (const instance of [a, b, naive]) await instance.read('warm-up', 0);
    const snapshot = await Promise.all(sessions.map((s) => redis.get(redisKeyFor(s.key))));
    expect(snapshot).not.toContain(null);
    await redis.save(); // the snapshot holds the positions of 'first'
    try {
      await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
      for (const s of sessions) await a.write(s.key, s.note, 'second');
      const acknowledged = await Promise.all(sessions.map((s) => redis.get(redisKeyFor(s.key))));
      acknowledged.forEach((value, i) => expect(value).not.toBe(snapshot[i])); // positions of 'second' stored

      await restartFromSnapshot();
      await redis.ping();
      expect(await Promise.all(sessions.map((s) => redis.get(redisKeyFor(s.key))))).toEqual(snapshot); // back to 'first'
      await Promise.all([a.ping(), b.ping(), naive.ping()]); // every client has reconnected, no error is pending
      const late = await instance({ caughtUp: false }); // an instance started after the rollback

      // Naive: a store that says nothing about the reconnect loads the old position and reads a
      // replica that has replayed 'first' only; so does any read at level 'eventual'.
      const stale = await naive.read(sessions[0]!.key, sessions[0]!.note);
      expect(stale.body).toBe('first');
      expect(nodeByPort(cluster, stale.port)).toMatch(/^r[12]$/);
      expect((await b.eventual(sessions[1]!.note)).body).toBe('first');
      const readers = [
        ['B', b],
        ['A', a],
        ['late', late],
      ] as const;
      for (const [i, [name, reader]] of readers.entries()) {
        const read = await reader.read(sessions[i + 1]!.key, sessions[i + 1]!.note);
        expect.soft(read.body, `read through ${name}`).toBe('second');
        expect.soft(nodeByPort(cluster, read.port), `${name} read on`).toBe('primary'); // the replicas lack it
      }
      expect((await b.stats()).losses).toEqual(expect.arrayContaining(['first use', 'redis close'])); // and maybe its identity check
    } finally {
      await Promise.all(cluster.replicas.map((r) => r.resumeReplay()));
    }
  });

  it('once the replicas have replayed past the primary position seen after the loss, sessions read replicas again', async () => {
    const [b] = instances;
    await cluster.waitForReplicas();
    await b!.settle();
    const before = await b!.stats();
    const read = await b!.read('user:2', 2);
    expect(read.body).toBe('second');
    expect(nodeByPort(cluster, read.port)).toMatch(/^r[12]$/);
    const after = await b!.stats();
    expect(after.counters.storeReads - before.counters.storeReads).toBe(1); // the steady-state read budget
    expect(after.counters.positionReads - before.counters.positionReads).toBe(0); // no primary round trip
    expect(after.counters.storeErrors - before.counters.storeErrors).toBe(0);
  });
});

describe('a store flushed without any disconnect', () => {
  it("the other process reads the session's write (nothing stored is owed the primary's position)", async () => {
    const [a, b] = instances;
    await cluster.waitForReplicas();
    await Promise.all([a!.settle(), b!.settle()]);
    await b!.read('user:flush', 5); // user:flush is known to the store before its write
    await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
    try {
      await a!.write('user:flush', 5, 'kept');
      const lossesBefore = (await b!.stats()).store.losses;
      await redis.flushall();
      const read = await b!.read('user:flush', 5);
      expect(read.body).toBe('kept');
      expect(nodeByPort(cluster, read.port)).toBe('primary');
      expect((await b!.stats()).store.losses).toBe(lossesBefore); // no reconnect: the miss rule did it
      expect((await b!.eventual(5)).body).toBeNull(); // naive: the replicas lack it
    } finally {
      await Promise.all(cluster.replicas.map((r) => r.resumeReplay()));
    }
  });
});

describe("the application's Redis client after router.close()", () => {
  it('keeps none of the listeners the store added, and gets no more identity checks', async () => {
    await Promise.all(instances.map((i) => i.close())); // their own identity checks would count below
    const client = new Redis(cluster.redis!.url);
    client.on('error', () => {});
    try {
      await client.ping();
      const listening = () => ['close', '-node', '+node'].map((e) => client.listenerCount(e));
      const infoCalls = async () => Number(/cmdstat_info:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
      const before = listening();
      const router = routerFor(cluster, { store: redisStore(client, { identityCheckMs: 20 }), logger: false });
      expect(listening()).toEqual(before.map((n) => n + 1));
      await router.query('select 1');
      await new Promise((resolve) => setTimeout(resolve, 200));
      await router.close();
      expect(listening()).toEqual(before);
      const closedAt = await infoCalls();
      await new Promise((resolve) => setTimeout(resolve, 200)); // ten intervals
      expect((await infoCalls()) - closedAt).toBeLessThanOrEqual(2); // this test's own INFO calls, at most one check in flight
    } finally {
      client.disconnect();
    }
  });
});
