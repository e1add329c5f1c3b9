import { createRequire } from 'node:module';
import type { Knex } from 'knex';
import type { RoutedClient } from '../../lib/client.js';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import type { Router } from '../../lib/router.js';

/** The pool Knex gets: `router.pool`'s clients, with a second `release()` ignored (see below). */
export interface KnexPool {
  connect(): Promise<RoutedClient>;
  end(): Promise<void>;
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** The part of a Knex config this adapter fills in (`connectionPool` fits Knex's `PgPoolLike`). */
export interface KnexReplicaConfig {
  /** Knex's own PostgreSQL dialect, with its query cancellation sent through the router (below). */
  client: typeof Knex.Client;
  connectionPool: KnexPool;
}

const require = createRequire(import.meta.url);

/**
 * Knex's `pg` dialect whose `cancelQuery` (`.timeout(ms, { cancel: true })`) sends
 * `pg_cancel_backend(pid)` through the router's pool, which takes it to the backend running the
 * timed-out statement (replica or primary). Knex's own sends it on a new raw connection made
 * from `connection`, which this adapter leaves out, so it would reach no server of the router.
 */
function routedDialect(router: Router): typeof Knex.Client {
  // Knex's dialect class (a peer dependency, CommonJS): not among its public exports.
  // (Knex's types declare `cancelQuery(): void`; it is called with the connection and awaited.)
  const PgDialect = require('knex/lib/dialects/postgres/index.js') as new (config: Knex.Config) => {
    cancelQuery(connection: unknown): unknown;
  };
  class RoutedPgDialect extends PgDialect {
    override async cancelQuery(connection: { processID?: number | null }): Promise<void> {
      await router.pool.query('SELECT pg_cancel_backend($1)', [connection.processID]);
    }
  }
  return RoutedPgDialect as unknown as typeof Knex.Client;
}

/**
 * A Knex (≥ 3.3) config that runs every query on the router's pool (`connectionPool`). Knex
 * acquires a client per query or transaction: reads go to a ready replica, transactions to the
 * primary, `knex.transaction({ readOnly: true })` may run on a replica; `.stream()` works, and
 * so does `.timeout(ms, { cancel: true })`: the cancel goes through the router to the backend
 * that runs the statement.
 *
 * Knex 3.3 releases the connection of a `.stream()` twice (on the stream's close and again when
 * the query settles). pg would throw on the second release — with a plain `pg.Pool` too — so the
 * clients handed to Knex ignore a second `release()`.
 *
 * @example
 * ```ts
 * import knex from 'knex';
 * import type { Router } from 'pg-replica-router';
 * import { knexConfig } from 'pg-replica-router/knex';
 *
 * declare const router: Router;
 * const db = knex(knexConfig(router));
 * ```
 */
export function knexConfig<T extends Record<string, unknown>>(router: Router, config: T = {} as T): T & KnexReplicaConfig {
  if ('connection' in config) {
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      "knexConfig: leave 'connection' out; the router's pool provides the connections",
    );
  }
  if ('searchPath' in config) {
    // Knex applies it only to connections it opens itself; with `connectionPool` it is ignored.
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      "knexConfig: 'searchPath' has no effect with a connection pool; set it per node (options: '-c search_path=…' in each pool config)",
    );
  }
  const pool = router.pool;
  const connectionPool: KnexPool = {
    async connect() {
      const client = await pool.connect();
      const release = client.release.bind(client);
      let released = false;
      client.release = (arg?: unknown) => {
        if (released) return;
        released = true;
        release(arg);
      };
      return client;
    },
    // Knex does not own the router's pool: router.close() ends it.
    end: async () => {},
    get totalCount() {
      return pool.totalCount;
    },
    get idleCount() {
      return pool.idleCount;
    },
    get waitingCount() {
      return pool.waitingCount;
    },
  };
  return { ...config, client: routedDialect(router), connectionPool };
}
