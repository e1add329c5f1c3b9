// Issue 14, case 14: a statement the classifier takes for a read but a replica refuses as a write
// (SQLSTATE 25006: a user function that inserts, dblink, …) runs once more on the primary,
// outside a transaction, and counts as a write: read-your-writes holds for it too.
import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;

useRoutedCluster(
  {
    setup: [
      'create table audit (id serial primary key, who text)',
      // Neither is on the write-function list: to the classifier, `select log_sql(…)` is a read.
      'create function log_sql(w text) returns int language sql as $$ insert into audit (who) values (w) returning id $$',
      'create function log_plpgsql(w text) returns int language plpgsql as $$ declare i int; begin insert into audit (who) values (w) returning id into i; return i; end $$',
    ],
    resumeAfterEach: true,
  },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

const READ = 'select inet_server_port() as port, count(*)::int as n from audit where who = $1';
const served = (name: string) => router.topology().nodes.find((n) => n.name === name)!.served;
const replicaServed = () => cluster.replicas.reduce((sum, r) => sum + served(r.name), 0);

async function pauseAll(): Promise<void> {
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

describe('statements a replica refuses as writes (25006)', () => {
  it('the naive path: a plain pg.Pool on a replica gets 25006', async () => {
    const naive = naivePool(cluster.replicas[0]!.connectionString);
    try {
      await expect(naive.query("select log_sql('naive')")).rejects.toMatchObject({ code: '25006' });
      // And a write the replicas have not replayed yet is not there.
      await pauseAll();
      await router.query("insert into audit (who) values ('naive')");
      expect((await naive.query(READ, ['naive'])).rows[0]!.n).toBe(0);
    } finally {
      await naive.end();
    }
  });

  it('is retried once on the primary, succeeds, and counts as a write (the same scope and a later one read it)', async () => {
    await settle(router, cluster);
    await pauseAll();
    const [replicaBefore, primaryBefore] = [replicaServed(), served('primary')];
    const inScope = await router.withSession('refused:1', async () => {
      const { rows } = await router.query<{ id: number }>("select log_sql('s1') as id");
      expect(rows[0]!.id).toBeGreaterThan(0);
      return (await router.query<{ port: number; n: number }>(READ, ['s1'])).rows[0]!;
    });
    expect(replicaServed() - replicaBefore).toBe(1); // refused there first
    expect(served('primary') - primaryBefore).toBe(2); // the retry, then the read (the scope wrote)
    expect(inScope.n).toBe(1);
    expect(nodeByPort(cluster, inScope.port)).toBe('primary');
    const later = await router.withSession('refused:1', async () => (await router.query<{ n: number }>(READ, ['s1'])).rows[0]!.n);
    expect(later).toBe(1);
    const naive = naivePool(cluster.replicas[0]!.connectionString);
    try {
      expect((await naive.query(READ, ['s1'])).rows[0]!.n).toBe(0); // a replica read would have missed it
    } finally {
      await naive.end();
    }
    // The text is a write from now on: it goes to the primary first.
    const replicaNow = replicaServed();
    await router.withSession('refused:2', () => router.query("select log_sql('s1') as id"));
    expect(replicaServed()).toBe(replicaNow);
  });

  it('a plpgsql function, in the process-wide session: the following read sees its row with replicas paused', async () => {
    await settle(router, cluster);
    await pauseAll();
    await router.query("select log_plpgsql('proc')");
    const { rows } = await router.query<{ port: number; n: number }>(READ, ['proc']);
    expect(rows[0]!.n).toBe(1);
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary');
  });

  it('a checked-out client outside a transaction, bound to a replica, is moved to the primary for it', async () => {
    await settle(router, cluster);
    await router.withSession('refused:client', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('select 1');
        expect(client.node).toMatch(/^r\d$/);
        await pauseAll();
        await client.query("select log_sql('client')");
        expect(client.node).toBe('primary');
        expect((await client.query<{ n: number }>(READ, ['client'])).rows[0]!.n).toBe(1);
      } finally {
        client.release();
      }
    });
  });

  it('inside a transaction (BEGIN READ ONLY on a replica) the error goes to the caller', async () => {
    await settle(router, cluster);
    const primaryBefore = served('primary');
    await router.withSession('refused:tx', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('begin read only');
        expect(client.node).toMatch(/^r\d$/);
        await expect(client.query("select log_sql('tx')")).rejects.toMatchObject({ code: '25006' });
        await client.query('rollback');
      } finally {
        client.release();
      }
    });
    expect(served('primary')).toBe(primaryBefore);
    expect((await router.query<{ n: number }>(READ, ['tx'])).rows[0]!.n).toBe(0);
  });
});
