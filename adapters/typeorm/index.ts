import pg from 'pg';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import type { RoutedPool } from '../../lib/pool.js';
import type { Router } from '../../lib/router.js';

/**
 * A stand-in for the `pg` module that TypeORM loads (`driver` option): its `Pool` constructor
 * returns the router's pool, `types` and `defaults` are pg's own, and there is no `native`
 * (TypeORM would switch to pg-native through it).
 */
export interface TypeOrmPgDriver {
  Pool: new (config?: unknown) => RoutedPool;
  types: typeof pg.types;
  defaults: typeof pg.defaults;
}

/**
 * The `driver` for a TypeORM `postgres` DataSource: every pool TypeORM makes is the router's.
 * Leave TypeORM's own `replication` off — the router does the routing.
 *
 * @example
 * ```ts
 * import { DataSource, EntitySchema } from 'typeorm';
 * import type { Router } from 'pg-replica-router';
 * import { typeormDriver } from 'pg-replica-router/typeorm';
 *
 * declare const router: Router;
 * declare const Person: EntitySchema<{ id: number; name: string }>; // your entities
 * const dataSource = new DataSource({ type: 'postgres', driver: typeormDriver(router), entities: [Person] });
 * ```
 */
export function typeormDriver(router: Router): TypeOrmPgDriver {
  const pool = router.pool;
  let made = false;
  // A constructor that returns an object makes `new` evaluate to that object.
  const Pool = function RoutedPoolForTypeOrm() {
    if (made) {
      throw new ReplicaRouterError(
        ErrorCodes.INVALID_OPTION,
        'typeormDriver: TypeORM asked for a second pool; leave its `replication` option off (the router routes)',
      );
    }
    made = true;
    return pool;
  } as unknown as TypeOrmPgDriver['Pool'];
  return { Pool, types: pg.types, defaults: pg.defaults };
}
