import { EventEmitter } from 'node:events';
import pg from 'pg';
import { failQuery, releaseArg, RoutedClient } from './client.js';
import type { Scope } from './context.js';
import type { Engine, NodePool, Route } from './engine.js';
import { isConnectionError, isNotSent, isRecoveryConflict, markNotSent, normalizeQuery, type QueryArg, type Submittable } from './pg-args.js';

const POOL_EVENTS = ['connect', 'acquire', 'release', 'remove', 'error'] as const;

/**
 * A `pg.Pool` look-alike that routes every statement: reads to a replica that is ready for the
 * session, everything else to the primary. Use it wherever a `pg.Pool` goes (Kysely, Drizzle,
 * Knex, TypeORM, Prisma's adapter-pg, or plain pg code).
 *
 * @example
 * ```ts
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
// At run time the base class is pg.Pool, so `pool instanceof pg.Pool` holds (Prisma's adapter-pg
// and Drizzle check it); to TypeScript it is an EventEmitter with the methods declared below,
// since @types/pg's Pool promises a full pg.Client from connect().
const PoolBase = pg.Pool as unknown as new (config: pg.PoolConfig) => EventEmitter;

export class RoutedPool extends PoolBase {
  readonly #engine: Engine;
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
    for (const node of this.#nodes()) {
      for (const event of POOL_EVENTS) {
        // Same arguments as pg.Pool's events; 'connect' lets you prepare every new connection.
        node.pool.on(event, (...args: unknown[]) => {
          if (event === 'error' && this.listenerCount('error') === 0) {
            // pg.Pool would crash the process here: an idle connection dying because its node
            // restarted or shut down must not. The pool drops it, the monitor notices the node,
            // and the next statement gets a connection error (or goes elsewhere).
            engine.idleConnectionError(node.name, args[0]);
            return;
          }
          this.emit(event, ...args);
        });
      }
    }
  }

  /** Connections open across all nodes. */
  get totalCount(): number {
    return this.#sum('totalCount');
  }

  get idleCount(): number {
    return this.#sum('idleCount');
  }

  get waitingCount(): number {
    return this.#sum('waitingCount');
  }

  /** Connections past their `maxLifetimeSeconds`, across all nodes. */
  get expiredCount(): number {
    return this.#sum('expiredCount');
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
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, callback: (err: Error | null, result: pg.QueryResult<R>) => void): void;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values: unknown[] | undefined, callback: (err: Error | null, result: pg.QueryResult<R>) => void): void;
  query(arg: unknown, values?: unknown, callback?: unknown): unknown {
    const q = normalizeQuery(arg, values, callback);
    if (this.#ending) return failQuery(q.submittable, q.callback, new Error('Cannot use a pool after calling end on the pool'));
    if (q.submittable) return this.#submit(q.submittable);
    const promise = this.#run(q.arg, q.values, q.text);
    if (q.callback) {
      const cb = q.callback;
      promise.then((result) => cb(null, result), (err: Error) => cb(err));
      return undefined;
    }
    return promise;
  }

  /** Routes and runs one statement; no extra promise layer when no I/O is needed to decide. */
  #run(arg: QueryArg, values: unknown[] | undefined, text: string | undefined): Promise<pg.QueryResult> {
    const engine = this.#engine;
    if (!engine.isStarted) return engine.started().then(() => this.#run(arg, values, text));
    const scope = engine.scope();
    const kind = engine.classify(text).kind;
    const statement = kind === 'read' ? 'read' : 'other';
    const route = engine.routeSync(statement, scope);
    if (route) return this.#execute(route, arg, values, kind, scope, undefined);
    return engine.route(statement, scope).then((r) => this.#execute(r, arg, values, kind, scope, undefined));
  }

  #execute(route: Route, arg: QueryArg, values: unknown[] | undefined, kind: string, scope: Scope, excluded: Set<string> | undefined): Promise<pg.QueryResult> {
    const engine = this.#engine;
    const node = route.node;
    const read = kind === 'read';
    node.served++;
    const span = engine.traceRoute(route, kind, scope, excluded !== undefined);
    // A write opens its connection first, so that a failure to connect is known not to have written.
    const run = read || node.role !== 'primary' ? () => node.pool.query(arg as pg.QueryConfig, values) : () => writeOn(node.pool, arg, values);
    return engine.telemetry.within(span, run).then(
      (result) => {
        if (read) engine.noteRead(scope, node);
        else if (node.role === 'primary') engine.noteWrite(scope);
        engine.telemetry.end(span);
        return result;
      },
      async (err: unknown) => {
        // A failed write may still have committed (a lost connection after COMMIT): stay safe,
        // unless it never reached the server (its connection could not be opened).
        if (!read && node.role === 'primary' && !isNotSent(err)) engine.noteWrite(scope);
        if (node.role === 'replica' && excluded === undefined && (isConnectionError(err) || isRecoveryConflict(err))) {
          engine.telemetry.end(span, err, true);
          if (isConnectionError(err)) engine.monitor.reportConnectionFailure(node.name, err);
          // Once more, elsewhere (another ready replica or the primary).
          const exclude = new Set([node.name]);
          const retry: Route = engine.routeSync('read', scope, undefined, exclude) ?? (await engine.route('read', scope, undefined, exclude));
          return this.#execute(retry, arg, values, kind, scope, exclude);
        }
        engine.telemetry.end(span, err);
        throw err;
      },
    );
  }

  #submit<T extends Submittable>(submittable: T): T {
    // pg.Pool cannot run submittables; here one runs on a routed client that goes back to its
    // pool when the submittable ends (its 'end', 'error' or 'close' event, or cursor.close()).
    const client = new RoutedClient(this.#engine);
    let released = false;
    const release = (err?: unknown) => {
      if (released) return;
      released = true;
      client.release(releaseArg(err));
    };
    const emitter = submittable as unknown as Partial<EventEmitter>;
    emitter.once?.('end', () => release());
    emitter.once?.('close', () => release());
    emitter.once?.('error', (err: unknown) => release(err));
    client.query(submittable);
    return submittable;
  }

  /**
   * Checks out a client. It binds to a node lazily, on its first statement: a read goes to a
   * ready replica, `BEGIN` or a write to the primary; it stays on its node for a transaction and
   * moves to the primary when a write arrives outside one.
   */
  connect(): Promise<RoutedClient>;
  connect(callback: (err: Error | undefined, client: RoutedClient | undefined, done: (release?: unknown) => void) => void): void;
  connect(callback?: (err: Error | undefined, client: RoutedClient | undefined, done: (release?: unknown) => void) => void): Promise<RoutedClient> | void {
    if (this.#ending) {
      const err = new Error('Cannot use a pool after calling end on the pool');
      if (callback) return void process.nextTick(() => callback(err, undefined, () => {}));
      return Promise.reject(err);
    }
    const client = new RoutedClient(this.#engine);
    if (callback) return void process.nextTick(() => callback(undefined, client, (release?: unknown) => client.release(releaseArg(release))));
    return Promise.resolve(client);
  }

  /** Ends every pool and the monitor. */
  end(): Promise<void>;
  end(callback: (err?: Error) => void): void;
  end(callback?: (err?: Error) => void): Promise<void> | void {
    if (this.#ending) {
      const err = new Error('Called end on pool more than once');
      if (callback) return void callback(err);
      return Promise.reject(err);
    }
    this.#ending = true;
    const done = this.#engine.close().then(() => {
      this.#ended = true;
      this.emit('end');
    });
    if (callback) return void done.then(() => callback(), callback);
    return done;
  }

  #nodes(): NodePool[] {
    return [this.#engine.primary, ...this.#engine.replicas.values()];
  }

  #sum(key: 'totalCount' | 'idleCount' | 'waitingCount' | 'expiredCount'): number {
    return this.#nodes().reduce((total, node) => total + ((node.pool as unknown as Record<string, number>)[key] ?? 0), 0);
  }
}

/** pg.Pool#query in two steps: a failure to connect is marked as never sent. */
async function writeOn(pool: pg.Pool, arg: QueryArg, values: unknown[] | undefined): Promise<pg.QueryResult> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    markNotSent(err);
    throw err;
  }
  // A connection dying mid-query is also emitted as 'error' on the client: the query rejects with
  // it, so the event needs a listener, as pg.Pool#query gives it.
  const ignore = () => {};
  client.on('error', ignore);
  try {
    const result = await client.query(arg as pg.QueryConfig, values);
    client.release();
    return result;
  } catch (err) {
    client.release(err as Error); // as pg.Pool#query does: a connection that failed a query is not reused
    throw err;
  } finally {
    client.removeListener('error', ignore);
  }
}
