import { formatLsn, parseLsn, type Lsn } from '../lsn.js';
import { endOfInserted, WAL_LAYOUT_SQL, walLayoutOf } from '../wal-layout.js';
import { primarySql, querySql, replicaSql } from '../testing/sql.js';
import type { ClusterInfo } from './cluster-state.js';

/** The primary in a {@link ClusterStatus}. */
export interface PrimaryStatus {
  url: string;
  /** `pg_current_wal_insert_lsn()`, as the end of the last record (the form replay positions take). */
  insertLsn: string | null;
  /** Why it could not be read; null when it was. */
  error: string | null;
}

/** A replica in a {@link ClusterStatus}. */
export interface ReplicaStatus {
  name: string;
  url: string;
  /** `pg_last_wal_replay_lsn()`. */
  replayLsn: string | null;
  /** Bytes of WAL the primary has that this replica has not replayed. */
  lagBytes: number | null;
  /**
   * 0 when caught up (`lagBytes` 0); else the primary's `pg_stat_replication.replay_lag` for it:
   * how long ago the primary flushed the oldest WAL this replica has not replayed (null when the
   * primary has no measure, e.g. the replica is not connected to it).
   */
  lagMs: number | null;
  paused: boolean | null;
  /** `recovery_min_apply_delay`, in ms. */
  applyDelayMs: number | null;
  error: string | null;
}

/** What `pg-replica-router cluster status` reports. */
export interface ClusterStatus {
  primary: PrimaryStatus;
  replicas: ReplicaStatus[];
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The primary's position as the end of its last record, and its measure of each standby's replay lag. */
async function readPrimary(url: string): Promise<{ end: Lsn; lags: Map<string, number | null> }> {
  const [insert, [layout], lags] = await Promise.all([
    primarySql.insertLsn(url),
    querySql(url, WAL_LAYOUT_SQL),
    primarySql.replayLagMs(url),
  ]);
  return { end: endOfInserted(parseLsn(insert), walLayoutOf(layout)), lags };
}

/**
 * Reads every node of a running cluster. The replicas are read first and the primary after them,
 * so no replica can be ahead of the primary position it is compared with (lag is never negative;
 * a write in between only makes it larger).
 */
export async function readStatus(cluster: ClusterInfo): Promise<ClusterStatus> {
  const names = Object.keys(cluster.replicas);
  const rows = await Promise.allSettled(names.map((name) => replicaSql.status(cluster.replicas[name]!)));
  let end: Lsn | undefined;
  let lags = new Map<string, number | null>();
  let primaryError: string | null = null;
  try {
    ({ end, lags } = await readPrimary(cluster.primary));
  } catch (err) {
    primaryError = message(err);
  }
  const replicas = names.map((name, i): ReplicaStatus => {
    const url = cluster.replicas[name]!;
    const result = rows[i]!;
    if (result.status === 'rejected') {
      return { name, url, replayLsn: null, lagBytes: null, lagMs: null, paused: null, applyDelayMs: null, error: message(result.reason) };
    }
    const row = result.value;
    const replay = row.replay === null ? undefined : parseLsn(row.replay);
    const lagBytes = end === undefined || replay === undefined ? null : Number(end > replay ? end - replay : 0n);
    const measured = lags.get(name);
    const lagMs = lagBytes === 0 ? 0 : lagBytes === null || measured == null ? null : Math.round(measured);
    return { name, url, replayLsn: row.replay, lagBytes, lagMs, paused: row.paused, applyDelayMs: row.apply_delay_ms, error: null };
  });
  return {
    primary: { url: cluster.primary, insertLsn: end === undefined ? null : formatLsn(end), error: primaryError },
    replicas,
  };
}
