// Issue 15: `router.pool.query` keeps pg-pool's argument and callback rules, side by side with a
// plain pg.Pool on the same primary (found by node-postgres' own pg-pool suite run against it).
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { urlAs, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
let plain: pg.Pool | undefined;

useRoutedCluster({ cluster: { replicas: 1 } }, (c, r) => {
  [cluster, router] = [c, r];
});
afterAll(() => plain?.end());

/** The two pools under test: plain pg.Pool (the reference) and the routed one. */
function pools(): [string, pg.Pool][] {
  plain ??= new pg.Pool({ connectionString: urlAs(cluster.primary) });
  return [
    ['pg.Pool', plain],
    ['router.pool', router.pool as unknown as pg.Pool],
  ];
}

type LooseQuery = (...args: unknown[]) => unknown;

/** Calls `query` with `args` and a trailing callback; resolves with what the callback got. */
function viaCallback(pool: pg.Pool, ...args: unknown[]): Promise<{ err: unknown; result: unknown; returned: unknown }> {
  return new Promise((resolve) => {
    let returned: unknown;
    returned = (pool.query as unknown as LooseQuery).call(pool, ...args, (err: unknown, result: unknown) =>
      resolve({ err, result, returned }),
    );
  });
}

describe('router.pool.query: pg-pool argument and callback rules', () => {
  it('a successful callback gets err undefined (not null) and the result; query returns undefined', async () => {
    for (const [name, pool] of pools()) {
      const { err, result, returned } = await viaCallback(pool, 'select 1 as one');
      expect(err, name).toBeUndefined();
      expect((result as pg.QueryResult).rows, name).toEqual([{ one: 1 }]);
      expect(returned, name).toBeUndefined();
    }
  });

  it('query(null) rejects with a TypeError instead of throwing; with a callback, the callback gets it', async () => {
    for (const [name, pool] of pools()) {
      const query = pool.query as unknown as LooseQuery;
      let outcome: unknown;
      expect(() => (outcome = query.call(pool, null)), name).not.toThrow();
      await expect(outcome, name).rejects.toBeInstanceOf(TypeError);
      const { err } = await viaCallback(pool, null);
      expect(err, name).toBeInstanceOf(TypeError);
    }
  });

  it('a function as the first argument is called back with an error, later; nothing is returned or thrown', async () => {
    for (const [name, pool] of pools()) {
      const query = pool.query as unknown as LooseQuery;
      const got = await new Promise<{ err: unknown; sync: boolean; returned: unknown }>((resolve) => {
        let sync = true;
        let returned: unknown;
        expect(() => {
          returned = query.call(pool, (err: unknown) => resolve({ err, sync, returned }));
        }, name).not.toThrow();
        sync = false;
      });
      expect(got.sync, `${name}: called back asynchronously`).toBe(false);
      expect(got.returned, name).toBeUndefined();
      expect(String(got.err), name).toMatch(/Passing a function as the first parameter to pool.query is not supported/);
    }
  });
});

/** A promise class of the user's (as Bluebird would be), to see which one comes back. */
class OwnPromise<T> extends Promise<T> {}

describe("pg's Promise option", () => {
  it('pool.query, pool.connect, client.query and pool.end return promises of that class, as with pg.Pool', async () => {
    const config = { connectionString: urlAs(cluster.primary), Promise: OwnPromise };
    const own = createRouter({
      primary: config,
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
      monitor: { intervalMs: 100 },
    });
    const candidates: [string, pg.Pool][] = [
      ['pg.Pool', new pg.Pool(config)],
      ['router.pool', own.pool as unknown as pg.Pool],
    ];
    for (const [name, pool] of candidates) {
      const query = pool.query('select 1 as one');
      expect(query, `${name}: query`).toBeInstanceOf(OwnPromise);
      expect((await query).rows, name).toEqual([{ one: 1 }]);
      const checkout = pool.connect();
      expect(checkout, `${name}: connect`).toBeInstanceOf(OwnPromise);
      const client = await checkout;
      const onClient = client.query('select 2 as two');
      expect(onClient, `${name}: client.query`).toBeInstanceOf(OwnPromise);
      expect((await onClient).rows, name).toEqual([{ two: 2 }]);
      client.release();
      const failed = pool.query('select * from no_such_table');
      expect(failed, `${name}: a failing query`).toBeInstanceOf(OwnPromise);
      await expect(failed, name).rejects.toMatchObject({ code: '42P01' });
      const ended = pool.end();
      expect(ended, `${name}: end`).toBeInstanceOf(OwnPromise);
      await ended;
    }
  });

  it("a checked-out client's end() returns a promise of that class too, as pg.Client's does", async () => {
    const config = { connectionString: urlAs(cluster.primary), Promise: OwnPromise };
    const own = createRouter({ primary: config, replicas: [], monitor: { intervalMs: 100 } });
    const plainPool = new pg.Pool(config);
    try {
      for (const [name, pool] of [
        ['pg.Pool', plainPool],
        ['router.pool', own.pool as unknown as pg.Pool],
      ] as const) {
        const client = await pool.connect();
        const ended = client.end();
        expect(ended, `${name}: client.end`).toBeInstanceOf(OwnPromise);
        await ended;
        client.release(true);
      }
    } finally {
      await Promise.all([plainPool.end(), own.close()]);
    }
  });
});
