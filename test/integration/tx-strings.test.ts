// Issue 14, case 8: transactions opened, committed or rolled back inside a multi-statement string
// (pg's simple query protocol runs `a; b; c` in one message). A write is noted when the COMMIT
// that made it durable was acknowledged — not before, and never forgotten.
import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, routerFor, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;

useRoutedCluster({ setup: ['create table tx_notes (id serial primary key, owner text, body text)'], resumeAfterEach: true }, (c, r) => {
  [cluster, router] = [c, r];
});

const READ = 'select inet_server_port() as port, body from tx_notes where owner = $1 order by id';

async function pauseAll(): Promise<void> {
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

/** The naive path: the same read straight on a (paused) replica. */
async function naiveBodies(owner: string): Promise<string[]> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query<{ body: string }>(READ, [owner])).rows.map((r) => r.body);
  } finally {
    await pool.end();
  }
}

/**
 * Session `key` wrote once before (its position is stored), and the replicas have that: a later
 * write the router fails to note would leave the session on a replica that lacks it.
 */
async function knownSession(key: string): Promise<void> {
  await router.withSession(key, () => router.query("insert into tx_notes (owner, body) values ('earlier', $1)", [key]));
  await settle(router, cluster);
}

/** Commits a write on the primary outside the router: everything in the WAL before it is flushed and streamed. */
async function flushWal(): Promise<void> {
  const pool = naivePool(cluster.primary.connectionString);
  try {
    await pool.query("insert into tx_notes (owner, body) values ('flush', 'x')");
  } finally {
    await pool.end();
  }
}

/** A later request of session `key`: what it reads, and where. */
async function readAs(key: string, owner: string, on: Router = router): Promise<{ bodies: string[]; node: string }> {
  return on.withSession(key, async () => {
    const { rows } = await on.query<{ port: number; body: string }>(READ, [owner]);
    return { bodies: rows.map((r) => r.body), node: rows.length > 0 ? nodeByPort(cluster, rows[0]!.port) : 'none' };
  });
}

describe('transactions in multi-statement strings', () => {
  it("BEGIN, then 'insert …; commit' in one string, then release(): the write is noted", async () => {
    await knownSession('str:a');
    await pauseAll();
    await router.withSession('str:a', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('begin');
        await client.query("insert into tx_notes (owner, body) values ('a', 'committed in a string'); commit");
      } finally {
        client.release();
      }
    });
    expect(await naiveBodies('a')).toEqual([]); // the replicas do not have it
    expect((await readAs('str:a', 'a')).bodies).toEqual(['committed in a string']);
  });

  it("BEGIN, then 'insert x; rollback', then 'insert y' (autocommitted): y is noted, x is not there", async () => {
    await knownSession('str:d');
    await pauseAll();
    await router.withSession('str:d', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('begin');
        await client.query("insert into tx_notes (owner, body) values ('d', 'rolled back'); rollback");
        await client.query("insert into tx_notes (owner, body) values ('d', 'autocommitted')");
      } finally {
        client.release();
      }
    });
    expect(await naiveBodies('d')).toEqual([]);
    expect((await readAs('str:d', 'd')).bodies).toEqual(['autocommitted']);
  });

  it("'begin; insert …' leaves the transaction open: the write is noted at the later COMMIT, not before", async () => {
    // The process-wide session (no scope) positions a pending write at its next read: a write
    // noted before its COMMIT would be positioned below the commit record.
    const own = routerFor(cluster);
    const client = await own.pool.connect();
    try {
      await settle(own, cluster);
      await client.query("begin; insert into tx_notes (owner, body) values ('b', 'open until commit')");
      await own.query('select 1'); // a read between the two: any pending write is positioned now
      await flushWal(); // the open transaction's insert reaches the replicas (its COMMIT does not exist yet)
      await settle(own, cluster); // the replicas have replayed everything but the COMMIT
      await pauseAll();
      await client.query('commit');
      const { rows } = await own.query<{ port: number; body: string }>(READ, ['b']);
      expect(rows.map((r) => r.body)).toEqual(['open until commit']);
      expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary');
      expect(await naiveBodies('b')).toEqual([]);
    } finally {
      client.release();
      await own.close();
    }
  });

  it('a string that opens and commits a transaction through a checked-out client is noted when acknowledged', async () => {
    await knownSession('str:c');
    await pauseAll();
    await router.withSession('str:c', async () => {
      const client = await router.pool.connect();
      try {
        await client.query("begin; insert into tx_notes (owner, body) values ('c', 'whole'); commit");
      } finally {
        client.release();
      }
    });
    expect(await naiveBodies('c')).toEqual([]);
    expect((await readAs('str:c', 'c')).bodies).toEqual(['whole']);
  });

  it("pool.query('begin; insert …; commit') is one unit: noted; 'begin; insert …; rollback' writes nothing", async () => {
    await knownSession('str:p');
    await pauseAll();
    await router.withSession('str:p', () => router.query("begin; insert into tx_notes (owner, body) values ('p', 'pooled'); commit"));
    expect(await naiveBodies('p')).toEqual([]);
    expect((await readAs('str:p', 'p')).bodies).toEqual(['pooled']);

    for (const replica of cluster.replicas) await replica.resumeReplay();
    await knownSession('str:r');
    const { node } = await router.withSession('str:r', async () => {
      await router.query("begin; insert into tx_notes (owner, body) values ('r', 'never'); rollback");
      // Nothing was written: the next read of the scope may use a replica.
      const { rows } = await router.query<{ port: number }>('select inet_server_port() as port');
      return { node: nodeByPort(cluster, rows[0]!.port) };
    });
    expect(node).toMatch(/^r\d$/);
    expect((await readAs('str:r', 'r')).bodies).toEqual([]);
  });
});
