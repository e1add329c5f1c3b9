// Issue 14, case 16: a RealWorld-style backend (users, articles, favorites, comments; bearer
// tokens verified by per-route auth middleware that sets req.auth, as express-jwt does) through
// the Express middleware, with the session keyed on the token's user id as our docs show, and
// replicas replaying 300 ms behind. Each client registers, reads itself at once, creates an
// article, reads it, favorites it, reads it, comments, reads the comments, and reads the article
// once more after the replicas caught up. Token-only clients keep no cookies (only the token from
// the registration body); cookie clients keep cookies too. Naive routing (reads on a replica)
// must show stale reads, all-primary none, ours none. Before identity was resolved after the
// route's auth, token-only clients read stale 105-121 of 175 times through the middleware.
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisStore, type Router } from 'pg-replica-router';
import { consistency, handOver } from 'pg-replica-router/express';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, routerFor, settle, startTestCluster } from '../helpers/cluster.js';
import { Browser, listen } from '../helpers/http.js';

const SECRET = 'realworld-flow-test-secret-0123456789';
const CLIENTS = 25; // x 7 reads = 175 reads per kind of client
type Mode = 'naive' | 'all-primary' | 'ours';

/** How the app reaches the database: `read` and `write` are the same pool except for naive routing. */
interface Db {
  read(sql: string, params: unknown[]): Promise<pg.QueryResult>;
  write(sql: string, params: unknown[]): Promise<pg.QueryResult>;
}

type AuthedRequest = Request & { auth?: { sub: number } };

