// Issue 14, case 2, on Redis Cluster: a store that lost data is detected within the read budget.
// A real 3-master Redis Cluster on loopback (test/helpers/redis-cluster.ts); every instance has a
// router with `redisStore(new Cluster(...))` on its own ioredis Cluster client. A (the writer)
// runs in this process; the readers run in separate OS processes
// (test/fixtures/cluster-store-instance.ts): B (ioredis defaults), a naive one whose store never
// reports a loss (the old behaviour), one with `clusterNodeRetryStrategy` (a lost node is
// reconnected in place: no -node/+node), and one that has not connected to the restarted master
// before its restart.
import { Cluster as RedisCluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyFor, redisStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';
import { startRedisCluster, type ClusterNode, type RedisCluster as Masters } from '../helpers/redis-cluster.js';
import { ClusterStoreInstance, type ClusterInstanceOptions } from '../fixtures/cluster-store-instances.js';

let pg: Cluster;
let masters: Masters;
let client: RedisCluster;
let a: Router;
const aLosses: string[] = [];
let b: ClusterStoreInstance;
let naive: ClusterStoreInstance;
let retrying: ClusterStoreInstance;
/** An instance that has not talked to the restarted master before the restart (its node clients are lazy). */
let idle: ClusterStoreInstance;
const instances: ClusterStoreInstance[] = [];

/**
 * An instance in its own process; `startupNode`: its only start-up node. With `noReadyCheck` too,
 * it connects to another master only at the first command for a key there (the ready check's
 * CLUSTER INFO would go to a random node).
 */
async function instance(options: ClusterInstanceOptions & { startupNode?: number } = {}): Promise<ClusterStoreInstance> {
  const nodes = { primary: urlAs(pg.primary), replicas: pg.replicas.map((r) => ({ name: r.name, connectionString: urlAs(r) })) };
  const startup = options.startupNode === undefined ? masters.startupNodes : [masters.startupNodes[options.startupNode]!];
  const started = await ClusterStoreInstance.start(nodes, startup, options);
  instances.push(started);
  return started;
}

type Reader = Router | ClusterStoreInstance;
const noteSql = 'select body, inet_server_port() as port from notes where id = $1';
const write = (r: Router, key: string, note: number, body: string) =>
  r.withSession(key, () => r.query('insert into notes values ($1, $2) on conflict (id) do update set body = excluded.body', [note, body]));
async function read(r: Reader, key: string, note: number): Promise<{ body: string | null; node: string }> {
  if (r instanceof ClusterStoreInstance) {
    const got = await r.read(key, note);
    return { body: got.body, node: nodeByPort(pg, got.port) };
  }
  const { rows } = await r.withSession(key, () => r.query(noteSql, [note]));
  return { body: rows[0]?.body ?? null, node: nodeByPort(pg, rows[0]?.port) };
}
async function eventual(note: number): Promise<string | null> {
  const { rows } = await a.withConsistency('eventual', () => a.query(noteSql, [note]));
  return rows[0]?.body ?? null;
}

/** Calls of the store's commands (GET, EVALSHA, EVAL) summed over every master. */
async function storeCommands(): Promise<number> {
  let calls = 0;
  for (const node of masters.nodes) {
    const stats = await node.cli('info', 'commandstats');
    for (const cmd of ['get', 'evalsha', 'eval']) calls += Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
  }
  return calls;
}

/** `count` session keys whose Redis keys live on `node`. */
async function keysOn(node: ClusterNode, prefix: string, count: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if ((await masters.nodeFor(redisKeyFor(`${prefix}${i}`))) === node) keys.push(`${prefix}${i}`);
  return keys;
}

/** What each instance's store has reported so far (`onLoss`). */
async function heardNow(): Promise<Record<string, string[]>> {
  const [inB, inRetrying, inIdle] = await Promise.all([b, retrying, idle].map(async (i) => (await i.stats()).losses));
  return { a: [...aLosses], b: inB!, retrying: inRetrying!, idle: inIdle! };
}

async function settleAll(): Promise<void> {
  await pg.waitForReplicas();
  await settle(a, pg);
  await Promise.all(instances.map((i) => i.settle()));
}

beforeAll(async () => {
  [pg, masters] = await Promise.all([startTestCluster({ replicas: 2 }), startRedisCluster(3)]);
  client = new RedisCluster(masters.startupNodes);
  client.on('error', () => {}); // the router's guard reports failures
  const positions = redisStore(client);
  positions.onLoss?.((reason) => aLosses.push(reason));
  // A generous store timeout: a load that timed out would go to the primary (fail safe) and hide staleness.
  a = routerFor(pg, { store: positions, storeTimeoutMs: 2000, logger: false });
  await a.query('create table notes (id int primary key, body text)');
  [b, naive, retrying, idle] = await Promise.all([
    instance(),
    instance({ naive: true }),
    instance({ nodeRetry: true }),
    instance({ startupNode: 1, noReadyCheck: true }),
  ]);
  await settleAll();
  // Every instance has loaded once (a process's first load is raised to the primary anyway: first
  // use), from a master other than the one the snapshot case restarts.
  const [warmUp] = await keysOn(masters.nodes[1]!, 'warm-up:', 1);
  for (const r of [a, ...instances]) await read(r, warmUp!, 0);
});

afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await a?.close();
  client?.disconnect();
  await pg?.stop();
  await masters?.stop();
});

