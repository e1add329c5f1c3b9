import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRouter, parseLsn, type Router, type RouterOptions } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf, requestScopesOf } from '../../lib/internal.js';
import { encodeToken } from '../../lib/token.js';
import { nodeByPort, urlAs, useRoutedCluster } from '../helpers/cluster.js';
import { tokenPosition } from '../helpers/tokens.js';

// A new router's start: the SQL parser loading and the primary's first poll (a floor's WAL history
// is judged against the primary's), not the replicas' first polls. Until then a statement of the
// pool runs on the primary at once and its outcome waits for the start; a checked-out client's
// statements wait for it; a checkout waits for nothing, as pg.Pool's does. A replica not polled
// yet is out of rotation.

let cluster: Cluster;

useRoutedCluster(
  {
    cluster: { replicas: 1 },
    setup: ['create table start_notes (id int primary key, note text)', "insert into start_notes values (1, 'first')"],
  },
  (c) => {
    cluster = c;
  },
);

/** A TCP server that accepts connections and never answers (a hung server, or a blackhole). */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `connectionString` pointed at `port` on loopback. */
function atPort(connectionString: string, port: number): string {
  const url = new URL(connectionString);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.toString();
}

const statusOf = (router: Router, name: string) => router.topology().nodes.find((n) => n.name === name)!.status;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A new router over the test cluster (the primary and r1), closed after the test. */
function newRouter(options: Partial<RouterOptions> = {}): Router {
  const router = createRouter({
    primary: { connectionString: urlAs(cluster.primary) },
    replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
    monitor: { intervalMs: 100 },
    ...options,
  });
  cleanups.push(() => router.close());
  return router;
}

const SECRET = 'a start-test secret of at least 32 characters';
/** A request scope of `router` (as the Express middleware opens one) that brought `token` and no identity. */
function requestWith(router: Router, token: string) {
  return requestScopesOf(router)!.open({
    identity: () => ({ key: undefined, fresh: true }),
    token,
    consistency: undefined,
    spanAttributes: {},
    issueToken: true,
  });
}

/** A token of another PostgreSQL system (another system identifier), far ahead, signed with SECRET. */
const FOREIGN = encodeToken({ lsn: 0xffff_0000_0000n, node: undefined, systemId: '1234567890', timeline: 1 }, Buffer.from(SECRET));

describe("a router's start", () => {
  it('a replica that never answers holds up no statement: the first ones run on the primary while its first poll is pending', async () => {
    const silent = await silentServer();
    const router = createRouter({
      primary: { connectionString: urlAs(cluster.primary) },
      replicas: [{ name: 'r1', connectionString: atPort(urlAs(cluster.replicas[0]!), silent.port) }],
      monitor: { intervalMs: 100, timeoutMs: 5_000 },
    });
    cleanups.push(() => router.close(), silent.close); // the server goes first: the pending poll fails

    const { rows } = await router.withConsistency('eventual', () => router.query('select inet_server_port() as port'));
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary');
    // Still waiting for r1's first answer (10 s connect timeout): the statement did not wait for it.
    expect(statusOf(router, 'r1')).toBe('unknown');
    expect(statusOf(router, 'primary')).toBe('up');
  });

  it('a checkout right after createRouter() waits for no poll: a primary that never answers fails it on connectionTimeoutMillis', async () => {
    const silent = await silentServer();
    const router = createRouter({
      primary: { connectionString: atPort(urlAs(cluster.primary), silent.port), connectionTimeoutMillis: 100 },
      replicas: [],
      monitor: { intervalMs: 100, timeoutMs: 5_000 },
    });
    cleanups.push(() => router.close(), silent.close); // the server goes first: the pending poll fails

    await expect(router.pool.connect()).rejects.toThrow(/timeout/);
    // The monitor's first poll of the primary is still pending: the checkout did not wait for it.
    expect(statusOf(router, 'primary')).toBe('unknown');
    expect(router.pool.totalCount).toBe(0);
  });

  it('a checkout before the start gets the primary, and its first read moves it to a replica ready by then', async () => {
    const router = newRouter();

    const client = await router.pool.connect();
    try {
      expect(client.node).toBe('primary'); // nothing judged yet: no replica is in rotation
      await engineOf(router)!.monitor.ready; // r1's first poll
      const { rows } = await router.withConsistency('eventual', () => client.query('select inet_server_port() as port'));
      expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
      expect(client.node).toBe('r1');
      expect(client.processID).toEqual(expect.any(Number));
    } finally {
      client.release();
    }
    expect(router.pool.totalCount).toBe(2); // the primary's connection went back to its pool
    expect(router.pool.idleCount).toBe(2);
  });
});

