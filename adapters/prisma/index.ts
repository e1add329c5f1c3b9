import { PrismaPg } from '@prisma/adapter-pg';
import { createRequire } from 'node:module';
import type pg from 'pg';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import type { Router } from '../../lib/router.js';

/**
 * A Prisma 7 driver adapter (`@prisma/adapter-pg`) over the router's pool. Model reads go to a
 * ready replica, writes and interactive transactions (`$transaction(async (tx) => …)`) to the
 * primary. The router's pool is a `pg.Pool` subclass, which adapter-pg requires.
 *
 * @throws ReplicaRouterError `ERR_PGRR_INVALID_OPTION` when adapter-pg has its own copy of `pg`
 *   (a different version than the application's): it would not recognise the router's pool as a
 *   pool and would silently connect on its own.
 * @example
 * ```ts nocheck
 * import type { Router } from 'pg-replica-router';
 * import { prismaAdapter } from 'pg-replica-router/prisma';
 * import { PrismaClient } from './generated/client.js'; // generated from your schema (generator "prisma-client")
 *
 * declare const router: Router;
 * const prisma = new PrismaClient({ adapter: prismaAdapter(router) });
 * ```
 */
export function prismaAdapter(router: Router, options?: ConstructorParameters<typeof PrismaPg>[1]): PrismaPg {
  const theirs = createRequire(createRequire(import.meta.url).resolve('@prisma/adapter-pg'))('pg') as typeof pg;
  if (!(router.pool instanceof theirs.Pool)) {
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      'prismaAdapter: @prisma/adapter-pg uses another copy of pg than the application; install one pg version (npm dedupe, pg ^8.16.3)',
    );
  }
  return new PrismaPg(router.pool as unknown as pg.Pool, options);
}
