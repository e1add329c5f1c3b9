import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryStore, parseLsn, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { cachedAtLeast, naivePool, nodeByPort, routerFor, startTestCluster } from '../helpers/cluster.js';

// A replica that crashes and restarts between two polls can reopen below the replay position the
// router cached before (hot standby opens once consistent, and replays the rest later — here not
// at all for a minute: recovery_min_apply_delay). Nothing tells the monitor until its next poll,
// but the router's idle connections to that replica die with it — its pooled application
// connections and the monitor's own: their errors must take the replica out of rotation at once,
// and its cached position with it, until polls have seen the restarted server again.

let cluster: Cluster;
/**
 * With the fix: idle connection errors reach the monitor — here with an 'error' listener on the
 * pool, as pg's docs advise (before, such a listener got the error and the router did not even
 * log it). Polls every ~5 s.
 */
let router: Router;
const poolErrors: unknown[] = [];
/**
 * A router that holds no application connection to the replica, only its monitor's (before, the
 * monitor's idle connection errors were dropped: a failed poll, later). It never polls during
 * the test: it knows the replica from before the crash.
 */
let quiet: Router;

const READ = "select inet_server_port() as port, count(*)::int as n from marks where tag = 'x'";

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  await cluster.primary.query('create table marks (tag text)');
  await cluster.primary.query("insert into marks values ('seed')");
  // A restartpoint on the replica after the table exists: the crashed replica reopens with it.
  await cluster.primary.query('checkpoint');
  await cluster.waitForReplicas();
  await cluster.replicas[0]!.query('checkpoint');
  const store = memoryStore(); // shared: both routers serve the same sessions
  router = routerFor(cluster, { store, monitor: { intervalMs: 5000 }, logger: false });
  router.pool.on('error', (err) => poolErrors.push(err));
  quiet = routerFor(cluster, { store, monitor: { intervalMs: 600_000 }, logger: false });
  await Promise.all([engineOf(router)!.monitor.ready, engineOf(quiet)!.monitor.ready]);
});

afterAll(async () => {
  await router?.close();
  await quiet?.close();
  await cluster?.stop();
});

const state = (r: Router, name: string) => engineOf(r)!.monitor.state(name)!;

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A read of session `user:1` through `r`: where it ran and whether it saw the session's write. */
async function sessionRead(r: Router): Promise<{ node: string; n: number }> {
  const { rows } = await r.withSession('user:1', () => r.query(READ));
  return { node: nodeByPort(cluster, rows[0]!.port), n: rows[0]!.n as number };
}

describe('a replica restarted between polls', () => {
  it('is taken out of rotation by its idle connections dying, and kept out until polls see it again', async () => {
    const r1 = cluster.replicas[0]!;
    // The session writes x; once r1 has replayed it, both routers cache r1 at or past it.
    await router.withSession('user:1', () => router.query("insert into marks values ('x')"));
    const afterWrite = await cluster.primary.insertLsn();
    await r1.waitForReplay(afterWrite);
    await Promise.all([engineOf(quiet)!.monitor.sample('r1'), engineOf(router)!.monitor.sample('r1')]);
    await cachedAtLeast(quiet, 'r1', afterWrite);
    await cachedAtLeast(router, 'r1', afterWrite);
    // The router reads the write on r1, and keeps idle connections to it; the quiet one has none.
    expect(await sessionRead(router)).toEqual({ node: 'r1', n: 1 });
    expect(engineOf(router)!.nodes.replicas.get('r1')!.pool.idleCount).toBeGreaterThan(0);
    expect((engineOf(quiet)!.nodes.replicas.get('r1')!.pool as pg.Pool).totalCount).toBe(0);

    await r1.setApplyDelay(60_000); // what it replays after the crash stays invisible for a minute
    let restarted: Promise<void> | undefined;
    try {
      // Right after a poll: the next one is at least 4 s away.
      const polled = state(router, 'r1').lastPollAt;
      await until('a poll', () => state(router, 'r1').lastPollAt !== polled);
      const lastPoll = state(router, 'r1').lastPollAt;
      await r1.kill();
      restarted = r1.start(); // resolves once it streams again, i.e. after the delay is lifted
      await until('r1 to accept connections', () =>
        r1.query('select 1').then(
          () => true,
          () => false,
        ),
      );

      // Naive: the restarted replica is below the write — straight on it, x is missing — while
      // both caches said r1 had x: a router trusting its cache reads there and misses it.
      const direct = naivePool(r1.connectionString);
      try {
        expect((await direct.query(READ)).rows[0].n).toBe(0);
      } finally {
        await direct.end();
      }

      // With the fix, the quiet router too: its monitor's dead connection marked r1 down, with no
      // poll and no application connection to tell it.
      expect(state(quiet, 'r1').status).toBe('down');
      expect(state(quiet, 'r1').replayLsn).toBeUndefined();
      expect(await sessionRead(quiet)).toEqual({ node: 'primary', n: 1 });

      // With the fix: the dead idle connections marked r1 down and dropped its cached position
      // before any poll could notice the restart.
      expect(poolErrors.length).toBeGreaterThan(0); // the application's listener still hears them
      expect(state(router, 'r1').lastPollAt).toBe(lastPoll);
      expect(state(router, 'r1').status).toBe('down');
      expect(state(router, 'r1').replayLsn).toBeUndefined();
      expect(await sessionRead(router)).toEqual({ node: 'primary', n: 1 });
      expect(state(router, 'r1').lastPollAt).toBe(lastPoll); // still no poll since the crash

      // Polls take r1 up again, at the position it really has now: still not for this session.
      await until('polls to take r1 up again', () => state(router, 'r1').status === 'up');
      expect(state(router, 'r1').replayLsn).toBeLessThan(parseLsn(afterWrite));
      for (let i = 0; i < 3; i++) expect(await sessionRead(router)).toEqual({ node: 'primary', n: 1 });

      // Once r1 replays the write, the session reads there again.
      await r1.setApplyDelay(0);
      await restarted;
      restarted = undefined;
      await r1.waitForReplay(afterWrite);
      await cachedAtLeast(router, 'r1', afterWrite);
      expect(await sessionRead(router)).toEqual({ node: 'r1', n: 1 });
    } finally {
      if (restarted) {
        await r1.setApplyDelay(0).catch(() => {});
        await restarted.catch(() => {});
      }
    }
  }, 120_000);
});
