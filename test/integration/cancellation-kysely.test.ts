import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { useRoutedCluster } from '../helpers/cluster.js';

// Issue 14, case 12, with Kysely itself: Kysely ≥ 0.29 cancels an aborted query ('cancel query',
// 'kill session'). The compat suite runs the `kysely` dev dependency (0.28, which does not
// cancel); this file runs `kysely-0.29` (an npm alias of kysely@0.29), or the copy PGRR_KYSELY
// names. It asserts that the Kysely it runs can cancel, so it is never skipped silently;
// cancellation.test.ts runs the same patterns by hand.
type KyselyModule = typeof import('kysely');
/** Kysely ≥ 0.29's `execute(db, options)` (the installed types may be older). */
type Executable = { execute(db: unknown, options: { signal: AbortSignal; inflightQueryAbortStrategy: string }): Promise<unknown> };
const kysely = (await import(process.env.PGRR_KYSELY ?? 'kysely-0.29')) as KyselyModule;

/** Whether this Kysely's PostgreSQL connections can cancel (0.29 and later). */
async function kyselyCancels(): Promise<boolean> {
  const client = { query: async () => ({ rows: [] }), release() {} };
  const driver = new kysely.PostgresDriver({ pool: { connect: async () => client, end: async () => {} } as never });
  await driver.init();
  const connection = (await driver.acquireConnection()) as { cancelQuery?: unknown };
  return typeof connection.cancelQuery === 'function';
}
const cancels = await kyselyCancels();

let cluster: Cluster;
let router: Router;

useRoutedCluster({ cluster: { replicas: 1 }, setup: ['create table notes (id int primary key, body text)'] }, (c, r) => {
  [cluster, router] = [c, r];
});

/** Whether `node` runs a statement containing `marker` now. */
async function running(node: NodeHandle, marker: string): Promise<boolean> {
  const rows = await node.query("select 1 from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()", [
    `%${marker}%`,
  ]);
  return rows.length > 0;
}

async function until(check: () => Promise<boolean>, what: string, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('Kysely query cancellation through the routed pool', () => {
  it('the Kysely under test can cancel queries (0.29 or later)', () => {
    expect(cancels).toBe(true);
  });

  const db = () =>
    new kysely.Kysely<{ notes: { id: number; body: string } }>({ dialect: new kysely.PostgresDialect({ pool: router.pool as never }) });

  it.each(['cancel query', 'kill session'] as const)("'%s' stops a read running on a replica", async (strategy) => {
    const controller = new AbortController();
    const marker = `kysely read ${strategy}`;
    const query = kysely.sql`select pg_sleep(20), ${kysely.sql.lit(marker)} as tag` as unknown as Executable;
    const read = query.execute(db(), { signal: controller.signal, inflightQueryAbortStrategy: strategy });
    read.catch(() => {});
    await until(() => running(cluster.replicas[0]!, marker), 'the read on r1');
    controller.abort();
    await expect(read).rejects.toBeDefined();
    // The signal reached r1's backend: the read stops there long before its 20 s.
    await until(async () => !(await running(cluster.replicas[0]!, marker)), 'the read to stop on r1');
  });

  it("'cancel query' stops a write after Kysely asked the pid on a replica (the client moved to the primary)", async () => {
    const controller = new AbortController();
    const query = kysely.sql`insert into notes select 10, 'kysely write' from pg_sleep(20)` as unknown as Executable;
    const write = query.execute(db(), { signal: controller.signal, inflightQueryAbortStrategy: 'cancel query' });
    write.catch(() => {});
    await until(() => running(cluster.primary, 'kysely write'), 'the write on the primary');
    controller.abort();
    await expect(write).rejects.toBeDefined();
    await until(async () => !(await running(cluster.primary, 'kysely write')), 'the write to stop on the primary');
    expect(await cluster.primary.query('select count(*)::int as n from notes where id = 10')).toEqual([{ n: 0 }]);
  });
});
