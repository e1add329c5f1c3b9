import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Classification } from './classifier.js';
import type { Scope } from './context.js';
import type { Engine, NodePool, Route } from './engine.js';
import type { OtelSpan } from './otel.js';
import { isConnectionError, isRecoveryConflict, normalizeQuery, type QueryArg, type Submittable } from './pg-args.js';

const CLIENT_EVENTS = ['error', 'notice', 'notification', 'end', 'drain'] as const;
const CLOSED = 'Client was closed and is not queryable';

interface Binding {
  node: NodePool;
  client: pg.PoolClient;
  forward: Map<string, (...args: unknown[]) => void>;
  /** The routing span of this binding: the client's statements on this node nest under it. */
  span: OtelSpan | undefined;
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
 */
export class RoutedClient extends EventEmitter {
  readonly #engine: Engine;
  #binding: Binding | undefined;
  #inTransaction = false;
  #transactionWrote = false;
  /** Cursors or streams still open on the bound connection. */
  #open = 0;
  #released = false;
  /** Statements run one at a time, in the order they were issued, as on a pg client. */
  #chain: Promise<unknown> = Promise.resolve();

  /** @internal */
  constructor(engine: Engine) {
    super();
    this.#engine = engine;
  }

  /** The node this client is bound to (`primary`, a replica name), or undefined before its first statement. */
  get node(): string | undefined {
    return this.#binding?.node.name;
  }

