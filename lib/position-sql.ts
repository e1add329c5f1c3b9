// The SQL that reads node positions, in one place (the monitor's polls and samples, and the
// router's reads of the primary's position after writes).

/**
 * The primary's position: its insert LSN. Read after a write is acknowledged, it is at least the
 * write's commit record — unlike `pg_current_wal_lsn()` (the flush LSN), which can sit below it
 * under `synchronous_commit = off`.
 */
export const INSERT_LSN = 'pg_current_wal_insert_lsn()';

/** A replica's position: what it has replayed (what a query on it observes). */
export const REPLAY_LSN = 'pg_last_wal_replay_lsn()';

/**
 * The server's postmaster start time as microseconds since the epoch: which server answered (it
 * changes on a restart), the same text on every connection whatever its TimeZone or DateStyle.
 */
export const STARTED = '(extract(epoch from pg_postmaster_start_time()) * 1000000)::bigint::text';

/** One round trip for the primary's position. */
export const PRIMARY_POSITION_SQL = `select ${INSERT_LSN}::text as lsn`;

/** A live sample of a node: its position, and its start time (a restart may have moved it back). */
export function sampleSql(role: 'primary' | 'replica'): string {
  return `select ${role === 'primary' ? INSERT_LSN : REPLAY_LSN}::text as lsn, ${STARTED} as started`;
}
