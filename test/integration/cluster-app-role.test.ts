// startCluster({ appRole: true }): the application role tests (and users' tests) connect as.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { routerFor } from '../helpers/cluster.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 1, appRole: true, database: 'app_db' });
});

afterAll(async () => {
  await cluster?.stop();
});

async function asApp<R extends pg.QueryResultRow>(connectionString: string | undefined, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('startCluster({ appRole: true })', () => {
  it('each node has a connection string for the role app, a login that is neither superuser nor a monitoring role', async () => {
    const [r1] = cluster.replicas;
    expect(cluster.primary.appConnectionString).toBe(`postgresql://app:app@127.0.0.1:${cluster.primary.port}/app_db`);
    expect(r1!.appConnectionString).toBe(`postgresql://app:app@127.0.0.1:${r1!.port}/app_db`);
    const [me] = await asApp(
      cluster.primary.appConnectionString,
      `select current_user as user, rolsuper as superuser, pg_has_role('pg_monitor', 'member') as monitor,
              pg_has_role('pg_read_all_stats', 'member') as stats, coalesce((select pg_has_role(oid, 'member') from pg_roles where rolname = 'pg_read_all_data'), false) as data
       from pg_roles where rolname = current_user`,
    );
    expect(me).toEqual({ user: 'app', superuser: false, monitor: false, stats: false, data: false });
    // What such a role cannot see: the WAL receiver's details (its pid only).
    const [receiver] = await asApp<{ pid: number | null; received_tli: number | null }>(
      r1!.appConnectionString,
      'select pid, received_tli from pg_stat_wal_receiver',
    );
    expect(receiver!.pid).not.toBeNull();
    expect(receiver!.received_tli).toBeNull();
    expect((await r1!.query('select received_tli from pg_stat_wal_receiver'))[0]!.received_tli).toBe(1); // the handle: superuser
  });

  it('the role uses what the superuser creates (tables, sequences, schemas) and creates its own tables', async () => {
    await cluster.primary.query('create table made_by_superuser (id serial primary key, note text)');
    await cluster.primary.query('create schema extra');
    await cluster.primary.query('create table extra.more (id int)');
    const app = cluster.primary.appConnectionString;
    await asApp(app, "insert into made_by_superuser (note) values ('a'), ('b')");
    await asApp(app, "update made_by_superuser set note = 'c' where id = 2");
    await asApp(app, 'delete from made_by_superuser where id = 1');
    await asApp(app, 'insert into extra.more values (7)');
    await asApp(app, 'create table made_by_app (id int)');
    await asApp(app, 'insert into made_by_app values (1)');
    await cluster.waitForReplicas();
    const replica = cluster.replicas[0]!.appConnectionString;
    expect(await asApp(replica, 'select id, note from made_by_superuser')).toEqual([{ id: 2, note: 'c' }]);
    expect(await asApp(replica, 'select (select id from extra.more) as more, (select id from made_by_app) as own')).toEqual([
      { more: 7, own: 1 },
    ]);
    // Privileges it has not got stay refused: it is a plain role.
    await expect(asApp(app, 'select pg_reload_conf()')).rejects.toThrow(/permission denied/);
  });

  it("the test helpers' routers connect as it unless a test asks for the superuser", async () => {
    const app = routerFor(cluster, { logger: false });
    const superuser = routerFor(cluster, { logger: false }, 'superuser');
    try {
      expect((await app.query('select current_user as u')).rows).toEqual([{ u: 'app' }]);
      expect((await superuser.query('select current_user as u')).rows).toEqual([{ u: 'postgres' }]);
    } finally {
      await app.close();
      await superuser.close();
    }
  });

  it('without the option there is no application role and no such connection string', async () => {
    await using plain = await startCluster({ replicas: 0 });
    expect(plain.primary.appConnectionString).toBeUndefined();
    expect(await plain.primary.query("select count(*)::int as n from pg_roles where rolname = 'app'")).toEqual([{ n: 0 }]);
  });
});
