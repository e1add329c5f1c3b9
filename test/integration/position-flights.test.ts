import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { memoryStore, parseLsn, type DebugDecision, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { APP_ROLE } from '../helpers/app-role.js';
import { cachedAtLeast, naiveQuery, nodeByPort, routerFor, startTestCluster } from '../helpers/cluster.js';

// Positions that ride with a statement (lib/position-flight.ts): a replica read carries its own
// live check, and a read the session's write sent to the primary carries the primary's position
// after it. The monitor polls once a minute here, so its cache never knows a replica caught up
// unless a flight (or a live check) told it.
let cluster: Cluster;
let r1: Cluster['replicas'][number];
const store = memoryStore();
let router: Router;
const READ = 'select inet_server_port() as port, n from counters where id = $1';
const WRITE = 'update counters set n = n + 1 where id = $1';

function slowMonitorRouter(): Router {
  return routerFor(cluster, { store, monitor: { intervalMs: 60_000 } });
}

/** What `fn` cost in round trips of the router's own, and where its last read ran. */
async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; positionReads: number; liveChecks: number }> {
  const before = router.topology().counters;
  const value = await fn();
  const after = router.topology().counters;
  return { value, positionReads: after.positionReads - before.positionReads, liveChecks: after.liveChecks - before.liveChecks };
}

const read = (session: string, id: number) =>
  router.withSession(session, async () => {
    const { rows } = await router.query<{ port: number; n: number }>(READ, [id]);
    return { node: nodeByPort(cluster, rows[0]!.port), n: rows[0]!.n };
  });

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  r1 = cluster.replicas[0]!;
  await cluster.primary.query('create table counters (id int primary key, n int not null)');
  await cluster.primary.query('insert into counters select g, 0 from generate_series(1, 10) g');
  await cluster.primary.query(`grant select, update on counters to ${APP_ROLE}`);
  await cluster.waitForReplicas();
  router = slowMonitorRouter();
  await router.query('select 1');
  await cachedAtLeast(router, 'r1', await r1.replayLsn());
});

afterEach(async () => {
  if (r1.running) await r1.resumeReplay();
});

afterAll(async () => {
  await router?.close();
  await cluster?.stop();
});

describe('a read that carries its own live check', () => {
  it('runs on the replica once it has replayed the floor, with no round trip of its own, and tells the monitor', async () => {
    await router.withSession('s1', () => router.query(WRITE, [1])); // floor: the primary's position after the write
    await r1.waitForReplay(); // r1 has it; the router's cache (polled a minute ago) does not know
    const cachedBefore = parseLsn(router.topology().nodes.find((n) => n.name === 'r1')!.lsn!);
    const { value, liveChecks, positionReads } = await counted(() => read('s1', 1));
    expect(value).toEqual({ node: 'r1', n: 1 });
    expect({ liveChecks, positionReads }).toEqual({ liveChecks: 0, positionReads: 0 });
    // The position the read carried raised the cache: the next reader at that floor needs no check.
    expect(parseLsn(router.topology().nodes.find((n) => n.name === 'r1')!.lsn!)).toBeGreaterThan(cachedBefore);
  });

  it('is dropped when the replica had not replayed the floor, and the read runs on the primary (the naive path reads stale)', async () => {
    await r1.pauseReplay();
    await router.withSession('s2', () => router.query(WRITE, [2]));
    const naive = await naiveQuery<{ n: number }>(r1.connectionString, READ, [2]);
    expect(naive[0]!.n).toBe(0); // r1 serves the old row
    const servedBefore = router.topology().nodes.find((n) => n.name === 'r1')!.served;
    const { value, liveChecks } = await counted(() => read('s2', 2));
    expect(value).toEqual({ node: 'primary', n: 1 });
    expect(liveChecks).toBe(0); // the check rode with the read ...
    expect(router.topology().nodes.find((n) => n.name === 'r1')!.served).toBe(servedBefore + 1); // ... which r1 ran, its answer dropped
  });
});

