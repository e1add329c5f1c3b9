import type { Consistency } from './consistency.js';
import { isConsistency } from './consistency.js';
import { Engine } from './engine.js';
import { ErrorCodes, ReplicaRouterError } from './errors.js';
import { formatLsn } from './lsn.js';
import { resolveRouterOptions, type ReplicaConfig, type RouterOptions } from './options.js';
import { RoutedPool } from './pool.js';
import { runInScope, withLevel } from './scopes.js';
import type { TokenRejection } from './token.js';
import type { Counters } from './counters.js';
import { registerEngine } from './internal.js';
import { runDoctor, type DoctorOptions, type DoctorReport } from './doctor/index.js';

/** One node as {@link Router.topology} reports it. */
export interface TopologyNode {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  /**
   * `up`, `down`, `not-replica` (a replica that left recovery: out of rotation), `other-history`
   * (a replica on another WAL history than the primary: out of rotation), `unknown`.
   */
  readonly status: 'unknown' | 'up' | 'down' | 'not-replica' | 'other-history';
  /** Replica: last known `pg_last_wal_replay_lsn()`; primary: `pg_current_wal_insert_lsn()`. */
  readonly lsn: string | undefined;
  readonly lagBytes: number | undefined;
  /** Replica: replay lag in ms as of the last sample (see docs/consistency-model.md, "The monitor"). */
  readonly lagMs: number | undefined;
  /** Statements this router sent to the node. */
  readonly served: number;
  readonly lastError: string | undefined;
}

export interface Topology {
  readonly nodes: readonly TopologyNode[];
  /**
   * The position store behind its circuit breaker: `state` (`closed` = healthy, `open` = calls
   * fail at once, `half-open` = one trial call allowed), how many calls timed out, failed or
   * were not made, and `losses`: signs from the store that it may have lost acknowledged
   * positions (`LsnStore.onLoss`: for `redisStore()`, its first use, a closed connection, a
   * changed `run_id` or `master_replid`).
   */
  readonly store: Readonly<{
    state: 'closed' | 'open' | 'half-open';
    timeouts: number;
    errors: number;
    shortCircuits: number;
    opened: number;
    recovered: number;
    losses: number;
  }>;
  /**
   * `positionReads`: reads of the primary's position (after writes, or to cover a move);
   * `liveChecks`: live replay-position checks of replicas; `storeReads`/`storeWrites`/`storeErrors`;
   * `positionErrors`: a scope's position could not be read at its end (primary unreachable);
   * `corruptPositions` / `foreignPositions`: stored values that could not be decoded, or belong to
   * another PostgreSQL system (both treated as the current primary position); `tokensAccepted` and
   * `tokensRejected` by cause (`malformed`, `oversized`, `forged`, `version`, `foreign`);
   * `cookielessClients`: requests with a credential but no session cookie and no session key
   * (clients that keep no cookies; see the Express middleware's `session` option);
   * `clientLevels`: requests whose client asked for a level, `honoured` or `refused` (the HTTP
   * adapters' `clientLevels` option).
   */
  readonly counters: Readonly<Omit<Counters, 'tokensRejected' | 'clientLevels'>> & {
    readonly tokensRejected: Readonly<Record<TokenRejection, number>>;
    readonly clientLevels: Readonly<Counters['clientLevels']>;
  };
}

/** What {@link createRouter} returns. */
export interface Router {
  /** A `pg.Pool`-compatible pool for ORMs and plain pg code. */
  readonly pool: RoutedPool;
  /** Same as `router.pool.query`. */
  readonly query: RoutedPool['query'];
  /**
   * Runs `fn` as session `key` (a user, an API token, a job): the session's stored position is
   * loaded on its first routable read, and its new position stored when `fn` ends.
   *
   * @example
   * ```ts
   * import type { Router } from 'pg-replica-router';
   *
   * declare const router: Router;
   * declare const userId: string;
   * declare const bio: string;
   *
   * await router.withSession(`user:${userId}`, async () => {
   *   await router.query('update profiles set bio = $1 where user_id = $2', [bio, userId]);
   * });
   * // later, in another request of the same user: sees the new bio, wherever it reads
   * await router.withSession(`user:${userId}`, () => router.query('select bio from profiles where user_id = $1', [userId]));
   * ```
   */
  withSession<T>(key: string, fn: () => Promise<T> | T): Promise<T>;
  /**
   * Runs `fn` with another consistency level (same session). `'primary'` forces every
   * statement inside to the primary.
   *
   * @example
   * ```ts
   * import type { Router } from 'pg-replica-router';
   *
   * declare const router: Router;
   * declare const id: number;
   *
   * const balance = await router.withConsistency('primary', () => router.query('select balance from accounts where id = $1', [id]));
   * ```
   */
  withConsistency<T>(level: Consistency, fn: () => Promise<T> | T): Promise<T>;
  /**
   * A signed token carrying the current session's position (its writes, and what its reads
   * observed). Hand it to another service or a background job; `withToken` there reads at least
   * as new. Needs `tokenSecret`.
   *
   * @example
   * ```ts
   * import type { Router } from 'pg-replica-router';
   *
   * declare const router: Router;
   * declare const queue: { add(name: string, data: { orderId: number; consistency: string }): Promise<unknown> };
   * declare const orderId: number;
   *
   * await queue.add('send-receipt', { orderId, consistency: await router.currentToken() });
   * ```
   */
  currentToken(): Promise<string>;
  /**
   * Runs `fn` so that its reads observe at least the token's position (merged, by maximum, into
   * the current session, or a fresh one outside any session). A malformed, forged, oversized or
   * foreign token is ignored and counted, never thrown.
   *
   * @example
   * ```ts
   * import type { Router } from 'pg-replica-router';
   *
   * declare const router: Router;
   * declare const worker: { process(name: string, work: (job: { data: { orderId: number; consistency: string } }) => Promise<void>): void };
   * declare function sendReceipt(orderId: number): Promise<void>;
   *
   * worker.process('send-receipt', (job) =>
   *   router.withToken(job.data.consistency, () => sendReceipt(job.data.orderId)));
   * ```
   */
  withToken<T>(token: string | undefined, fn: () => Promise<T> | T): Promise<T>;
  /**
   * Replaces the replica list at run time (scaling read replicas up or down), checked as in
   * `createRouter()`. A replica no longer listed, or listed with other settings, leaves rotation
   * at once; its statements in flight finish on it, then its pool ends. A new one is polled and
   * serves reads once the monitor has seen it up, as at start. Resolves when both are done;
   * changes are made one after another. Sessions that read on a removed replica are covered with
   * a primary position before their next read on another (as when a replica goes down).
   *
   * @example
   * ```ts
   * import type { Router } from 'pg-replica-router';
   *
   * declare const router: Router;
   *
   * await router.setReplicas([
   *   { name: 'r1', connectionString: process.env.REPLICA1_URL },
   *   { name: 'r3', connectionString: process.env.REPLICA3_URL }, // r2 is drained and dropped
   * ]);
   * ```
   */
  setReplicas(replicas: ReplicaConfig[]): Promise<void>;
  /** The monitor's current view of every node. */
  topology(): Topology;
  /**
   * Checks the configuration against the real servers and says what routing does and why: each
   * node reachable, in its role, of the primary's cluster, one server per address (not a load
   * balancer), streaming and its lag, the role's privileges and what they change, clock skew, a
   * pooler in front; the store (shared? can it evict or forget?) and the token secret's strength.
   * Waits for the monitor's first poll of every node. `report.ok` is false when a finding is a
   * `problem`. The CLI runs the same checks: `npx pg-replica-router doctor`.
   *
   * @example
   * ```ts
   * import { createRouter, formatDoctorReport } from 'pg-replica-router';
   *
   * const router = createRouter({ primary: { connectionString: 'postgres://app@db1/app' } });
   * const report = await router.doctor();
   * console.log(formatDoctorReport(report));
   * if (!report.ok) process.exitCode = 1;
   * await router.close();
   * ```
   */
  doctor(options?: DoctorOptions): Promise<DoctorReport>;
  /** Ends every pool and the monitor. */
  close(): Promise<void>;
}

