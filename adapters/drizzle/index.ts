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
 * import { integer, pgTable, text } from 'drizzle-orm/pg-core';
 * import type { Router } from 'pg-replica-router';
 * import { replicaDrizzle } from 'pg-replica-router/drizzle';
 *
 * declare const router: Router;
 * const people = pgTable('people', { id: integer('id').primaryKey(), name: text('name').notNull() });
 *
 * const db = replicaDrizzle(router, { schema: { people } });
 * const found = await db.query.people.findMany(); // on a replica that is ready for the session
 * ```
 */
export function replicaDrizzle<TSchema extends Record<string, unknown> = Record<string, never>>(
  router: Router,
  config: DrizzleConfig<TSchema> = {},
): NodePgDatabase<TSchema> {
  return drizzle({ ...config, client: router.pool as never });
}