describe('the Redis store on a real Redis Cluster (3 masters)', () => {
  it('steady state: one store command per read-only request, no primary round trip', async () => {
    await write(a, 'user:steady', 1, 'steady');
    await settleAll();
    await read(b, 'user:steady', 1); // B's first load of this key
    const before = { ...(await b.stats()), commands: await storeCommands() };
    const got = await read(b, 'user:steady', 1);
    const after = { ...(await b.stats()), commands: await storeCommands() };
    expect(got.body).toBe('steady');
    expect(got.node).toMatch(/^r[12]$/);
    expect(after.counters.storeReads - before.counters.storeReads).toBe(1);
    expect(after.counters.storeWrites - before.counters.storeWrites).toBe(0);
    expect(after.counters.positionReads - before.counters.positionReads).toBe(0);
    expect(after.commands - before.commands).toBe(1); // one GET on the master of the key's slot
    expect(after.losses).toEqual(before.losses); // no sign in the steady state
  });

  it("FLUSHALL on every master, no disconnect: B reads the session's write (miss rule)", async () => {
    await settleAll();
    await read(b, 'user:flush', 2); // B knows the session before its write
    await Promise.all(pg.replicas.map((r) => r.pauseReplay()));
    try {
      await write(a, 'user:flush', 2, 'kept');
      const lossesBefore = (await b.stats()).losses;
      for (const node of masters.nodes) await node.cli('flushall');
      expect(await storeCommands()).toBeGreaterThan(0);
      const got = await read(b, 'user:flush', 2);
      expect(got).toEqual({ body: 'kept', node: 'primary' });
      expect((await b.stats()).losses).toEqual(lossesBefore); // no sign: the miss rule did it
      expect(await eventual(2)).toBeNull(); // naive: the paused replicas lack it
    } finally {
      await Promise.all(pg.replicas.map((r) => r.resumeReplay()));
    }
  });

  it("one master restarted from an older RDB snapshot: every instance reads the session's last write, the naive store reads stale", async () => {
    const target = masters.nodes[0]!;
    const sessions = await keysOn(target, 'user:snap:', 5); // their Redis keys hash to the restarted master
    const notes = [10, 11, 12, 13, 14];
    for (const [i, key] of sessions.entries()) await write(a, key, notes[i]!, 'first');
    await settleAll();
    // Each instance but `idle` has a connection to the target master now.
    for (const [i, r] of [naive, b, a, retrying].entries()) expect((await read(r, sessions[i]!, notes[i]!)).body).toBe('first');
    const snapshot = await Promise.all(sessions.map((k) => target.cli('get', redisKeyFor(k))));
    snapshot.forEach((v) => expect(v.trim()).not.toBe(''));
    await target.cli('save'); // the snapshot holds the positions of 'first'
    await Promise.all(pg.replicas.map((r) => r.pauseReplay()));
    try {
      for (const [i, key] of sessions.entries()) await write(a, key, notes[i]!, 'second');
      const acknowledged = await Promise.all(sessions.map((k) => target.cli('get', redisKeyFor(k))));
      acknowledged.forEach((v, i) => expect(v).not.toBe(snapshot[i]));

      const heardBefore = await heardNow();
      await target.kill(); // nothing saved at exit
      await target.start(); // loads dump.rdb and its nodes.conf (same node id, same slots)
      await masters.waitOk();
      expect(await Promise.all(sessions.map((k) => target.cli('get', redisKeyFor(k))))).toEqual(snapshot); // back to 'first'

      const stale = await read(naive, sessions[0]!, notes[0]!);
      expect(stale.body).toBe('first'); // the old position, a paused replica
      expect(stale.node).toMatch(/^r[12]$/);
      const viaB = await read(b, sessions[1]!, notes[1]!);
      const viaA = await read(a, sessions[2]!, notes[2]!);
      const viaRetrying = await read(retrying, sessions[3]!, notes[3]!);
      const viaIdle = await read(idle, sessions[4]!, notes[4]!);
      expect.soft(viaB, 'read through B').toEqual({ body: 'second', node: 'primary' });
      expect.soft(viaA, 'read through A').toEqual({ body: 'second', node: 'primary' });
      expect.soft(viaRetrying, 'read through an instance with clusterNodeRetryStrategy').toEqual({ body: 'second', node: 'primary' });
      expect
        .soft(viaIdle, 'read through an instance connecting to that master for the first time')
        .toEqual({ body: 'second', node: 'primary' });
      const heard = await heardNow();
      const since = Object.fromEntries(Object.entries(heard).map(([n, l]) => [n, l.slice(heardBefore[n]!.length).join(', ')]));
      console.log('signs heard since the kill', since);
      for (const [name, signs] of Object.entries(since)) expect.soft(signs, `signs ${name} heard`).not.toBe('');
      // The control, last: a store without signs still reads stale (the reads above did not go to the primary for another reason).
      expect(await read(naive, sessions[0]!, notes[0]!)).toEqual(stale);
    } finally {
      await Promise.all(pg.replicas.map((r) => r.resumeReplay()));
    }
  });
});