describe('a statement of the pool before the start', () => {
  it('asks for its connection when called, on the primary, as pg.Pool does; its outcome comes once the router has started', async () => {
    const router = newRouter();
    const dispatch = engineOf(router)!.dispatch;
    expect(dispatch.isStarted).toBe(false);

    const query = router.pool.query('select inet_server_port() as port');
    expect(router.pool.totalCount).toBe(1); // the connection was asked for at once
    const startedWhenDone = query.then(() => dispatch.isStarted);
    const { rows } = await query;
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary');
    expect(await startedWhenDone).toBe(true);
  });

  it("a session's write before the start gets a position of the primary's WAL history (a token on timeline 1, past the write)", async () => {
    const router = newRouter({ tokenSecret: SECRET });
    const before = (await cluster.primary.query('select pg_current_wal_insert_lsn()::text as lsn'))[0]!.lsn as string;
    const token = await router.withSession('start-writer', async () => {
      await router.query("update start_notes set note = 'written before the start' where id = 1");
      return router.currentToken();
    });
    const position = tokenPosition(token);
    expect(position.timeline).toBe(1);
    expect(position.lsn).toBeGreaterThan(parseLsn(before));
    // and a read of that session, anywhere, sees the write
    const { rows } = await router.withToken(token, () => router.query('select note from start_notes where id = 1'));
    expect(rows[0]!.note).toBe('written before the start');
  });

  it('with the primary down at start, a read issued before the start is served by a replica once polled', async () => {
    const closed = new URL(urlAs(cluster.primary));
    closed.port = '1';
    const router = createRouter({
      primary: { connectionString: closed.toString() },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
      monitor: { intervalMs: 100 },
      logger: false,
    });
    cleanups.push(() => router.close());
    const { rows } = await router.query('select inet_server_port() as port');
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
  });

  it("a request's token is judged only after the start: one of another PostgreSQL system is rejected as foreign, as after it", async () => {
    const router = newRouter({ tokenSecret: SECRET });
    const request = requestWith(router, FOREIGN);
    expect(engineOf(router)!.dispatch.isStarted).toBe(false);
    await request.run(() => router.pool.query('select 1'));
    const { token } = await request.finish();
    expect(router.topology().counters.tokensRejected.foreign).toBe(1);
    expect(router.topology().counters.tokensAccepted).toBe(0);
    expect(tokenPosition(token!).lsn).not.toBe(0xffff_0000_0000n);
  });

  it('router.withToken before the start judges its token after it: one of another PostgreSQL system is rejected as foreign', async () => {
    const router = newRouter({ tokenSecret: SECRET });
    expect(engineOf(router)!.dispatch.isStarted).toBe(false);
    const floor = await router.withToken(FOREIGN, () => engineOf(router)!.scopes.current().session.floor);
    expect(floor).toBe(0n);
    expect(router.topology().counters.tokensRejected.foreign).toBe(1);
    expect(router.topology().counters.tokensAccepted).toBe(0);
  });

  it('with the primary down since the start, a token of another PostgreSQL system is still refused (the replicas give the system identifier)', async () => {
    const closed = new URL(urlAs(cluster.primary));
    closed.port = '1';
    const router = createRouter({
      primary: { connectionString: closed.toString() },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
      monitor: { intervalMs: 100 },
      tokenSecret: SECRET,
      logger: false,
    });
    cleanups.push(() => router.close());
    const { rows, floor } = await router.withToken(FOREIGN, async () => ({
      rows: (await router.query('select inet_server_port() as port')).rows,
      floor: engineOf(router)!.scopes.current().session.floor,
    }));
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
    expect(floor).toBe(0n);
    expect(router.topology().counters.tokensRejected.foreign).toBe(1);
  });

  it('a read before the start whose connection dies under it gets the error, as on pg (it was sent: not run again)', async () => {
    const router = newRouter({ logger: false });
    const sleeping = router.query("select pg_sleep(3), 'dies before the start' as marker");
    const outcome = sleeping.then(
      () => 'resolved',
      (err: Error) => err.message,
    );
    for (let i = 0; i < 100; i++) {
      const rows = await cluster.primary.query(
        "select pg_terminate_backend(pid) as ended from pg_stat_activity where query like '%dies before the start%' and pid <> pg_backend_pid()",
      );
      if (rows.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await outcome).toMatch(/terminat/i);
  });

  it("a statement before the start that waited past the user's connectionTimeoutMillis on a full primary pool fails, as on pg (not run again elsewhere)", async () => {
    const router = createRouter({
      primary: { connectionString: urlAs(cluster.primary), max: 1, connectionTimeoutMillis: 100 },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
      monitor: { intervalMs: 100 },
    });
    cleanups.push(() => router.close());
    const holder = await router.pool.connect(); // the primary's only connection
    try {
      expect(holder.node).toBe('primary');
      await expect(router.query('select 1')).rejects.toThrow(/timeout exceeded when trying to connect/);
    } finally {
      holder.release();
    }
  });

  it("a request's token is judged after the start also by currentToken() and by a request that ends before the start with no statement", async () => {
    const router = newRouter({ tokenSecret: SECRET });
    const open = () => requestWith(router, FOREIGN);
    expect(engineOf(router)!.dispatch.isStarted).toBe(false);
    const asking = open();
    const issued = await asking.run(() => router.currentToken());
    await asking.finish();
    const silent = open();
    const { token } = await silent.finish(); // no statement at all
    expect(router.topology().counters.tokensRejected.foreign).toBe(2);
    expect(router.topology().counters.tokensAccepted).toBe(0);
    for (const t of [issued, token]) if (t !== undefined) expect(tokenPosition(t).lsn).not.toBe(0xffff_0000_0000n);
  });
});
