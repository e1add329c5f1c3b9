import Cursor from 'pg-cursor';
import QueryStream from 'pg-query-stream';
import { describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, routerFor, settle, urlAs, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
const PORT = 'select inet_server_port() as port';

useRoutedCluster(
  {
    router: { tokenSecret: 'edge cases secret, 16+ bytes' },
    setup: ['create table items (id serial primary key, tag text)', "insert into items (tag) select 'seed' from generate_series(1, 20)"],
    resumeAfterEach: true,
  },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

async function pauseAll(): Promise<void> {
  await settle(router, cluster);
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

const count = (tag: string) =>
  router.query('select count(*)::int as n from items where tag = $1', [tag]).then((r) => r.rows[0]!.n as number);

async function naiveCount(tag: string): Promise<number> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query('select count(*)::int as n from items where tag = $1', [tag])).rows[0].n;
  } finally {
    await pool.end();
  }
}

const drain = (stream: NodeJS.ReadableStream) =>
  new Promise<unknown[]>((resolve, reject) => {
    const rows: unknown[] = [];
    stream
      .on('data', (row) => rows.push(row))
      .on('end', () => resolve(rows))
      .on('error', reject);
  });

describe('writes and reads through cursors and streams are tracked', () => {
  it('a write run as a stream (INSERT … RETURNING) is read back', async () => {
    await pauseAll();
    const rows = await drain(router.pool.query(new QueryStream("insert into items (tag) values ('streamed') returning id")));
    expect(rows).toHaveLength(1);
    expect(await count('streamed')).toBe(1);
    expect(await naiveCount('streamed')).toBe(0);
  });

  it('a write cursor inside a transaction counts at COMMIT', async () => {
    await pauseAll();
    const client = await router.pool.connect();
    try {
      await client.query('begin');
      const cursor = client.query(new Cursor("insert into items (tag) values ('cursor-tx') returning id"));
      await cursor.read(10);
      await cursor.close();
      await client.query('commit');
    } finally {
      client.release();
    }
    expect(await count('cursor-tx')).toBe(1);
    expect(await naiveCount('cursor-tx')).toBe(0);
  });

  it('after a cursor ends, the client is free to move to the primary for a write', async () => {
    await settle(router, cluster);
    await router.withSession('unpin', async () => {
      const client = await router.pool.connect();
      try {
        const stream = client.query(new QueryStream('select id from items order by id limit 5'));
        expect(await drain(stream)).toHaveLength(5);
        expect(client.node).toMatch(/^r\d$/);
        await client.query("insert into items (tag) values ('after-cursor')"); // not a read-only error
        expect(client.node).toBe('primary');
      } finally {
        client.release();
      }
    });
  });
});

describe('transactions', () => {
  it('COMMIT AND CHAIN: both transactions are read back', async () => {
    await pauseAll();
    const client = await router.pool.connect();
    try {
      await client.query('begin');
      await client.query("insert into items (tag) values ('chain')");
      await client.query('commit and chain');
      await client.query("insert into items (tag) values ('chain')");
      await client.query('commit');
    } finally {
      client.release();
    }
    expect(await count('chain')).toBe(2);
    expect(await naiveCount('chain')).toBe(0);
  });

  it('a SERIALIZABLE READ ONLY transaction runs on the primary (hot standbys refuse it)', async () => {
    await settle(router, cluster);
    const client = await router.pool.connect();
    try {
      await client.query('begin isolation level serializable read only');
      expect(nodeByPort(cluster, (await client.query(PORT)).rows[0]!.port)).toBe('primary');
      await client.query('commit');
    } finally {
      client.release();
    }
  });
});

describe('scopes', () => {
  it('writes inside withToken and withSession are seen by the scope around them', async () => {
    await pauseAll();
    const token = await router.currentToken();
    await router.withToken(token, () => router.query("insert into items (tag) values ('in-token')"));
    expect(await count('in-token')).toBe(1); // the process session, after the token scope
    await router.withSession('inner', () => router.query("insert into items (tag) values ('in-session')"));
    expect(await count('in-session')).toBe(1);
    expect(await naiveCount('in-session')).toBe(0);
  });
});

