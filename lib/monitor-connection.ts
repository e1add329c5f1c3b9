import pg from 'pg';

/** The `application_name` of the monitor's connections (what `pg_stat_activity` shows for them). */
export const MONITOR_APPLICATION_NAME = 'pg-replica-router monitor';

/**
 * The settings of a node's config that say where its server is and how to log in to it: the only
 * ones the monitor's own connections take from the user. Pool options and hooks (`onConnect`,
 * `verify`, `log`, `max`, `min`, `idleTimeoutMillis`, `maxUses`, `maxLifetimeSeconds`,
 * `allowExitOnIdle`, `Client`, `Promise`) are the application's; so are session and result
 * settings (`statement_timeout`, `query_timeout`, `lock_timeout`,
 * `idle_in_transaction_session_timeout`, `application_name`, `fallback_application_name`,
 * `client_encoding`, `types`, `binary`, `rows`, `pipeline`, `replication`): the monitor sets its
 * own or keeps pg's defaults. `stream` is taken only as a factory (a socket can serve one
 * connection, and that one is the application's).
 */
const REACH_KEYS = [
  'connectionString',
  'host',
  'port',
  'user',
  'password',
  'database',
  'ssl',
  'sslnegotiation',
  'options',
  'keepAlive',
  'keepAliveInitialDelayMillis',
  'enableChannelBinding',
  'scramMaxIterations',
  'stream',
] as const;

/**
 * The monitor's own pool to a node: one connection, kept open while the router runs, every wait
 * bounded by `timeoutMs`, built from the node config's connection settings only ({@link REACH_KEYS}),
 * so the user's pool hooks never run on it. It sends no startup parameter but `application_name`
 * (and the user's `options`), so that it also logs in through PgBouncer. `allowExitOnIdle`: between polls its socket is
 * unreferenced, so it never keeps an otherwise idle process alive (as pg-pool does for idle
 * clients with that option).
 *
 * @example
 * ```ts
 * const pool = new pg.Pool(monitorPoolConfig({ connectionString, onConnect }, 1000)); // onConnect not taken
 * ```
 */
export function monitorPoolConfig(config: pg.PoolConfig, timeoutMs: number): pg.PoolConfig {
  const given = config as Record<string, unknown>;
  const reach: Record<string, unknown> = {};
  for (const key of REACH_KEYS) if (given[key] !== undefined) reach[key] = given[key];
  if (typeof reach.stream !== 'function') delete reach.stream;
  return {
    ...reach,
    max: 1,
    idleTimeoutMillis: 0,
    allowExitOnIdle: true,
    connectionTimeoutMillis: timeoutMs,
    // Bounded on the client only: a `statement_timeout` startup parameter is refused by PgBouncer
    // ("unsupported startup parameter"), and these small reads take no locks and need no cancel.
    query_timeout: timeoutMs,
    application_name: MONITOR_APPLICATION_NAME,
    Client: MonitorClient as unknown as pg.PoolConfig['Client'],
  };
}

interface SessionParameters {
  application_name?: unknown;
  fallback_application_name?: unknown;
  replication?: unknown;
  statement_timeout?: unknown;
  query_timeout?: unknown;
  lock_timeout?: unknown;
  idle_in_transaction_session_timeout?: unknown;
}

/**
 * A `pg.Client` whose session is the monitor's whatever the connection string says: pg merges a
 * connection string's parameters over the config's (`?application_name=app` would name the
 * monitor's connections `app`; `?statement_timeout=…` would send a startup parameter PgBouncer
 * refuses), so they are set again once parsed.
 */
class MonitorClient extends pg.Client {
  /**
   * pg's own `connect` and `query`, as they were when the router was loaded: code that patches
   * `pg.Client.prototype` later (a test double failing connections, an agent) changes the
   * application's connections, not the monitor's.
   */
  static readonly #pg = { connect: pg.Client.prototype.connect, query: pg.Client.prototype.query };
  static {
    Object.assign(MonitorClient.prototype, MonitorClient.#pg);
  }

  constructor(config: pg.ClientConfig) {
    super(config);
    const own = this as unknown as { connectionParameters: SessionParameters; replication?: unknown };
    Object.assign(own.connectionParameters, {
      application_name: MONITOR_APPLICATION_NAME,
      fallback_application_name: undefined,
      replication: undefined,
      statement_timeout: undefined,
      query_timeout: config.query_timeout,
      lock_timeout: false,
      idle_in_transaction_session_timeout: false,
    } satisfies SessionParameters);
    own.replication = undefined;
  }
}
