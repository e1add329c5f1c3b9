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
  client: 'pg';
  connectionPool: KnexPool;
}

/**
 * A Knex (≥ 3.3) config that runs every query on the router's pool (`connectionPool`). Knex
 * acquires a client per query or transaction: reads go to a ready replica, transactions to the
 * primary, `knex.transaction({ readOnly: true })` may run on a replica; `.stream()` works.
 *
 * Knex 3.3 releases the connection of a `.stream()` twice (on the stream's close and again when
 * the query settles). pg would throw on the second release — with a plain `pg.Pool` too — so the
 * clients handed to Knex ignore a second `release()`.
 *
 * @example
 * ```ts
 * import knex from 'knex';
 * import { knexConfig } from 'pg-replica-router/knex';
 *
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
  return { ...config, client: 'pg', connectionPool };
}
