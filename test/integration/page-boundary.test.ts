// The primary's WAL ending exactly at a page boundary (which an idle primary can sit at for
// good): pg_current_wal_insert_lsn() then points past the next page's header, 24 bytes beyond
// what a caught-up replica reports as replayed. The router compares ends of records, so such a
// replica is caught up, for floors, lag and staleness bounds alike (found on PostgreSQL 18, where
// the suite's WAL happened to end on a boundary; it can happen on any version).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
let superuser: pg.Client;

const PAGE = 8192n;
/** A non-transactional logical message's WAL record with prefix 'p': its payload plus 55 bytes (payloads of 256 bytes and more). */
const MESSAGE_OVERHEAD = 55n;

const insertPosition = async () =>
  BigInt((await superuser.query<{ b: string }>("select (pg_current_wal_insert_lsn() - '0/0')::text as b")).rows[0]!.b);
const flushPosition = async () =>
  BigInt((await superuser.query<{ b: string }>("select (pg_current_wal_flush_lsn() - '0/0')::text as b")).rows[0]!.b);
const replayPosition = async () =>
  BigInt((await cluster.replicas[0]!.query<{ b: string }>("select (pg_last_wal_replay_lsn() - '0/0')::text as b"))[0]!.b);

/** Writes WAL (superuser: a logical message) until the last record ends exactly at a page boundary. */
async function endWalAtPageBoundary(): Promise<bigint> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const at = await insertPosition();
    const room = PAGE - (at % PAGE);
    const payload = room - MESSAGE_OVERHEAD;
    await superuser.query("select pg_logical_emit_message(false, 'p', repeat('x', $1::int))", [
      String(payload >= 256n ? payload : room + 300n),
    ]);
    const after = await insertPosition();
    if (after % PAGE === 24n && after - at <= room + 24n) {
      // A non-transactional message is not flushed at once: the WAL writer writes the full page soon.
      await expect.poll(flushPosition, { timeout: 5000, interval: 20 }).toBeGreaterThanOrEqual(after - 24n);
      return after;
    }
  }
  throw new Error('could not end the WAL at a page boundary');
}

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  await cluster.primary.query('create table notes (id int primary key, body text)');
  await cluster.waitForReplicas();
  superuser = new pg.Client({ connectionString: cluster.primary.connectionString });
  await superuser.connect();
  router = routerFor(cluster);
  await settle(router, cluster);
});

afterAll(async () => {
  await router?.close();
  await superuser?.end();
  await cluster?.stop();
});

describe('a primary whose WAL ends at a page boundary', () => {
  it('a floor read there is reached by the replica that replayed everything: the next read of the session uses it', async () => {
    let insert = 0n;
    await router.withSession('boundary', async () => {
      await router.query("insert into notes values (1, 'saved')");
      // A first read of the new row sets its hint bits, which writes WAL where data checksums are on
      // (initdb's default from PostgreSQL 18): done here, before the WAL is made to end.
      await superuser.query('select count(*) from notes');
      insert = await endWalAtPageBoundary(); // the scope's position is read after this, at its end
    });
    await cluster.waitForReplicas();
    // The setup holds: nothing was written since; the replica replayed everything, and its
    // position is the boundary, 24 bytes below the primary's insert position.
    expect(await insertPosition()).toBe(insert);
    expect(await replayPosition()).toBe(insert - 24n);

    await expect
      .poll(
        async () => {
          const { rows } = await router.withSession('boundary', () =>
            router.query<{ port: number; body: string }>('select inet_server_port() as port, body from notes where id = 1'),
          );
          expect(rows[0]!.body).toBe('saved');
          return nodeByPort(cluster, rows[0]!.port);
        },
        { timeout: 3000, interval: 200 },
      )
      .toBe('r1');
    expect(await insertPosition()).toBe(insert); // still at the boundary: the replica was never given more WAL
  });

  it('the replica shows no lag, and a staleness bound lets reads use it', async () => {
    const insert = await endWalAtPageBoundary();
    await cluster.waitForReplicas();
    await expect
      .poll(
        () => {
          const r1 = router.topology().nodes.find((n) => n.name === 'r1')!;
          return { lagBytes: r1.lagBytes, lagMs: r1.lagMs };
        },
        { timeout: 3000 },
      )
      .toEqual({ lagBytes: 0, lagMs: 0 });
    const { rows } = await router.withConsistency({ maxStalenessMs: 60_000 }, () =>
      router.query<{ port: number }>('select inet_server_port() as port'),
    );
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
    expect(await insertPosition()).toBe(insert);
  });
});