/** A signed bearer token (what the RealWorld API returns in the registration body). */
function sign(sub: number): string {
  const body = Buffer.from(JSON.stringify({ sub })).toString('base64url');
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

/** Per-route auth, like express-jwt: verifies `Authorization: Token <jwt>` and sets req.auth. */
function requireAuth(req: AuthedRequest, res: Response, next: NextFunction): void {
  const [, token] = /^Token (.+)$/.exec(req.headers.authorization ?? '') ?? [];
  const [body, mac] = token?.split('.') ?? [];
  const expected = body ? createHmac('sha256', SECRET).update(body).digest() : undefined;
  const given = mac ? Buffer.from(mac, 'base64url') : undefined;
  if (!body || !expected || !given || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    res.status(401).json({ errors: { token: ['invalid'] } });
    return;
  }
  req.auth = JSON.parse(Buffer.from(body, 'base64url').toString()) as { sub: number };
  next();
}

const userKey = (id: number) => `user:${id}`;

function realworldApp(db: Db, withMiddleware: Router | undefined, useHandOver: boolean): express.Express {
  const app = express();
  app.use(express.json());
  // Our docs: the session is the user (here the token's subject, set by the route's auth).
  if (withMiddleware)
    app.use(
      consistency(withMiddleware, {
        session: (req) => ((req as AuthedRequest).auth ? userKey((req as AuthedRequest).auth!.sub) : undefined),
      }),
    );
  const wrap = (fn: (req: AuthedRequest, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    fn(req as AuthedRequest, res).catch(next);
  app.post(
    '/api/users',
    wrap(async (req, res) => {
      const { username } = req.body.user as { username: string };
      const { rows } = await db.write('insert into users (username) values ($1) returning id', [username]);
      const id = rows[0].id as number;
      if (useHandOver && withMiddleware) handOver(req, userKey(id)); // the credential goes out in the body: carry the position over
      res.status(201).json({ user: { username, token: sign(id) } });
    }),
  );
  app.get(
    '/api/user',
    requireAuth,
    wrap(async (req, res) => {
      const { rows } = await db.read('select username from users where id = $1', [req.auth!.sub]);
      if (!rows[0]) throw new Error('user not found'); // what the third-party backend did: a 500
      res.json({ user: { username: rows[0].username, token: sign(req.auth!.sub) } });
    }),
  );
  app.post(
    '/api/articles',
    requireAuth,
    wrap(async (req, res) => {
      const { slug } = req.body.article as { slug: string };
      await db.write('insert into articles (slug, author_id) values ($1, $2)', [slug, req.auth!.sub]);
      res.status(201).json({ article: { slug } });
    }),
  );
  const findArticle = async (slug: string) =>
    (await db.read('select id from articles where slug = $1', [slug])).rows[0]?.id as number | undefined;
  app.get(
    '/api/articles/:slug',
    requireAuth,
    wrap(async (req, res) => {
      const { rows } = await db.read(
        `select a.slug, (select count(*)::int from favorites f where f.article_id = a.id) as "favoritesCount",
              exists (select 1 from favorites f where f.article_id = a.id and f.user_id = $2) as favorited
         from articles a where a.slug = $1`,
        [req.params.slug, req.auth!.sub],
      );
      if (!rows[0]) res.status(404).json({ errors: { article: ['not found'] } });
      else res.json({ article: rows[0] });
    }),
  );
  app.post(
    '/api/articles/:slug/favorite',
    requireAuth,
    wrap(async (req, res) => {
      const id = await findArticle(String(req.params.slug));
      if (id === undefined) return void res.status(404).json({ errors: { article: ['not found'] } });
      await db.write('insert into favorites (user_id, article_id) values ($1, $2)', [req.auth!.sub, id]);
      res.json({ article: { slug: req.params.slug, favorited: true } });
    }),
  );
  app.post(
    '/api/articles/:slug/comments',
    requireAuth,
    wrap(async (req, res) => {
      const id = await findArticle(String(req.params.slug));
      if (id === undefined) return void res.status(404).json({ errors: { article: ['not found'] } });
      await db.write('insert into comments (article_id, author_id, body) values ($1, $2, $3)', [id, req.auth!.sub, req.body.comment.body]);
      res.status(201).json({ comment: { body: req.body.comment.body } });
    }),
  );
  app.get(
    '/api/articles/:slug/comments',
    requireAuth,
    wrap(async (req, res) => {
      const { rows } = await db.read('select c.body from comments c join articles a on a.id = c.article_id where a.slug = $1', [
        req.params.slug,
      ]);
      res.json({ comments: rows });
    }),
  );
  return app;
}

/** One client's flow; returns how many of its 7 reads were stale (a missing user, article, favorite or comment). */
async function flow(url: string, name: string, keepsCookies: boolean): Promise<number> {
  const browser = new Browser();
  let token = '';
  const call = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Token ${token}`;
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
    const res = keepsCookies ? await browser.fetch(`${url}${path}`, init) : await fetch(`${url}${path}`, init);
    return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, any> };
  };
  let stale = 0;
  const reg = await call('POST', '/api/users', { user: { username: name } });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  token = reg.json.user.token as string;
  const self = await call('GET', '/api/user');
  if (self.status !== 200 || self.json.user?.username !== name) stale++;
  const slug = `${name}-article`;
  if ((await call('POST', '/api/articles', { article: { slug } })).status !== 201) throw new Error('create article failed');
  const article = await call('GET', `/api/articles/${slug}`);
  if (article.status !== 200) stale++;
  const fav = await call('POST', `/api/articles/${slug}/favorite`); // reads the article first
  if (fav.status !== 200) stale++;
  const after = await call('GET', `/api/articles/${slug}`);
  if (after.status !== 200 || after.json.article?.favorited !== true || after.json.article?.favoritesCount !== (fav.status === 200 ? 1 : 0))
    stale++;
  const comment = await call('POST', `/api/articles/${slug}/comments`, { comment: { body: 'first' } }); // reads the article first
  if (comment.status !== 201) stale++;
  const comments = await call('GET', `/api/articles/${slug}/comments`);
  if (comments.status !== 200 || (comments.json.comments?.length ?? 0) !== (comment.status === 201 ? 1 : 0)) stale++;
  // Later, once the replicas have replayed it all (300 ms behind), a read may go to a replica again.
  await new Promise((resolve) => setTimeout(resolve, 800));
  const later = await call('GET', `/api/articles/${slug}`);
  if (later.status !== 200 || later.json.article?.favorited !== (fav.status === 200)) stale++;
  return stale;
}

let cluster: Cluster;
let router: Router;
let redis: Redis;
const pools: pg.Pool[] = [];
const closers: Array<() => Promise<void>> = [];
let run = 0;

async function scenario(
  mode: Mode,
  keepsCookies: boolean,
  useHandOver = true,
): Promise<{ stale: number; reads: number; routedToReplicas: number }> {
  const primary = naivePool(cluster.primary.connectionString);
  const replicas = cluster.replicas.map((r) => naivePool(r.connectionString));
  pools.push(primary, ...replicas);
  let next = 0;
  const db: Db =
    mode === 'ours'
      ? { read: (sql, params) => router.query(sql, params), write: (sql, params) => router.query(sql, params) }
      : mode === 'all-primary'
        ? { read: (sql, params) => primary.query(sql, params), write: (sql, params) => primary.query(sql, params) }
        : {
            read: (sql, params) => replicas[next++ % replicas.length]!.query(sql, params),
            write: (sql, params) => primary.query(sql, params),
          };
  const server = await listen(realworldApp(db, mode === 'ours' ? router : undefined, useHandOver));
  closers.push(server.close);
  run++;
  const onReplicas = () => router.topology().nodes.reduce((n, node) => n + (node.role === 'replica' ? node.served : 0), 0);
  const servedBefore = onReplicas();
  const counts: number[] = [];
  for (let i = 0; i < CLIENTS; i += 5) {
    // five clients at a time
    counts.push(...(await Promise.all([0, 1, 2, 3, 4].map((j) => flow(server.url, `u${run}x${i + j}`, keepsCookies)))));
  }
  return { stale: counts.reduce((a, b) => a + b, 0), reads: CLIENTS * 7, routedToReplicas: onReplicas() - servedBefore };
}

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true, applyDelayMs: 300 });
  redis = new Redis(cluster.redis!.url);
  router = routerFor(cluster, { store: redisStore(redis), tokenSecret: SECRET });
  await router.query('create table users (id serial primary key, username text unique not null)');
  await router.query('create table articles (id serial primary key, slug text unique not null, author_id int not null)');
  await router.query('create table favorites (user_id int not null, article_id int not null, primary key (user_id, article_id))');
  await router.query('create table comments (id serial primary key, article_id int not null, author_id int not null, body text not null)');
  await settle(router, cluster);
});

afterAll(async () => {
  for (const close of closers) await close();
  for (const pool of pools) await pool.end();
  await router?.close();
  redis?.disconnect();
  await cluster?.stop();
});

describe('RealWorld-style flow (register, read self, write, read) with replicas 300 ms behind', () => {
  const figures: Record<string, string> = {};
  afterAll(() => console.log('realworld-flow stale reads:', JSON.stringify(figures)));

  for (const keepsCookies of [false, true]) {
    const kind = keepsCookies ? 'cookie clients' : 'token-only clients';
    it(`${kind}: naive routing reads stale, all-primary and ours never`, async () => {
      const naive = await scenario('naive', keepsCookies);
      const primary = await scenario('all-primary', keepsCookies);
      const ours = await scenario('ours', keepsCookies);
      const withoutHandOver = await scenario('ours', keepsCookies, false);
      figures[kind] =
        `naive ${naive.stale}/${naive.reads}, all-primary ${primary.stale}/${primary.reads}, ours ${ours.stale}/${ours.reads} (${ours.routedToReplicas} on replicas), ours without handOver ${withoutHandOver.stale}/${withoutHandOver.reads} (${withoutHandOver.routedToReplicas} on replicas)`;
      expect(naive.stale).toBeGreaterThan(0); // the test can fail: lagging replicas lack the writes
      expect(primary.stale).toBe(0);
      expect(ours.stale).toBe(0);
      expect(withoutHandOver.stale).toBe(0);
    });
  }
});
