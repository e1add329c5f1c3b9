import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { toCallback } from './callback.js';
import type { Classification } from './classifier.js';
import type { Dispatch, Runner, TransactionState } from './dispatch.js';
import type { NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import { markNotSent, normalizeQuery, type NormalizedQuery, type Submittable } from './pg-args.js';
import type { Scope } from './scopes.js';
import type { Telemetry } from './telemetry.js';

const CLIENT_EVENTS = ['error', 'notice', 'notification', 'end', 'drain'] as const;
const CLOSED = 'Client was closed and is not queryable';

interface Binding {
  node: NodePool;
  client: pg.PoolClient;
  forward: Map<string, (...args: unknown[]) => void>;
  /** The routing span of this binding: the client's statements on this node nest under it. */
  span: OtelSpan | undefined;
}

/** A statement of a client released before it ran: never sent (so never a write), never retried. */
function closed(): Error {
  const err = new Error(CLOSED);
  markNotSent(err);
  return err;
}

/** pg's rule for `release(arg)`: any truthy argument destroys the connection. */
export function releaseArg(arg: unknown): Error | true | undefined {
  if (!arg) return undefined;
  return arg instanceof Error ? arg : true;
}

/**
 * A checked-out client from {@link RoutedPool.connect}. It holds no connection until its first
 * statement, then binds to the node that statement routes to:
 * - a read (or `BEGIN READ ONLY`) binds to a replica ready for the session, else the primary;
 * - `BEGIN`, a write, or anything not clearly a read binds to the primary;
 * - inside a transaction, and while a cursor or stream is open, every statement stays on the
 *   bound node;
 * - outside those, a write on a replica-bound client moves it to the primary, and once on the
 *   primary it stays there (session state such as `SET` lives on that connection).
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
export class RoutedClient extends EventEmitter {
  readonly #dispatch: Dispatch;
  readonly #telemetry: Telemetry;
  #binding: Binding | undefined;
  readonly #transaction: TransactionState = { open: false, wrote: false };
  /** Cursors or streams still open on the bound connection. */
  #open = 0;
  #released = false;
  /** Statements run one at a time, in the order they were issued, as on a pg client. */
  #chain: Promise<unknown> = Promise.resolve();

  /** @internal use `router.pool.connect()` */
  constructor(dispatch: Dispatch, telemetry: Telemetry) {
    super();
    this.#dispatch = dispatch;
    this.#telemetry = telemetry;
  }

  /** How a checked-out client runs a routed statement: on the connection it is bound to (see the class). */
  static readonly #runner: Runner<RoutedClient, NormalizedQuery, unknown> = {
    transaction: (client) => client.#transaction,
    refusal: (client) => (client.#released ? new Error(CLOSED) : undefined),
    holds: (client, span) => client.#binding?.span === span,
    pinned: (client, kind) => {
      const bound = client.#binding?.node;
      if (!bound) return undefined;
      if (client.#transaction.open || client.#open > 0 || bound.role === 'primary') return bound;
      if (kind === 'commit' || kind === 'rollback' || kind === 'transaction') return bound;
      return undefined;
    },
    preferred: (client) => client.#binding?.node.name,
    needsSpan: (client, node) => client.#binding?.node !== node,
    mayRetry: (client, q) => !q.submittable && !client.#transaction.open && client.#open === 0,
    execute: (client, node, span, q, classification, scope) => client.#execute(node, span, q, classification, scope),
    abandon: (client, err) => {
      client.#unbind(releaseArg(err) ?? true, true); // the connection may be broken: destroy it
      return !client.#released;
    },
    settled: (client, node, transactionEnded) => {
      // A read-only transaction on a replica is over: route the next statement afresh.
      if (transactionEnded && node.role === 'replica' && client.#open === 0) client.#unbind();
    },
  };

  /** The node this client is bound to (`primary`, a replica name), or undefined before its first statement. */
  get node(): string | undefined {
    return this.#binding?.node.name;
  }

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
    return this.#telemetry.within(binding.span, () => binding.client.query(q.arg as pg.QueryConfig, q.values));
  }

  /** Runs a cursor or stream; its end (or close) settles reads, writes and pinning. */
  #submit(submittable: Submittable, binding: Binding, classification: Classification, scope: Scope): Submittable {
    const node = binding.node;
    this.#open++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.#open--;
      // A read's snapshot is taken once it starts (noted then, by the dispatch, and again now); a
      // write commits when it ends (outside a transaction).
      RoutedClient.#runner.settled?.(this, node, this.#dispatch.note(classification, node, scope, this.#transaction, true));
    };
    // pg-cursor emits 'end' once its portal is done (read to the end, closed, or failed);
    // pg-query-stream emits 'end' or 'close'.
    const emitter = submittable as unknown as Partial<EventEmitter>;
    emitter.once?.('end', settle);
    emitter.once?.('close', settle);
    emitter.once?.('error', settle);
    this.#telemetry.within(binding.span, () => binding.client.query(submittable as never));
    return submittable;
  }

  /** The connection to `node`, opened (under the route span `span`) if the client is not bound there yet. */
  async #bind(node: NodePool, span: OtelSpan | undefined): Promise<Binding> {
    if (this.#released) throw closed();
    if (this.#binding?.node === node) return this.#binding;
    this.#unbind();
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
    const forward = new Map<string, (...args: unknown[]) => void>();
    for (const event of CLIENT_EVENTS) {
      const listener = (...args: unknown[]) => this.emit(event, ...args);
      forward.set(event, listener);
      client.on(event, listener);
    }
    this.#binding = { node, client, forward, span };
    return this.#binding;
  }

  #unbind(err?: Error | true, retried = false): void {
    const binding = this.#binding;
    if (!binding) return;
    this.#binding = undefined;
    this.#open = 0;
    this.#telemetry.end(binding.span, err instanceof Error ? err : undefined, retried);
    for (const [event, listener] of binding.forward) binding.client.removeListener(event, listener);
    binding.client.release(err);
  }

  /**
   * Returns the connection to its node's pool. A truthy argument (an Error or `true`) destroys
   * it instead, as with pg.
   */
  release(err?: Error | boolean | unknown): void {
    if (this.#released) throw new Error('Release called on client which has already been released to the pool.');
    this.#released = true;
    this.#unbind(releaseArg(err));
  }
}

/** pg's way of failing a query that cannot run: the submittable's error, the callback, or a rejection. */
export function failQuery(submittable: Submittable | undefined, callback: ((err: Error) => void) | undefined, err: Error): unknown {
  if (submittable) {
    process.nextTick(() => (submittable as unknown as { handleError?: (e: Error) => void }).handleError?.(err));
    return submittable;
  }
  if (callback) return void process.nextTick(() => callback(err));
  return Promise.reject(err);
}
