// Issue 14, case 1: a replica on a newer timeline, seen by an application role. The application
// still points at the old primary, which came back writable after r2 was promoted (split
// brain), and r1 now follows r2. Without pg_read_all_stats the router cannot read r1's received
// timeline, and the control file still shows the old one; but r1 has replayed past anything the
// old primary has written, which on one history is impossible, so r1 is on another history.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster, ReplicaHandle } from 'pg-replica-router/testing';
import { startTestCluster, urlAs } from '../helpers/cluster.js';

let cluster: Cluster;
let r1: ReplicaHandle;
let r2: ReplicaHandle;
let router: Router | undefined;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  [r1, r2] = cluster.replicas as [ReplicaHandle, ReplicaHandle];
  await cluster.primary.query('create table notes (id int primary key)');
  await cluster.waitForReplicas();
  await cluster.primary.stop();
  await r2.promote();
  await r2.query("select pg_create_physical_replication_slot('r1', true)");
  await r1.query(`alter system set primary_conninfo = 'host=127.0.0.1 port=${r2.port} user=postgres application_name=r1'`);
  await r1.query('select pg_reload_conf()');
  // r2 writes on its new timeline; r1 replays it, far past where the old primary stopped.
  await r2.query('insert into notes select generate_series(1000, 20000)');
  const [{ lsn }] = (await r2.query('select pg_current_wal_insert_lsn()::text as lsn')) as [{ lsn: string }];
  await r1.waitForReplay(lsn);
  await cluster.primary.start(); // the old primary is back on timeline 1, writable
});

afterAll(async () => {
  await router?.close();
  await cluster?.stop();
});

describe('a replica that follows a newer primary, as an application role', () => {
  it('the control file still shows the old timeline to the app role (why the timeline alone cannot tell)', async () => {
    const app = new pg.Client({ connectionString: urlAs(r1, 'app') });
    await app.connect();
    try {
      const { rows } = await app.query(
        'select (select received_tli from pg_stat_wal_receiver) as received, (select timeline_id from pg_control_checkpoint()) as checkpoint',
      );
      expect(rows[0].received).toBeNull();
      expect(rows[0].checkpoint).toBe(1);
    } finally {
      await app.end();
    }
  });

  it('is out of rotation (other-history), and a session reads its write on the old primary, not stale on r1', async () => {
    router = createRouter({
      primary: { connectionString: urlAs(cluster.primary, 'app') },
      replicas: [{ name: 'r1', connectionString: urlAs(r1, 'app') }],
      monitor: { intervalMs: 100 },
      logger: false,
    });
    await expect.poll(() => router!.topology().nodes.find((n) => n.name === 'r1')?.status, { timeout: 10_000 }).toBe('other-history');
    await router.withSession('user-1', () => router!.query('insert into notes values (1)'));
    for (let i = 0; i < 5; i++) {
      const { rows } = await router.withSession('user-1', () =>
        router!.query<{ port: number; n: number }>('select inet_server_port() as port, count(*)::int as n from notes where id = 1'),
      );
      expect(rows[0]).toEqual({ port: cluster.primary.port, n: 1 });
    }
    // The naive path: r1 itself does not have the session's write.
    expect(await r1.query('select count(*)::int as n from notes where id = 1')).toEqual([{ n: 0 }]);
    // It stays out while nothing changes (the verdict holds until a restart or a new timeline).
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(router.topology().nodes.find((n) => n.name === 'r1')?.status).toBe('other-history');
  });
});
