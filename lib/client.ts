import type pg from 'pg';
import { toCallback } from './callback.js';
import { pidOf, wasTerminated } from './backends.js';
import type { Classification } from './classifier.js';
import type { Dispatch, Runner, TransactionState } from './dispatch.js';
import type { NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import { closed, CLOSED, detach, diedWith, notAnswered, openBinding, type Binding } from './binding.js';
import { ClientSurface, submitWithClientTypes, withClientTypes } from './client-surface.js';
import { submitOn } from './binding-submit.js';
import {
  failQuery,
  isConnectionError,
  isTimeout,
  markBackend,
  markNotSent,
  normalizeQuery,
  releaseArg,
  type NormalizedQuery,
  type Submittable,
} from './pg-args.js';
import type { Scope } from './scopes.js';
import type { Telemetry } from './telemetry.js';
import type { ClientRegistry } from './client-registry.js';
import { RevealedConnections } from './revealed.js';

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
  readonly #registry: ClientRegistry<RoutedClient> | undefined;
  #binding: Binding | undefined;
  /** The binding is the connection checked out by `connect()`: the first statement may still move. */
  #provisional = false;
  /** Inside a hook (`onConnect`, `verify`, a 'connect' listener): statements go straight to this connection. */
  #hook: pg.PoolClient | undefined;
  #transaction: TransactionState = { open: false, wrote: false };
  #released: boolean;
  /** Statements run one at a time, in the order they were issued, as on a pg client. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Connections whose pid this client revealed: held until release (see {@link processID}). */
  readonly #revealed: RevealedConnections;

  /**
   * @internal use `router.pool.connect()`. With a `home` the object stands for that pooled
   * connection (in `registry`) and waits, released, for {@link RoutedClient.checkOut}.
   */
  constructor(dispatch: Dispatch, telemetry: Telemetry, registry?: ClientRegistry<RoutedClient>, home?: pg.PoolClient) {
    super();
    this.#dispatch = dispatch;
    this.#telemetry = telemetry;
    this.#registry = registry;
    this.#home = home;
    this.#released = home !== undefined;
    if (home) this.on('error', this.#idleError);
    this.#revealed = new RevealedConnections(dispatch.planner.nodes.backends, () => this.#binding);
    const ending = () => void (this.#ended = true);
    this.attachSurface({ bound: () => this.#connection(), ending, primary: dispatch.planner.nodes.primary });
  }

  /**
   * @internal A checkout: `client` (the object of `raw`, released) now holds `raw`, a connection
   * of `node` just checked out; its first statement may still move it (see the class).
   */
  static checkOut(client: RoutedClient, node: NodePool, raw: pg.PoolClient): void {
    client.removeListener('error', client.#idleError);
    // pg-pool gives each checkout a release() of its own: one a caller put on the object goes.
    if (Object.hasOwn(client, 'release')) delete (client as { release?: unknown }).release;
    client.#released = false;
    client.#ended = false;
    client.#home = raw;
    client.#transaction = { open: false, wrote: false };
    client.#chain = Promise.resolve();
    client.#binding = client.#attach(node, raw, undefined);
    client.#provisional = true;
  }

  /** @internal While a hook runs with this object for `raw` (undefined: it ended), statements go straight to `raw`. */
  static hook(client: RoutedClient, raw: pg.PoolClient | undefined): void {
    client.#hook = raw;
  }

  /** Released, the object of an idle connection: an 'error' emitted on it is that connection's (pg-pool removes it). */
  readonly #idleError = (err: unknown) => {
    if (this.#released) this.#connection()?.emit('error', err);
  };
  /** The pooled connection this object stands for (see `ClientRegistry`), if any. */
  #home: pg.PoolClient | undefined;
  /** `end()` was called: nothing runs any more, as on pg. */
  #ended = false;

  /** The connection statements and fields refer to now: a hook's, the bound one, else the one it stands for. */
  #connection(): pg.PoolClient | undefined {
    const home = this.#home;
    return this.#hook ?? this.#binding?.client ?? (home && this.#registry?.peek(home) === this ? home : undefined);
  }

  /** How a checked-out client runs a routed statement: on the connection it is bound to (see the class). */
  static readonly #runner: Runner<RoutedClient, NormalizedQuery, unknown> = {
    transaction: (client) => client.#transaction,
    refusal: (client) => (client.#released || client.#ended ? new Error(CLOSED) : undefined),
    holds: (client, span) => client.#binding?.span === span,
    pinned: (client, kind) => {
      client.#leaveDead();
      const bound = client.#binding?.node;
      if (!bound) return undefined;
      if (client.#transaction.open || client.#openCount > 0) return bound;
      if (bound.role === 'primary' && !client.#provisional) return bound;
      if (kind === 'commit' || kind === 'rollback' || kind === 'transaction') return bound;
      return undefined;
    },
    // Its replica, to stay there; never the primary (a provisional one), which would override the
    // session's sticky replica (monotonic reads) in the planner.
    preferred: (client) => (client.#binding?.node.role === 'replica' ? client.#binding.node.name : undefined),
    needsSpan: (client, node) => client.#provisional || client.#binding?.node !== node,
    valuesOf: (_client, q) => (q.submittable ? false : q.values),
    mayRetry: (client, q) => !q.submittable && !client.#transaction.open && client.#openCount === 0,
    execute: (client, node, span, q, classification, scope) => client.#execute(node, span, q, classification, scope),
    abandon: (client, err) => {
      const bound = client.#binding?.client; // terminated through the router: what it ran must not run again
      const terminated = bound !== undefined && wasTerminated(bound);
      client.#unbind(releaseArg(err) ?? true, true); // the connection may be broken: destroy it
      return !client.#released && !terminated;
    },
    settled: (client, node, transactionEnded) => {
      // A read-only transaction on a replica is over: route the next statement afresh.
      if (transactionEnded && node.role === 'replica' && client.#openCount === 0) client.#unbind();
    },
  };

  /** Cursors or streams still open on the bound connection. */
  get #openCount(): number { return this.#binding?.open ?? 0; } // prettier-ignore

  /**
   * The pid of the backend running this client's statements now (at first, the connection checked out),
   * which changes when the client moves. A connection whose pid was revealed (here or by `select
   * pg_backend_pid()`) stays with the client until release, and `pg_cancel_backend(pid)` or
   * `pg_terminate_backend(pid)` through the router reach the backend the client runs on now.
   * @example
   * ```ts
   * const running = client.query('select pg_sleep(10)');
   * await router.pool.query('select pg_cancel_backend($1)', [client.processID]); // 57014 on `running`
   * ```
   */
  get processID(): number | null {
    if (this.#hook) return pidOf(this.#hook) ?? null;
    const binding = this.#binding;
    const pid = binding && pidOf(binding.client);
    if (!binding || !pid) return null;
    this.#reveal(binding);
    return pid;
  }

  #reveal(binding: Binding): void {
    if (!this.#released) this.#revealed.reveal(binding);
  }

  /** The node this client is bound to (`primary`, a replica name); undefined when released or between nodes. */
  get node(): string | undefined { return this.#binding?.node.name; } // prettier-ignore

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
    if (this.#hook) return (this.#hook.query as (...args: unknown[]) => unknown)(arg, values, callback); // a hook's statement: as on pg
    const q = normalizeQuery(arg, values, callback);
    if (this.#released) return failQuery(q.submittable, q.callback, new Error(CLOSED));
    const run = this.#chain.then(() => this.#dispatch.run(q.text, this, q, RoutedClient.#runner));
    this.#chain = run.catch(() => {});
    if (q.submittable) {
      run.catch((err: Error) => (q.submittable as unknown as { handleError?: (e: Error) => void }).handleError?.(err));
      return q.submittable;
    }
    const cb = q.callback;
    if (!cb) return run;
    return toCallback(run, (err, result) => (err ? cb(err) : cb(null, result as pg.QueryResult)));
  }

  async #execute(
    node: NodePool,
    span: OtelSpan | undefined,
    q: NormalizedQuery,
    classification: Classification,
    scope: Scope,
  ): Promise<unknown> {
    const binding = await this.#bind(node, span);
    if (q.submittable) return this.#submit(q.submittable, binding, classification, scope);
    try {
      const arg = withClientTypes(this, q.arg) as pg.QueryConfig; // the client's type overrides, if any
      const result = await this.#telemetry.within(binding.span, () => binding.client.query(arg, q.values));
      if (classification.detail === 'backend-pid') this.#reveal(binding);
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
      lost: (err) => this.#lost(binding, err),
    });
  }

  /** The connection to `node`, opened (under the route span `span`) if the client is not bound there yet. */
  async #bind(node: NodePool, span: OtelSpan | undefined): Promise<Binding> {
    if (this.#released) throw closed();
    const provisional = this.#provisional;
    this.#provisional = false;
    if (this.#binding?.node === node) {
      if (this.#binding.stuck) throw notAnswered(this.#binding.stuck);
      if (provisional) this.#binding.span = span; // the connection checked out for it: its span from now on
      return this.#binding;
    }
    this.#unbind();
    const held = this.#revealed.usable(node);
    if (held) {
      this.#standFor(held.client);
      return (this.#binding = Object.assign(held, { span })); // back on the connection whose pid it revealed
    }
    let client: pg.PoolClient;
    try {
      client = await this.#telemetry.within(span, () => node.pool.connect());
    } catch (err) {
      markNotSent(err); // nothing was sent on a connection that never opened
      throw err;
    }
    if (this.#released) {
      client.release(); // released while we waited for the connection
      throw closed();
    }
    this.#standFor(client);
    return (this.#binding = this.#attach(node, client, span));
  }

  /** This object stands for `raw` now (see `ClientRegistry`). */
  #standFor(raw: pg.PoolClient): void {
    this.#registry?.adopt(raw, this);
    this.#home = raw;
  }

  #attach(node: NodePool, client: pg.PoolClient, span: OtelSpan | undefined): Binding {
    const binding = openBinding(node, client, span, {
      lost: (err) => this.#lost(binding, err),
      // The statements, cursors and streams on the connection get the error: an unheard 'error' must not crash the process.
      emit: (event, args) => (event === 'error' && this.listenerCount('error') === 0) || this.emit(event, ...args),
    });
    return binding;
  }

  /**
   * The bound connection died (`err` is the first sign; none when it just ended): report its node
   * if that is a connection failure, and leave a replica outside a transaction.
   */
  #lost(binding: Binding, err: Error | undefined): void {
    if (binding.lost) return; // the 'end' after an 'error' says nothing new
    binding.lost = true;
    binding.loss.lose(err ?? new Error('Connection ended'));
    if (err && isConnectionError(err) && !wasTerminated(binding.client))
      this.#dispatch.monitor.reportConnectionFailure(binding.node.name, err);
    binding.lostWith = err;
  }

  /**
   * Before a statement: a dead connection on a replica outside a transaction holds nothing the
   * statement needs, nor does one no statement ran on yet: it goes, and the statement routes
   * afresh. In a transaction, or on the primary where session state lives, it stays bound, so
   * that nothing runs outside what it held. (Until then it stays checked out, as on pg.)
   */
  #leaveDead(): void {
    const binding = this.#binding;
    if (!binding?.lost || this.#transaction.open || !(binding.node.role === 'replica' || this.#provisional)) return;
    this.#unbind(binding.lostWith ?? true);
  }

  #unbind(err?: Error | true, retried = false): void {
    const binding = this.#binding;
    if (!binding) return;
    this.#binding = undefined;
    this.#provisional = false;
    if (!this.#released) this.#registry?.leave(binding.client, this); // moving on: the connection left gets its own object
    this.#telemetry.end(binding.span, err instanceof Error ? err : undefined, retried);
    binding.span = undefined;
    // A connection whose pid was revealed stays with this client until release (unless broken).
    if (!err && !this.#released && this.#revealed.has(binding) && !binding.lost && !binding.stuck) return;
    this.#drop(binding, err ?? binding.stuck);
  }

  /** Gives a connection back to its pool (`err`: destroys it), forgetting a pid it revealed. */
  #drop(binding: Binding, err: Error | true | undefined): void {
    this.#revealed.forget(binding);
    detach(binding);
    binding.client.release(err);
    if (err) binding.loss.lose(err instanceof Error ? err : new Error('Connection destroyed')); // destroyed: nothing answers a close now
  }

  /**
   * Returns the connection to its node's pool. A truthy argument (an Error or `true`) destroys
   * it instead, as with pg.
   */
  release(err?: Error | boolean | unknown): void {
    if (this.#released) throw new Error('Release called on client which has already been released to the pool.');
    this.#released = true;
    const arg = releaseArg(err);
    if (arg || !this.#binding) this.#home = undefined; // destroyed, or it stood for none at release
    this.#unbind(arg);
    for (const binding of this.#revealed.all()) this.#drop(binding, binding.stuck ?? (binding.lost || undefined));
    if (this.#home) this.on('error', this.#idleError);
  }
}
