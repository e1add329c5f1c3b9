// Issue 14, case 5: node names are local. Two services share one store but list the same two
// replica servers under swapped names (a reordered config, default names by index). A session
// that read fresh data on one server through service A must not be kept, through service B, on
// the server that B happens to call by the same name — an older one.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, redisStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

let cluster: Cluster;
let redis: Redis;
let a: Router;
let b: Router;
const READ = 'select inet_server_port() as port, count(*)::int as n from events';

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table events (id int)');
  await cluster.waitForReplicas();
  redis = new Redis(cluster.redis!.url);
  const [s1, s2] = cluster.replicas;
  const service = (replicas: Array<[string, string]>) =>
    createRouter({
      primary: { connectionString: urlAs(cluster.primary) },
      replicas: replicas.map(([name, connectionString]) => ({ name, connectionString })),
      store: redisStore(redis),
      monitor: { intervalMs: 100 },
    });
  a = service([
    ['r1', urlAs(s1!)],
    ['r2', urlAs(s2!)],
  ]);
  b = service([
    ['r1', urlAs(s2!)],
    ['r2', urlAs(s1!)],
  ]); // the same servers, names swapped
  await Promise.all([a.query('select 1'), b.query('select 1')]);
  await settle(a, cluster);
  await settle(b, cluster);
});

afterAll(async () => {
  await Promise.all(cluster.replicas.map((r) => r.resumeReplay().catch(() => {})));
  await a?.close();
  await b?.close();
  redis?.disconnect();
  await cluster?.stop();
});

const read = async (router: Router, key: string) => {
  const { rows } = await router.withSession(key, () => router.query(READ));
  return { node: nodeByPort(cluster, rows[0]!.port), n: rows[0]!.n as number };
};

describe('replica names across services', () => {
  it('a session kept on the server it read through service A is not moved, through B, to the older server B calls by that name', async () => {
    const [s1, s2] = cluster.replicas;
    // A session whose reads through A ran on the first server (A's r1), with no floor to speak of.
    let key: string | undefined;
    for (let i = 0; i < 30 && !key; i++) if ((await read(a, `user:${i}`)).node === s1!.name) key = `user:${i}`;
    expect(key, 'a session landed on the first server').toBeDefined();
    // The second server stops; the first replays a new event.
    await s2!.pauseReplay();
    await cluster.primary.query('insert into events values (1)');
    await s1!.waitForReplay();
    expect(await read(a, key!)).toEqual({ node: s1!.name, n: 1 }); // A: the session saw the event
    // Naive: the second server (B's "r1") lacks it.
    const direct = naivePool(s2!.connectionString);
    try {
      expect((await direct.query(READ)).rows[0].n).toBe(0);
    } finally {
      await direct.end();
    }
    // B: the session must not go back in time.
    for (let i = 0; i < 5; i++) {
      const seen = await read(b, key!);
      expect(seen.n, `read ${i} on ${seen.node} went back in time`).toBe(1);
    }
  });
});