describe('connections', () => {
  it('a client released while it waits for a connection to move to does not leak it', async () => {
    // Checked out on the replica, its write waits for the primary's only connection.
    const tiny = createRouter({
      primary: { connectionString: urlAs(cluster.primary), max: 1 },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
      monitor: { intervalMs: 100 },
    });
    let cleanup: (() => void) | undefined;
    try {
      await settle(tiny, cluster);
      const holder = await tiny.pool.connect();
      cleanup = () => holder.release(true);
      await holder.query('begin'); // holds the primary's only connection (no write: the session may read on r1)
      const waiter = await tiny.pool.connect();
      expect(waiter.node).toBe('r1');
      const pending = waiter.query("insert into items (tag) values ('waiter')");
      await new Promise((resolve) => setTimeout(resolve, 50));
      waiter.release(); // while it waits for the primary's connection
      holder.release(true); // its transaction goes with it
      cleanup = undefined;
      await expect(pending).rejects.toThrow(/not queryable/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(tiny.pool.totalCount).toBe(tiny.pool.idleCount); // nothing checked out
      expect(await count('waiter')).toBe(0);
      expect((await tiny.query('select 2 as n')).rows).toEqual([{ n: 2 }]); // and the pool still works
    } finally {
      cleanup?.();
      await tiny.close();
    }
  });

  it("a replica's full pool is no server failure: pool.query and connect() fail on connectionTimeoutMillis as pg.Pool's do, and the replica stays in rotation", async () => {
    const tiny = createRouter({
      primary: { connectionString: urlAs(cluster.primary) },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!), max: 1, connectionTimeoutMillis: 200 }],
      monitor: { intervalMs: 100 },
    });
    try {
      await settle(tiny, cluster);
      const holder = await tiny.withConsistency('eventual', () => tiny.pool.connect());
      try {
        expect(holder.node).toBe('r1'); // the replica's only connection
        const servedBy = (name: string) => tiny.topology().nodes.find((n) => n.name === name)!.served;
        const [primaryServed, r1Served] = [servedBy('primary'), servedBy('r1')];
        await expect(tiny.withConsistency('eventual', () => tiny.pool.query(PORT))).rejects.toThrow(
          /timeout exceeded when trying to connect/,
        );
        expect(servedBy('primary')).toBe(primaryServed); // not run again on the primary
        expect(servedBy('r1'), 'never sent: not counted as served').toBe(r1Served);
        expect(tiny.topology().nodes.find((n) => n.name === 'r1')!.status).toBe('up');
        await expect(tiny.withConsistency('eventual', () => tiny.pool.connect())).rejects.toThrow(
          /timeout exceeded when trying to connect/,
        );
      } finally {
        holder.release();
      }
    } finally {
      await tiny.close();
    }
  });

  it("a replica's pool full past the router's own wait bound (no connectionTimeoutMillis set; pg would wait on): pool.query and connect() get the primary, and the replica stays in rotation", async () => {
    const tiny = createRouter({
      primary: { connectionString: urlAs(cluster.primary) },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!), max: 1 }],
      monitor: { intervalMs: 100, timeoutMs: 100 }, // the router's connect bound: 2 x 100 ms
    });
    try {
      await settle(tiny, cluster);
      const holder = await tiny.withConsistency('eventual', () => tiny.pool.connect());
      try {
        expect(holder.node).toBe('r1'); // the replica's only connection
        const { rows } = await tiny.withConsistency('eventual', () => tiny.pool.query(PORT));
        expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary');
        const second = await tiny.withConsistency('eventual', () => tiny.pool.connect());
        expect(second.node).toBe('primary');
        second.release();
        expect(tiny.topology().nodes.find((n) => n.name === 'r1')!.status).toBe('up');
      } finally {
        holder.release();
      }
    } finally {
      await tiny.close();
    }
  });

  it("a dead or ended connection stays checked out until release, as on pg; _clients and an idle error's err.client give the object", async () => {
    const tiny = createRouter({
      primary: { connectionString: urlAs(cluster.primary), max: 1 },
      replicas: [],
      monitor: { intervalMs: 100 },
    });
    try {
      const client = await tiny.pool.connect();
      expect(tiny.pool._clients).toEqual([client]);
      const died = new Promise((resolve) => client.once('error', resolve));
      (client.connection as { end(): void }).end(); // severs its socket
      expect(await died).toBeInstanceOf(Error);
      expect([tiny.pool.totalCount, tiny.pool.idleCount]).toEqual([1, 0]); // still checked out
      client.release();
      expect(tiny.pool.totalCount).toBe(0); // removed at release: it cannot be queried
      const second = await tiny.pool.connect();
      void second.end();
      await expect(second.query('select 1')).rejects.toThrow(/not queryable/);
      second.release();
      expect(tiny.pool.totalCount).toBe(0); // an ended client is removed at release
      const third = await tiny.pool.connect();
      third.release();
      const idleError = new Promise<Error & { client?: unknown }>((resolve) => tiny.pool.once('error', resolve));
      third.emit('error', new Error('on purpose'));
      expect((await idleError).client).toBe(third);
    } finally {
      await tiny.close();
    }
  });

  it('release(anything truthy) destroys the connection, as pg-pool does', async () => {
    const client = await router.pool.connect();
    await client.query("insert into items (tag) values ('destroy')");
    const total = router.pool.totalCount;
    client.release('yes' as unknown as boolean);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(router.pool.totalCount).toBe(total - 1);
  });

  it('pool.query(submittable) after end() hands the error to the submittable', async () => {
    const ended = routerFor(cluster);
    await ended.close();
    const stream = ended.pool.query(new QueryStream('select 1'));
    await expect(drain(stream)).rejects.toThrow(/after calling end/);
  });
});
