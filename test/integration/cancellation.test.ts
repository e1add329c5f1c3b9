import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

// Issue 14, case 12: cancellation by pid through a routed checkout. Kysely ≥ 0.29 (the installed
// 0.28 does not cancel) asks the checked-out client for `processID`, else runs
// `select pg_backend_pid() as pid` on it, then sends `select pg_cancel_backend(<pid>)` (or
// `pg_terminate_backend` for 'kill session') on another connection of the same pool; Knex sends
// `SELECT pg_cancel_backend($1)` with the client's `processID`. Those are the patterns below.
let cluster: Cluster;
let router: Router;

useRoutedCluster({ cluster: { replicas: 1 }, setup: ['create table notes (id int primary key, body text)'] }, (c, r) => {
  [cluster, router] = [c, r];
});

const SLOW_READ = "select inet_server_port() as port, pg_sleep(20), 'slow read' as tag";
const SLOW_WRITE = "insert into notes select $1, 'slow write' from pg_sleep(20)";

/** Waits until `node` runs a statement containing `marker` (seen in its pg_stat_activity); its pid. */
async function runningOn(node: NodeHandle, marker: string): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const rows = await node.query<{ pid: number }>(
      "select pid from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()",
      [`%${marker}%`],
    );
    if (rows.length > 0) return rows[0]!.pid;
    if (Date.now() > deadline) throw new Error(`${node.name} never ran ${marker}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Kysely's collectSessionInfo(): `processID` when the client has one, else `pg_backend_pid()` on it. */
async function kyselyPid(client: { processID?: number | null; query: pg.ClientBase['query'] }): Promise<number> {
  if (client.processID) return client.processID;
  const { rows } = await client.query<{ pid: string }>('select pg_backend_pid() as pid', []);
  return Number(rows[0]!.pid);
}

/** The session's earlier writes are known and on r1: a checkout goes there. */
async function readyOnReplica(): Promise<void> {
  await router.query('select 1'); // reads the position of the session's last write
  await settle(router, cluster);
}

/** Kysely's control query, on a connection of its own from the same pool. */
async function kyselyControl(sql: string): Promise<pg.QueryResult> {
  const control = await router.pool.connect();
  try {
    return await control.query(sql, []);
  } finally {
    control.release();
  }
}

/** Settles `promise` into its error (or undefined) within `ms`, or 'still running'. */
async function outcome(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve('still running'), ms)));
  const settled = promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('cancelling a statement of a routed checkout by pid', () => {
  it("Kysely 'cancel query': the pid from pg_backend_pid() on a replica cancels the read running there (57014)", async () => {
    await readyOnReplica();
    const client = await router.pool.connect();
    try {
      expect(client.node, 'checked out where the session may read').toBe('r1');
      expect(client.processID, 'the backend of the connection checked out, as on pg').toBeTypeOf('number');
      const pid = await kyselyPid(client);
      expect(client.node).toBe('r1');
      const read = client.query(SLOW_READ);
      const running = await runningOn(cluster.replicas[0]!, "'slow read'");
      expect(running).toBe(pid);
      const cancel = await kyselyControl(`select pg_cancel_backend(${pid})`);
      // true: sent to the server where that pid is a backend (the primary would say false).
      expect(cancel.rows).toEqual([{ pg_cancel_backend: true }]);
      expect(await outcome(read, 10_000)).toMatchObject({ code: '57014' });
      // The client goes on: the next read runs on the same backend.
      const after = await client.query('select pg_backend_pid() as pid, inet_server_port() as port');
      expect(Number(after.rows[0]!.pid)).toBe(pid);
      expect(nodeByPort(cluster, after.rows[0]!.port)).toBe('r1');
    } finally {
      client.release();
    }
  });

  it('the pid revealed on a replica still reaches the statement after the client moved to the primary for a write', async () => {
    await readyOnReplica();
    const client = await router.pool.connect();
    try {
      const pid = await kyselyPid(client);
      expect(client.node).toBe('r1');
      const write = client.query(SLOW_WRITE, [1]);
      const running = await runningOn(cluster.primary, "'slow write'");
      expect(client.node).toBe('primary');
      const cancel = await kyselyControl(`select pg_cancel_backend(${pid})`);
      expect(cancel.rows).toEqual([{ pg_cancel_backend: true }]);
      expect(await outcome(write, 10_000)).toMatchObject({ code: '57014' });
      expect(client.processID, 'processID is the backend running the statements now').toBe(running);
      expect(await cluster.primary.query('select count(*)::int as n from notes where id = 1')).toEqual([{ n: 0 }]);
    } finally {
      client.release();
    }
  });

  it("Kysely 'kill session': pg_terminate_backend(pid) ends the replica backend that runs the read, and no other", async () => {
    const victim = new pg.Client({ connectionString: cluster.primary.connectionString });
    await victim.connect();
    victim.on('error', () => {});
    const client = await router.pool.connect();
    client.on('error', () => {});
    try {
      const pid = await kyselyPid(client);
      const read = client.query(SLOW_READ);
      await runningOn(cluster.replicas[0]!, "'slow read'");
      const kill = await kyselyControl(`select pg_terminate_backend(${pid})`);
      expect(kill.rows).toEqual([{ pg_terminate_backend: true }]);
      expect(await outcome(read, 10_000)).toMatchObject({ code: '57P01' });
      expect((await victim.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      client.release();
      await victim.end();
    }
  });

  it("Knex's pattern: SELECT pg_cancel_backend($1) with the client's processID, through the router's pool", async () => {
    const client = await router.pool.connect();
    try {
      const read = client.query(SLOW_READ);
      await runningOn(cluster.replicas[0]!, "'slow read'");
      const cancel = await router.pool.query('SELECT pg_cancel_backend($1);', [client.processID]);
      expect(cancel.rows).toEqual([{ pg_cancel_backend: true }]);
      expect(await outcome(read, 10_000)).toMatchObject({ code: '57014' });
    } finally {
      client.release();
    }
  });

  it('a pid that is none of the router connections is refused with a stable code', async () => {
    // A pid that no server of the cluster uses now: a backend of a connection the router does not hold.
    const outsider = new pg.Client({ connectionString: cluster.primary.connectionString });
    await outsider.connect();
    try {
      const pid = (outsider as unknown as { processID: number }).processID;
      await expect(router.pool.query('select pg_cancel_backend($1)', [pid])).rejects.toMatchObject({ code: 'ERR_PGRR_BACKEND_UNKNOWN' });
      // A pid that is not an integer is left to PostgreSQL, on the primary as before.
      const nothing = await router.pool.query('select pg_cancel_backend($1)', [null]);
      expect(nothing.rows).toEqual([{ pg_cancel_backend: null }]);
    } finally {
      await outsider.end();
    }
  });

  it('a released client forgets its pids and gives its connections back', async () => {
    const idleBefore = router.pool.idleCount;
    const client = await router.pool.connect();
    const pid = await kyselyPid(client);
    await client.query('insert into notes values (2, $1)', ['moved']); // to the primary; r1's connection stays held
    expect(client.node).toBe('primary');
    client.release();
    expect(router.pool.idleCount).toBeGreaterThanOrEqual(idleBefore);
    // The pid is one of the router's idle connections again: a signal goes to its node (r1), where nothing runs.
    const cancel = await router.pool.query('select pg_cancel_backend($1)', [pid]);
    expect(cancel.rows).toEqual([{ pg_cancel_backend: true }]);
  });
});
