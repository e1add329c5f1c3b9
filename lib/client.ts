import type pg from 'pg';
import { promised, toCallback } from './callback.js';
import { wasTerminated } from './backends.js';
import type { Classification } from './classifier.js';
import type { Dispatch, Runner, TransactionState } from './dispatch.js';
import type { NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import { CLOSED, type Binding } from './binding.js';
import { ClientSurface, promiseOf, submitWithClientTypes, withClientTypes } from './client-surface.js';
import { submitOn } from './binding-submit.js';
import { ClientConnection } from './client-connection.js';
import { failQuery, isTimeout, markBackend, normalizeQuery, releaseArg, type NormalizedQuery, type Submittable } from './pg-args.js';
import type { Scope } from './scopes.js';
import type { Telemetry } from './telemetry.js';
import type { ClientRegistry } from './client-registry.js';

/**
 * A checked-out client from {@link RoutedPool.connect}: the same object for the same pooled
 * connection, holding the connection checked out on the node the session would read from. Its
 * first statement may move it; then:
 * - a read (or `BEGIN READ ONLY`) runs on a replica ready for the session, else the primary;
 * - `BEGIN`, a write, or anything not clearly a read runs on the primary;
 * - inside a transaction, and while a cursor or stream is open, every statement stays on its node;
 * - outside those, a write on a replica moves it to the primary, and once a statement ran on the
 *   primary it stays there (session state such as `SET` lives on that connection).
 * When it moves, the object goes with it; the connection it left gets an object of its own.
 *
 * A connection that dies fails what runs on it and is reported to the monitor when it is a
 * connection failure. On a replica outside a transaction the next statement routes afresh; in a
 * transaction or on the primary later statements fail (as on pg) until release destroys that
 * connection. 'error' is emitted only when heard: unlike pg, an unheard one does not crash the
 * process. A statement whose answer timed out leaves its connection unusable (later statements
 * fail with `ERR_PGRR_NODE_TIMEOUT`) and release destroys it. More of pg.Client: {@link ClientSurface}.
 *
 * @example
 * ```ts
 * import type { Router } from 'pg-replica-router';
 *
 * declare const router: Router;
 *
 * const client = await router.pool.connect();
 * try {
 *   await client.query('begin read only'); // may run on a replica ready for the session
 *   const { rows } = await client.query('select count(*) from orders');
 *   await client.query('commit');
 * } finally {
 *   client.release();
 * }
 * ```
 */
export class RoutedClient extends ClientSurface {
  readonly #dispatch: Dispatch;
  readonly #telemetry: Telemetry;
  /** Which pooled connection it is on: bound, stood for, a hook's, revealed ones; release. */
  readonly #conn: ClientConnection<RoutedClient>;
  #transaction: TransactionState = { open: false, wrote: false };
  /** Statements run one at a time, in the order they were issued, as on a pg client. */
  #chain: Promise<unknown> = Promise.resolve();
  /** pg's `Promise` option (the pool's): what `query()` returns. */
  readonly #Promise: PromiseConstructorLike | undefined;
  /** `end()` was called: nothing runs any more, as on pg. */
  #ended = false;

  /**
   * @internal use `router.pool.connect()`. With a `home` the object stands for that pooled
   * connection (in `registry`) and waits, released, for {@link RoutedClient.checkOut}.
   */
  constructor(dispatch: Dispatch, telemetry: Telemetry, registry?: ClientRegistry<RoutedClient>, home?: pg.PoolClient) {
    super();
    this.#dispatch = dispatch;
    this.#telemetry = telemetry;
    const { monitor, planner } = dispatch;
    this.#conn = new ClientConnection(this, { telemetry, monitor, backends: planner.nodes.backends, registry }, home);
    this.#Promise = promiseOf(planner.nodes.primary);
    const ending = () => void (this.#ended = true);
    this.attachSurface({ bound: () => this.#conn.current(), ending, primary: planner.nodes.primary });
  }

  /**
   * @internal A checkout: `client` (the object of `raw`, released) now holds `raw`, a connection
   * of `node` just checked out; its first statement may still move it (see the class).
   */
  static checkOut(client: RoutedClient, node: NodePool, raw: pg.PoolClient): void {
    // pg-pool gives each checkout a release() of its own: one a caller put on the object goes.
    if (Object.hasOwn(client, 'release')) delete (client as { release?: unknown }).release;
    client.#ended = false;
    client.#transaction = { open: false, wrote: false };
    client.#chain = Promise.resolve();
    client.#conn.checkOut(node, raw);
  }

  /** @internal While a hook runs with this object for `raw` (undefined: it ended), statements go straight to `raw`. */
  static hook(client: RoutedClient, raw: pg.PoolClient | undefined): void {
    client.#conn.hook = raw;
  }

  /** How a checked-out client runs a routed statement: on the connection it is bound to (see the class). */
  static readonly #runner: Runner<RoutedClient, NormalizedQuery, unknown> = {
    transaction: (client) => client.#transaction,
    refusal: (client) => (client.#conn.released || client.#ended ? new Error(CLOSED) : undefined),
    holds: (client, span) => client.#conn.binding?.span === span,
    pinned: (client, kind) => {
      client.#conn.leaveDead(client.#transaction.open);
      const bound = client.#conn.binding?.node;
      if (!bound) return undefined;
      if (client.#transaction.open || client.#openCount > 0) return bound;
      if (bound.role === 'primary' && !client.#conn.provisional) return bound;
      if (kind === 'commit' || kind === 'rollback' || kind === 'transaction') return bound;
      return undefined;
    },
    // Its replica, to stay there; never the primary (a provisional one), which would override the
    // session's sticky replica (monotonic reads) in the planner.
    preferred: (client) => (client.#conn.binding?.node.role === 'replica' ? client.#conn.binding.node.name : undefined),
    needsSpan: (client, node) => client.#conn.provisional || client.#conn.binding?.node !== node,
    valuesOf: (_client, q) => (q.submittable ? false : q.values),
    beforeStart: false,
    mayRetry: (client, q) => !q.submittable && !client.#transaction.open && client.#openCount === 0,
    execute: (client, node, span, q, classification, scope) => client.#execute(node, span, q, classification, scope),
    abandon: (client, err) => {
      const bound = client.#conn.binding?.client; // terminated through the router: what it ran must not run again
      const terminated = bound !== undefined && wasTerminated(bound);
      client.#conn.unbind(releaseArg(err) ?? true, true); // the connection may be broken: destroy it
      return !client.#conn.released && !terminated;
    },
    settled: (client, node, transactionEnded) => {
      // A read-only transaction on a replica is over: route the next statement afresh.
      if (transactionEnded && node.role === 'replica' && client.#openCount === 0) client.#conn.unbind();
    },
  };

  /** Cursors or streams still open on the bound connection. */
  get #openCount(): number { return this.#conn.binding?.open ?? 0; } // prettier-ignore

  /**
   * The pid of the backend running this client's statements now (at first, the connection checked out),
   * which changes when the client moves. A connection whose pid was revealed (here or by `select
   * pg_backend_pid()`) stays with the client until release, and `pg_cancel_backend(pid)` or
   * `pg_terminate_backend(pid)` through the router reach the backend the client runs on now.
   * @example
   * ```ts
   * import type { Router } from 'pg-replica-router';
   *
   * declare const router: Router;
   *
   * const client = await router.pool.connect();
   * const running = client.query('select pg_sleep(10)');
   * await router.pool.query('select pg_cancel_backend($1)', [client.processID]); // 57014 on `running`
   * await running.catch((err: { code?: string }) => console.log(err.code)); // '57014'
   * client.release();
   * ```
   */
  get processID(): number | null {
    return this.#conn.pid();
  }

  /** The node this client is bound to (`primary`, a replica name); undefined when released or between nodes. */
  get node(): string | undefined { return this.#conn.binding?.node.name; } // prettier-ignore

  /** Same forms as `pg.Client#query`, including submittables and callbacks. */
  query<T extends Submittable>(submittable: T): T;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    callback: (err: Error | null, result: pg.QueryResult<R>) => void,
  ): void;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values: unknown[] | undefined,
    callback: (err: Error | null, result: pg.QueryResult<R>) => void,
  ): void;
  query(arg: unknown, values?: unknown, callback?: unknown): unknown {
    const hook = this.#conn.hook;
    if (hook) return (hook.query as (...args: unknown[]) => unknown)(arg, values, callback); // a hook's statement: as on pg
    const q = normalizeQuery(arg, values, callback);
    if (this.#conn.released) return failQuery(q.submittable, q.callback, new Error(CLOSED), this.#Promise);
    const run = this.#chain.then(() => this.#dispatch.run(q.text, this, q, RoutedClient.#runner));
    this.#chain = run.catch(() => {});
    if (q.submittable) {
      run.catch((err: Error) => (q.submittable as unknown as { handleError?: (e: Error) => void }).handleError?.(err));
      return q.submittable;
    }
    const cb = q.callback;
    if (!cb) return promised(this.#Promise, run);
    return toCallback(run, (err, result) => (err ? cb(err) : cb(null, result as pg.QueryResult)));
  }

  async #execute(
    node: NodePool,
    span: OtelSpan | undefined,
    q: NormalizedQuery,
    classification: Classification,
    scope: Scope,
  ): Promise<unknown> {
    const binding = await this.#conn.bind(node, span);
    if (q.submittable) return this.#submit(q.submittable, binding, classification, scope);
    try {
      const arg = withClientTypes(this, q.arg) as pg.QueryConfig; // the client's type overrides, if any
      const result = await this.#telemetry.within(binding.span, () => binding.client.query(arg, q.values));
      if (classification.detail === 'backend-pid') this.#conn.reveal(binding);
      return result;
    } catch (err) {
      markBackend(err, binding.client);
      if (isTimeout(err)) binding.stuck ??= err; // pg keeps the statement on it: nothing more goes there
      throw err;
    }
  }

  /** Runs a cursor or stream; its end (or close) settles reads, writes and pinning. */
  #submit(submittable: Submittable, binding: Binding, classification: Classification, scope: Scope): Submittable {
    const node = binding.node;
    submitWithClientTypes(this, submittable);
    return submitOn(binding, submittable, this.#telemetry, {
      // A read's snapshot is taken once it starts (noted then, by the dispatch, and again now); a
      // write commits when it ends (outside a transaction).
      settle: () => RoutedClient.#runner.settled?.(this, node, this.#dispatch.note(classification, node, scope, this.#transaction, true)),
      lost: (err) => this.#conn.lost(binding, err),
    });
  }

  /**
   * Returns the connection to its node's pool. A truthy argument (an Error or `true`) destroys
   * it instead, as with pg.
   */
  release(err?: Error | boolean | unknown): void {
    this.#conn.release(err);
  }
}
