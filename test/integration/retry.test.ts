import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { cachedAtLeast, naivePool, nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;

useRoutedCluster(
  { cluster: { settings: { max_standby_streaming_delay: '100ms' } }, setup: ['create table c (id int)', 'insert into c values (1)'] },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

/** Takes an ACCESS EXCLUSIVE lock on c on the primary: replayed on standbys, it conflicts with their readers. */
async function lockOnPrimary(): Promise<void> {
  const client = naivePool(cluster.primary.connectionString);
  try {
    await client.query('begin; lock table c in access exclusive mode; commit;');
  } finally {
    await client.end();
  }
}

const SLOW = 'select inet_server_port() as port, pg_sleep(1.5), count(*)::int as n from c';

describe('retry of a read that fails on a replica', () => {
  it('a recovery conflict (40001) outside a transaction is retried once elsewhere', async () => {
    const [r1, r2] = cluster.replicas;
    // Naive path first: the same read straight on a replica is cancelled by the conflict.
    const naive = naivePool(r1!.connectionString);
    const naiveRead = naive.query(SLOW);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await lockOnPrimary();
    await expect(naiveRead).rejects.toMatchObject({ code: '40001', message: expect.stringMatching(/conflict with recovery/) });
    await naive.end();

    // Through the router: only r1 is ready for this session's floor (r2 is paused behind it).
    await r2!.pauseReplay();
    try {
      await router.query('insert into c values (2)');
      await router.query('select 1'); // the session's floor now covers the insert
      await cachedAtLeast(router, 'r1', await cluster.primary.insertLsn());
      const served = (name: string) => router.topology().nodes.find((n) => n.name === name)!.served;
      const [r1Before, primaryBefore] = [served('r1'), served('primary')];
      const read = router.query(SLOW);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await lockOnPrimary();
      const res = await read;
      expect(res.rows[0]!.n).toBe(2);
      expect(nodeByPort(cluster, res.rows[0]!.port)).toBe('primary'); // retried, on the only other ready node
      expect([served('r1') - r1Before, served('primary') - primaryBefore]).toEqual([1, 1]); // first r1, then the retry
      expect(router.topology().nodes.find((n) => n.name === 'r1')?.status).toBe('up'); // a conflict is not an outage
    } finally {
      await r2!.resumeReplay();
    }
  });

  it('inside a transaction the error goes to the caller', async () => {
    await settle(router, cluster);
    await router.withSession('tx', async () => {
      const client = await router.pool.connect();
      try {
        await client.query('begin read only');
        const read = client.query(SLOW);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await lockOnPrimary();
        const err = await read.then(
          () => undefined,
          (e: unknown) => e as { code?: string; message: string },
        );
        expect(err).toMatchObject({ code: '40001', message: expect.stringMatching(/conflict with recovery/) });
        // PostgreSQL cancels the statement ("canceling statement …") and the transaction can be
        // rolled back, or, when a second conflict signal reaches the backend before its abort
        // (a race in PostgreSQL ≤ 16), ends the connection ("terminating connection …", the same
        // code): then the connection is gone and the client is released with the error, as on pg.
        if (/terminating connection/.test(err!.message)) {
          await expect(client.query('rollback')).rejects.toThrow();
          client.release(true);
        } else {
          await client.query('rollback');
          client.release();
        }
      } catch (e) {
        client.release(true);
        throw e;
      }
    });
    // Either way the replicas stay in rotation (a conflict is not an outage) and the next read runs.
    expect(router.topology().nodes.map((n) => n.status)).toEqual(['up', 'up', 'up']);
    expect((await router.query<{ n: number }>('select count(*)::int as n from c')).rows[0]!.n).toBeGreaterThan(0);
  });

  it('a connection the server ends for a recovery conflict (FATAL 40001) does not take its replica out of rotation', async () => {
    await settle(router, cluster);
    await router.withSession('idle-tx', async () => {
      const client = await router.pool.connect();
      client.on('error', () => {}); // as with pg: the connection's end is emitted on the checked-out client
      try {
        // Idle in a transaction holding a lock on c: the replayed ACCESS EXCLUSIVE lock conflicts,
        // and an idle backend cannot be cancelled, so the server ends the connection.
        await client.query('begin isolation level repeatable read read only');
        const { rows } = await client.query<{ port: number }>('select inet_server_port() as port, count(*) from c group by 1');
        const node = nodeByPort(cluster, rows[0]!.port);
        expect(node).not.toBe('primary');
        await lockOnPrimary();
        // Watched while the conflict is replayed (past max_standby_streaming_delay) and the server ends the connection.
        const seen = new Set<string>();
        for (let i = 0; i < 60; i++) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          seen.add(router.topology().nodes.find((n) => n.name === node)!.status);
        }
        await expect(client.query('select 1')).rejects.toThrow(/not queryable|terminated|conflict with recovery/);
        // One connection ended by its server is not an outage: the node stays in rotation throughout.
        expect([...seen]).toEqual(['up']);
        client.release(true);
      } catch (e) {
        client.release(true);
        throw e;
      }
    });
  });
});
