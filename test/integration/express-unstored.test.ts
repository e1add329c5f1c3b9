// Issue 14, case 3: a store write that failed on one instance. Instance A could not store the
// position of a write (the store threw, or hung past storeTimeoutMs), yet acknowledged the
// request; the client's next request lands on instance B, which shares the store and loads the
// older position. The position must travel with the response: in the token header for a client
// that echoes it, and in a signed cookie (pgrr_pos) for a browser that only keeps cookies.
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisStore, type LsnStore, type Router } from 'pg-replica-router';
import { consistency } from 'pg-replica-router/express';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';
import { Browser, listen } from '../helpers/http.js';

/** The shared Redis store; its writes fail (`throw`) or never answer (`hang`) while asked to. */
function flakyStore(redis: Redis): LsnStore & { mode: 'ok' | 'throw' | 'hang' } {
  const inner = redisStore(redis);
  const store = {
    mode: 'ok' as 'ok' | 'throw' | 'hang',
    get: (key: string) => inner.get(key),
    raise: (key: string, next: Parameters<LsnStore['raise']>[1], loaded: Parameters<LsnStore['raise']>[2]) => {
      if (store.mode === 'throw') return Promise.reject(new Error('store write failed (test)'));
      if (store.mode === 'hang') return new Promise<void>(() => {});
      return inner.raise(key, next, loaded);
    },
  };
  return store;
}

const SECRET = 'unstored-positions-test-secret-0123456789';
let cluster: Cluster;
let routerA: Router;
let routerB: Router;
let storeA: ReturnType<typeof flakyStore>;
let urlA: string;
let urlB: string;
const closers: Array<() => Promise<void> | void> = [];

async function instance(router: Router): Promise<string> {
  const app = express();
  app.use(express.json());
  app.use(consistency(router, { session: (req) => (req.headers['x-user'] as string | undefined) ?? undefined }));
  app.post('/notes/:id', async (req, res) => {
    await router.query('insert into notes values ($1, $2)', [Number(req.params.id), 'hello']);
    res.json({ ok: true });
  });
  app.get('/notes/:id', async (req, res) => {
    const { rows } = await router.query('select (select body from notes where id = $1) as body, inet_server_port() as port', [
      Number(req.params.id),
    ]);
    res.json({ found: rows[0]?.body === 'hello', node: nodeByPort(cluster, rows[0]?.port) });
  });
  const server = await listen(app);
  closers.push(server.close);
  return server.url;
}

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  const [redisA, redisB] = [new Redis(cluster.redis!.url), new Redis(cluster.redis!.url)];
  closers.push(() => (redisA.disconnect(), redisB.disconnect()));
  storeA = flakyStore(redisA);
  routerA = routerFor(cluster, { store: storeA, tokenSecret: SECRET, storeTimeoutMs: 200, logger: false });
  routerB = routerFor(cluster, { store: redisStore(redisB), tokenSecret: SECRET, storeTimeoutMs: 200, logger: false });
  await routerA.query('create table notes (id int primary key, body text)');
  await settle(routerA, cluster);
  await settle(routerB, cluster);
  urlA = await instance(routerA);
  urlB = await instance(routerB);
});

afterEach(async () => {
  storeA.mode = 'ok';
  for (const replica of cluster.replicas) await replica.resumeReplay();
});

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await routerA?.close();
  await routerB?.close();
  await cluster?.stop();
});

/** What a replica serves straight (the naive path): the replicas are paused, so not the write. */
async function naiveFound(id: number): Promise<boolean> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query('select 1 from notes where id = $1', [id])).rowCount === 1;
  } finally {
    await pool.end();
  }
}

/** A first write through A that is stored; every replica (and B's monitor) has it; then replay stops. */
async function storedWriteThenPause(write: (id: number) => Promise<unknown>, id: number): Promise<void> {
  await write(id);
  await settle(routerB, cluster);
  await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
}

function positionCookie(res: Response): string | undefined {
  return res.headers.getSetCookie().find((c) => c.startsWith('pgrr_pos='));
}

