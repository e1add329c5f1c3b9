import { EventEmitter } from 'node:events';
import pg, { type TransactionStatus } from 'pg';
import { promised, toCallback } from './callback.js';
import type { NodePool } from './nodes.js';

/** Where a checked-out client's fields come from: its bound connection, else its primary's config. */
export interface SurfaceSource {
  /** The pooled pg client the checked-out client is bound to now, if any. */
  bound(): pg.PoolClient | undefined;
  /** The primary: the node whose config the fields show before the first statement. */
  readonly primary: NodePool;
  /** `end()` was called: nothing may run any more. */
  ending(): void;
}

/** The connection fields of a pg client that ORMs and plain pg code read. */
interface Fields {
  database?: string;
  user?: string;
  host?: string;
  port?: number;
  ssl?: pg.ClientConfig['ssl'];
  binary?: boolean;
  pipeline?: boolean;
}

/** A pg.Client configured like `node`'s pooled connections, never connected: pg's own reading of the config. */
const configured = new WeakMap<NodePool, Fields | undefined>();

function configOf(node: NodePool): pg.PoolConfig | undefined {
  const options = (node.pool as { options?: unknown }).options; // pg.Pool keeps its config there; a custom pool may not
  return typeof options === 'object' && options !== null ? (options as pg.PoolConfig) : undefined;
}

/** pg's `Promise` option of `node`'s pool: the class a pg.Client made by it returns promises of. */
export function promiseOf(node: NodePool): PromiseConstructorLike | undefined {
  return configOf(node)?.Promise;
}

function fieldsOf(source: SurfaceSource): Fields | undefined {
  const bound = source.bound();
  if (bound) return bound as unknown as Fields;
  if (!configured.has(source.primary)) {
    const config = configOf(source.primary);
    configured.set(source.primary, config && (new pg.Client(config) as unknown as Fields)); // no socket is opened
  }
  return configured.get(source.primary);
}

const sources = new WeakMap<ClientSurface, SurfaceSource>();
const overrides = new WeakMap<ClientSurface, pg.TypeOverrides>();

/** This client's type overrides, made on first use over the pool's `types` (as pg.Client does with its config's). */
function typesOf(client: ClientSurface): pg.TypeOverrides {
  let types = overrides.get(client);
  if (!types) {
    const source = sources.get(client);
    const base = source && configOf(source.primary)?.types;
    types = new pg.TypeOverrides(base);
    overrides.set(client, types);
  }
  return types;
}

/**
 * The query config to send for `arg` on whichever connection the client is bound to: with the
 * client's type overrides unless the statement brings its own `types` (as pg: the query's win),
 * and untouched when the client has none. The pooled connection itself is never changed, so
 * nothing is left on it for the next checkout.
 */
export function withClientTypes(client: ClientSurface, arg: unknown): unknown {
  const types = overrides.get(client);
  if (!types) return arg;
  if (typeof arg === 'string') return { text: arg, types };
  const config = arg as { types?: unknown };
  return config.types === undefined ? { ...config, types } : arg;
}

/**
 * A submittable about to be sent: like pg.Client, gives a result without its own types (a
 * pg-cursor's) this client's overrides; pg-query-stream has none there and pg gives it none either.
 */
export function submitWithClientTypes(client: ClientSurface, submittable: object): void {
  const types = overrides.get(client);
  const result = (submittable as { _result?: { _types?: unknown } })._result;
  if (types && result && typeof result === 'object' && result._types === undefined) result._types = types;
}

/**
 * The part of pg.Client's surface a checked-out client shares with pg.Client beyond `query` and
 * `release` (see docs/adapters.md, "The checked-out client as a pg.Client").
 *
 * - `escapeLiteral` / `escapeIdentifier`: pg's own functions.
 * - `setTypeParser` / `getTypeParser`: type overrides of this checkout, applied to every statement
 *   it runs on whichever node it is bound to (sent with each statement, never set on the pooled
 *   connection, so another checkout of that connection does not see them).
 * - `database`, `user`, `host`, `port`, `ssl`, `binary`, `pipeline`: those of the connection the
 *   client is bound to now (a replica's after a read, the primary's after a write); before its
 *   first statement, those a connection to the primary would have (read from its pool's config,
 *   undefined when a custom pool factory exposes none). Read-only.
 * - `getTransactionStatus()`: that of the connection bound now, `'I'` when none is.
 *
 * @example
 * ```ts
 * import type { Router } from 'pg-replica-router';
 *
 * declare const router: Router;
 * declare const note: string;
 *
 * const client = await router.pool.connect();
 * client.setTypeParser(20, (v) => BigInt(v)); // int8 as bigint, on replica and primary alike
 * await client.query(`select * from orders where note = ${client.escapeLiteral(note)}`);
 * console.log(client.port); // the port of the node that ran it
 * client.release();
 * ```
 */
