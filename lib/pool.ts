import { EventEmitter } from 'node:events';
import pg from 'pg';
import { promised, toCallback } from './callback.js';
import { lossIsNoOutage, watchEndedAlone } from './backends.js';
import { RoutedClient } from './client.js';
import { checkOut } from './checkout.js';
import { inHook } from './hooks.js';
import type { Engine } from './engine.js';
import { failQuery, isConnectionError, normalizeQuery, releaseArg, type NormalizedQuery, type Submittable } from './pg-args.js';
import { POOL_RUNNER } from './pool-runner.js';

const POOL_EVENTS = ['connect', 'acquire', 'release', 'remove', 'error'] as const;
const ENDED = 'Cannot use a pool after calling end on the pool';

// At run time the base class is pg.Pool, so `pool instanceof pg.Pool` holds (Prisma's adapter-pg
// and Drizzle check it); to TypeScript it is an EventEmitter with the methods declared below,
// since @types/pg's Pool promises a full pg.Client from connect().
const PoolBase = pg.Pool as unknown as new (config: pg.PoolConfig) => EventEmitter;

/**
 * A `pg.Pool` look-alike that routes every statement: reads to a replica that is ready for the
 * session, everything else to the primary. Use it wherever a `pg.Pool` goes (Kysely, Drizzle,
 * Knex, TypeORM, Prisma's adapter-pg, or plain pg code).
 *
 * @example
 * ```ts
 * import type { Router } from 'pg-replica-router';
 *
 * declare const router: Router;
 *
 * const { rows } = await router.pool.query('select * from users where id = $1', [42]);
 * const client = await router.pool.connect();
 * try {
 *   await client.query('begin');            // binds the client to the primary
 *   await client.query('update users set name = $1 where id = $2', ['Ada', 42]);
 *   await client.query('commit');
 * } finally {
 *   client.release();
 * }
 * ```
 */
export class RoutedPool extends PoolBase {
  readonly #engine: Engine;
  /** pg's `Promise` option (the primary's): what query(), connect() and end() return. */
  readonly #Promise: PromiseConstructorLike | undefined;
  #ending = false;
  #ended = false;

  /** @internal use `createRouter()` */
  constructor(engine: Engine) {
    // The base class only keeps the primary's options here (`pool.options`): it never opens a
    // connection, since every method that would is overridden. Its own fields that would shadow
    // ours go.
    super(engine.options.primary);
    delete (this as unknown as Record<string, unknown>).Client; // not exposed: a side connection made with it would reach the primary
    this.#engine = engine;
    this.#Promise = engine.options.primary.Promise;
    engine.eachNode((node) => {
      // Every connection keeps one 'error' listener for life: pg can emit a second 'error' (a
      // FATAL, then the lost socket) after pg-pool's own once-listener of a query has gone, or
      // on a connection being removed from its pool; unheard, that would crash the process. The
      // statement that was running gets its error anyway; a connection failure is reported.
      node.pool.on('connect', (client: pg.PoolClient) => {
        watchEndedAlone(client);
        client.on('error', (err: unknown) => {
          if (isConnectionError(err) && !lossIsNoOutage(client)) engine.monitor.reportConnectionFailure(node.name, err);
        });
      });
      for (const event of POOL_EVENTS) {
        // Same arguments as pg.Pool's events, with the routed client object of the connection;
        // 'connect' lets you prepare every new connection (its listener's statements run on it).
        node.pool.on(event, (...args: unknown[]) => {
          if (event === 'error') {
            // An idle connection died: its node may have restarted (and reopened behind where
            // the monitor last saw it), so the engine tells the monitor at once, heard or not.
            // Unheard, pg.Pool would crash the process here; the routed pool does not: the pool
            // drops the connection, and the next statement goes elsewhere or gets the error.
            const heard = this.listenerCount('error') > 0;
            engine.idleConnectionError(node.name, args[0], heard);
            if (!heard) return;
          }
          if (this.listenerCount(event) === 0) return; // per statement: no lookup when nobody listens
          const at = event === 'release' || event === 'error' ? 1 : 0;
          const raw = args[at] as pg.PoolClient | undefined;
          if (!raw || typeof raw !== 'object') return void this.emit(event, ...args);
          args[at] = engine.clients.of(raw);
          // pg-pool puts the client on an idle connection's error too.
          if (event === 'error' && (args[0] as { client?: unknown } | undefined)?.client === raw)
            (args[0] as { client?: unknown }).client = args[at];
          if (event === 'connect') inHook(args[at] as RoutedClient, raw, () => this.emit(event, ...args));
          else this.emit(event, ...args);
        });
      }
    });
  }

  /** Connections open across all nodes. */
  get totalCount(): number {
    return this.#engine.nodes.sum('totalCount');
  }

  get idleCount(): number {
    return this.#engine.nodes.sum('idleCount');
  }

  /**
   * pg-pool's internal list of connections (some code reads it): the routed client object of
   * every connection open across all nodes.
   */
  get _clients(): RoutedClient[] {
    const engine = this.#engine;
    return engine.nodes.all.flatMap((node) =>
      ((node.pool as { _clients?: pg.PoolClient[] })._clients ?? []).map((raw) => engine.clients.of(raw)),
    );
  }

  /** pg-pool's constructor assigns it; the list is the nodes'. */
  set _clients(_value: RoutedClient[]) {}

