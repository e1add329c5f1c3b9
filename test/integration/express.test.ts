import express, { type Express } from 'express';
import session from 'express-session';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisStore, tokenHeaders, type LsnStore, type Router, type RouterOptions } from 'pg-replica-router';
import { consistency, requireConsistency, type ConsistencyOptions } from 'pg-replica-router/express';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, routerFor, settle, startTestCluster } from '../helpers/cluster.js';
import { Browser, listen } from '../helpers/http.js';

const SECRET = 'express test secret, 16+ bytes';
let cluster: Cluster;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  const setup = routerFor(cluster);
  await setup.query('create table follows (follower text, target text, primary key (follower, target))');
  await settle(setup, cluster);
  await setup.close();
});

afterEach(async () => {
  for (const replica of cluster.replicas) if (replica.running) await replica.resumeReplay();
});

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await cluster?.stop();
});

/** The seeds' follow button, as an app. `who` identifies the follower from the request. */
async function app(
  router: Router,
  options: { middleware?: ConsistencyOptions | false; expressSession?: boolean } = {},
): Promise<{ url: string; app: Express }> {
  const a = express();
  if (options.expressSession) a.use(session({ secret: 'test', resave: false, saveUninitialized: true }));
  if (options.middleware !== false) a.use(consistency(router, options.middleware ?? {}));
  const who = (req: express.Request) => String(req.get('x-user') ?? req.query.user ?? 'anon');
  a.post('/follow/:target', async (req, res) => {
    await router.query('insert into follows values ($1, $2) on conflict do nothing', [who(req), req.params.target]);
    res.json({ ok: true });
  });
  a.post('/follow-redirect/:target', async (req, res) => {
    await router.query('insert into follows values ($1, $2) on conflict do nothing', [who(req), req.params.target]);
    res.redirect(303, `/follows/${req.params.target}`);
  });
  a.post('/follow-stream/:target', async (req, res) => {
    await router.query('insert into follows values ($1, $2) on conflict do nothing', [who(req), req.params.target]);
    res.write('{"ok":'); // headers go out with this first chunk ...
    setTimeout(() => res.end('true}'), 300); // ... and the body takes its time
  });
  a.post('/follow-fail/:target', async (req) => {
    await router.query('insert into follows values ($1, $2) on conflict do nothing', [who(req), req.params.target]);
    throw new Error('boom after the write');
  });
  const following = async (req: express.Request, res: express.Response) => {
    const { rows } = await router.query(
      'select inet_server_port() as port, count(*)::int as n from follows where follower = $1 and target = $2',
      [who(req), req.params.target],
    );
    res.json({ following: rows[0]!.n > 0, node: nodeByPort(cluster, rows[0]!.port) });
  };
  a.get('/follows/:target', following);
  a.get('/strict/:target', requireConsistency('primary'), following);
  a.get('/relaxed/:target', requireConsistency('eventual'), following);
  a.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: err.message });
  });
  const server = await listen(a);
  closers.push(server.close);
  return { url: server.url, app: a };
}

function newRouter(options: Partial<RouterOptions> = {}): Router {
  const router = routerFor(cluster, { tokenSecret: SECRET, ...options });
  closers.push(() => router.close());
  return router;
}

async function pauseAll(router: Router): Promise<void> {
  await settle(router, cluster);
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

async function naiveFollowing(follower: string, target: string): Promise<boolean> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (
      (await pool.query('select count(*)::int as n from follows where follower = $1 and target = $2', [follower, target])).rows[0].n > 0
    );
  } finally {
    await pool.end();
  }
}

describe('the follow button (self-issued cookie identity)', () => {
  it('POST a follow, GET it back with every replica paused: it shows; a plain replica read does not', async () => {
    const router = newRouter();
    const { url } = await app(router);
    await pauseAll(router);
    const browser = new Browser();
    expect(await browser.json(`${url}/follow/ada?user=u1`, { method: 'POST' })).toEqual({ ok: true });
    expect(browser.cookies.get('pgrr_sid')).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect(await browser.json(`${url}/follows/ada?user=u1`)).toMatchObject({ following: true });
    expect(await naiveFollowing('u1', 'ada')).toBe(false);
    // another browser (another session) has no floor: it may read the paused replica
    expect(await new Browser().json(`${url}/follows/ada?user=u1`)).toMatchObject({ following: false });
  });

  it('issues the cookie HttpOnly and SameSite=Lax, and Secure only behind TLS', async () => {
    const router = newRouter();
    const { url } = await app(router);
    const res = await fetch(`${url}/follows/x`);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('pgrr_sid='))!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).not.toMatch(/Secure/i);
    expect(cookie).toMatch(/Path=\//);
  });
});

