import { PostgresDialect, type PostgresDialectConfig } from 'kysely';
import type { Router } from '../../lib/router.js';

/**
 * A Kysely dialect over the router's pool. Kysely checks out a client per query: single reads go
 * to a ready replica, `BEGIN` (and `db.transaction()`) to the primary, and
 * `db.transaction().setAccessMode('read only')` may run on a replica.
 *
 * @example
 * ```ts
 * import { Kysely } from 'kysely';
 * import Cursor from 'pg-cursor';
 * import type { Router } from 'pg-replica-router';
 * import { kyselyDialect } from 'pg-replica-router/kysely';
 *
 * interface Database {
 *   people: { id: number; name: string };
 * }
 * declare const router: Router;
 * const db = new Kysely<Database>({ dialect: kyselyDialect(router, { cursor: Cursor }) });
 * ```
 */
export function kyselyDialect(router: Router, config: Omit<PostgresDialectConfig, 'pool'> = {}): PostgresDialect {
  return new PostgresDialect({ ...config, pool: router.pool as unknown as PostgresDialectConfig['pool'] });
}
