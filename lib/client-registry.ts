import type pg from 'pg';

/**
 * The routed client object that stands for each pooled connection, as pg-pool hands out the same
 * `pg.Client` object for the same connection: `router.pool.connect()` returns it, and the pool's
 * events (`connect`, `acquire`, `release`, `remove`, `error`) and the `onConnect` / `verify` hooks
 * carry it. A checked-out client that moves to another node takes its object along: the object
 * then stands for the connection it moved to, and the connection it left gets a new one.
 */
export class ClientRegistry<C extends object> {
  readonly #objects = new WeakMap<pg.PoolClient, C>();

  constructor(readonly create: (raw: pg.PoolClient) => C) {}

  /** The object of `raw`, made on first sight. */
  of(raw: pg.PoolClient): C {
    let object = this.#objects.get(raw);
    if (!object) {
      object = this.create(raw);
      this.#objects.set(raw, object);
    }
    return object;
  }

  /** The object of `raw` if it has one (events of a connection never seen). */
  peek(raw: pg.PoolClient): C | undefined {
    return this.#objects.get(raw);
  }

  /** `object` now stands for `raw` (a checked-out client bound to another connection). */
  adopt(raw: pg.PoolClient, object: C): void {
    this.#objects.set(raw, object);
  }

  /** `object` left `raw` while checked out: `raw` gets a new object when it is next seen. */
  leave(raw: pg.PoolClient, object: C): void {
    if (this.#objects.get(raw) === object) this.#objects.delete(raw);
  }
}
