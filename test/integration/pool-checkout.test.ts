import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { settle, urlAs, useRoutedCluster } from '../helpers/cluster.js';
import { closedPortUrl, primaryOnly as onPrimary, settledYet, using } from '../helpers/checkout.js';

// router.pool.connect() checks out a real pooled connection, as pg.Pool's does: these tests hold
// it to the pg-pool behaviours (waiting at max, timeouts, servers down, one object per
// connection, where a checkout lands) against a real cluster; hooks, events and connection
// lifetimes are in pool-lifecycle.test.ts.

let cluster: Cluster;
let shared: Router;

useRoutedCluster(
  {
    cluster: { replicas: 1 },
    setup: ['create table checkout_notes (id serial primary key, note text)'],
  },
  (c, r) => {
    [cluster, shared] = [c, r];
  },
);

const primaryOnly = (extra: pg.PoolConfig = {}) => onPrimary(cluster.primary, extra);

describe('checkout limits', () => {
  it('a connect() past max waits until a client is released', () =>
    using(primaryOnly(), async (router) => {
      const first = await router.pool.connect();
      expect(router.pool.totalCount).toBe(1);
      const second = router.pool.connect();
      expect(await settledYet(second)).toBe(false);
      expect(router.pool.waitingCount).toBe(1);
      expect(router.pool.totalCount).toBe(1);
      first.release();
      const got = await second;
      expect(router.pool.waitingCount).toBe(0);
      expect(router.pool.totalCount).toBe(1);
      got.release();
    }));

  it('connectionTimeoutMillis on a full pool rejects the waiting connect()', () =>
    using(primaryOnly({ connectionTimeoutMillis: 100 }), async (router) => {
      const held = await router.pool.connect();
      try {
        const started = Date.now();
        await expect(router.pool.connect()).rejects.toThrow('timeout exceeded when trying to connect');
        expect(Date.now() - started).toBeGreaterThanOrEqual(90);
        expect(router.pool.waitingCount).toBe(0);
      } finally {
        held.release();
      }
    }));
});

describe('servers down', () => {
  it('a primary nobody listens for: connect() rejects, and a callback gets the error', async () => {
    const router = createRouter({
      primary: { connectionString: await closedPortUrl(urlAs(cluster.primary)), max: 1 },
      replicas: [],
      monitor: { intervalMs: 100 },
    });
    await using(router, async () => {
      await expect(router.pool.connect()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      const viaCallback = await new Promise<{ err: unknown; client: unknown }>((resolve) =>
        router.pool.connect((err, client) => resolve({ err, client })),
      );
      expect(viaCallback.err).toMatchObject({ code: 'ECONNREFUSED' });
      expect(viaCallback.client).toBeUndefined();
      expect(router.pool.totalCount).toBe(0);
    });
  });

  it('a replica nobody listens for, the primary up: connect() gets the primary', async () => {
    const router = createRouter({
      primary: { connectionString: urlAs(cluster.primary), max: 1 },
      replicas: [{ name: 'r1', connectionString: await closedPortUrl(urlAs(cluster.replicas[0]!)) }],
      monitor: { intervalMs: 100 },
    });
    await using(router, async () => {
      router.topology(); // the monitor starts; the first checkout waits for its first poll anyway
      const client = await router.pool.connect();
      try {
        expect(client.node).toBe('primary');
        expect(client.processID).toEqual(expect.any(Number));
        expect(router.pool.totalCount).toBe(1);
      } finally {
        client.release();
      }
    });
  });
});

describe('one object per connection', () => {
  it('the same connection gives back the same object', () =>
    using(primaryOnly(), async (router) => {
      const first = await router.pool.connect();
      const pid = first.processID;
      expect(pid).toEqual(expect.any(Number));
      first.release();
      const second = await router.pool.connect();
      try {
        expect(second).toBe(first);
        expect(second.processID).toBe(pid);
      } finally {
        second.release();
      }
    }));

  it('releasing twice throws pg-pool’s error', () =>
    using(primaryOnly(), async (router) => {
      const client = await router.pool.connect();
      expect(router.pool.totalCount).toBe(1);
      client.release();
      expect(router.pool.idleCount).toBe(1);
      expect(() => client.release()).toThrow('Release called on client which has already been released to the pool.');
    }));
});

describe('where a checkout lands', () => {
  it('with a ready replica, an eventual connect() lands there; a read stays, a write moves it; one object throughout', async () => {
    await settle(shared, cluster);
    const released: unknown[] = [];
    const onRelease = (_err: unknown, c: unknown) => released.push(c);
    shared.pool.on('release', onRelease);
    await shared
      .withConsistency('eventual', async () => {
        const client = await shared.pool.connect();
        try {
          expect(client.node).toBe('r1');
          expect(shared.pool.totalCount).toBeGreaterThan(0);
          await client.query('select 1');
          expect(client.node).toBe('r1');
          await client.query("insert into checkout_notes (note) values ('moved')");
          expect(client.node).toBe('primary');
          // The replica connection it left has an object of its own now.
          const onReplica = await shared.pool.connect();
          expect(onReplica.node).toBe('r1');
          expect(onReplica).not.toBe(client);
          onReplica.release();
        } finally {
          client.release();
        }
        // The primary connection it went back with carries the same object.
        expect(released.at(-1)).toBe(client);
      })
      .finally(() => shared.pool.removeListener('release', onRelease));
  });
});
