import Cursor from 'pg-cursor';
import QueryStream from 'pg-query-stream';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { RoutedClient, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, urlAs, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
const PORT = 'select inet_server_port() as port';

useRoutedCluster(
  {
    setup: [
      'create table accounts (id int primary key, balance int not null)',
      'insert into accounts select g, 100 from generate_series(1, 50) g',
    ],
  },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

const collect = <T>(stream: NodeJS.ReadableStream): Promise<T[]> =>
  new Promise((resolve, reject) => {
    const rows: T[] = [];
    stream.on('data', (row: T) => rows.push(row));
    stream.on('end', () => resolve(rows));
    stream.on('error', reject);
  });

describe('RoutedPool: pg.Pool surface', () => {
  it('query in promise and callback forms, with text or config objects passed untouched', async () => {
    const promised = await router.pool.query('select $1::int as n', [7]);
    expect(promised.rows).toEqual([{ n: 7 }]);

    const viaCallback = await new Promise<pg.QueryResult>((resolve, reject) =>
      router.pool.query('select $1::int as n', [8], (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(viaCallback.rows).toEqual([{ n: 8 }]);
    const noValues = await new Promise<pg.QueryResult>((resolve, reject) =>
      router.pool.query('select 9 as n', (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(noValues.rows).toEqual([{ n: 9 }]);

    const config = Object.freeze({
      text: 'select $1::int as a, $2::text as b',
      values: [1, 'x'],
      rowMode: 'array' as const,
      types: { getTypeParser: () => (value: string) => `parsed:${value}` },
    });
    const arrays = await router.pool.query(config);
    expect(arrays.rows).toEqual([['parsed:1', 'parsed:x']]);

    const named = await router.pool.query({ name: 'by-id', text: 'select balance from accounts where id = $1', values: [3] });
    expect(named.rows).toEqual([{ balance: 100 }]);
  });

  it('errors from PostgreSQL reach the caller unchanged', async () => {
    await expect(router.pool.query('select * from no_such_table')).rejects.toMatchObject({ code: '42P01' });
    const err = await new Promise<Error & { code?: string }>((resolve) => router.pool.query('selec 1', (e) => resolve(e as Error)));
    expect(err.code).toBe('42601');
  });

  it('exposes counts, options, events, and forwards connect to prepare connections', async () => {
    expect(router.pool.options).toMatchObject({ connectionString: urlAs(cluster.primary) });
    expect(router.pool.constructor.name).toContain('Pool'); // Drizzle checks this
    expect(router.pool).toBeInstanceOf(pg.Pool); // Prisma's adapter-pg checks this
    expect('Client' in router.pool).toBe(false); // no way to open a side connection to the wrong node
    const connected: unknown[] = [];
    const onConnect = (client: unknown) => connected.push(client);
    router.pool.on('connect', onConnect);
    const clients = await Promise.all(Array.from({ length: 6 }, () => router.pool.connect()));
    try {
      await Promise.all(clients.map((c) => c.query('select pg_sleep(0.02)')));
      expect(router.pool.totalCount).toBeGreaterThanOrEqual(6);
      expect(router.pool.totalCount - router.pool.idleCount).toBeGreaterThanOrEqual(6); // all held
      expect(router.pool.waitingCount).toBe(0);
      expect(connected.length).toBeGreaterThan(0); // new connections on the nodes were announced
      expect(connected.every((c) => c instanceof RoutedClient)).toBe(true); // the object connect() gives for that connection
    } finally {
      for (const c of clients) c.release();
      router.pool.off('connect', onConnect);
    }
    expect(router.pool.idleCount).toBe(router.pool.totalCount);
  });

  it('streams through pool.query(new QueryStream(…)) and releases the client at the end', async () => {
    const idleBefore = router.pool.totalCount - router.pool.idleCount;
    const rows = await collect<{ id: number }>(
      router.pool.query(new QueryStream('select id from accounts order by id', [], { batchSize: 7 })),
    );
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(router.pool.totalCount - router.pool.idleCount).toBe(idleBefore);
  });
});

describe('RoutedClient: lazily bound checked-out clients', () => {
  it('binds a read to a replica, and moves to the primary when a write arrives outside a transaction', async () => {
    await settle(router, cluster);
    await router.withSession('client-move', async () => {
      const client = await router.pool.connect();
      try {
        expect(client.node).toBeDefined(); // checked out (where the session may read without asking a replica)
        const first = await client.query(PORT);
        expect(nodeByPort(cluster, first.rows[0]!.port)).toMatch(/^r\d$/);
        await client.query('update accounts set balance = balance + 1 where id = 1');
        expect(client.node).toBe('primary');
        const after = await client.query(`${PORT}, (select balance from accounts where id = 1) as balance`);
        expect(nodeByPort(cluster, after.rows[0]!.port)).toBe('primary'); // stays there
        expect(after.rows[0]!.balance).toBe(101);
      } finally {
        client.release();
      }
    });
  });

  it('commits and rolls back transactions on the primary', async () => {
    const client = await router.pool.connect();
    try {
      await client.query('begin');
      expect(nodeByPort(cluster, (await client.query(PORT)).rows[0]!.port)).toBe('primary');
      await client.query('update accounts set balance = 0 where id = 2');
      await client.query('rollback');
      await client.query('begin');
      await client.query('update accounts set balance = 5 where id = 3');
      await client.query('commit');
    } finally {
      client.release();
    }
    const { rows } = await router.query('select id, balance from accounts where id in (2, 3) order by id');
    expect(rows).toEqual([
      { id: 2, balance: 100 },
      { id: 3, balance: 5 },
    ]);
  });

  it('runs BEGIN READ ONLY on a ready replica and keeps the whole transaction there', async () => {
    await settle(router, cluster);
    await router.withSession('ro', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('begin read only');
        const ports = new Set<string>();
        for (let i = 0; i < 5; i++) ports.add(nodeByPort(cluster, (await client.query(PORT)).rows[0]!.port));
        expect(ports.size).toBe(1);
        expect([...ports][0]).toMatch(/^r\d$/);
        await expect(client.query('update accounts set balance = 1 where id = 4')).rejects.toMatchObject({ code: '25006' });
        await client.query('rollback');
      } finally {
        client.release();
      }
    });
  });

  it('runs cursors (pg-cursor) on the bound node', async () => {
    const client = await router.pool.connect();
    try {
      const cursor = client.query(new Cursor('select id from accounts where id <= $1 order by id', [10]));
      const read = (n: number) =>
        new Promise<Array<{ id: number }>>((resolve, reject) => cursor.read(n, (err, rows) => (err ? reject(err) : resolve(rows))));
      expect((await read(4)).map((r) => r.id)).toEqual([1, 2, 3, 4]);
      expect((await read(100)).map((r) => r.id)).toEqual([5, 6, 7, 8, 9, 10]);
      await new Promise<void>((resolve) => cursor.close(() => resolve()));
      expect(nodeByPort(cluster, (await client.query(PORT)).rows[0]!.port)).toBe(client.node === 'primary' ? 'primary' : client.node);
    } finally {
      client.release();
    }
  });

  it('streams (pg-query-stream) from a checked-out client', async () => {
    const client = await router.pool.connect();
    try {
      const rows = await collect<{ id: number }>(client.query(new QueryStream('select id from accounts where id > $1 order by id', [45])));
      expect(rows.map((r) => r.id)).toEqual([46, 47, 48, 49, 50]);
    } finally {
      client.release();
    }
  });

  it('supports connect(callback) with done(), callbacks on client.query, and release(true) destroying', async () => {
    const { client, done } = await new Promise<{ client: import('pg-replica-router').RoutedClient; done: (r?: unknown) => void }>(
      (resolve, reject) => router.pool.connect((err, c, d) => (err || !c ? reject(err) : resolve({ client: c, done: d }))),
    );
    const res = await new Promise<pg.QueryResult>((resolve, reject) =>
      client.query('select 1 as one', (err, r) => (err ? reject(err) : resolve(r))),
    );
    expect(res.rows).toEqual([{ one: 1 }]);
    const total = router.pool.totalCount;
    done(true); // destroy
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(router.pool.totalCount).toBe(total - 1);
    expect(() => client.release()).toThrow(/already been released/);
    await expect(client.query('select 1')).rejects.toThrow(/not queryable/);
  });

  it('forwards notices from the bound connection', async () => {
    const client = await router.pool.connect();
    try {
      const notice = new Promise<{ message?: string }>((resolve) => client.on('notice', resolve));
      await client.query("do $$ begin raise notice 'hello from %', 'plpgsql'; end $$");
      expect((await notice).message).toBe('hello from plpgsql');
    } finally {
      client.release();
    }
  });
});

describe('failures', () => {
  it('keeps reads working while a replica is killed mid-run, then uses it again', async () => {
    await settle(router, cluster);
    const r2 = cluster.replicas[1]!;
    const results: string[] = [];
    const errors: unknown[] = [];
    let stop = false;
    let i = 0;
    const loop = (async () => {
      while (!stop) {
        try {
          const res = await router.withSession(`loop:${i++}`, () => router.query(PORT));
          results.push(nodeByPort(cluster, res.rows[0]!.port));
        } catch (err) {
          errors.push(err);
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await r2.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const duringOutage = results.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(results.length).toBeGreaterThan(duringOutage); // still serving
    await r2.start();
    await settle(router, cluster);
    const mark = results.length;
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop = true;
    await loop;
    expect(errors).toEqual([]);
    expect(results.slice(mark)).toContain('r2'); // back in rotation
    expect(router.topology().nodes.find((n) => n.name === 'r2')?.status).toBe('up');
  });

  it('ends: end() closes everything and later use fails clearly', async () => {
    const extra = routerFor(cluster);
    await extra.query('select 1');
    await extra.pool.end();
    expect(extra.pool.ended).toBe(true);
    await expect(extra.pool.query('select 1')).rejects.toThrow(/after calling end/);
    await expect(extra.pool.end()).rejects.toThrow(/more than once/);
    await extra.close(); // idempotent after end()
  });
});
