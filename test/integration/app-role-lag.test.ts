import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { appRoleNodes, createAppRole } from '../helpers/app-role.js';
import { nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';

// The real user connects as an application role: table grants only, no superuser, no
// pg_monitor. For it, pg_stat_wal_receiver's columns read as NULL; the monitor's replay lag must
// not depend on them (before: the time since the last replayed transaction, seconds on an idle
// cluster, so bounded reads and live checks after writes went to the primary).

let cluster: Cluster;
/** Connected as the application role `app`. */
let app: Router;
/** Connected as the superuser: the same results are expected. */
let superuser: Router;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  await cluster.primary.query('create table notes (id int, body text)');
  await createAppRole(cluster, ['select, insert, update, delete on notes']);
  app = routerFor(cluster, {
    ...appRoleNodes(cluster),
    maxWaitMs: 100, // a live check may wait for a replica still replaying the write
  });
  superuser = routerFor(cluster, {}, 'superuser'); // the comparison: what a role that reads pg_stat_wal_receiver sees
  await settle(app, cluster);
  await settle(superuser, cluster);
});

afterAll(async () => {
  await app?.close();
  await superuser?.close();
  await cluster?.stop();
});

const WHO = 'select inet_server_port() as port';
const lags = (router: Router) =>
  router
    .topology()
    .nodes.filter((n) => n.role === 'replica')
    .map((n) => n.lagMs);

describe('connected as an application role', () => {
  it('the role really is unprivileged: the WAL receiver reads as NULL to it', async () => {
    const { rows } = await app.withConsistency('eventual', () => app.query('select status from pg_stat_wal_receiver'));
    expect(rows).toEqual([{ status: null }]);
  });

  it('an idle, caught-up cluster has replay lag 0, as for the superuser', async () => {
    await sleep(2500); // an idle spell: no transaction replayed for a while
    for (let i = 0; i < 10; i++) {
      expect(lags(app)).toEqual([0, 0]);
      expect(lags(superuser)).toEqual([0, 0]);
      await sleep(50);
    }
  });

  it('{ maxStalenessMs: 500 } reads use the replicas after an idle spell', async () => {
    await sleep(2000);
    const served: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { rows } = await app.withConsistency({ maxStalenessMs: 500 }, () => app.query(WHO));
      served.push(nodeByPort(cluster, rows[0]!.port));
    }
    expect(served.filter((n) => n !== 'primary')).toHaveLength(8);
  });

  it('a read after a write (the next request) checks a replica live after an idle spell, and sees the write', async () => {
    const served: string[] = [];
    for (let i = 0; i < 8; i++) {
      await sleep(i === 0 ? 2000 : 1000); // idle spells: no transaction replayed meanwhile
      const session = `user:${i}`;
      await app.withSession(session, () => app.query('insert into notes values ($1, $2)', [i, 'hello']));
      const { rows } = await app.withSession(session, () => app.query(`${WHO}, count(*)::int as n from notes where id = $1`, [i]));
      expect(rows[0]!.n).toBe(1);
      served.push(nodeByPort(cluster, rows[0]!.port));
    }
    expect(served.filter((n) => n !== 'primary')).toHaveLength(8);
  });
});
