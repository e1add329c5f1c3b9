import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import { knexConfig } from 'pg-replica-router/knex';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { useRoutedCluster } from '../helpers/cluster.js';

// Issue 14, case 12 with real Knex: `.timeout(ms, { cancel: true })` cancels the statement on
// the backend that runs it. Knex's own cancelQuery opens a raw connection from `connection`,
// which knexConfig leaves out, so without the adapter's routed dialect the cancel reaches no
// server of the router ("cancelling of query failed") and the read runs on.
let cluster: Cluster;
let router: Router;
let db: Knex | undefined;

useRoutedCluster({ cluster: { replicas: 1 }, setup: ['create table notes (id int primary key, body text)'] }, (c, r) => {
  [cluster, router] = [c, r];
});
afterAll(() => db?.destroy());

/** Statements containing `marker` that `node` is running now. */
async function running(node: NodeHandle, marker: string): Promise<number> {
  const rows = await node.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()",
    [`%${marker}%`],
  );
  return rows[0]!.n;
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

describe('Knex query cancellation through the router', () => {
  it('.timeout(ms, { cancel: true }) on a read cancels it on the replica that runs it', async () => {
    db = knexFactory(knexConfig(router));
    const replica = cluster.replicas[0]!;
    const read = db.raw("select pg_sleep(20), 'knex slow read' as tag").timeout(1000, { cancel: true });
    const outcome = read.then(
      () => 'completed',
      (err: Error) => err,
    );
    expect(await until(async () => (await running(replica, 'knex slow read')) > 0, 10_000), 'the read runs on the replica').toBe(true);
    const err = await outcome;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('KnexTimeoutError');
    expect((err as Error).message).not.toMatch(/cancelling of query failed/);
    // The backend stopped: the cancel reached it (without it, pg_sleep(20) runs on).
    expect(await until(async () => (await running(replica, 'knex slow read')) === 0, 5_000), 'the replica stopped the read').toBe(true);
    // The connection is usable afterwards.
    expect((await db.raw('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });

  it('.timeout(ms, { cancel: true }) on a write cancels it on the primary', async () => {
    db ??= knexFactory(knexConfig(router));
    const write = db
      .raw("insert into notes select 1, 'knex slow write' from pg_sleep(20)")
      .timeout(1000, { cancel: true })
      .then(
        () => 'completed',
        (err: Error) => err,
      );
    expect(await until(async () => (await running(cluster.primary, 'knex slow write')) > 0, 10_000)).toBe(true);
    expect(((await write) as Error).name).toBe('KnexTimeoutError');
    expect(await until(async () => (await running(cluster.primary, 'knex slow write')) === 0, 5_000)).toBe(true);
    expect(await cluster.primary.query('select count(*)::int as n from notes')).toEqual([{ n: 0 }]);
  });
});