/**
 * Creates a router: a primary, its replicas, a monitor, a statement classifier and a position
 * store, behind one `pg.Pool`-compatible pool.
 *
 * @example
 * ```ts
 * import { createRouter } from 'pg-replica-router';
 *
 * const router = createRouter({
 *   primary: { connectionString: process.env.PRIMARY_URL },
 *   replicas: [{ name: 'r1', connectionString: process.env.REPLICA1_URL }],
 * });
 * await router.query('insert into notes (body) values ($1)', ['hello']);
 * const { rows } = await router.query('select body from notes');   // sees 'hello'
 * await router.close();
 * ```
 */
export function createRouter(options: RouterOptions): Router {
  const resolved = resolveRouterOptions(options);
  const engine = new Engine(resolved);
  const pool = new RoutedPool(engine);
  let closed: Promise<void> | undefined;
  const router: Router = {
    pool,
    query: pool.query.bind(pool) as RoutedPool['query'],
    withSession(key, fn) {
      if (typeof key !== 'string' || key.length === 0) {
        throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, 'withSession: key must be a non-empty string');
      }
      return engine.withSession(key, fn);
    },
    async withConsistency(level, fn) {
      if (!isConsistency(level)) {
        throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `withConsistency: not a consistency level: ${JSON.stringify(level)}`);
      }
      return runInScope(withLevel(engine.scopes.current(), level), fn);
    },
    async currentToken() {
      const secret = resolved.tokenSecrets[0];
      if (!secret)
        throw new ReplicaRouterError(ErrorCodes.NO_TOKEN_SECRET, 'currentToken: createRouter({ tokenSecret }) is needed to sign tokens');
      return engine.currentToken(secret);
    },
    withToken(token, fn) {
      if (resolved.tokenSecrets.length === 0) {
        throw new ReplicaRouterError(ErrorCodes.NO_TOKEN_SECRET, 'withToken: createRouter({ tokenSecret }) is needed to verify tokens');
      }
      return engine.withToken(token, fn);
    },
    setReplicas(replicas) {
      if (closed || pool.ending)
        return Promise.reject(new ReplicaRouterError(ErrorCodes.INVALID_OPTION, 'setReplicas: the router is closed'));
      return engine.setReplicas(replicas);
    },
    topology() {
      const served = new Map(engine.nodes.all.map((n) => [n.name, n.served]));
      return {
        nodes: engine.monitor.states().map((s) => ({
          name: s.name,
          role: s.role,
          status: s.status,
          lsn:
            s.role === 'primary'
              ? s.insertLsn === undefined
                ? undefined
                : formatLsn(s.insertLsn)
              : s.replayLsn === undefined
                ? undefined
                : formatLsn(s.replayLsn),
          lagBytes: s.lagBytes,
          lagMs: s.lagMs,
          served: served.get(s.name) ?? 0,
          lastError: s.lastError,
        })),
        store: { state: engine.store.state, ...engine.store.counters },
        counters: {
          ...engine.counters,
          tokensRejected: { ...engine.counters.tokensRejected },
          clientLevels: { ...engine.counters.clientLevels },
        },
      };
    },
    doctor(doctorOptions) {
      return runDoctor(engine, doctorOptions);
    },
    close() {
      closed ??= pool.ending ? engine.close() : pool.end();
      return closed;
    },
  };
  registerEngine(router, engine);
  return router;
}
