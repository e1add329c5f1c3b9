import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { cachedAtLeast, naivePool, nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
type Replica = Cluster['replicas'][number];
const READ = 'select inet_server_port() as port, count(*)::int as n from events';

useRoutedCluster(
  { setup: ['create table events (id serial primary key)', 'insert into events default values', 'create table flush_marker (id serial)'] },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

describe('monotonic reads', () => {
  it('a session that saw fresh data never sees older data afterwards, across requests', async () => {
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    // 20 readers the store already knows, with no floor (a key it does not hold would be owed the
    // primary's position): each has read once, on r1 or r2, while both had everything — and the
    // router knew it (both cached at the primary's position), so that they spread over both at
    // random rather than all landing on whichever a live check found ready first.
    await cluster.primary.query('insert into flush_marker default values');
    for (const replica of [r1, r2]) {
      await replica.waitForReplay();
      await cachedAtLeast(router, replica.name, await replica.replayLsn());
    }
    for (let i = 0; i < 20; i++) await router.withSession(`reader:${i}`, () => router.query(READ));
    // r2 stops at 1 row; r1 goes on to 2 rows and stops there: two replicas, two states.
    await r2.pauseReplay();
    let stopped = false;
    try {
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

      // Through the router: the 20 sessions (strangers to the writer: no floor), a request each.
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
      stopped = true;
      for (const [session, seen] of sawFresh) {
        for (let request = 0; request < 3; request++) {
          const res = await router.withSession(session, () => router.query(READ));
          expect(res.rows[0]!.n, `${session} went back in time`).toBeGreaterThanOrEqual(seen.n);
          expect(nodeByPort(cluster, res.rows[0]!.port)).not.toBe('r2');
        }
      }
    } finally {
      // Whatever failed above, the next tests get both replicas back, replaying.
      if (stopped) await r1.start();
      await r1.resumeReplay();
      await r2.resumeReplay();
    }
  });

  it("'read-your-writes' keeps only the write floor: it may go back to an older replica", async () => {
    await settle(router, cluster);
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    // A session the store already knows (a key it does not hold is owed the primary's position).
    await router.withSession('ryw', () => router.withConsistency('read-your-writes', () => router.query(READ)));
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
    let stopped: Replica | undefined;
    try {
      // One session, one scope: every read below runs in this one withSession call. Nothing else
      // goes through the router meanwhile (a write or an inner scope would hand its floor to this
      // one, and the test would be about read-your-writes instead).
      await router.withSession('mover', async () => {
        // No floor yet: the first read may land on either replica. Call it A, the other B.
        const first = await router.query(READ);
        const a = cluster.replicas.find((r) => r.name === nodeByPort(cluster, first.rows[0]!.port));
        expect(a, 'the first read went to a replica').toBeDefined();
        const b = cluster.replicas.find((r) => r !== a)!;
        const before = first.rows[0]!.n as number;

        // B stops replaying; a row written straight to the primary (not through the router, so
        // this session has no write floor) reaches A only.
        await b.pauseReplay();
        await cluster.primary.query('insert into events default values');
        await a!.waitForReplay();
        await cachedAtLeast(router, a!.name, await a!.replayLsn());

        // Naive path: A has the new row, B does not; a reader moving from A to B goes back in time.
        const naiveA = naivePool(a!.connectionString);
        const naiveB = naivePool(b.connectionString);
        try {
          expect([(await naiveA.query(READ)).rows[0].n, (await naiveB.query(READ)).rows[0].n]).toEqual([before + 1, before]);
        } finally {
          await Promise.all([naiveA.end(), naiveB.end()]);
        }

        // The scope keeps reading on A (stickiness) and so observes the new row.
        for (let i = 0; i < 3; i++) {
          const res = await router.query(READ);
          expect(nodeByPort(cluster, res.rows[0]!.port)).toBe(a!.name);
          expect(res.rows[0]!.n).toBe(before + 1);
        }

        // A goes away. Moving to B would go back to `before`: the floor must first be raised to
        // what the reads on A observed — A cannot be sampled, so to the primary's position, which B
        // (paused) has not replayed. So the primary, and only the primary, may serve.
        stopped = a;
        await a!.stop();
        for (let i = 0; i < 3; i++) {
          const again = await router.query(READ);
          expect(again.rows[0]!.n, 'went back in time').toBe(before + 1);
          expect(nodeByPort(cluster, again.rows[0]!.port)).toBe('primary');
        }
      });
    } finally {
      if (stopped && !stopped.running) await stopped.start(); // a restart also resumes replay
      for (const replica of cluster.replicas) if (replica.running) await replica.resumeReplay();
    }
  });
});