describe('a position A could not store reaches B with the next request', () => {
  for (const mode of ['throw', 'hang'] as const) {
    it(`browser with cookies, store write ${mode === 'throw' ? 'fails' : 'hangs past storeTimeoutMs'} on A`, async () => {
      const browser = new Browser();
      const post = (id: number) => browser.json(`${urlA}/notes/${id}`, { method: 'POST' });
      const base = mode === 'throw' ? 10 : 20;
      await storedWriteThenPause(post, base);
      expect(browser.cookies.has('pgrr_sid')).toBe(true);
      expect(browser.cookies.has('pgrr_pos')).toBe(false); // stored: nothing to carry

      storeA.mode = mode;
      const res = await browser.fetch(`${urlA}/notes/${base + 1}`, { method: 'POST' });
      expect(res.status).toBe(200); // acknowledged
      storeA.mode = 'ok';
      const carried = positionCookie(res);
      expect(carried).toMatch(/HttpOnly/i);
      expect(carried).toMatch(/SameSite=Lax/i);
      expect(carried).toMatch(/Max-Age=\d+/);
      expect(carried).toMatch(/Path=\//);

      // Naive: the replicas lack the write, and a browser that dropped the position cookie (what
      // every browser was before) gets B's older stored floor, which a replica satisfies: stale.
      expect(await naiveFound(base + 1)).toBe(false);
      const withoutPosition = await browser.json(`${urlB}/notes/${base + 1}`, {
        headers: { cookie: `pgrr_sid=${browser.cookies.get('pgrr_sid')}` },
        sendCookies: false,
      });
      expect(withoutPosition).toMatchObject({ found: false });

      // The browser as it is: its next request, on B, sees the write.
      const next = await browser.fetch(`${urlB}/notes/${base + 1}`);
      expect(await next.json()).toMatchObject({ found: true, node: 'primary' });
      // B stored the position: the cookie is cleared, and B's store now holds the write.
      expect(positionCookie(next)).toMatch(/Max-Age=0/);
      expect(browser.cookies.get('pgrr_pos')).toBe('');
      expect(await browser.json(`${urlB}/notes/${base + 1}`)).toMatchObject({ found: true });
    });
  }

  it('token-echoing client (session keyed by user): the token header carries the unstored position', async () => {
    const client = new Browser();
    const headers = { 'x-user': 'api-user' };
    const post = (id: number) => client.json(`${urlA}/notes/${id}`, { method: 'POST', headers, sendCookies: false, sendToken: true });
    await storedWriteThenPause(post, 30);
    const before = client.lastToken;
    storeA.mode = 'throw';
    await post(31);
    storeA.mode = 'ok';
    expect(client.lastToken).toBeDefined();
    expect(client.lastToken).not.toBe(before);
    const token = client.lastToken!;
    expect(await naiveFound(31)).toBe(false);
    // Without the token: B's stored floor (the first write) is satisfied by a replica: stale.
    expect(await new Browser().json(`${urlB}/notes/31`, { headers, sendCookies: false })).toMatchObject({ found: false });
    const echoed = { ...headers, 'x-consistency-token': token };
    expect(await new Browser().json(`${urlB}/notes/31`, { headers: echoed, sendCookies: false })).toMatchObject({
      found: true,
      node: 'primary',
    });
  });

  it('a bad position cookie is ignored and counted like a bad token, never an error', async () => {
    const before = routerB.topology().counters.tokensRejected;
    const res = await fetch(`${urlB}/notes/1`, { headers: { cookie: 'pgrr_pos=1.not-a.token' } });
    expect(res.status).toBe(200);
    const after = routerB.topology().counters.tokensRejected;
    const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
    expect(total(after)).toBe(total(before) + 1);
  });
});

describe('without tokenSecret there is nothing to sign the position with', () => {
  it('no position cookie; the router warns once that tokenSecret is needed', async () => {
    const warnings: string[] = [];
    const redis = new Redis(cluster.redis!.url);
    closers.push(() => redis.disconnect());
    const store = flakyStore(redis);
    const router = routerFor(cluster, { store, storeTimeoutMs: 200, logger: { warn: (message) => warnings.push(message) } });
    closers.push(() => router.close());
    await settle(router, cluster);
    const url = await instance(router);
    const browser = new Browser();
    await browser.json(`${url}/notes/40`, { method: 'POST' });
    store.mode = 'throw';
    for (const id of [41, 42]) {
      const res = await browser.fetch(`${url}/notes/${id}`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(positionCookie(res)).toBeUndefined();
    }
    store.mode = 'ok';
    const unsigned = warnings.filter((w) => w.includes('tokenSecret'));
    expect(unsigned).toHaveLength(1);
    expect(unsigned[0]).toMatch(/could not be stored/);
  });
});
