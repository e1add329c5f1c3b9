import session from 'express-session';
import { afterEach, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, settle } from '../helpers/cluster.js';
import { useExpressApp } from '../helpers/express.js';
import { Browser } from '../helpers/http.js';

let cluster: Cluster;
let router: Router;
let url: string;

useExpressApp(
  {
    router: { tokenSecret: 'edge secret, at least 16 bytes', logger: false },
    setup: ['create table marks (who text, what text)'],
    before: (app) => app.use(session({ secret: 'test', resave: false, saveUninitialized: true })),
    routes: (app, router) => {
      // A compression-like middleware: keeps our res.write/res.end and calls them later.
      app.use('/deferred', (_req, res, next) => {
        const end = res.end.bind(res) as (...args: unknown[]) => unknown;
        res.end = ((...args: unknown[]) => {
          setTimeout(() => end(...args), 20);
          return res;
        }) as never;
        next();
      });
      const mark = (who: string, what: string) => router.query('insert into marks values ($1, $2)', [who, what]);
      app.post('/deferred/:what', async (req, res) => {
        await mark('d', req.params.what);
        res.json({ ok: true });
      });
      app.post('/then-error/:what', async (req, res, next) => {
        await mark('e', req.params.what);
        res.json({ ok: true });
        next(new Error('a bug: an error after the response was sent'));
      });
      app.get('/bad-status', (_req, res) => {
        res.statusCode = 1000; // Node throws when the head is written
        res.end('x');
      });
      app.post('/stream-then-write/:what', async (req, res) => {
        res.write('{"step":1'); // the first byte goes out ...
        await mark('s', req.params.what); // ... then the handler writes ...
        res.end('}'); // ... and ends
      });
      app.post('/login/:what', async (req, res, next) => {
        await mark('l', req.params.what);
        req.session.regenerate((err) => (err ? next(err) : res.json({ ok: true }))); // a new session id, as on login
      });
      app.get('/marks/:who/:what', async (req, res) => {
        const { rows } = await router.query('select count(*)::int as n from marks where who = $1 and what = $2', [
          req.params.who,
          req.params.what,
        ]);
        res.json(rows[0]);
      });
    },
  },
  (env) => {
    ({ cluster, router, url } = env);
  },
);

afterEach(async () => {
  for (const replica of cluster.replicas) await replica.resumeReplay();
});

async function pauseAll(): Promise<void> {
  await settle(router, cluster);
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

async function naiveCount(who: string, what: string): Promise<number> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query('select count(*)::int as n from marks where who = $1 and what = $2', [who, what])).rows[0].n;
  } finally {
    await pool.end();
  }
}

describe('the response gate with other middleware and odd handlers', () => {
  it('a middleware that calls res.end later (like compression) still completes the response', async () => {
    await pauseAll();
    const browser = new Browser();
    expect(await browser.json(`${url}/deferred/a`, { method: 'POST' })).toEqual({ ok: true });
    expect(await browser.json(`${url}/marks/d/a`)).toEqual({ n: 1 });
  });

  it('an error after the response was sent does not corrupt it or crash the process', async () => {
    const browser = new Browser();
    const res = await browser.fetch(`${url}/then-error/b`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect((await browser.json(`${url}/marks/e/b`)).n).toBe(1); // and the server is still up
  });

  it('what Node would throw while writing the head (an invalid status) fails that response only', async () => {
    await expect(fetch(`${url}/bad-status`)).rejects.toThrow(); // the connection is closed
    expect(await new Browser().json(`${url}/marks/x/y`)).toEqual({ n: 0 }); // still serving
  });

  it('a write made after the first byte was sent is stored before the response ends', async () => {
    await pauseAll();
    const browser = new Browser();
    const res = await browser.fetch(`${url}/stream-then-write/c`, { method: 'POST' });
    expect(await res.text()).toBe('{"step":1}');
    expect(await browser.json(`${url}/marks/s/c`)).toEqual({ n: 1 });
    expect(await naiveCount('s', 'c')).toBe(0);
  });

  it('a session id that changes during the request (login) carries the write', async () => {
    await pauseAll();
    const browser = new Browser();
    await browser.json(`${url}/marks/l/warm`); // a session exists before "login"
    const before = browser.cookies.get('connect.sid');
    await browser.json(`${url}/login/d`, { method: 'POST' });
    expect(browser.cookies.get('connect.sid')).not.toBe(before); // regenerated
    expect(await browser.json(`${url}/marks/l/d`)).toEqual({ n: 1 });
    expect(await naiveCount('l', 'd')).toBe(0);
  });
});
