/**
 * Stable error codes. Each one has an entry in docs/errors.md saying what
 * happened and how to fix it; code may branch on them, never on messages.
 */
export const ErrorCodes = {
  /** An option passed to a public function has the wrong type, range or name. */
  INVALID_OPTION: 'ERR_PGRR_INVALID_OPTION',
  /** No PostgreSQL server binaries were found (the message lists every place tried). */
  PG_NOT_FOUND: 'ERR_PGRR_PG_NOT_FOUND',
  /** No pgbouncer binary was found (`startPgBouncer()`). */
  PGBOUNCER_NOT_FOUND: 'ERR_PGRR_PGBOUNCER_NOT_FOUND',
  /** No redis-server binary was found. */
  REDIS_NOT_FOUND: 'ERR_PGRR_REDIS_NOT_FOUND',
  /** A cluster process (initdb, pg_basebackup, postgres, redis-server) failed or timed out. */
  CLUSTER_PROCESS: 'ERR_PGRR_CLUSTER_PROCESS',
  /** The containers provider was chosen but testcontainers or a Docker engine is missing. */
  CONTAINERS_UNAVAILABLE: 'ERR_PGRR_CONTAINERS_UNAVAILABLE',
  /** A test-cluster control that the node's state does not allow (e.g. pausing a promoted replica). */
  NODE_STATE: 'ERR_PGRR_NODE_STATE',
  /** `requireConsistency()` ran without `consistency()` before it. */
  MIDDLEWARE_ORDER: 'ERR_PGRR_MIDDLEWARE_ORDER',
  /** `currentToken()` / `withToken()` without `tokenSecret` in the router's options. */
  NO_TOKEN_SECRET: 'ERR_PGRR_NO_TOKEN_SECRET',
  /** A string is not a PostgreSQL LSN (`X/Y`, hexadecimal, each half at most 32 bits). */
  INVALID_LSN: 'ERR_PGRR_INVALID_LSN',
  /** `pg_cancel_backend(pid)` / `pg_terminate_backend(pid)` through the router: no connection of its has that pid. */
  BACKEND_UNKNOWN: 'ERR_PGRR_BACKEND_UNKNOWN',
  /** Such a signal whose pid names connections on several nodes (or of several checked-out clients). */
  BACKEND_AMBIGUOUS: 'ERR_PGRR_BACKEND_AMBIGUOUS',
  /** A node did not answer within the router's bound (connect or statement); a write's outcome is unknown. */
  NODE_TIMEOUT: 'ERR_PGRR_NODE_TIMEOUT',
  /** A CLI cluster command found no running cluster (no state file, its process gone, or still starting). */
  NO_CLUSTER: 'ERR_PGRR_NO_CLUSTER',
  /** `cluster up` found its state file naming a cluster that is still running. */
  CLUSTER_RUNNING: 'ERR_PGRR_CLUSTER_RUNNING',
  /** A CLI cluster command named a replica the running cluster does not have. */
  UNKNOWN_REPLICA: 'ERR_PGRR_UNKNOWN_REPLICA',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * The one error class the library throws. `code` is stable; `message` is for people.
 *
 * @example
 * ```ts
 * import { ReplicaRouterError } from 'pg-replica-router';
 * import { startCluster } from 'pg-replica-router/testing';
 *
 * try {
 *   await startCluster({ replicas: -1 });
 * } catch (err) {
 *   if (err instanceof ReplicaRouterError && err.code === 'ERR_PGRR_INVALID_OPTION') {
 *     console.error(err.message);
 *   }
 * }
 * ```
 */
export class ReplicaRouterError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReplicaRouterError';
    this.code = code;
  }
}
