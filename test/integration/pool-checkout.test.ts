import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createRouter, type RoutedClient, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { freePort } from '../../lib/testing/processes.js';
import { settle, urlAs, useRoutedCluster } from '../helpers/cluster.js';

// router.pool.connect() checks out a real pooled connection, as pg.Pool's does: these tests hold
// it to the pg-pool behaviours (waiting at max, timeouts, servers down, hooks, one object per
// connection, events, maxUses, idle timeout, idle errors) against a real cluster.

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

type Client = RoutedClient;

/** A router over the primary alone, with `extra` pg.Pool options on its node pool. */
function primaryOnly(extra: pg.PoolConfig = {}): Router {
  return createRouter({
    primary: { connectionString: urlAs(cluster.primary), max: 1, ...extra },
    replicas: [],
    monitor: { intervalMs: 100 },
  });
}

/** `connectionString` with its port swapped for one nothing listens on. */
async function closedPortUrl(connectionString: string): Promise<string> {
  const url = new URL(connectionString);
  url.port = String(await freePort());
  return url.toString();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether `promise` has settled after the event loop had a few turns. */
async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(50);
  return done;
}

async function using(router: Router, fn: (router: Router) => Promise<void>): Promise<void> {
  try {
    await fn(router);
  } finally {
    await router.close();
  }
}

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
