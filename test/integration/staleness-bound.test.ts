import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { appRoleNodes, createAppRole } from '../helpers/app-role.js';
import { naivePool, nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';

// `{ maxStalenessMs }` promises a read no staler than the bound. Two ways it did not hold:
// a WAL receiver that is itself behind (bandwidth, cross-region) replays everything it received,
// so replay = receive and the lag read 0 (as superuser) while the primary was far ahead; and the
// lag was the one of the last poll, however long ago that poll was.

let cluster: Cluster;
/** Connected as the application role `app`. */
let app: Router;
/** Connected as the superuser, for whom the WAL receiver's state was readable (lag 0 when replay = receive). */
let superuser: Router;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The bound of the rarely polled router's reads: longer than reads right after its poll can take. */
const BOUND_MS = 1500;
const READ = 'select inet_server_port() as port, coalesce(max(id), 0)::int as last from ticks';

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  await cluster.primary.query('create table ticks (id int)');
  await createAppRole(cluster, ['select, insert on ticks']);
  app = routerFor(cluster, appRoleNodes(cluster));
  superuser = routerFor(cluster, {}, 'superuser'); // the comparison: what a role that reads pg_stat_wal_receiver sees
  await settle(app, cluster);
  await settle(superuser, cluster);
});

afterAll(async () => {
  await app?.close();
  await superuser?.close();
  await cluster?.stop();
});

/** Where 8 reads at `{ maxStalenessMs: bound }` ran, and the last tick each saw. */
async function boundedReads(router: Router, bound: number): Promise<Array<{ node: string; last: number }>> {
  const reads: Array<{ node: string; last: number }> = [];
  for (let i = 0; i < 8; i++) {
    const { rows } = await router.withConsistency({ maxStalenessMs: bound }, () => router.query(READ));
    reads.push({ node: nodeByPort(cluster, rows[0]!.port), last: rows[0]!.last as number });
  }
  return reads;
}

const lagOf = (router: Router) => router.topology().nodes.find((n) => n.name === 'r1')!.lagMs;

describe('{ maxStalenessMs }', () => {
  it('leaves a replica whose WAL receiver is behind, though it replayed all it received', async () => {
    const r1 = cluster.replicas[0]!;
    const pid = (await r1.query<{ pid: number }>('select pid from pg_stat_wal_receiver'))[0]!.pid;
    // The receiver stops receiving (as over a saturated link) without the connection failing.
    process.kill(pid, 'SIGSTOP');
    let tick = 0;
    try {
      const writtenAt = new Map<number, number>();
      const deadline = Date.now() + 1500;
      while (Date.now() < deadline) {
        tick++;
        await cluster.primary.query('insert into ticks values ($1)', [tick]);
        writtenAt.set(tick, Date.now());
        await sleep(50);
      }
      // Naive: r1 replayed everything it received, and misses every tick written since the stop.
      const [positions] = await r1.query<{ caught_up: boolean }>(
        'select pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() as caught_up',
      );
      expect(positions!.caught_up).toBe(true);
      const direct = naivePool(r1.connectionString);
      try {
        const last = (await direct.query(READ)).rows[0].last as number;
        expect(last).toBeLessThan(tick);
        // Its newest missing row was written more than 300 ms ago: r1 is staler than the bound.
        expect(Date.now() - writtenAt.get(last + 1)!).toBeGreaterThan(300);
      } finally {
        await direct.end();
      }

      for (const [role, router] of [
        ['app', app],
        ['superuser', superuser],
      ] as const) {
        expect(lagOf(router), role).toBeGreaterThan(300);
        const reads = await boundedReads(router, 300);
        expect(
          reads.map((r) => r.node),
          role,
        ).toEqual(Array(8).fill('primary'));
        expect(
          reads.every((r) => r.last === tick),
          role,
        ).toBe(true);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await settle(app, cluster);
    await settle(superuser, cluster);
  }, 30_000);

  it.each([
    ['app', true],
    ['superuser', false],
  ] as const)(
    'counts the time since the last poll: a replica not polled for longer than the bound is not used (%s)',
    async (_, asAppRole) => {
      // A router that polls once, at start: its knowledge of r1 only ages. Made once r1 has
      // replayed everything (the previous case left it replaying), so that its one poll sees r1 caught up.
      await cluster.waitForReplicas();
      const rarely = routerFor(cluster, { monitor: { intervalMs: 600_000 } }, asAppRole ? 'app' : 'superuser');
      const r1 = cluster.replicas[0]!;
      try {
        await engineOf(rarely)!.monitor.ready;
        // A bound well above the time from that poll to these reads, also on a loaded machine.
        expect((await boundedReads(rarely, BOUND_MS)).map((r) => r.node)).toEqual(Array(8).fill('r1'));
        // r1 falls behind after that poll: nothing tells the router.
        await r1.pauseReplay();
        const inserted = await cluster.primary.query<{ id: number }>(
          'insert into ticks select coalesce(max(id), 0) + 1 from ticks returning id',
        );
        const id = inserted[0]!.id;
        await sleep(BOUND_MS + 200);
        // Naive: r1 misses a row written more than the bound ago.
        const direct = naivePool(r1.connectionString);
        try {
          expect((await direct.query(READ)).rows[0].last).toBeLessThan(id);
        } finally {
          await direct.end();
        }
        // The last poll is older than the bound: r1 may be staler than that.
        const aged = await boundedReads(rarely, BOUND_MS);
        expect(aged.map((r) => r.node)).toEqual(Array(8).fill('primary'));
        expect(aged.every((r) => r.last === id)).toBe(true);
      } finally {
        await r1.resumeReplay();
        await rarely.close();
      }
    },
    30_000,
  );

  it('a bound longer than the time since the last poll still allows the replica', async () => {
    await cluster.waitForReplicas(); // before the router's one poll (see above)
    const rarely = routerFor(cluster, { ...appRoleNodes(cluster), monitor: { intervalMs: 600_000 } });
    try {
      await engineOf(rarely)!.monitor.ready;
      await sleep(600);
      expect((await boundedReads(rarely, 400)).map((r) => r.node)).toEqual(Array(8).fill('primary'));
      expect((await boundedReads(rarely, 60_000)).map((r) => r.node)).toEqual(Array(8).fill('r1'));
    } finally {
      await rarely.close();
    }
  }, 30_000);
});
