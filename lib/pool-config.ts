import type pg from 'pg';
import { suggest } from './suggest.js';

/** The settings node-postgres reads from a `pg.PoolConfig` (client and pool), as of pg 8. */
const PG_SETTINGS = [
  'user',
  'database',
  'password',
  'port',
  'host',
  'connectionString',
  'keepAlive',
  'keepAliveInitialDelayMillis',
  'stream',
  'statement_timeout',
  'query_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'application_name',
  'fallback_application_name',
  'connectionTimeoutMillis',
  'types',
  'options',
  'client_encoding',
  'binary',
  'pipeline',
  'ssl',
  'sslnegotiation',
  'enableChannelBinding',
  'replication',
  'parseInputDatesAsUTC',
  'Promise',
  'max',
  'min',
  'idleTimeoutMillis',
  'log',
  'allowExitOnIdle',
  'maxUses',
  'maxLifetimeSeconds',
  'Client',
  'verify',
  'onConnect',
];

/** Names other drivers and tools use for a pg setting. */
const ALIASES: Record<string, string> = {
  url: 'connectionString',
  uri: 'connectionString',
  dsn: 'connectionString',
  connectionUrl: 'connectionString',
  connectionUri: 'connectionString',
  databaseUrl: 'connectionString',
  connection_string: 'connectionString',
  hostname: 'host',
  username: 'user',
  db: 'database',
  dbname: 'database',
  pass: 'password',
};

/**
 * Checks a node's pg settings at creation, where a mistake is cheap to find: a misspelt or
 * foreign name of a pg setting (`connectionstring`, `url`: pg would ignore it and connect to its
 * defaults) and a `connectionString` given but empty (an environment variable that is not set)
 * throw through `invalid`; other unknown keys are passed to `warn` (pg ignores them; a newer pg
 * may know them).
 */
export function checkPoolConfig(
  where: string,
  config: pg.PoolConfig,
  invalid: (message: string) => Error,
  warn: (message: string) => void,
): void {
  for (const key of Object.keys(config)) {
    if (PG_SETTINGS.includes(key) || key === 'name') continue;
    const meant = ALIASES[key] ?? suggest(key, PG_SETTINGS);
    if (meant) throw invalid(`${where}.${key} is not a pg setting (did you mean "${meant}"?)`);
    warn(`${where}.${key} is not a pg setting node-postgres knows; it is passed on and probably ignored`);
  }
  if ('connectionString' in config && (config.connectionString === undefined || config.connectionString === '')) {
    throw invalid(
      `${where}.connectionString is ${config.connectionString === '' ? 'empty' : 'undefined'}: is its environment variable (e.g. PRIMARY_URL) set? Leave the key out to use PG* environment variables`,
    );
  }
  if (config.connectionString !== undefined && typeof config.connectionString !== 'string') {
    throw invalid(`${where}.connectionString must be a string, got ${typeof config.connectionString}`);
  }
}
