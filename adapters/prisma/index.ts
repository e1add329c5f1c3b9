import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import type { Router } from '../../lib/router.js';

/**
 * A Prisma 7 driver adapter (`@prisma/adapter-pg`) over the router's pool. Model reads go to a
 * ready replica, writes and interactive transactions (`$transaction(async (tx) => …)`) to the
 * primary. The router's pool is a `pg.Pool` subclass, which adapter-pg requires.
 *
 * @example
 * ```ts
 * import { PrismaClient } from './generated/client.js';
 * import { prismaAdapter } from 'pg-replica-router/prisma';
 *
 * const prisma = new PrismaClient({ adapter: prismaAdapter(router) });
 * ```
 */
export function prismaAdapter(router: Router, options?: ConstructorParameters<typeof PrismaPg>[1]): PrismaPg {
  return new PrismaPg(router.pool as unknown as pg.Pool, options);
}
