import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
const WHO = 'select inet_server_port() as port, pg_is_in_recovery() as standby';

useRoutedCluster({ setup: ['create table items (id int primary key)'], resumeAfterEach: true }, (c, r) => {
  [cluster, router] = [c, r];
});

async function servedBy(run: () => Promise<{ rows: Array<{ port: number }> }>, times = 20): Promise<Set<string>> {
  const nodes = new Set<string>();
  for (let i = 0; i < times; i++) nodes.add(nodeByPort(cluster, (await run()).rows[0]!.port));
  return nodes;
}

/** Each read in its own new session (a session sticks to the node it read from). */
async function servedByManySessions(
  prefix: string,
  run: () => Promise<{ rows: Array<{ port: number }> }>,
  times = 40,
): Promise<Set<string>> {
  const nodes = new Set<string>();
  for (let i = 0; i < times; i++) nodes.add(nodeByPort(cluster, (await router.withSession(`${prefix}:${i}`, run)).rows[0]!.port));
  return nodes;
}

describe('consistency levels', () => {
  it('with no floor, reads are really served by replicas, sessions spread over them', async () => {
    const nodes = await servedByManySessions('fresh', () => router.query(WHO));
    expect([...nodes].sort()).toEqual(['r1', 'r2']);
    // one session keeps to the node it first read from (monotonic reads for free)
    const one = await router.withSession('one', () => servedBy(() => router.query(WHO), 20));
    expect(one.size).toBe(1);
  });

  it("'eventual' reads a paused replica (and so sees stale data)", async () => {
    await settle(router, cluster);
    for (const replica of cluster.replicas) await replica.pauseReplay();
    await router.query('insert into items values (1)');
    const res = await router.withConsistency('eventual', () =>
      router.query('select inet_server_port() as port, count(*)::int as n from items where id = 1'),
    );
    expect(nodeByPort(cluster, res.rows[0]!.port)).toMatch(/^r\d$/);
    expect(res.rows[0]!.n).toBe(0);
    // the default level, same process session: its own write is visible
    expect((await router.query('select count(*)::int as n from items where id = 1')).rows[0]!.n).toBe(1);
  });

  it('{ maxStalenessMs } skips a replica lagging beyond the bound', async () => {
    await settle(router, cluster);
    const [r1] = cluster.replicas;
    // Sessions the store already knows, with no floor (a key it does not hold is owed the primary's position).
    await servedByManySessions('unbounded', () => router.query(WHO));
    await r1!.pauseReplay();
    await router.withSession('w', () => router.query('insert into items values (2)'));
    await new Promise((resolve) => setTimeout(resolve, 600)); // r1 now lags by more than 300 ms
    const deadline = Date.now() + 5000;
    while ((router.topology().nodes.find((n) => n.name === 'r1')?.lagMs ?? 0) <= 300 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(router.topology().nodes.find((n) => n.name === 'r1')?.lagMs).toBeGreaterThan(300);
    const nodes = await router.withConsistency({ maxStalenessMs: 300 }, () => servedByManySessions('bounded', () => router.query(WHO), 30));
    expect([...nodes]).toEqual(['r2']);
    // without the bound, such sessions would also use r1
    const unbounded = await servedByManySessions('unbounded', () => router.query(WHO));
    expect(unbounded.has('r1')).toBe(true);
  });

  it("'primary' never touches a replica", async () => {
    await settle(router, cluster);
    const before = router
      .topology()
      .nodes.filter((n) => n.role === 'replica')
      .map((n) => n.served);
    const nodes = await router.withConsistency('primary', async () => {
      const seen = await servedBy(() => router.query(WHO), 10);
      const client = await router.pool.connect();
      try {
        seen.add(nodeByPort(cluster, (await client.query(WHO)).rows[0]!.port));
        await client.query('begin read only');
        seen.add(nodeByPort(cluster, (await client.query(WHO)).rows[0]!.port));
        await client.query('commit');
      } finally {
        client.release();
      }
      return seen;
    });
    expect([...nodes]).toEqual(['primary']);
    const after = router
      .topology()
      .nodes.filter((n) => n.role === 'replica')
      .map((n) => n.served);
    expect(after).toEqual(before);
  });

  it("a router created with consistency 'primary' sends everything to the primary", async () => {
    const primaryOnly = routerFor(cluster, { consistency: 'primary' });
    try {
      expect([...(await servedBy(() => primaryOnly.query(WHO), 5))]).toEqual(['primary']);
    } finally {
      await primaryOnly.close();
    }
  });

  it('the hint comment forces the primary', async () => {
    const nodes = await router.withSession('hint', () => servedBy(() => router.query(`/* pg-replica-router: primary */ ${WHO}`), 5));
    expect([...nodes]).toEqual(['primary']);
  });
});
