// The HTTP side of the workload: the Express app the HTTP sessions talk to, and their clients
// (one Browser per session, each request to one of the app's instances).
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Consistency, Router } from '../../lib/index.js';
import { consistency } from '../../adapters/express/index.js';
import { Browser } from '../helpers/http.js';
import type { Level, Outcome, Target } from './driver.js';

export const UPDATE = 'update counters set v = v + 1 where id = $1 returning v, inet_server_port() as port';
export const SELECT = 'select v, inet_server_port() as port from counters where id = $1';

/**
 * How an operation reaches the router: `pool`, `router.query` (a pooled connection per statement);
 * `checkout`, a client checked out and released around it, as Kysely, Knex and TypeORM do.
 */
export type Via = 'pool' | 'checkout';

/** Runs one statement of the workload the way `via` says. */
export async function runVia(router: Router, via: Via, text: string, values: unknown[]): Promise<{ v: number; port: number }> {
  if (via === 'pool') return (await router.query<{ v: number; port: number }>(text, values)).rows[0]!;
  const client = await router.pool.connect();
  try {
    return (await client.query<{ v: number; port: number }>(text, values)).rows[0]!;
  } finally {
    client.release();
  }
}

/** An error with a stable code, for failures seen over HTTP. */
export class OperationError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The base URL of the instance that failed it. */
    readonly via?: string,
  ) {
    super(message);
  }
}

export function codeOf(err: unknown): string {
  const e = err as { code?: unknown; errno?: unknown; cause?: { code?: unknown } } | undefined;
  if (typeof e?.code === 'string' && e.code) return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  return 'UNKNOWN';
}

/**
 * The Express app the HTTP sessions talk to: the `consistency()` middleware (its own cookie for
 * identity, tokens in `X-Consistency-Token`), an increment and a read route, and errors as JSON
 * with their code. `X-Bench-Level` runs a request at another level (for the strategies).
 */
export function workloadApp(router: Router, via: Via = 'pool'): Express {
  const app = express();
  app.use(consistency(router));
  const levelled = <T>(req: Request, fn: () => Promise<T>) => {
    const level = req.get('x-bench-level') as Consistency | undefined;
    return level ? router.withConsistency(level, fn) : fn();
  };
  app.post('/counters/:id/incr', async (req, res) => {
    const row = await levelled(req, () => runVia(router, via, UPDATE, [req.params.id]));
    res.json({ version: row.v, port: row.port });
  });
  app.get('/counters/:id', async (req, res) => {
    const row = await levelled(req, () => runVia(router, via, SELECT, [req.params.id]));
    res.json({ version: row.v, port: row.port });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ code: codeOf(err), message: err instanceof Error ? err.message : String(err) });
  });
  return app;
}

/**
 * HTTP clients, one per session, each a {@link Browser} with its own cookies, against
 * {@link workloadApp}. With several base URLs (instances, of one service or several), each
 * request goes to one of them at random; the cookies go with the session to every instance.
 */
export function httpTarget(baseUrls: string | readonly string[]): Target {
  const urls = typeof baseUrls === 'string' ? [baseUrls] : [...baseUrls];
  const browsers = new Map<string, Browser>();
  const call = async (session: string, method: string, path: string, headers: Record<string, string>): Promise<Outcome> => {
    const baseUrl = urls[Math.floor(Math.random() * urls.length)]!;
    let browser = browsers.get(session);
    if (!browser) browsers.set(session, (browser = new Browser()));
    let res: globalThis.Response;
    try {
      res = await browser.fetch(`${baseUrl}${path}`, { method, headers });
    } catch (err) {
      throw new OperationError(codeOf(err), err instanceof Error ? err.message : String(err), baseUrl);
    }
    const body = (await res.json()) as { version: number; port: number; code?: string; message?: string };
    if (!res.ok) throw new OperationError(body.code ?? `HTTP ${res.status}`, body.message ?? '', baseUrl);
    return {
      version: body.version,
      port: body.port,
      token: res.headers.get('x-consistency-token') ?? undefined,
      ...(urls.length > 1 ? { via: baseUrl } : {}),
    };
  };
  const levelHeader = (level: Level | undefined): Record<string, string> => (level ? { 'x-bench-level': level } : {});
  return {
    transport: 'http',
    write: (session, row, { level }) => call(session, 'POST', `/counters/${encodeURIComponent(row)}/incr`, levelHeader(level)),
    read: (session, row, { level, token }) =>
      call(session, 'GET', `/counters/${encodeURIComponent(row)}`, {
        ...levelHeader(level),
        ...(token ? { 'x-consistency-token': token } : {}),
      }),
  };
}
