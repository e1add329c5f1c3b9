import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { DrizzleConfig } from 'drizzle-orm';
import type { Router } from '../../lib/router.js';

/**
 * A Drizzle database over the router's pool (`drizzle-orm/node-postgres`). Statements go through
 * `router.pool.query` with their config objects untouched (named statements, `rowMode: 'array'`,
 * custom type parsers); `db.transaction()` checks out a client, bound to the primary by `BEGIN`.
 *
 * @example
 * ```ts
 * import { replicaDrizzle } from 'pg-replica-router/drizzle';
 * import * as schema from './schema.js';
 *
 * const db = replicaDrizzle(router, { schema });
 * ```
 */
export function replicaDrizzle<TSchema extends Record<string, unknown> = Record<string, never>>(
  router: Router,
  config: DrizzleConfig<TSchema> = {},
): NodePgDatabase<TSchema> {
  return drizzle({ ...config, client: router.pool as never });
}
