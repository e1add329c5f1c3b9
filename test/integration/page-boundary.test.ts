// The primary's WAL ending exactly at a page boundary (which an idle primary can sit at for
// good): pg_current_wal_insert_lsn() then points past the next page's header, 24 bytes beyond
// what a caught-up replica reports as replayed. The router compares ends of records, so such a
// replica is caught up, for floors, lag and staleness bounds alike (found on PostgreSQL 18, where
// the suite's WAL happened to end on a boundary; it can happen on any version).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn, type Router } from 'pg-replica-router';
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `scenario` until one run sees no WAL the server wrote on its own meanwhile (the background
 * writer logs a standby snapshot every 15 s after activity; a checkpoint may come): `scenario`
 * returns false when the primary's position moved under it, and is tried again.
 */
async function undisturbed(scenario: (attempt: number) => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) if (await scenario(attempt)) return;
  throw new Error('the WAL moved under every attempt');
}

describe('a primary whose WAL ends at a page boundary', () => {
  it('a floor read there is reached by the replica that replayed everything: the next read of the session uses it', async () => {
    await undisturbed(async (attempt) => {
      const session = `boundary-${attempt}`;
      let insert = 0n;
      await router.withSession(session, async () => {
        await router.query("insert into notes values ($1, 'saved')", [attempt + 1]);
        // A first read of the new row sets its hint bits, which writes WAL where data checksums are
        // on (initdb's default from PostgreSQL 18): done here, before the WAL is made to end.
        await superuser.query('select count(*) from notes');
        insert = await endWalAtPageBoundary(); // the scope's position is read after this, at its end
      });
      await cluster.waitForReplicas();
      if ((await insertPosition()) !== insert) return false;
      // The replica replayed everything, and its position is the boundary, 24 bytes below the
      // primary's insert position.
      expect(await replayPosition()).toBe(insert - 24n);
      let node: string | undefined;
      for (const deadline = Date.now() + 3000; node !== 'r1' && Date.now() < deadline; await sleep(200)) {
        const { rows } = await router.withSession(session, () =>
          router.query<{ port: number; body: string }>('select inet_server_port() as port, body from notes where id = $1', [attempt + 1]),
        );
        expect(rows[0]!.body).toBe('saved');
        node = nodeByPort(cluster, rows[0]!.port);
      }
      if ((await insertPosition()) !== insert) return false; // more WAL reached the replica: not this case
      expect(node).toBe('r1');
      return true;
    });
  });

  it('the replica shows no lag, and a staleness bound lets reads use it', async () => {
    await undisturbed(async () => {
      const insert = await endWalAtPageBoundary();
      await cluster.waitForReplicas();
      // Once the monitor has polled both after the boundary was reached (its cached primary
      // position is at least the boundary, the replica's the boundary itself).
      const polled = () => {
        const nodes = router.topology().nodes;
        const at = (name: string) => nodes.find((n) => n.name === name)?.lsn;
        return [at('primary'), at('r1')].every((lsn) => lsn !== undefined && parseLsn(lsn) >= insert - 24n);
      };
      for (const deadline = Date.now() + 3000; !polled() && Date.now() < deadline;) await sleep(50);
      await sleep(300); // and once more after that (polls every 100 ms)
      const r1 = router.topology().nodes.find((n) => n.name === 'r1')!;
      const lag = { lagBytes: r1.lagBytes, lagMs: r1.lagMs };
      const { rows } = await router.withConsistency({ maxStalenessMs: 60_000 }, () =>
        router.query<{ port: number }>('select inet_server_port() as port'),
      );
      if ((await insertPosition()) !== insert) return false;
      expect(lag).toEqual({ lagBytes: 0, lagMs: 0 });
      expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
      return true;
    });
  });
});
