import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, settle } from '../helpers/cluster.js';
import { useExpressApp } from '../helpers/express.js';
import { Browser } from '../helpers/http.js';

let cluster: Cluster;
let router: Router;
let redis: Redis;
let url: string;

useExpressApp(
  {
    cluster: { redis: true },
    router: (cluster) => {
      // The application's own ioredis client, with its defaults (it would queue commands while
      // disconnected and retry for a long time): the router's store timeout must not wait for it.
      redis = new Redis(cluster.redis!.url);
      redis.on('error', () => {});
      return {
        store: redisStore(redis),
        tokenSecret: 'outage test secret, 16+ bytes',
        storeTimeoutMs: 50,
        storeBreaker: { failures: 3, cooldownMs: 300 },
        logger: false,
      };
    },
    setup: ['create table likes (who text, what text)'],
    routes: (app, router, cluster) => {
      app.post('/like/:what', async (req, res) => {
        await router.query('insert into likes values ($1, $2)', ['me', req.params.what]);
        res.json({ ok: true });
      });
      app.get('/likes/:what', async (req, res) => {
        const { rows } = await router.query(
          'select inet_server_port() as port, count(*)::int as n from likes where who = $1 and what = $2',
          ['me', req.params.what],
        );
        res.json({ liked: rows[0]!.n > 0, node: nodeByPort(cluster, rows[0]!.port) });
      });
    },
    cleanup: () => redis?.disconnect(),
  },
  (env) => {
    ({ cluster, router, url } = env);
  },
);

async function naiveLiked(what: string): Promise<boolean> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query("select count(*)::int as n from likes where who = 'me' and what = $1", [what])).rows[0].n > 0;
  } finally {
    await pool.end();
  }
}

describe('the position store goes away and comes back', () => {
  it('no request fails, none reads stale, none waits on the dead store; then routing returns to replicas', async () => {
    const browser = new Browser();
    await browser.json(`${url}/like/before?x=1`, { method: 'POST' });
    expect(await browser.json(`${url}/likes/before`)).toMatchObject({ liked: true });

    for (const replica of cluster.replicas) await replica.pauseReplay();
    await cluster.redis!.stop(); // Redis dies; it keeps nothing on disk, so it comes back empty

    const slowest: number[] = [];
    for (let i = 0; i < 15; i++) {
      for (const [method, path] of [
        ['POST', `/like/during-${i}`],
        ['GET', `/likes/during-${i}`],
      ] as const) {
        const started = performance.now();
        const res = await browser.fetch(`${url}${path}`, { method });
        slowest.push(performance.now() - started);
        expect(res.status, `${method} ${path}`).toBe(200);
        if (method === 'GET') expect(await res.json()).toMatchObject({ liked: true });
        else {
          await res.text();
          expect(res.headers.get('x-consistency-token'), 'the position still goes out in the token').toMatch(/^1\./);
        }
      }
    }
    const topology = router.topology();
    expect(topology.store.opened).toBeGreaterThanOrEqual(1); // the breaker opened ...
    expect(topology.store.shortCircuits).toBeGreaterThan(0); // ... and later calls did not wait at all
    // A correctness bound, not a speed measurement: no request hangs on the dead store.
    expect(Math.max(...slowest)).toBeLessThan(1000);
    expect(await naiveLiked('during-14')).toBe(false); // the paused replicas are really stale

    await cluster.redis!.start();
    await redis.ping(); // the app's client has reconnected (and run the commands it had queued) ...
    await redis.flushall(); // ... and the data is gone: Redis came back empty
    await new Promise((resolve) => setTimeout(resolve, 400)); // past the breaker's cooldown
    // The stored position is gone. The session must still see the write it made while the store
    // was down (floors are raised to the primary's position observed after the lost writes).
    for (let i = 0; i < 5; i++) expect(await browser.json(`${url}/likes/during-14`)).toMatchObject({ liked: true });
    expect(router.topology().store.state).toBe('closed');
    expect(router.topology().store.recovered).toBeGreaterThanOrEqual(1);

    for (const replica of cluster.replicas) await replica.resumeReplay();
    await settle(router, cluster);
    const nodes = new Set<string>();
    for (let i = 0; i < 10; i++) nodes.add((await new Browser().json(`${url}/likes/during-14`)).node as string);
    expect([...nodes].every((n) => n.startsWith('r'))).toBe(true); // back on replicas
  });
});
