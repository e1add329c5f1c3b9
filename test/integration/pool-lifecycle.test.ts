import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { RoutedClient, Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { useRoutedCluster } from '../helpers/cluster.js';
import { primaryOnly as onPrimary, sleep, using } from '../helpers/checkout.js';

// A checked-out client's lifecycle as pg-pool's: hooks (onConnect, verify, 'connect' listeners)
// get the object connect() returns, events carry it, maxUses / idleTimeoutMillis end connections
// as on pg, and an idle connection's error reaches the pool's 'error' listeners.

let cluster: Cluster;

useRoutedCluster({ cluster: { replicas: 0 } }, (c) => {
  cluster = c;
});

type Client = RoutedClient;
const primaryOnly = (extra: pg.PoolConfig = {}) => onPrimary(cluster.primary, extra);

describe('hooks', () => {
  it('onConnect runs once per connection, on the object connect() returns, with its statements on that connection', async () => {
    const seen: unknown[] = [];
    const router = primaryOnly({
      onConnect: async (client: pg.ClientBase) => {
        seen.push(client);
        (client as unknown as { mark?: string }).mark = 'from the hook';
        await client.query("set application_name = 'hooked'");
      },
    });
    await using(router, async () => {
      const client = await router.pool.connect();
      try {
        expect(seen).toHaveLength(1);
        expect(seen[0]).toBe(client);
        expect((client as unknown as { mark?: string }).mark).toBe('from the hook');
        expect((await client.query('show application_name')).rows[0]?.application_name).toBe('hooked');
      } finally {
        client.release();
      }
      const again = await router.pool.connect();
      again.release();
      expect(again).toBe(client);
      expect(seen).toHaveLength(1); // same connection: no second run
    });
  });

  it('an async onConnect that rejects makes connect() reject with its error, and no connection stays', () =>
    using(
      primaryOnly({
        onConnect: async () => {
          throw new Error('onConnect refused');
        },
      }),
      async (router) => {
        await expect(router.pool.connect()).rejects.toThrow('onConnect refused');
        expect(router.pool.totalCount).toBe(0);
      },
    ));

  it('verify calling done(err) makes connect() reject with that error', () =>
    using(primaryOnly({ verify: (_client, done) => done(new Error('verify refused')) }), async (router) => {
      await expect(router.pool.connect()).rejects.toThrow('verify refused');
      expect(router.pool.totalCount).toBe(0);
    }));
});

describe('hooks see the object too', () => {
  it('verify gets the object connect() returns, and its statements run on the new connection', async () => {
    let seen: unknown;
    const router = primaryOnly({
      verify: (client, done) => {
        seen = client;
        client.query("set application_name = 'verified'", (err: Error | undefined) => done(err));
      },
    });
    await using(router, async () => {
      const client = await router.pool.connect();
      try {
        expect(seen).toBe(client);
        expect((await client.query('show application_name')).rows[0]?.application_name).toBe('verified');
      } finally {
        client.release();
      }
    });
  });

  it("statements in a synchronous 'connect' listener run on the new connection, before the checkout's own", () =>
    using(primaryOnly(), async (router) => {
      const seen: unknown[] = [];
      router.pool.on('connect', (client: Client) => {
        seen.push(client);
        void client.query("set application_name = 'listened'");
      });
      const client = await router.pool.connect();
      try {
        expect(seen).toEqual([client]);
        expect((await client.query('show application_name')).rows[0]?.application_name).toBe('listened');
      } finally {
        client.release();
      }
      const { rows } = await router.pool.query('show application_name'); // the same connection, prepared once
      expect(rows[0]?.application_name).toBe('listened');
      expect(seen).toHaveLength(1);
    }));
});

describe('pool events', () => {
  function record(router: Router): Array<[string, ...unknown[]]> {
    const log: Array<[string, ...unknown[]]> = [];
    for (const event of ['connect', 'acquire', 'release', 'remove'] as const)
      router.pool.on(event, (...args: unknown[]) => log.push([event, ...args]));
    return log;
  }

  it("'connect' comes before 'acquire', both with the object connect() returns", () =>
    using(primaryOnly(), async (router) => {
      const log = record(router);
      const client = await router.pool.connect();
      client.release();
      expect(log.map(([event]) => event)).toEqual(['connect', 'acquire', 'release']);
      expect(log[0]![1]).toBe(client);
      expect(log[1]![1]).toBe(client);
    }));

  it("'release' gets (err, client) with what release() was given", () =>
    using(primaryOnly(), async (router) => {
      const log = record(router);
      const client = await router.pool.connect();
      const err = new Error('done with it');
      client.release(err);
      const release = log.find(([event]) => event === 'release');
      expect(release).toBeDefined();
      expect(release![1]).toBe(err);
      expect(release![2]).toBe(client);
    }));

  it("release(true) removes the connection: 'remove' with the object", () =>
    using(primaryOnly(), async (router) => {
      const log = record(router);
      const client = await router.pool.connect();
      client.release(true);
      await sleep(20);
      const remove = log.find(([event]) => event === 'remove');
      expect(remove).toBeDefined();
      expect(remove![1]).toBe(client);
      expect(router.pool.totalCount).toBe(0);
    }));

  it("pool.query fires 'acquire' too", () =>
    using(primaryOnly(), async (router) => {
      const log = record(router);
      await router.pool.query('select 1');
      expect(log.filter(([event]) => event === 'acquire')).toHaveLength(1);
      const client = await router.pool.connect();
      client.release();
      expect(log.filter(([event]) => event === 'acquire')).toHaveLength(2);
      expect(log.filter(([event]) => event === 'acquire').at(-1)![1]).toBe(client);
    }));
});

describe('connection lifetime options', () => {
  it('maxUses: after its uses the connection is removed and the next checkout gets a new one', () =>
    using(primaryOnly({ maxUses: 2 }), async (router) => {
      const removed: unknown[] = [];
      router.pool.on('remove', (client: unknown) => removed.push(client));
      const pids: Array<number | null> = [];
      for (let i = 0; i < 3; i++) {
        const client = await router.pool.connect();
        pids.push(client.processID);
        client.release();
        await sleep(20);
      }
      expect(pids[0]).toEqual(expect.any(Number));
      expect(pids[1]).toBe(pids[0]);
      expect(pids[2]).toEqual(expect.any(Number));
      expect(pids[2]).not.toBe(pids[0]);
      expect(removed).toHaveLength(1);
    }));

  it('idleTimeoutMillis: a released connection is closed after it', () =>
    using(primaryOnly({ idleTimeoutMillis: 50 }), async (router) => {
      const client = await router.pool.connect();
      expect(router.pool.totalCount).toBe(1);
      client.release();
      expect(router.pool.totalCount).toBe(1);
      await sleep(300);
      expect(router.pool.totalCount).toBe(0);
    }));
});

describe('idle errors', () => {
  it("an 'error' on a released client: the pool emits 'error' (err, that client) and the connection goes", () =>
    using(primaryOnly(), async (router) => {
      const errors: Array<[unknown, unknown]> = [];
      router.pool.on('error', (err: unknown, client: unknown) => errors.push([err, client]));
      const client = await router.pool.connect();
      client.release();
      expect(router.pool.totalCount).toBe(1);
      const boom = new Error('idle connection broke');
      client.emit('error', boom);
      await sleep(20);
      expect(errors).toHaveLength(1);
      expect(errors[0]![0]).toBe(boom);
      expect(errors[0]![1]).toBe(client);
      expect(router.pool.totalCount).toBe(0);
    }));
});
