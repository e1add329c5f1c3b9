import Cursor from 'pg-cursor';
import QueryStream from 'pg-query-stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { nodeByPort, useRoutedCluster } from '../helpers/cluster.js';

// A connection that dies under a cursor or a stream (its backend terminated: a DBA, a failover,
// a replica restart) must fail that cursor or stream — its reader gets the error, the stream
// closes, cursor.close() returns — without crashing the process, leaking a connection, or
// leaving the node in rotation as if nothing happened.

let cluster: Cluster;
let router: Router;

useRoutedCluster({ cluster: { replicas: 1 }, router: { logger: false }, setup: ['create table lost (id int)'] }, (c, r) => {
  [cluster, router] = [c, r];
});

/** Many rows, each saying which backend and server sends it. */
const ROWS = 'select pg_backend_pid() as pid, inet_server_port() as port, g from generate_series(1, 100000) g';
interface Row {
  pid: number;
  port: number;
  g: number;
}

/** Uncaught exceptions and unhandled rejections while a test runs (each would crash a plain Node process). */
let crashes: unknown[] = [];
const onCrash = (err: unknown) => crashes.push(err);
let reported: ReturnType<typeof vi.spyOn>;

beforeEach(async () => {
  crashes = [];
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  await nodesUp();
  reported = vi.spyOn(engineOf(router)!.monitor, 'reportConnectionFailure');
});

afterEach(() => {
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
  reported.mockRestore();
});

/** Every node up in the router's view (a node reported down comes back after its next good polls). */
async function nodesUp(): Promise<void> {
  await until('every node up', () => router.topology().nodes.every((n) => n.status === 'up'));
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Settles with `value`, or fails the test after `ms` with `what` (a hang must fail, not stall the file). */
function within<T>(what: string, promise: Promise<T>, ms = 5000): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms)),
  ]);
}

/** Terminates backend `pid` on the node listening on `port`, from a separate superuser connection. */
async function terminate(port: number, pid: number): Promise<string> {
  const name = nodeByPort(cluster, port);
  const node = [cluster.primary, ...cluster.replicas].find((n) => n.name === name)!;
  const [row] = await node.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
  expect(row?.ok).toBe(true);
  return name;
}

/** What a stream did: its rows, its error, whether it closed. */
function watch(stream: QueryStream) {
  const seen = { rows: [] as Row[], error: undefined as unknown, ended: false };
  const first = new Promise<Row>((resolve) => stream.once('data', resolve));
  stream.on('data', (row: Row) => seen.rows.push(row));
  const errored = new Promise<unknown>((resolve) => stream.on('error', resolve)).then((err) => (seen.error = err));
  stream.on('end', () => (seen.ended = true));
  const closed = new Promise<void>((resolve) => stream.on('close', () => resolve()));
  return { seen, first, errored, closed };
}

/** The pool is back to where it was: nothing checked out, nobody waiting. */
async function poolSettled(): Promise<void> {
  await until(
    'every connection back in its pool',
    () => router.pool.totalCount === router.pool.idleCount && router.pool.waitingCount === 0,
  );
}

