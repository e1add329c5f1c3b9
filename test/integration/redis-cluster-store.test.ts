// Issue 14, case 2, on Redis Cluster: a store that lost data is detected within the read budget.
// A real 3-master Redis Cluster on loopback (test/helpers/redis-cluster.ts); routers use
// `redisStore(new Cluster(...))`, each with its own ioredis Cluster client. The instances run in
// this process: A and B (ioredis defaults), a naive one whose store never reports a loss (the old
// behaviour), one with `clusterNodeRetryStrategy` (a lost node is reconnected in place: no
// -node/+node), and one that has not connected to the restarted master before its restart.
import { Cluster as RedisCluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyFor, redisStore, type LsnStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';
import { startRedisCluster, type ClusterNode, type RedisCluster as Masters } from '../helpers/redis-cluster.js';

let pg: Cluster;
let masters: Masters;
const clients: RedisCluster[] = [];
const routers: Router[] = [];
let a: Router;
let b: Router;
let naive: Router;
let retrying: Router;
/** An instance that has not talked to the restarted master before the restart (its node client is lazy). */
let idle: Router;
const losses = new Map<Router, string[]>();

/** A router whose store is on its own Cluster client; `naive`: the store never reports a loss. */
function instance(options: { naive?: boolean; nodeRetry?: boolean; startupNode?: number } = {}): Router {
  // nodeRetry: the client reconnects a lost node itself (`clusterNodeRetryStrategy`): no -node/+node then.
  // startupNode: the only start-up node (the others are connected at their first command).
  const startup = options.startupNode === undefined ? masters.startupNodes : [masters.startupNodes[options.startupNode]!];
  const client = new RedisCluster(startup, options.nodeRetry ? { clusterNodeRetryStrategy: () => 100 } : {});
  client.on('error', () => {}); // the router's guard reports failures
  clients.push(client);
  const positions = redisStore(client);
  const heard: string[] = [];
  let store: LsnStore = positions;
  if (options.naive) store = { get: (k) => positions.get(k), raise: (k, n, l) => positions.raise(k, n, l) };
  else positions.onLoss?.((reason) => heard.push(reason));
  // A generous store timeout: a load that timed out would go to the primary (fail safe) and hide staleness.
  const router = routerFor(pg, { store, storeTimeoutMs: 2000, logger: false });
  losses.set(router, heard);
  routers.push(router);
  return router;
}

const noteSql = 'select body, inet_server_port() as port from notes where id = $1';
const write = (r: Router, key: string, note: number, body: string) =>
  r.withSession(key, () => r.query('insert into notes values ($1, $2) on conflict (id) do update set body = excluded.body', [note, body]));
async function read(r: Router, key: string, note: number): Promise<{ body: string | null; node: string }> {
  const { rows } = await r.withSession(key, () => r.query(noteSql, [note]));
  return { body: rows[0]?.body ?? null, node: nodeByPort(pg, rows[0]?.port) };
}
async function eventual(r: Router, note: number): Promise<string | null> {
  const { rows } = await r.withConsistency('eventual', () => r.query(noteSql, [note]));
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

async function settleAll(): Promise<void> {
  await pg.waitForReplicas();
  for (const r of routers) await settle(r, pg);
}

beforeAll(async () => {
  [pg, masters] = await Promise.all([startTestCluster({ replicas: 2 }), startRedisCluster(3)]);
  a = instance();
  b = instance();
  naive = instance({ naive: true });
  retrying = instance({ nodeRetry: true });
  idle = instance({ startupNode: 1 });
  await a.query('create table notes (id int primary key, body text)');
  await settleAll();
  // Every instance has loaded once (a process's first load is raised to the primary anyway: first
  // use), from a master other than the one the snapshot case restarts.
  const [warmUp] = await keysOn(masters.nodes[1]!, 'warm-up:', 1);
  for (const r of routers) await read(r, warmUp!, 0);
});

afterAll(async () => {
  await Promise.all(routers.map((r) => r.close()));
  clients.forEach((c) => c.disconnect());
  await pg?.stop();
  await masters?.stop();
});

describe('the Redis store on a real Redis Cluster (3 masters)', () => {
  it('steady state: one store command per read-only request, no primary round trip', async () => {
    await write(a, 'user:steady', 1, 'steady');
    await settleAll();
    await read(b, 'user:steady', 1); // B's first load of this key
    const before = { counters: b.topology().counters, commands: await storeCommands(), losses: b.topology().store.losses };
    const got = await read(b, 'user:steady', 1);
    const after = { counters: b.topology().counters, commands: await storeCommands() };
    expect(got.body).toBe('steady');
    expect(got.node).toMatch(/^r[12]$/);
    expect(after.counters.storeReads - before.counters.storeReads).toBe(1);
    expect(after.counters.storeWrites - before.counters.storeWrites).toBe(0);
    expect(after.counters.positionReads - before.counters.positionReads).toBe(0);
    expect(after.commands - before.commands).toBe(1); // one GET on the master of the key's slot
    expect(b.topology().store.losses).toBe(before.losses); // no sign in the steady state
  });

  it("FLUSHALL on every master, no disconnect: B reads the session's write (miss rule)", async () => {
    await settleAll();
    await read(b, 'user:flush', 2); // B knows the session before its write
    await Promise.all(pg.replicas.map((r) => r.pauseReplay()));
    try {
      await write(a, 'user:flush', 2, 'kept');
      const lossesBefore = b.topology().store.losses;
      for (const node of masters.nodes) await node.cli('flushall');
      expect(await storeCommands()).toBeGreaterThan(0);
      const got = await read(b, 'user:flush', 2);
      expect(got).toEqual({ body: 'kept', node: 'primary' });
      expect(b.topology().store.losses).toBe(lossesBefore); // no sign: the miss rule did it
      expect(await eventual(b, 2)).toBeNull(); // naive: the paused replicas lack it
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
      console.log(
        'signs heard',
        Object.fromEntries(Object.entries({ a, b, retrying, idle }).map(([n, r]) => [n, losses.get(r)!.join(', ')])),
      );
      expect(losses.get(b)!.length).toBeGreaterThan(1);
    } finally {
      await Promise.all(pg.replicas.map((r) => r.resumeReplay()));
    }
  });
});
