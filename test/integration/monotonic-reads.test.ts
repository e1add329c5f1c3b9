import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { cachedAtLeast, naivePool, nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
const READ = 'select inet_server_port() as port, count(*)::int as n from events';

useRoutedCluster(
  { setup: ['create table events (id serial primary key)', 'insert into events default values'] },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

describe('monotonic reads', () => {
  it('a session that saw fresh data never sees older data afterwards, across requests', async () => {
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    // r2 stops at 1 row; r1 goes on to 2 rows and stops there: two replicas, two states.
    await r2.pauseReplay();
    await router.withSession('writer', () => router.query('insert into events default values'));
    await r1.waitForReplay();
    await r1.pauseReplay();
    await cachedAtLeast(router, 'r1', await r1.replayLsn()); // r2 lags on purpose

    // Naive path: a reader that first saw r1 and then reads r2 goes back in time.
    const naive1 = naivePool(r1.connectionString);
    const naive2 = naivePool(r2.connectionString);
    const before = (await naive1.query(READ)).rows[0].n as number;
    const after = (await naive2.query(READ)).rows[0].n as number;
    expect([before, after]).toEqual([2, 1]);
    await Promise.all([naive1.end(), naive2.end()]);

    // Through the router: 20 sessions (strangers to the writer: no floor), first request each.
    const first = new Map<string, { n: number; node: string }>();
    for (let i = 0; i < 20; i++) {
      const res = await router.withSession(`reader:${i}`, () => router.query(READ));
      first.set(`reader:${i}`, { n: res.rows[0]!.n, node: nodeByPort(cluster, res.rows[0]!.port) });
    }
    const sawFresh = [...first].filter(([, v]) => v.node === 'r1');
    expect(sawFresh.length).toBeGreaterThan(0); // some sessions really saw the fresh state
    expect([...first].some(([, v]) => v.node === 'r2')).toBe(true); // others the old one: allowed, they never saw newer

    // Later requests of the same sessions: stay on their node while it works ...
    for (const [session, seen] of first) {
      for (let request = 0; request < 3; request++) {
        const res = await router.withSession(session, () => router.query(READ));
        expect(res.rows[0]!.n).toBeGreaterThanOrEqual(seen.n);
        expect(nodeByPort(cluster, res.rows[0]!.port)).toBe(seen.node);
      }
    }

    // ... and when r1 goes away, sessions that read it must not fall back to r2's older state.
    await r1.stop();
    try {
      for (const [session, seen] of sawFresh) {
        for (let request = 0; request < 3; request++) {
          const res = await router.withSession(session, () => router.query(READ));
          expect(res.rows[0]!.n, `${session} went back in time`).toBeGreaterThanOrEqual(seen.n);
          expect(nodeByPort(cluster, res.rows[0]!.port)).not.toBe('r2');
        }
      }
    } finally {
      await r1.start();
      await r1.resumeReplay();
      await r2.resumeReplay();
    }
  });

  it("'read-your-writes' keeps only the write floor: it may go back to an older replica", async () => {
    await settle(router, cluster);
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    await r2.pauseReplay();
    await router.withSession('writer2', () => router.query('insert into events default values'));
    await r1.waitForReplay();
    await cachedAtLeast(router, 'r1', await r1.replayLsn());
    try {
      const nodes = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const res = await router.withSession('ryw', () => router.withConsistency('read-your-writes', () => router.query(READ)));
        nodes.add(nodeByPort(cluster, res.rows[0]!.port));
      }
      expect([...nodes].sort()).toEqual(['r1', 'r2']); // no stickiness, no floor from reads
    } finally {
      await r2.resumeReplay();
    }
  });

  it('inside one scope, moving between replicas raises the floor to what was observed', async () => {
    await settle(router, cluster);
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    await r2.pauseReplay();
    await router.withSession('writer3', () => router.query('insert into events default values'));
    await r1.waitForReplay();
    await cachedAtLeast(router, 'r1', await r1.replayLsn());
    try {
      await router.withSession('mover', async () => {
        // Read until this session lands on r1 (fresh) in a new scope each time ...
        let seen = 0;
        let node = '';
        for (let i = 0; i < 50 && node !== 'r1'; i++) {
          const res = await router.withSession(`mover:${i}`, () => router.query(READ));
          [seen, node] = [res.rows[0]!.n, nodeByPort(cluster, res.rows[0]!.port)];
          if (node === 'r1') {
            // ... then make r1 unusable and read again in the same session
            await r1.stop();
            const again = await router.withSession(`mover:${i}`, () => router.query(READ));
            expect(again.rows[0]!.n).toBeGreaterThanOrEqual(seen);
            expect(nodeByPort(cluster, again.rows[0]!.port)).toBe('primary');
            await r1.start();
          }
        }
        expect(node).toBe('r1');
      });
    } finally {
      await r2.resumeReplay();
    }
  });
});