export class ClientSurface extends EventEmitter {
  /** @internal called once by the subclass's constructor */
  protected attachSurface(source: SurfaceSource): void {
    sources.set(this, source);
  }

  #fields(): Fields | undefined {
    const source = sources.get(this);
    return source && fieldsOf(source);
  }

  /** pg's `escapeLiteral`: `str` as a quoted SQL string literal. @example `client.escapeLiteral("o'k")` → `'o''k'` */
  escapeLiteral(str: string): string {
    return pg.escapeLiteral(str);
  }

  /** pg's `escapeIdentifier`: `str` as a quoted SQL identifier. @example `client.escapeIdentifier('Order')` → `"Order"` */
  escapeIdentifier(str: string): string {
    return pg.escapeIdentifier(str);
  }

  /**
   * Overrides the parser of type `oid` (format `text` by default) for this checkout's statements,
   * on every node it runs them on. @example `client.setTypeParser(1700, parseFloat)`
   */
  setTypeParser: typeof pg.types.setTypeParser = ((oid: number, format: unknown, parser?: unknown) =>
    (typesOf(this).setTypeParser as (...args: unknown[]) => void)(oid, format, parser)) as typeof pg.types.setTypeParser;

  /** The parser this checkout uses for type `oid`: its override, else the pool's `types`, else pg's. @example `client.getTypeParser(20)('7')` */
  getTypeParser: typeof pg.types.getTypeParser = ((oid: number, format?: unknown) =>
    (typesOf(this).getTypeParser as (...args: unknown[]) => unknown)(oid, format)) as typeof pg.types.getTypeParser;

  /**
   * pg's `getTransactionStatus()` of the connection bound now: `'T'` in a transaction, `'E'` in a
   * failed one, `'I'` idle — also before the first statement and between statements when the
   * client is not bound (a checked-out client is never unconnected, so never pg's `null`).
   * @example `if (client.getTransactionStatus() === 'E') await client.query('rollback')`
   */
  getTransactionStatus(): TransactionStatus {
    const bound = sources.get(this)?.bound() as { getTransactionStatus?: () => TransactionStatus } | undefined;
    return bound?.getTransactionStatus?.() ?? 'I';
  }

  /** The database of the connection bound now (before the first statement: the primary's config). @example `client.database` */
  get database(): string | undefined {
    return this.#fields()?.database;
  }

  /** The user of the connection bound now (before the first statement: the primary's config). @example `client.user` */
  get user(): string | undefined {
    return this.#fields()?.user;
  }

  /** The host of the connection bound now (before the first statement: the primary's config). @example `client.host` */
  get host(): string | undefined {
    return this.#fields()?.host;
  }

  /** The port of the connection bound now (before the first statement: the primary's config). @example `client.port` */
  get port(): number | undefined {
    return this.#fields()?.port;
  }

  /** The `ssl` setting of the connection bound now (before the first statement: the primary's config). @example `client.ssl` */
  get ssl(): pg.ClientConfig['ssl'] | undefined {
    return this.#fields()?.ssl;
  }

  /** Whether the connection bound now asks for binary results (pg's `binary` option). @example `client.binary` */
  get binary(): boolean | undefined {
    return this.#fields()?.binary;
  }

  /** Whether the connection bound now runs in pg's pipeline mode (pg's `pipeline` option). @example `client.pipeline` */
  get pipeline(): boolean | undefined {
    return this.#fields()?.pipeline;
  }

  /**
   * Ends the connection this client is on (pg.Client#end; not meant for pooled clients): later
   * statements fail, and `release()` removes it from its pool. @example `await client.end()`
   */
  end(): Promise<void>;
  end(callback: (err?: Error) => void): void;
  end(callback?: (err?: Error) => void): Promise<void> | void {
    const source = sources.get(this);
    source?.ending();
    const raw = source?.bound();
    const ended = raw ? raw.end() : Promise.resolve();
    if (!callback) return promised(source && promiseOf(source.primary), ended);
    toCallback(ended, (err) => callback(err));
  }

  /** pg's `Connection` of the connection the client is on now (undefined when on none). @example `client.connection?.stream` */
  get connection(): unknown {
    return (sources.get(this)?.bound() as { connection?: unknown } | undefined)?.connection;
  }

  /** pg-pool reads these two internals of a client at release; the connection's own values. */
  get _ending(): boolean | undefined {
    return (sources.get(this)?.bound() as { _ending?: boolean } | undefined)?._ending;
  }

  get _queryable(): boolean | undefined {
    return (sources.get(this)?.bound() as { _queryable?: boolean } | undefined)?._queryable;
  }
}
