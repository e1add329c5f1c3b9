import type pg from 'pg';
import { INSERT_LSN, REPLAY_LSN } from './position-sql.js';

// One round trip answers everything, on a primary or a replica alike, for any role (nothing here
// needs superuser or pg_monitor: pg_stat_wal_receiver, which reads as NULL to other roles, is not
// used; replay lag is derived from positions, see PrimaryHistory.freshness).
export const POLL_SQL = `select pg_is_in_recovery() as in_recovery,
  ${REPLAY_LSN}::text as replay,
  pg_last_wal_receive_lsn()::text as receive,
  case when pg_is_in_recovery() then null else ${INSERT_LSN}::text end as insert,
  case when pg_is_in_recovery() then extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000 end as replay_age_ms,
  pg_postmaster_start_time()::text as started,
  inet_server_addr()::text as addr,
  inet_server_port() as port,
  case when pg_is_in_recovery() then coalesce((select received_tli from pg_stat_wal_receiver), (select timeline_id from pg_control_checkpoint()))
       else ('x' || substr(pg_walfile_name(${INSERT_LSN}), 1, 8))::bit(32)::int end as timeline`;

// Asked once per node; some managed services restrict it, and then identity checks are skipped.
export const SYSTEM_ID_SQL = 'select system_identifier::text as system_id from pg_control_system()';

export interface PollRow {
  in_recovery: boolean;
  replay: string | null;
  receive: string | null;
  insert: string | null;
  /** Replica: ms since the last replayed commit was committed (replica clock vs primary clock). */
  replay_age_ms: string | number | null;
  timeline: number | null;
  started: string;
  /** The server's own address and port (null over a Unix socket): part of its id. */
  addr: string | null;
  port: number | null;
}

/** The monitor's own connection to a node: one, kept open, with every wait bounded by `timeoutMs`. */
export function monitorPoolConfig(config: pg.PoolConfig, timeoutMs: number): pg.PoolConfig {
  return {
    ...config,
    max: 1,
    idleTimeoutMillis: 0,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs * 2,
    application_name: 'pg-replica-router monitor',
  };
}