/** Statements after the loss work, through the pool and through a fresh checkout. */
async function laterStatementsWork(): Promise<void> {
  expect((await router.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
  const client = await router.pool.connect();
  try {
    expect((await client.query('select 2 as n')).rows).toEqual([{ n: 2 }]);
  } finally {
    client.release();
  }
  await poolSettled();
}

/** A stream whose first row arrived, paused; then its backend is terminated and it is resumed. */
async function killUnder(stream: QueryStream) {
  const watched = watch(stream);
  const first = await within('first row', watched.first);
  stream.pause();
  const node = await terminate(first.port, first.pid);
  stream.resume();
  return { ...watched, node };
}

function expectConnectionLoss(err: unknown): void {
  expect(err).toBeInstanceOf(Error);
  // 57P01: terminating connection due to administrator command (or the socket closing after it).
  expect(String((err as { code?: unknown }).code ?? (err as Error).message)).toMatch(/57P01|terminated/);
}

describe('a connection that dies under a cursor or stream', () => {
  it('(a) router.pool.query(new QueryStream(…)): the stream errors and closes, the connection leaves the pool', async () => {
    const stream = router.pool.query(new QueryStream(ROWS, [], { batchSize: 5, highWaterMark: 5 }));
    const { errored, closed, seen, node } = await killUnder(stream);
    expect(node).toBe('r1');
    expectConnectionLoss(await within('the stream error', errored));
    await within('the stream close', closed);
    expect(seen.ended).toBe(false); // a lost stream does not pass for a complete one
    expect(seen.rows.length).toBeLessThan(100000);
    await poolSettled();
    expect(reported).toHaveBeenCalledWith('r1', expect.anything());
    await laterStatementsWork();
    expect(crashes).toEqual([]);
  });

  it('(b) router.pool.query(new Cursor(…)): the read rejects, close() returns, the connection leaves the pool', async () => {
    const cursor = router.pool.query(new Cursor<Row>(ROWS));
    const [first] = await within('first read', cursor.read(5));
    expect(nodeByPort(cluster, first!.port)).toBe('r1');
    await terminate(first!.port, first!.pid);
    const failed = await within(
      'the read after the loss',
      cursor.read(5).then(
        () => undefined,
        (err: unknown) => err,
      ),
    );
    expectConnectionLoss(failed);
    // pg-cursor alone waits forever here (node-postgres #2588, #2642): no ReadyForQuery comes on a dead connection.
    await within('cursor.close()', cursor.close());
    await within('a read after close()', cursor.read(5)).catch(() => {}); // answers (rows or the error), never hangs
    await poolSettled();
    expect(reported).toHaveBeenCalledWith('r1', expect.anything());
    await laterStatementsWork();
    expect(crashes).toEqual([]);
  });

  it('(b) the callback form of cursor.read gets the error', async () => {
    const cursor = router.pool.query(new Cursor<Row>(ROWS));
    const [first] = await within('first read', cursor.read(5));
    await terminate(first!.port, first!.pid);
    const failed = await within('the read callback', new Promise<unknown>((resolve) => cursor.read(5, (err) => resolve(err))));
    expectConnectionLoss(failed);
    await within('cursor.close(callback)', new Promise<void>((resolve) => cursor.close(() => resolve())));
    await poolSettled();
    await laterStatementsWork();
    expect(crashes).toEqual([]);
  });

  it('(c) a checked-out client running a stream on a replica: the stream errors, the client carries on', async () => {
    const client = await router.pool.connect(); // no 'error' listener, as most code has
    try {
      const stream = client.query(new QueryStream(ROWS, [], { batchSize: 5, highWaterMark: 5 }));
      const { errored, closed, node } = await killUnder(stream);
      expect(node).toBe('r1');
      expectConnectionLoss(await within('the stream error', errored));
      await within('the stream close', closed);
      expect(reported).toHaveBeenCalledWith('r1', expect.anything());
      // Outside a transaction a replica-bound client routes afresh: the broken connection is gone.
      expect((await client.query('select 3 as n')).rows).toEqual([{ n: 3 }]);
    } finally {
      client.release();
    }
    await poolSettled();
    await laterStatementsWork();
    expect(crashes).toEqual([]);
  });

  it('(c) a checked-out client running a cursor on a replica: the read rejects, close() returns', async () => {
    const client = await router.pool.connect();
    try {
      const cursor = client.query(new Cursor<Row>(ROWS));
      const [first] = await within('first read', cursor.read(5));
      expect(nodeByPort(cluster, first!.port)).toBe('r1');
      await terminate(first!.port, first!.pid);
      expectConnectionLoss(
        await within(
          'the read after the loss',
          cursor.read(5).then(
            () => undefined,
            (err: unknown) => err,
          ),
        ),
      );
      await within('cursor.close()', cursor.close());
      expect(reported).toHaveBeenCalledWith('r1', expect.anything());
      expect((await client.query('select 4 as n')).rows).toEqual([{ n: 4 }]);
    } finally {
      client.release();
    }
    await poolSettled();
    await laterStatementsWork();
    expect(crashes).toEqual([]);
  });

  it('(d) a stream inside a transaction on the primary: the stream errors, the transaction is not silently continued elsewhere', async () => {
    const client = await router.pool.connect();
    let released = false;
    try {
      await client.query('begin');
      await client.query('insert into lost values (1)');
      const stream = client.query(new QueryStream(ROWS, [], { batchSize: 5, highWaterMark: 5 }));
      const { errored, closed, node } = await killUnder(stream);
      expect(node).toBe('primary');
      expectConnectionLoss(await within('the stream error', errored));
      await within('the stream close', closed);
      expect(reported).toHaveBeenCalledWith('primary', expect.anything());
      // The transaction died with its connection: what follows on this client fails (as with pg)
      // instead of running outside it, and COMMIT does not report success.
      await expect(within('a statement after the loss', client.query('insert into lost values (2)'))).rejects.toThrow();
      await expect(within('COMMIT after the loss', client.query('commit'))).rejects.toThrow();
      client.release();
      released = true;
    } finally {
      if (!released) client.release();
    }
    await poolSettled();
    await laterStatementsWork();
    await nodesUp();
    expect((await router.query('select count(*)::int as n from lost')).rows).toEqual([{ n: 0 }]); // nothing committed
    expect(crashes).toEqual([]);
  });
});