describe('the position is stored before any byte of the response', () => {
  for (const [name, path] of [
    ['res.json', 'follow'],
    ['res.redirect', 'follow-redirect'],
    ['a streamed body (next request fired as soon as headers arrive)', 'follow-stream'],
    ['an error response', 'follow-fail'],
  ] as const) {
    it(name, async () => {
      const redis = new Redis(cluster.redis!.url);
      closers.push(async () => redis.disconnect());
      // A slow store (150 ms per write): a response sent before the write lands would lose the race.
      const inner = redisStore(redis);
      const slow: LsnStore = {
        get: (k) => inner.get(k),
        raise: async (k, n, l) => (await new Promise((r) => setTimeout(r, 150)), inner.raise(k, n, l)),
      };
      const router = newRouter({ store: slow, storeTimeoutMs: 1000 });
      const { url } = await app(router);
      await pauseAll(router);
      const browser = new Browser();
      const target = `t-${path}`;
      const res = await browser.fetch(`${url}/${path}/${target}?user=fast`, { method: 'POST' }); // resolves on headers
      // no waiting for the body: the very next request must already see the write
      expect(await browser.json(`${url}/follows/${target}?user=fast`)).toMatchObject({ following: true });
      await res.text();
      expect(await naiveFollowing('fast', target)).toBe(false);
    });
  }
});

describe('session identity', () => {
  it('express-session: its session id is the session', async () => {
    const router = newRouter();
    const { url } = await app(router, { expressSession: true });
    await pauseAll(router);
    const browser = new Browser();
    await browser.json(`${url}/follow/grace?user=u2`, { method: 'POST' });
    expect(browser.cookies.has('connect.sid')).toBe(true);
    expect(browser.cookies.has('pgrr_sid')).toBe(false); // no cookie of our own needed
    expect(await browser.json(`${url}/follows/grace?user=u2`)).toMatchObject({ following: true });
  });

  it('the session option (e.g. the logged-in user) wins', async () => {
    const router = newRouter();
    const { url } = await app(router, { middleware: { session: (req) => req.headers['x-user'] as string | undefined, cookie: false } });
    await pauseAll(router);
    await new Browser().json(`${url}/follow/linus`, { method: 'POST', headers: { 'x-user': 'u3' } });
    // a different browser, same user: same session
    expect(await new Browser().json(`${url}/follows/linus`, { headers: { 'x-user': 'u3' } })).toMatchObject({ following: true });
  });

  it('token-only API clients (no cookies): the token header alone carries the session', async () => {
    const router = newRouter();
    const { url } = await app(router, { middleware: { cookie: false } });
    await pauseAll(router);
    const client = new Browser();
    await client.json(`${url}/follow/ken?user=api`, { method: 'POST', sendCookies: false });
    expect(client.lastToken).toMatch(/^1\./);
    expect(client.cookies.size).toBe(0);
    expect(await client.json(`${url}/follows/ken?user=api`, { sendToken: true, sendCookies: false })).toMatchObject({ following: true });
    expect(await client.json(`${url}/follows/ken?user=api`, { sendCookies: false })).toMatchObject({ following: false }); // without it: stale allowed
  });

  it('two apps with their own routers sharing one Redis: POST through A, GET through B', async () => {
    const [redisA, redisB] = [new Redis(cluster.redis!.url), new Redis(cluster.redis!.url)];
    closers.push(async () => (redisA.disconnect(), redisB.disconnect()));
    const a = await app(newRouter({ store: redisStore(redisA) }));
    const routerB = newRouter({ store: redisStore(redisB) });
    const b = await app(routerB);
    await pauseAll(routerB);
    const browser = new Browser();
    await browser.json(`${a.url}/follow/barbara?user=u4`, { method: 'POST' });
    expect(await browser.json(`${b.url}/follows/barbara?user=u4`)).toMatchObject({ following: true }); // same cookie, other instance
  });
});

