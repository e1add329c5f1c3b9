import express from 'express';
import { Kysely, sql, type Generated } from 'kysely';
import { fileURLToPath } from 'node:url';
import type { Router } from '../../lib/index.js';
import { consistency } from '../../adapters/express/index.js';
import { kyselyDialect } from '../../adapters/kysely/index.js';

/** How reads are routed, switchable from the page. */
export type Mode = 'naive' | 'sticky' | 'pgrr';
export const MODES: Record<Mode, string> = {
  naive: 'Replica reads without consistency (Prisma/Drizzle replica helpers)',
  sticky: 'Time-based stickiness: primary for 2 s after a write (Rails)',
  pgrr: 'pg-replica-router session consistency',
};

interface Database {
  follows: { follower: string; target: string };
  posts: { id: Generated<number>; author: string; body: string; created_at: Generated<Date> };
}

export const SCHEMA = `
create table if not exists follows (follower text not null, target text not null, primary key (follower, target));
create table if not exists posts (id serial primary key, author text not null, body text not null, created_at timestamptz not null default now());
`;

/** One application instance: the social model (Kysely on the routed pool) and its HTTP API. */
export function createApp(options: { name: string; router: Router; mode: () => Mode }): express.Express {
  const { router } = options;
  const db = new Kysely<Database>({ dialect: kyselyDialect(router) });
  const app = express();
  app.use(express.json());
  app.use(consistency(router, { session: (req) => (req.headers['x-demo-user'] as string | undefined) ?? undefined }));
  app.use((_req, res, next) => {
    res.setHeader('x-demo-instance', options.name);
    next();
  });

  const user = (req: express.Request) => String(req.headers['x-demo-user'] ?? 'ada');
  // The routing mode decides how the handler's reads are routed.
  const routed = <T>(req: express.Request, res: express.Response, fn: () => Promise<T>): Promise<T> => {
    const mode = options.mode();
    if (mode === 'pgrr') return fn();
    if (mode === 'sticky') {
      const lastWrite = Number(/demo_last_write=(\d+)/.exec(req.headers.cookie ?? '')?.[1] ?? 0);
      return router.withConsistency(Date.now() - lastWrite < 2000 ? 'primary' : 'eventual', fn);
    }
    return router.withConsistency('eventual', fn);
  };
  const wrote = (res: express.Response) => res.append('Set-Cookie', `demo_last_write=${Date.now()}; Path=/; SameSite=Lax`);

  app.get('/api/state', async (req, res, next) => {
    try {
      const me = user(req);
      const target = String(req.query.target ?? 'grace');
      const state = await routed(req, res, async () => {
        const following = await db
          .selectFrom('follows')
          .select('follower')
          .where('follower', '=', me)
          .where('target', '=', target)
          .executeTakeFirst();
        const followers = await db
          .selectFrom('follows')
          .select(sql<number>`count(*)::int`.as('n'))
          .where('target', '=', target)
          .executeTakeFirstOrThrow();
        const posts = await db.selectFrom('posts').select(['id', 'author', 'body']).orderBy('id', 'desc').limit(10).execute();
        const served = await sql<{ port: number }>`select inet_server_port() as port`.execute(db);
        return { following: Boolean(following), followers: followers.n, posts, servedByPort: served.rows[0]?.port };
      });
      res.json({ ...state, instance: options.name, mode: options.mode() });
    } catch (err) {
      next(err);
    }
  });

  app.post('/api/follow', async (req, res, next) => {
    try {
      const target = String(req.body?.target ?? 'grace');
      if (req.body?.follow === false)
        await db.deleteFrom('follows').where('follower', '=', user(req)).where('target', '=', target).execute();
      else
        await db
          .insertInto('follows')
          .values({ follower: user(req), target })
          .onConflict((oc) => oc.doNothing())
          .execute();
      wrote(res);
      res.json({ ok: true, instance: options.name });
    } catch (err) {
      next(err);
    }
  });

  app.post('/api/posts', async (req, res, next) => {
    try {
      const body = String(req.body?.body ?? '').slice(0, 280);
      const row = await db
        .insertInto('posts')
        .values({ author: user(req), body })
        .returning('id')
        .executeTakeFirstOrThrow();
      wrote(res);
      res.json({ ok: true, id: row.id, instance: options.name });
    } catch (err) {
      next(err);
    }
  });

  app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url))));
  app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: err.message });
  });
  return app;
}