  /** Same forms as `pg.Client#query`, including submittables and callbacks. */
  query<T extends Submittable>(submittable: T): T;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, callback: (err: Error | null, result: pg.QueryResult<R>) => void): void;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values: unknown[] | undefined, callback: (err: Error | null, result: pg.QueryResult<R>) => void): void;
  query(arg: unknown, values?: unknown, callback?: unknown): unknown {
    const q = normalizeQuery(arg, values, callback);
    if (this.#released) return failQuery(q.submittable, q.callback, new Error(CLOSED));
    const run = this.#chain.then(() => this.#run(q.arg, q.values, q.text, q.submittable));
    this.#chain = run.catch(() => {});
    if (q.submittable) {
      run.catch((err: Error) => (q.submittable as unknown as { handleError?: (e: Error) => void }).handleError?.(err));
      return q.submittable;
    }
    if (q.callback) {
      const cb = q.callback;
      run.then((result) => cb(null, result as pg.QueryResult), (err: Error) => cb(err));
      return undefined;
    }
    return run;
  }

  async #run(arg: QueryArg, values: unknown[] | undefined, text: string | undefined, submittable: Submittable | undefined): Promise<unknown> {
    const engine = this.#engine;
    if (!engine.isStarted) await engine.started();
    const scope = engine.scope();
    const classification = engine.classify(text);
    let exclude: Set<string> | undefined;
    for (let attempt = 0; ; attempt++) {
      const target = await this.#target(classification, scope, exclude);
      const node = target.node;
      const binding = await this.#bind(target, classification, scope, exclude !== undefined);
      const startsTransaction = classification.kind === 'begin' || classification.kind === 'begin-read-only';
      node.served++;
      if (submittable) return this.#submit(submittable, binding, classification, scope);
      try {
        const result = await engine.telemetry.within(binding.span, () => binding.client.query(arg as pg.QueryConfig, values));
        this.#after(classification, node, scope, true);
        return result;
      } catch (err) {
        this.#after(classification, node, scope, false);
        const retryable = node.role === 'replica' && attempt === 0 && !this.#inTransaction && this.#open === 0;
        if (retryable && (isConnectionError(err) || isRecoveryConflict(err))) {
          if (isConnectionError(err)) engine.monitor.reportConnectionFailure(node.name, err);
          this.#unbind(err as Error, true); // the connection may be broken: destroy it
          exclude = new Set([node.name]);
          if (startsTransaction) this.#inTransaction = false;
          continue;
        }
        throw err;
      }
    }
  }

  /** Runs a cursor or stream; its end (or close) settles reads, writes and pinning. */
  #submit(submittable: Submittable, binding: Binding, classification: Classification, scope: Scope): Submittable {
    const engine = this.#engine;
    const node = binding.node;
    const read = classification.kind === 'read';
    this.#open++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.#open--;
      // A read's snapshot is taken once it starts; a write commits when it ends (outside a transaction).
      if (read) engine.noteRead(scope, node);
      else this.#after(classification, node, scope, true);
    };
    if (!read && node.role === 'primary') {
      if (this.#inTransaction) this.#transactionWrote = true;
      else engine.noteWrite(scope); // noted again at the end, when it has committed
    }
    // pg-cursor emits 'end' once its portal is done (read to the end, closed, or failed);
    // pg-query-stream emits 'end' or 'close'.
    const emitter = submittable as unknown as Partial<EventEmitter>;
    emitter.once?.('end', settle);
    emitter.once?.('close', settle);
    emitter.once?.('error', settle);
    engine.telemetry.within(binding.span, () => binding.client.query(submittable as never));
    if (read) engine.noteRead(scope, node);
    return submittable;
  }

  /** Where the next statement runs (with the routing decision, when one was made). */
  async #target(classification: Classification, scope: Scope, exclude: Set<string> | undefined): Promise<{ node: NodePool; route?: Route }> {
    const engine = this.#engine;
    const bound = this.#binding?.node;
    if (bound && (this.#inTransaction || this.#open > 0 || bound.role === 'primary')) return { node: bound };
    const kind = classification.kind;
    if (bound && (kind === 'commit' || kind === 'rollback' || kind === 'transaction')) return { node: bound };
    const statement = kind === 'read' || kind === 'begin-read-only' ? 'read' : 'other';
    const route = engine.routeSync(statement, scope, bound?.name, exclude) ?? (await engine.route(statement, scope, bound?.name, exclude));
    return { node: route.node, route };
  }

  async #bind(target: { node: NodePool; route?: Route }, classification: Classification, scope: Scope, retry: boolean): Promise<Binding> {
    const node = target.node;
    if (this.#released) throw new Error(CLOSED);
    if (this.#binding?.node === node) return this.#binding;
    this.#unbind();
    const span = target.route ? this.#engine.traceRoute(target.route, classification.kind, scope, retry) : undefined;
    let client: pg.PoolClient;
    try {
      client = await this.#engine.telemetry.within(span, () => node.pool.connect());
    } catch (err) {
      this.#engine.telemetry.end(span, err);
      throw err;
    }
    if (this.#released) {
      client.release(); // released while we waited for the connection
      this.#engine.telemetry.end(span);
      throw new Error(CLOSED);
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
    this.#engine.telemetry.end(binding.span, err instanceof Error ? err : undefined, retried);
    for (const [event, listener] of binding.forward) binding.client.removeListener(event, listener);
    binding.client.release(err);
  }

  /** Tracks transactions and records writes once they are committed. */
  #after(classification: Classification, node: NodePool, scope: Scope, ok: boolean): void {
    const kind = classification.kind;
    if (kind === 'begin' || kind === 'begin-read-only') {
      if (ok) {
        this.#inTransaction = true;
        this.#transactionWrote = false;
      }
      return;
    }
    if (kind === 'read' && ok) this.#engine.noteRead(scope, node);
    if (!this.#inTransaction) {
      if (node.role === 'primary' && kind === 'write') this.#engine.noteWrite(scope);
      return;
    }
    if (node.role === 'primary' && kind !== 'read') this.#transactionWrote = true;
    if (kind === 'commit' || kind === 'rollback') {
      // A failed COMMIT may still have committed (connection lost): count it as a write.
      if (kind === 'commit' && this.#transactionWrote) this.#engine.noteWrite(scope);
      this.#transactionWrote = false;
      // AND CHAIN opens the next transaction at once, on the same connection.
      if (classification.detail.endsWith('-and-chain') && ok) return;
      this.#inTransaction = false;
      // A read-only transaction on a replica is over: route the next statement afresh.
      if (node.role === 'replica' && this.#open === 0) this.#unbind();
    }
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
