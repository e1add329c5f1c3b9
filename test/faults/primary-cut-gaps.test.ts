import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, redisStore, type Router } from 'pg-replica-router';
import { proxyNode, startCluster, type Cluster, type FaultProxy } from 'pg-replica-router/testing';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { nodeByPort } from '../helpers/cluster.js';
import { sleep } from './drill.js';

// Two ways a read could fail while the primary is cut off although a replica that has everything
// the session is owed could serve it (found by the multi-process drill; issue 14). Gap 2 is
// fixed: a failed store write's position is kept per key, so only that key is affected. Gap 1 is
// inherent (see below) and pinned: its test asserts today's failures, next to a control that
// passes; docs/consistency-model.md states the limit.
let cluster: Cluster;
let primaryProxy: FaultProxy;
const routers: Router[] = [];
const clients: Redis[] = [];
/** Service A lists only r1; B only r2 (as `replica1`); C only r2 (as `replica9`). */
let a: Router;
let b: Router;
let c: Router;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table gaps (id int primary key, v int)');
  await cluster.primary.query('insert into gaps values (1, 1)');
  await createAppRole(cluster, ['select on gaps']);
  const proxied = await proxyNode(cluster.primary);
  primaryProxy = proxied.proxy;
  const [r1, r2] = cluster.replicas;
  const service = (name: string, connectionString: string) => {
    const redis = new Redis(cluster.redis!.url);
    redis.on('error', () => {});
    clients.push(redis);
    const router = createRouter({
      primary: { connectionString: asAppRole(proxied.connectionString), connectionTimeoutMillis: 1000, query_timeout: 1500 },
      replicas: [{ name, connectionString: asAppRole(connectionString) }],
      monitor: { intervalMs: 100, timeoutMs: 500 },
      store: redisStore(redis),
      storeTimeoutMs: 1000, // not reached on a busy machine: gap 2 comes only from the pause below
      logger: false,
    });
    routers.push(router);
    return router;
  };
  a = service('replica1', r1!.connectionString);
  b = service('replica1', r2!.connectionString);
  c = service('replica9', r2!.connectionString);
  await sleep(1000); // every monitor has polled its nodes
});

afterEach(async () => {
  primaryProxy.setMode('pass');
  await sleep(1000); // the monitors see the primary again
});

afterAll(async () => {
  primaryProxy?.setMode('pass');
  for (const router of routers) await router.close();
  clients.forEach((redis) => redis.disconnect());
  await primaryProxy?.close();
  await cluster?.stop();
});

let sessions = 0;
/** A session that has read at least once (its key is in the store). */
const newSession = () => `gap-session-${++sessions}`;

/** Reads row 1 as `session` through `router`: the node that served it, or the failure. */
async function read(router: Router, session: string): Promise<string> {
  try {
    const { rows } = await router.withSession(session, () => router.query('select inet_server_port() as port from gaps where id = 1'));
    return nodeByPort(cluster, rows[0]!.port);
  } catch (err) {
    return `failed: ${(err as Error).message}`;
  }
}

/** Three reads through B while the primary is cut off. */
async function threeReadsThroughB(session: string): Promise<string[]> {
  const outcomes: string[] = [];
  for (let i = 0; i < 3; i++) outcomes.push(await read(b, session));
  return outcomes;
}

/** Every read went to the cut-off primary and gave up there (connect or read timeout). */
function expectPrimaryTimeouts(outcomes: string[]): void {
  expect(outcomes).toHaveLength(3);
  for (const outcome of outcomes) expect(outcome).toMatch(/^failed: .*(timeout|Connection terminated)/i);
}

describe('reads while the primary is cut off', () => {
  it('control: the last read ran on r2 through C (B lists r2 too): B serves from r2', async () => {
    const s = newSession();
    expect(await read(b, s)).toBe('r2');
    expect(await read(c, s)).toBe('r2');
    primaryProxy.setMode('blackhole');
    await sleep(1200);
    expect(await threeReadsThroughB(s)).toEqual(['r2', 'r2', 'r2']);
  });

  // Known gap 1 (inherent). The position A stores names r1 (by server id), which B does not know:
  // B treats it as reads to cover with a primary position sampled after them, and has none taken
  // after A's read. Every read of that session through B goes to the primary until the cut ends
  // (each failure changes nothing). r2 has in fact replayed everything, but nothing B can read
  // proves that r1 had not replayed more when A read there: only a position of r1 or of the
  // primary taken after that read would (covering every replica read in the background for this
  // would cost a store write per request).
  it('known gap: the last read ran on r1 through A (B does not list r1) just before the cut: B sends the reads to the primary', async () => {
    const s = newSession();
    expect(await read(b, s)).toBe('r2');
    expect(await read(a, s)).toBe('r1');
    primaryProxy.setMode('blackhole'); // right after A's read: no primary sample of B is newer
    await sleep(1200);
    expectPrimaryTimeouts(await threeReadsThroughB(s)); // fixed: ['r2', 'r2', 'r2']
  });

  // Gap 2, fixed. One store write that times out (here: Redis pauses writes for 4 s) while the
  // primary is cut off made every later load of the process wait for a primary position newer
  // than the failure (a global recovery floor), so all its sessions' reads went to the primary.
  // Now the failed write's position is kept for its key: only that key (a new session, stored
  // as 'primary') needs the primary.
  it('a store write times out during the cut: B still serves a session whose last read ran on r2 from r2', async () => {
    const s = newSession();
    const t = newSession(); // C's session: C has no store failure
    expect(await read(b, s)).toBe('r2');
    expect(await read(c, t)).toBe('r2');
    primaryProxy.setMode('blackhole');
    await sleep(1200);
    expect(await read(b, newSession()), 'a new session is owed the primary').toMatch(/^failed/);
    expect(await read(b, s), 'before any store failure (a session failing on the primary does not do it)').toBe('r2');
    const admin = new Redis(cluster.redis!.url);
    try {
      const pausedAt = performance.now();
      // Longer than storeTimeoutMs, and than the failing read below takes on a loaded machine (its
      // connect to the cut-off primary may wait 2 s): its store write must come during the pause.
      await admin.call('client', 'pause', '4000', 'WRITE');
      await read(b, newSession()); // a new session's read (it fails: new keys are owed the primary), whose store write times out
      await sleep(Math.max(0, pausedAt + 4100 - performance.now()));
    } finally {
      admin.disconnect();
    }
    expect(b.topology().store.timeouts, 'a store call timed out').toBeGreaterThan(0);
    expect(c.topology().store.timeouts, 'none on C').toBe(0);
    expect(await read(c, t), 'the cut alone does not do it: C still serves its session from r2').toBe('r2');
    expect(await threeReadsThroughB(s)).toEqual(['r2', 'r2', 'r2']);
  });
});
