import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, routerFor, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;

useRoutedCluster({ setup: ['create table notes (id serial primary key, owner text, body text)'], resumeAfterEach: true }, (c, r) => {
  [cluster, router] = [c, r];
});

async function pauseAll(): Promise<void> {
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

/** The naive path: the same read sent straight to a (paused) replica. */
async function naiveRead(sql: string, params: unknown[]): Promise<unknown[]> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query(sql, params)).rows;
  } finally {
    await pool.end();
  }
}

describe('read-your-writes', () => {
  it('outside any scope, the process is one session: a read after its write sees it', async () => {
    await pauseAll();
    await router.query("insert into notes (owner, body) values ('proc', 'first')");
    const read = 'select body from notes where owner = $1';
    const { rows } = await router.query(read, ['proc']);
    expect(rows).toEqual([{ body: 'first' }]);
    expect(await naiveRead(read, ['proc'])).toEqual([]); // the naive path is stale
  });

  it('across scopes of one session key (a later request of the same user)', async () => {
    await pauseAll();
    await router.withSession('user:1', () => router.query("insert into notes (owner, body) values ('u1', 'saved')"));
    const read = 'select body from notes where owner = $1';
    const rows = await router.withSession('user:1', async () => (await router.query(read, ['u1'])).rows);
    expect(rows).toEqual([{ body: 'saved' }]);
    expect(await naiveRead(read, ['u1'])).toEqual([]);
    const counters = router.topology().counters;
    expect(counters.storeWrites).toBeGreaterThanOrEqual(1);
  });

  it('through a checked-out client and a committed transaction', async () => {
    await pauseAll();
    await router.withSession('user:2', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('begin');
        await client.query("insert into notes (owner, body) values ('u2', 'in tx')");
        await client.query('commit');
      } finally {
        client.release();
      }
    });
    const read = 'select body from notes where owner = $1';
    const rows = await router.withSession('user:2', async () => {
      const client = await router.pool.connect();
      try {
        return (await client.query(read, ['u2'])).rows;
      } finally {
        client.release();
      }
    });
    expect(rows).toEqual([{ body: 'in tx' }]);
    expect(await naiveRead(read, ['u2'])).toEqual([]);
  });

  it('another session with no writes may read a replica (and sees the old state)', async () => {
    await settle(router, cluster);
    // A session the store already knows (a key it does not hold is owed the primary's position).
    await router.withSession('bystander', () => router.query('select 1 from notes limit 1'));
    await pauseAll();
    await router.withSession('writer', () => router.query("insert into notes (owner, body) values ('w', 'x')"));
    const { port, rows } = await router.withSession('bystander', async () => {
      const res = await router.query('select inet_server_port() as port, count(*)::int as n from notes where owner = $1', ['w']);
      return { port: res.rows[0]!.port, rows: res.rows };
    });
    expect(nodeByPort(cluster, port)).toMatch(/^r\d$/);
    expect(rows[0]!.n).toBe(0); // stale is allowed for a session that never wrote it
  });

  it('after replicas catch up, the same session reads from a replica again', async () => {
    await router.withSession('user:3', () => router.query("insert into notes (owner, body) values ('u3', 'later')"));
    await settle(router, cluster);
    const res = await router.withSession('user:3', () =>
      router.query('select inet_server_port() as port, body from notes where owner = $1', ['u3']),
    );
    expect(res.rows[0]!.body).toBe('later');
    expect(nodeByPort(cluster, res.rows[0]!.port)).toMatch(/^r\d$/);
  });

  it('waits for a lagging replica when maxWaitMs allows, instead of using the primary', async () => {
    const waiting = routerFor(cluster, { maxWaitMs: 5000 });
    try {
      await settle(waiting, cluster);
      const [r1, r2] = cluster.replicas;
      await r1!.setApplyDelay(300);
      await r2!.setApplyDelay(300);
      await waiting.query("insert into notes (owner, body) values ('wait', 'delayed')");
      const res = await waiting.query('select inet_server_port() as port, body from notes where owner = $1', ['wait']);
      expect(res.rows[0]!.body).toBe('delayed');
      expect(nodeByPort(cluster, res.rows[0]!.port)).toMatch(/^r\d$/);
      // naive: right after a write, a delayed replica does not have it
      await waiting.query("insert into notes (owner, body) values ('wait2', 'delayed')");
      expect(await naiveRead('select body from notes where owner = $1', ['wait2'])).toEqual([]);
    } finally {
      for (const r of cluster.replicas) await r.setApplyDelay(0);
      await waiting.close();
    }
  });
});
