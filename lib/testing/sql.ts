import pg from 'pg';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { parseLsn } from '../lsn.js';
import { waitFor } from './processes.js';
import type { Row } from './types.js';
import { INSERT_LSN, REPLAY_LSN } from '../position-sql.js';

/** Runs one statement over a short-lived connection. */
export async function querySql<R extends Row = Row>(connectionString: string, text: string, params?: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 5000 });
  // A server killed under an idle connection emits 'error'; the query's rejection reports it.
  client.on('error', () => {});
  await client.connect();
  try {
    const result = await client.query<R>(text, params);
    return result.rows;
  } finally {
    await client.end().catch(() => {});
  }
}

async function one(connectionString: string, text: string): Promise<unknown> {
  const rows = await querySql(connectionString, text);
  return rows[0] ? Object.values(rows[0])[0] : undefined;
}

/**
 * The replica controls that work over SQL alone, shared by every provider. Each awaits the
 * effect, not just the command.
 */
export const replicaSql = {
  async pauseReplay(cs: string, timeoutMs: number): Promise<void> {
    await querySql(cs, 'select pg_wal_replay_pause()');
    // A requested pause already stops replay: the startup process checks the request before
    // applying each record, so nothing committed after this returns becomes visible (it shows as
    // 'paused' in pg_get_wal_replay_pause_state() of PostgreSQL 14+ only when the next record
    // arrives). pg_is_wal_replay_paused() tells the request, on every supported major.
    await waitFor('replay to pause', timeoutMs, async () =>
      (await one(cs, 'select pg_is_wal_replay_paused()')) === true ? true : undefined,
    );
  },

  async resumeReplay(cs: string, timeoutMs: number): Promise<void> {
    await querySql(cs, 'select pg_wal_replay_resume()');
    await waitFor('replay to resume', timeoutMs, async () =>
      (await one(cs, 'select pg_is_wal_replay_paused()')) === false ? true : undefined,
    );
  },

  async setApplyDelay(cs: string, ms: number, timeoutMs: number): Promise<void> {
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_APPLY_DELAY_MS) {
      throw new ReplicaRouterError(
        ErrorCodes.INVALID_OPTION,
        `the apply delay must be a whole number of ms from 0 to ${MAX_APPLY_DELAY_MS}, got ${ms}`,
      );
    }
    // ALTER SYSTEM takes no parameters; ms is a checked integer.
    await querySql(cs, `alter system set recovery_min_apply_delay = '${ms}ms'`);
    await querySql(cs, 'select pg_reload_conf()');
    await waitFor('recovery_min_apply_delay to take effect', timeoutMs, async () =>
      Number(await one(cs, "select setting from pg_settings where name = 'recovery_min_apply_delay'")) === ms ? true : undefined,
    );
  },

  async promote(cs: string, timeoutMs: number): Promise<void> {
    await querySql(cs, `select pg_promote(true, ${Math.max(1, Math.ceil(timeoutMs / 1000))})`);
    await waitFor('promotion', timeoutMs, async () => ((await one(cs, 'select pg_is_in_recovery()')) === false ? true : undefined));
  },

  async replayLsn(cs: string): Promise<string> {
    return String(await one(cs, 'select pg_last_wal_replay_lsn()::text'));
  },

  async waitForReplay(cs: string, target: string, timeoutMs: number): Promise<void> {
    const wanted = parseLsn(target);
    await waitFor(`replay to reach ${target}`, timeoutMs, async () =>
      parseLsn(String(await one(cs, 'select pg_last_wal_replay_lsn()::text'))) >= wanted ? true : undefined,
    );
  },

  async streaming(cs: string): Promise<boolean> {
    return (await one(cs, 'select status from pg_stat_wal_receiver')) === 'streaming';
  },

  /** What `pg-replica-router cluster status` shows of a replica, in one round trip. */
  async status(cs: string): Promise<ReplicaStatusRow> {
    const [row] = await querySql<ReplicaStatusRow>(
      cs,
      `select ${REPLAY_LSN}::text as replay,
        case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused,
        (select setting::int from pg_settings where name = 'recovery_min_apply_delay') as apply_delay_ms`,
    );
    return row!;
  },
};

/** The largest `recovery_min_apply_delay` the controls set (an hour). */
export const MAX_APPLY_DELAY_MS = 3_600_000;

/** A row of {@link replicaSql.status}. */
export interface ReplicaStatusRow extends Row {
  /** `pg_last_wal_replay_lsn()` as text; null before the first record is replayed. */
  replay: string | null;
  /** Whether replay is paused (null once the node has left recovery). */
  paused: boolean | null;
  apply_delay_ms: number;
}

export const primarySql = {
  async insertLsn(cs: string): Promise<string> {
    return String(await one(cs, `select ${INSERT_LSN}::text`));
  },
  /** Everything committed so far is at or below the flush LSN (an end-of-record position). */
  async flushLsn(cs: string): Promise<string> {
    return String(await one(cs, 'select pg_current_wal_flush_lsn()::text'));
  },
  /**
   * Each standby's `replay_lag` in ms, by its `application_name` (a replica's name): the
   * primary's own measure of how long ago it flushed WAL the standby has not replayed yet (null
   * when the primary has no recent measure, e.g. after a while idle).
   */
  async replayLagMs(cs: string): Promise<Map<string, number | null>> {
    const rows = await querySql<{ name: string; ms: number | null }>(
      cs,
      'select application_name as name, (extract(epoch from replay_lag) * 1000)::float8 as ms from pg_stat_replication',
    );
    return new Map(rows.map((r) => [r.name, r.ms]));
  },
};