describe('levels', () => {
  it('by default a client cannot pick its level: X-Consistency: primary is ignored and counted as refused', async () => {
    const router = newRouter();
    const { url } = await app(router);
    await settle(router, cluster);
    const browser = new Browser();
    expect((await browser.json(`${url}/follows/x?user=dflt`, { headers: { 'x-consistency': 'primary' } })).node).toMatch(/^r\d$/);
    expect((await browser.json(`${url}/follows/x?user=dflt&consistency=primary`)).node).toMatch(/^r\d$/);
    expect((await browser.json(`${url}/follows/x?user=dflt`)).node).toMatch(/^r\d$/); // asks nothing: not counted
    expect(router.topology().counters.clientLevels).toEqual({ honoured: 0, refused: 2 });
  });

  it('clientLevels as a predicate: only the requests it allows pick their level', async () => {
    const router = newRouter();
    const { url } = await app(router, { middleware: { clientLevels: (req) => req.headers['x-internal-caller'] === 'billing' } });
    await settle(router, cluster);
    const browser = new Browser();
    const primary = { 'x-consistency': 'primary' };
    expect((await browser.json(`${url}/follows/x?user=pred`, { headers: primary })).node).toMatch(/^r\d$/);
    const internal = { ...primary, 'x-internal-caller': 'billing' };
    expect((await browser.json(`${url}/follows/x?user=pred`, { headers: internal })).node).toBe('primary');
    expect(router.topology().counters.clientLevels).toEqual({ honoured: 1, refused: 1 });
  });

  it('with clientLevels: true a client may ask for a stronger level (header or query), never a weaker one; both ways can be switched off', async () => {
    const router = newRouter();
    const { url } = await app(router, { middleware: { clientLevels: true } });
    await settle(router, cluster);
    const browser = new Browser();
    expect((await browser.json(`${url}/follows/x?user=lv`)).node).toMatch(/^r\d$/);
    expect((await browser.json(`${url}/follows/x?user=lv`, { headers: { 'x-consistency': 'primary' } })).node).toBe('primary');
    expect((await browser.json(`${url}/follows/x?user=lv&consistency=primary`)).node).toBe('primary');
    expect((await browser.json(`${url}/strict/x?user=lv`)).node).toBe('primary'); // per-route level
    expect((await browser.json(`${url}/strict/x?user=lv`, { headers: { 'x-consistency': 'eventual' } })).node).toBe('primary'); // weaker refused
    // weaker refused at the default level too: a session that wrote keeps reading its write
    await pauseAll(router);
    await browser.json(`${url}/follow/y?user=lv`, { method: 'POST' });
    expect(await browser.json(`${url}/follows/y?user=lv`, { headers: { 'x-consistency': 'eventual' } })).toMatchObject({ following: true });
    expect(await browser.json(`${url}/follows/y?user=lv&consistency=eventual`)).toMatchObject({ following: true });
    // a route that itself asks for eventual, and a client asking for more
    expect((await browser.json(`${url}/relaxed/y?user=lv`, { headers: { 'x-consistency': 'primary' } })).node).toBe('primary');
    for (const replica of cluster.replicas) await replica.resumeReplay();
    const off = await app(router, { middleware: { clientLevels: true, levelHeader: false, levelQuery: false } });
    await settle(router, cluster);
    const ask = { headers: { 'x-consistency': 'primary' } };
    expect((await new Browser().json(`${off.url}/follows/x?user=off&consistency=primary`, ask)).node).toMatch(/^r\d$/);
  });

  it('requireConsistency without consistency() is a clear error, passed to next()', async () => {
    const a = express();
    a.get('/', requireConsistency('primary'), (_req, res) => res.send('unreachable'));
    a.use((err: Error & { code?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) =>
      res.status(500).json({ code: err.code }),
    );
    const server = await listen(a);
    closers.push(server.close);
    expect(await (await fetch(server.url)).json()).toEqual({ code: 'ERR_PGRR_MIDDLEWARE_ORDER' });
  });
});

describe('crossing boundaries', () => {
  it('a token handed to a background job makes the job read the write', async () => {
    const router = newRouter();
    const a = express();
    a.use(consistency(router));
    const jobs: string[] = [];
    a.post('/order', async (_req, res) => {
      await router.query("insert into follows values ('job', 'queued') on conflict do nothing");
      jobs.push(await router.currentToken()); // into the job payload
      res.json({ ok: true });
    });
    const server = await listen(a);
    closers.push(server.close);
    await pauseAll(router);
    await fetch(`${server.url}/order`, { method: 'POST' });
    const worker = newRouter(); // another process, say
    const seen = await worker.withToken(
      jobs[0],
      async () => (await worker.query("select count(*)::int as n from follows where follower = 'job'")).rows[0]!.n,
    );
    expect(seen).toBe(1);
    expect(await naiveFollowing('job', 'queued')).toBe(false);
  });

  it('tokenHeaders() carries the session to another service', async () => {
    const routerA = newRouter();
    const routerB = newRouter();
    const b = await app(routerB, { middleware: { cookie: false } });
    const a = express();
    a.use(consistency(routerA));
    a.post('/follow-and-ask-b/:target', async (req, res) => {
      await routerA.query('insert into follows values ($1, $2) on conflict do nothing', ['svc', req.params.target]);
      const answer = await fetch(`${b.url}/follows/${req.params.target}?user=svc`, { headers: await tokenHeaders(routerA) });
      res.json(await answer.json());
    });
    const server = await listen(a);
    closers.push(server.close);
    await pauseAll(routerA);
    expect(await (await fetch(`${server.url}/follow-and-ask-b/mary`, { method: 'POST' })).json()).toMatchObject({ following: true });
  });
});
