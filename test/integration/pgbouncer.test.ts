// PgBouncer in transaction pooling mode in front of each server (one PgBouncer per server): the
// router's guarantees hold through it — read-your-writes, monotonic reads, the monitor's view of
// each server, tokens handed to a service that connects directly — and the naive path is stale.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import { startPgBouncer, type Cluster, type PgBouncerHandle } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';

const SECRET = 'a test secret of at least 16 bytes';
let cluster: Cluster;
let bouncers: PgBouncerHandle[]; // primary, r1, r2
let router: Router; // through the PgBouncers

const viaBouncer = (i: number) => bouncers[i]!.appConnectionString!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  await cluster.primary.query('create table notes (id serial primary key, author text, body text)');
  await cluster.waitForReplicas();
  bouncers = await Promise.all(
    [cluster.primary, ...cluster.replicas].map((node) => startPgBouncer(node, { poolMode: 'transaction', poolSize: 5 })),
  );
  router = createRouter({
    primary: { connectionString: viaBouncer(0) },
    replicas: cluster.replicas.map((r, i) => ({ name: r.name, connectionString: viaBouncer(i + 1) })),
    monitor: { intervalMs: 100 },
    tokenSecret: SECRET,
    logger: false,
  });
  await settle(router, cluster);
});

afterEach(async () => {
  for (const replica of cluster.replicas) await replica.resumeReplay();
});

afterAll(async () => {
  await router?.close();
  await Promise.all((bouncers ?? []).map((b) => b.stop()));
  await cluster?.stop();
});

/** A plain pg.Pool through a replica's PgBouncer: no router. */
async function naiveCount(replica: number, author: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: viaBouncer(replica), max: 1 });
  try {
    return (await pool.query('select count(*)::int as n from notes where author = $1', [author])).rows[0].n;
  } finally {
    await pool.end();
  }
}

const countOn = (r: Router, author: string) =>
  r
    .query<{ n: number; port: number }>('select count(*)::int as n, inet_server_port() as port from notes where author = $1', [author])
    .then(({ rows }) => ({ n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) }));

describe('through PgBouncer (transaction pooling, one per server)', () => {
  it('the monitor sees each server behind its PgBouncer: positions, and the lag of a paused replica', async () => {
    const replicas = () => router.topology().nodes.filter((n) => n.role === 'replica');
    expect(replicas().map((n) => [n.name, n.status, n.lagBytes])).toEqual([
      ['r1', 'up', 0],
      ['r2', 'up', 0],
    ]);
    await cluster.replicas[0]!.pauseReplay();
    await cluster.primary.query("insert into notes (author, body) values ('monitor', 'x')");
    await expect.poll(() => replicas()[0]!.lagBytes, { timeout: 5000 }).toBeGreaterThan(0);
    await expect.poll(() => replicas()[1]!.lagBytes, { timeout: 5000 }).toBe(0); // r2 replays on (once polled after the insert)
  });

  it('read-your-writes and monotonic reads in a session; a plain pool through the same PgBouncer reads stale', async () => {
    await cluster.replicas[0]!.pauseReplay();
    const seen = await router.withSession('ann', async () => {
      await router.query("insert into notes (author, body) values ('ann', 'saved')");
      return countOn(router, 'ann');
    });
    expect(seen.n).toBe(1);
    expect(await naiveCount(1, 'ann')).toBe(0); // r1 through its PgBouncer: stale
    for (let i = 0; i < 10; i++) {
      const next = await router.withSession('ann', () => countOn(router, 'ann'));
      expect(next.n).toBe(1);
      expect(next.node).not.toBe('r1');
    }
  });

  it('a token from the service behind PgBouncer holds at a service that connects directly, under its own replica names', async () => {
    const direct = routerFor(cluster, {
      replicas: cluster.replicas.map((r, i) => ({ name: `west-${i + 1}`, connectionString: r.appConnectionString! })),
      tokenSecret: SECRET,
    });
    try {
      await settle(direct, cluster);
      await cluster.replicas[0]!.pauseReplay();
      await cluster.replicas[1]!.pauseReplay();
      const token = await router.withSession('bob', async () => {
        await router.query("insert into notes (author, body) values ('bob', 'handed over')");
        return router.currentToken();
      });
      expect(await naiveCount(1, 'bob')).toBe(0);
      expect(await naiveCount(2, 'bob')).toBe(0);
      const read = await direct.withToken(token, () => countOn(direct, 'bob'));
      expect(read).toEqual({ n: 1, node: 'primary' });
      await cluster.replicas[1]!.resumeReplay();
      await expect.poll(() => direct.withToken(token, () => countOn(direct, 'bob')), { timeout: 5000 }).toEqual({ n: 1, node: 'r2' });
    } finally {
      await direct.close();
    }
  });

  it('a write whose answer timed out: its error returns once no transaction open before it is left (PgBouncer hides its backend), and the session reads it', async () => {
    // The primary's answers are awaited 300 ms; the write sleeps 1.2 s on the server, then commits.
    const bounded = createRouter({
      primary: { connectionString: viaBouncer(0), query_timeout: 300 },
      replicas: cluster.replicas.map((r, i) => ({ name: r.name, connectionString: viaBouncer(i + 1) })),
      monitor: { intervalMs: 100 },
      logger: false,
    });
    try {
      await settle(bounded, cluster);
      // The monitor saw it: the process id PgBouncer gave its connection is no backend's.
      expect(engineOf(bounded)!.monitor.state('primary')!.pooled).toBe(true);
      const started = performance.now();
      // Both replicas stop replaying before the write commits: only the primary will have it.
      const pausing = sleep(600).then(() => Promise.all(cluster.replicas.map((r) => r.pauseReplay())));
      const failed = await bounded
        .withSession('carol', () => bounded.query("insert into notes (author, body) select 'carol', 'late' from pg_sleep(1.2)"))
        .then(
          () => undefined,
          (err: unknown) => err as { code?: string },
        );
      const returnedAfterMs = performance.now() - started;
      await pausing;
      expect(failed?.code).toBe('ERR_PGRR_NODE_TIMEOUT');
      await expect
        .poll(async () => (await cluster.primary.query("select count(*)::int as n from notes where author = 'carol'"))[0]!.n)
        .toBe(1);
      expect(await naiveCount(1, 'carol')).toBe(0); // the replicas paused before the commit: stale
      expect(await naiveCount(2, 'carol')).toBe(0);
      const read = await bounded.withSession('carol', () => countOn(bounded, 'carol'));
      expect(read).toEqual({ n: 1, node: 'primary' });
      // Not before the statement had ended: a pid fence (PgBouncer's pid names no backend) returns at once.
      expect(returnedAfterMs).toBeGreaterThan(1100);
    } finally {
      await bounded.close();
    }
  });
});