  get waitingCount(): number {
    return this.#engine.nodes.sum('waitingCount');
  }

  /** Connections past their `maxLifetimeSeconds`, across all nodes. */
  get expiredCount(): number {
    return this.#engine.nodes.sum('expiredCount');
  }

  get ending(): boolean {
    return this.#ending;
  }

  /** pg-pool's constructor assigns it; the routed pool keeps its own state. */
  set ending(_value: boolean) {}

  get ended(): boolean {
    return this.#ended;
  }

  set ended(_value: boolean) {}

  /** The primary's pool options, with pg-pool's defaults (as `pg.Pool#options`). */
  declare readonly options: pg.PoolOptions;

  /**
   * Same forms as `pg.Pool#query`: `(text, values?)`, `(config)` (passed through untouched),
   * with an optional callback, and submittables (`new Cursor(…)`, `new QueryStream(…)`), which
   * run on a client released when they end.
   */
  query<T extends Submittable>(submittable: T): T;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    callback: (err: Error | undefined, result: pg.QueryResult<R>) => void,
  ): void;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values: unknown[] | undefined,
    callback: (err: Error | undefined, result: pg.QueryResult<R>) => void,
  ): void;
  query(arg: unknown, values?: unknown, callback?: unknown): unknown {
    // pg-pool's argument rules: a function first is a callback told that this is not supported;
    // a query pg cannot take (null, a number) rejects or calls back — never a synchronous throw.
    if (typeof arg === 'function') {
      const told = arg as (err: Error) => void;
      setImmediate(() => told(new Error('Passing a function as the first parameter to pool.query is not supported')));
      return undefined;
    }
    let q: NormalizedQuery;
    try {
      q = normalizeQuery(arg, values, callback);
    } catch (err) {
      const cb = [values, callback].find((f): f is (err: Error) => void => typeof f === 'function');
      const failed = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      return cb ? toCallback(failed, (e) => cb(e!)) : promised(this.#Promise, failed);
    }
    if (this.#ending) return failQuery(q.submittable, q.callback, new Error(ENDED), this.#Promise);
    if (q.submittable) return this.#submit(q.submittable);
    const result = this.#engine.dispatch.run(q.text, this.#engine.telemetry, q, POOL_RUNNER);
    const cb = q.callback as ((err: Error | undefined, result?: pg.QueryResult) => void) | undefined;
    if (!cb) return promised(this.#Promise, result);
    // As pg-pool: the error, or `undefined` (not null) and the result.
    return toCallback(result, (err, value) => (err ? cb(err) : cb(undefined, value)));
  }

  #submit<T extends Submittable>(submittable: T): T {
    // pg.Pool cannot run submittables; here one runs on a routed client that goes back to its
    // pool when the submittable ends (its 'end', 'error' or 'close' event, or cursor.close()).
    const client = new RoutedClient(this.#engine.dispatch, this.#engine.telemetry, this.#engine.clients);
    let released = false;
    const release = (err?: unknown) => {
      if (released) return;
      released = true;
      client.release(releaseArg(err));
    };
    // Nobody else holds this client: a connection dying under the submittable fails it (its
    // 'error' when it reads next), and the dead connection leaves its pool now, even if the
    // submittable is never read again.
    client.on('error', (err: unknown) => release(err ?? true));
    const emitter = submittable as unknown as Partial<EventEmitter>;
    emitter.once?.('end', () => release());
    emitter.once?.('close', () => release());
    emitter.once?.('error', (err: unknown) => release(err));
    client.query(submittable);
    return submittable;
  }

  /**
   * Checks out a client, as pg.Pool does, on the node the session would read from now (a ready
   * replica, else the primary): it waits at `max`, fails on `connectionTimeoutMillis`, on a server
   * that is down or on an `onConnect`/`verify` error. The same connection gives the same client
   * object. Its first statement may move it: a read to where the session may read by then,
   * `BEGIN` or a write to the primary; it stays on its node for a transaction and moves to the
   * primary when a write arrives outside one (see {@link RoutedClient}).
   */
  connect(): Promise<RoutedClient>;
  connect(callback: (err: Error | undefined, client: RoutedClient | undefined, done: (release?: unknown) => void) => void): void;
  connect(
    callback?: (err: Error | undefined, client: RoutedClient | undefined, done: (release?: unknown) => void) => void,
  ): Promise<RoutedClient> | void {
    const engine = this.#engine;
    const checkout = this.#ending ? Promise.reject(new Error(ENDED)) : checkOut(engine.dispatch, engine.clients, engine.scopes.current());
    if (!callback) return promised(this.#Promise, checkout);
    toCallback(checkout, (err, client) => callback(err, client, (release?: unknown) => client?.release(releaseArg(release))));
  }

  /** Ends every pool and the monitor. */
  end(): Promise<void>;
  end(callback: (err?: Error) => void): void;
  end(callback?: (err?: Error) => void): Promise<void> | void {
    if (this.#ending) {
      const err = new Error('Called end on pool more than once');
      if (callback) return void callback(err); // synchronously, as pg-pool does
      return promised(this.#Promise, Promise.reject(err));
    }
    this.#ending = true;
    const done = this.#engine.close().then(() => {
      this.#ended = true;
      this.emit('end');
    });
    if (!callback) return promised(this.#Promise, done);
    toCallback(done, (err) => callback(err));
  }
}