describe("the primary's position after a read the session's write sent there", () => {
  it('positions the scope without a round trip of its own, past the write (the next request still reads it)', async () => {
    await r1.pauseReplay(); // r1 stops before the write
    const { value: afterAck, positionReads } = await counted(() =>
      router.withSession('s3', async () => {
        await router.query(WRITE, [3]);
        // A position taken now, after the write's acknowledgement: the stored floor must be at least it.
        const [taken] = await naiveQuery<{ lsn: string }>(
          cluster.primary.connectionString,
          'select pg_current_wal_insert_lsn()::text as lsn',
        );
        const back = await router.query<{ n: number }>(READ, [3]); // on the primary (the scope wrote), with its position
        expect(back.rows[0]!.n).toBe(1);
        return parseLsn(taken!.lsn);
      }),
    );
    expect((await store.get('s3'))!.lsn).toBeGreaterThanOrEqual(afterAck);
    expect(positionReads).toBe(0);
    expect((await naiveQuery<{ n: number }>(r1.connectionString, READ, [3]))[0]!.n).toBe(0); // stale on r1
    expect(await read('s3', 3)).toEqual({ node: 'primary', n: 1 });
  });
});

describe('a read that fails on a replica its own check found behind', () => {
  it('is decided again, not answered from the stale data (the naive path fails)', async () => {
    await router.withSession('s5', () => router.query('update counters set n = 0 where id = 5'));
    await r1.waitForReplay();
    await r1.pauseReplay();
    await router.withSession('s5', () => router.query('update counters set n = 2 where id = $1', [5]));
    const RECIPROCAL = 'select inet_server_port() as port, 1 / n as r from counters where id = $1';
    await expect(naiveQuery(r1.connectionString, RECIPROCAL, [5])).rejects.toMatchObject({ code: '22012' }); // n is still 0 on r1
    const { value, liveChecks } = await counted(() =>
      router.withSession('s5', async () => (await router.query<{ port: number; r: number }>(RECIPROCAL, [5])).rows[0]!),
    );
    expect({ node: nodeByPort(cluster, value.port), r: value.r, liveChecks }).toEqual({ node: 'primary', r: 0, liveChecks: 0 });
  });
});

describe('a read that writes (a function the classifier cannot see into), refused by the replica it flew to', () => {
  it('runs on the primary as a write, not again as a read', async () => {
    await cluster.primary.query(
      "create or replace function bump(i int) returns int language sql as 'update counters set n = n + 1 where id = i returning n'",
    );
    await r1.waitForReplay();
    const decisions: DebugDecision[] = [];
    const own = routerFor(cluster, { store, monitor: { intervalMs: 60_000 }, debug: (d) => decisions.push(d) });
    try {
      await own.query('select 1');
      await cachedAtLeast(own, 'r1', await r1.replayLsn());
      await r1.pauseReplay();
      await own.withSession('s6', () => own.query(WRITE, [6])); // a floor r1 has not replayed: the read flies
      decisions.length = 0;
      const n = await own.withSession('s6', async () => (await own.query<{ n: number }>('select bump($1) as n', [6])).rows[0]!.n);
      expect(n).toBe(2);
      expect(decisions.map((d) => [d.node, d.reason, d.statement])).toEqual([
        ['r1', 'checked-in-flight', 'read'], // refused there (25006) ...
        ['primary', 'not-a-read', 'write'], // ... so it is a write: the primary, counted as one
      ]);
    } finally {
      await own.close();
    }
  });
});

describe('under REPEATABLE READ', () => {
  it('the read still takes its snapshot after the check (each has a transaction of its own): it flies, and stands', async () => {
    await cluster.primary.query(`alter role ${APP_ROLE} set default_transaction_isolation = 'repeatable read'`);
    await r1.waitForReplay();
    await router.close();
    router = slowMonitorRouter(); // new connections: the role's setting applies
    try {
      await router.query('select 1');
      await cachedAtLeast(router, 'r1', await r1.replayLsn()); // polled once, before the write
      const [isolation] = await naiveQuery<{ level: string }>(
        r1.appConnectionString!,
        "select current_setting('transaction_isolation') as level",
      );
      expect(isolation!.level).toBe('repeatable read');
      await router.withSession('s4', () => router.query(WRITE, [4]));
      await r1.waitForReplay();
      const served = () => router.topology().nodes.find((n) => n.name === 'r1')!.served;
      const servedBefore = served();
      const { value, liveChecks } = await counted(() => read('s4', 4));
      expect({ ...value, liveChecks, served: served() - servedBefore }).toEqual({ node: 'r1', n: 1, liveChecks: 0, served: 1 });
    } finally {
      await cluster.primary.query(`alter role ${APP_ROLE} reset default_transaction_isolation`);
    }
  });
});
