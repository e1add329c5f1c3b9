// Issue 14, case 16: identity changes and clients that keep no cookies. The session is keyed on
// the bearer token's user (set by per-route auth middleware, as express-jwt does, after the
// consistency() middleware ran); replicas are paused after the set-up, so a read that does not
// know a write reads a replica without it. Each case shows the naive outcome (a replica read) too.
import express, { type NextFunction, type Request, type Response } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import { consistency, handOver, requireConsistency, type ConsistencyOptions } from 'pg-replica-router/express';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, routerFor, settle, useRoutedCluster } from '../helpers/cluster.js';
import { Browser, listen } from '../helpers/http.js';

let cluster: Cluster;
let router: Router;
const warnings: string[] = [];
let app: (options: ConsistencyOptions) => Promise<string>;
const closers: Array<() => Promise<void>> = [];

type Authed = Request & { auth?: { sub: string } };
/** Per-route auth: `Authorization: Bearer <user>` (the token is the user id, for the test). */
function auth(req: Authed, res: Response, next: NextFunction): void {
  const user = /^Bearer (\w+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (!user) return void res.status(401).end();
  req.auth = { sub: user };
  next();
}
const byUser: ConsistencyOptions = { session: (req) => (req as Authed).auth?.sub };

useRoutedCluster({ setup: ['create table notes (owner text, body text)'] }, (c) => {
  cluster = c;
});

/** A router that records its warnings, and an app on it with `consistency(router, options)`. */
app = async (options) => {
  router = routerFor(cluster, { logger: { warn: (message) => void warnings.push(message) } });
  await settle(router, cluster);
  const server = express();
  server.use(express.json());
  server.use(consistency(router, options));
  const wrap = (fn: (req: Authed, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    fn(req as Authed, res).catch(next);
  const read = async (owner: string) =>
    (await router.query('select body from notes where owner = $1 order by body desc limit 1', [owner])).rows[0]?.body ?? null;
  // Registration / login: no auth on the route; the credential goes out in the body.
  server.post(
    '/login/:user',
    wrap(async (req, res) => {
      const known = await read(String(req.params.user)); // a login reads the user first
      await router.query('insert into notes values ($1, $2)', [req.params.user, `login-${req.query.n}`]);
      if (req.query.handover) handOver(req, String(req.params.user));
      if (req.query.setauth) req.auth = { sub: String(req.params.user) }; // as passport's req.login() sets req.user
      res.json({ token: req.params.user, known });
    }),
  );
  server.post(
    '/notes',
    auth,
    wrap(async (req, res) => {
      await router.query('insert into notes values ($1, $2)', [req.auth!.sub, req.body.body]);
      res.json({ ok: true });
    }),
  );
  server.get(
    '/notes',
    auth,
    wrap(async (req, res) => void res.json({ body: await read(req.auth!.sub) })),
  );
  server.get(
    '/strict',
    requireConsistency('read-your-writes'),
    auth,
    wrap(async (req, res) => void res.json({ body: await read(req.auth!.sub) })),
  );
  server.get(
    '/anon/:owner',
    wrap(async (req, res) => void res.json({ body: await read(String(req.params.owner)) })),
  );
  const { url, close } = await listen(server);
  closers.push(async () => {
    await close();
    await router.close();
  });
  return url;
};

afterEach(async () => {
  for (const replica of cluster.replicas) if (replica.running) await replica.resumeReplay();
  for (const close of closers.splice(0)) await close();
  warnings.length = 0;
});

const pause = () => Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
/** What a replica shows for `owner` (the naive path). */
async function onReplica(owner: string): Promise<string | null> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query('select body from notes where owner = $1 order by body desc limit 1', [owner])).rows[0]?.body ?? null;
  } finally {
    await pool.end();
  }
}
const bearer = (user: string) => ({ authorization: `Bearer ${user}` });
async function json(url: string, init: RequestInit = {}): Promise<Record<string, unknown>> {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

describe('identity resolved when first needed (after the route auth)', () => {
  it('a token-only client: a write keyed on req.auth is read back by its next request, with no cookie', async () => {
    const url = await app(byUser);
    await pause();
    await json(`${url}/notes`, {
      method: 'POST',
      headers: { ...bearer('ann'), 'content-type': 'application/json' },
      body: '{"body":"b1"}',
    });
    expect(await onReplica('ann')).toBeNull(); // naive: the replica lacks it
    expect((await json(`${url}/notes`, { headers: bearer('ann') })).body).toBe('b1');
    // requireConsistency() before the auth does not pin the identity early
    expect((await json(`${url}/strict`, { headers: bearer('ann') })).body).toBe('b1');
    expect(router.topology().counters.cookielessClients).toBe(0); // keyed on the credential: nothing to tell
  });
});

describe('login and registration that return their credential in the body', () => {
  for (const variant of ['handOver', 'req.auth set in the handler'] as const) {
    it(`a returning user logs in (cookie-less), its next request sees the login's write: ${variant}`, async () => {
      const url = await app(byUser);
      const bob = variant === 'handOver' ? 'bob' : 'bo2';
      // bob has an older stored position, which the replicas replayed
      await json(`${url}/notes`, {
        method: 'POST',
        headers: { ...bearer(bob), 'content-type': 'application/json' },
        body: '{"body":"a0"}',
      });
      await json(`${url}/notes`, { headers: bearer(bob) });
      await cluster.waitForReplicas();
      await settle(router, cluster);
      await pause();
      const query = variant === 'handOver' ? 'handover=1' : 'setauth=1';
      await json(`${url}/login/${bob}?n=1&${query}`, { method: 'POST' });
      expect(await onReplica(bob)).toBe('a0'); // naive: the login's write is missing there
      expect((await json(`${url}/notes`, { headers: bearer(bob) })).body).toBe('login-1');
    });
  }

  it('without handOver, the older stored position of that user would read a replica without the login', async () => {
    const url = await app(byUser);
    await json(`${url}/notes`, { method: 'POST', headers: { ...bearer('cy'), 'content-type': 'application/json' }, body: '{"body":"a0"}' });
    await cluster.waitForReplicas();
    await settle(router, cluster);
    await pause();
    await json(`${url}/login/cy?n=1`, { method: 'POST' }); // no hand-over: stored under a cookie the client drops
    expect((await json(`${url}/notes`, { headers: bearer('cy') })).body).toBe('a0'); // what handOver is for
  });

  it('a cookie-less client that registers and logs in at once: the login (a POST, no cookie) is not taken for a new visitor', async () => {
    const url = await app(byUser);
    await pause();
    await json(`${url}/login/dee?n=1`, { method: 'POST' }); // registration
    const login = await json(`${url}/login/dee?n=2`, { method: 'POST' }); // no cookie, no credential
    expect(await onReplica('dee')).toBeNull();
    expect(login.known).toBe('login-1');
  });

  it('a session option that throws (it runs mid-request now) fails nothing: that request reads on the primary', async () => {
    const url = await app({
      session: (req) => {
        if (req.headers['x-broken']) throw new Error('broken session option');
        return (req as Authed).auth?.sub;
      },
    });
    await pause();
    await json(`${url}/notes`, {
      method: 'POST',
      headers: { ...bearer('fay'), 'content-type': 'application/json' },
      body: '{"body":"f1"}',
    });
    expect(await onReplica('fay')).toBeNull();
    expect((await json(`${url}/notes`, { headers: { ...bearer('fay'), 'x-broken': '1' } })).body).toBe('f1');
    expect(warnings.filter((w) => w.includes('the session option threw')).length).toBe(1);
  });

  it('handOver() without the middleware is a clear error', () => {
    expect(() => handOver({} as Request, 'x')).toThrow(expect.objectContaining({ code: 'ERR_PGRR_MIDDLEWARE_ORDER' }));
  });
});

describe('clients that keep no cookies', () => {
  it('a credential and no session key: detected, warned once, counted, and served safely', async () => {
    const url = await app({}); // sessions keyed on the middleware's cookie only
    await pause();
    const headers = { ...bearer('eve'), 'content-type': 'application/json' };
    await json(`${url}/notes`, { method: 'POST', headers, body: '{"body":"e1"}' });
    expect(await onReplica('eve')).toBeNull();
    expect((await json(`${url}/notes`, { headers: bearer('eve') })).body).toBe('e1'); // a new cookie each time, still safe
    expect(router.topology().counters.cookielessClients).toBe(2);
    expect(warnings.filter((w) => w.includes('Authorization header')).length).toBe(1);
  });

  it('a browser that keeps its cookie is not told anything, and a first GET is still a new visitor', async () => {
    const url = await app({});
    const browser = new Browser();
    const before = router.topology().counters.positionReads;
    expect(await browser.json(`${url}/anon/nobody`)).toEqual({ body: null });
    expect(router.topology().counters.positionReads - before).toBe(0); // brand new: owes nothing
    expect(router.topology().counters.cookielessClients).toBe(0);
    expect(warnings.filter((w) => w.includes('Authorization header'))).toEqual([]);
  });
});
