import pg from 'pg';
import { monitorPoolConfig } from './monitor-connection.js';
import type { NodeConfig } from './nodes.js';
import { isConnectionError } from './pg-args.js';
import type { Sample } from './monitor-view.js';
import { tryParseLsn, type Lsn } from './lsn.js';
import { aheadOfPrimary, historyKey, newNodeState, type NodeState } from './node-state.js';
import { INSERT_LSN, REPLAY_LSN, STARTED } from './position-sql.js';
import { SharedRoundTrip } from './shared-round-trip.js';
import { untraced } from './otel.js';
import { endOfInserted, WAL_LAYOUT_SQL, walLayoutOf, type WalLayout } from './wal-layout.js';

// One round trip answers everything, on a primary or a replica alike, for any role (nothing here
// needs superuser or pg_monitor; replay lag is derived from positions, see
// PrimaryHistory.freshness).
//
// A replica's timeline: pg_stat_wal_receiver.received_tli (the timeline being received, current)
// when the role may read it (pg_read_all_stats; NULL to other roles, and while no receiver runs);
// else the control file's two timelines, which any role can read: the last restartpoint's
// (pg_control_checkpoint) and the minimum recovery point's (pg_control_recovery: the replay
// timeline when the replica last wrote out a buffer, which under writes is seconds ago).
// Both are timelines the replica has replayed, and a replica's timeline only grows, so their
// maximum is a lower bound: a replica that followed a promotion is on the primary's timeline once
// either says so; until then it is kept out of rotation (same-history check), never let in early.
export const POLL_SQL = `select pg_is_in_recovery() as in_recovery,
  ${REPLAY_LSN}::text as replay,
  pg_last_wal_receive_lsn()::text as receive,
  case when pg_is_in_recovery() then null else ${INSERT_LSN}::text end as insert,
  case when pg_is_in_recovery() then extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000 end as replay_age_ms,
  ${STARTED} as started,
  inet_server_addr()::text as addr,
  inet_server_port() as port,
  pg_backend_pid() as backend_pid,
  case when pg_is_in_recovery() then coalesce((select received_tli from pg_stat_wal_receiver),
         greatest((select timeline_id from pg_control_checkpoint()), (select min_recovery_end_timeline from pg_control_recovery())))
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
  /** The backend that answered (a pooler in between hands the client another number). */
  backend_pid: number;
}

/** What the monitor keeps per node: its state, its connection, and the polls and samples in flight. */
export interface Watched {
  state: NodeState;
  pool: pg.Pool;
  timer: NodeJS.Timeout | undefined;
  inflight: Promise<void> | undefined;
  /** Live samples, shared by concurrent callers (see `Monitor.sample`). */
  samples: SharedRoundTrip<Sample>;
  systemIdAsked: boolean;
  /** Its WAL layout (asked with the system identifier): how its insert position turns into an end of record. */
  layout: WalLayout | undefined;
  /** The process id the monitor's connection was given at login (BackendKeyData). */
  processId: number | undefined;
  /** The postmaster's start time at the last poll ({@link STARTED}): a change means the server restarted. */
  started: string | undefined;
  /** Replica: `performance.now()` when its last replayed commit was made (from its last poll). */
  replayedAt: number | undefined;
  /** Replica: the replay position its last poll read, and `performance.now()` when that answer came. */
  polled?: { replay: Lsn; answeredAt: number } | undefined;
}

/** A node the monitor starts watching: nothing asked yet; `sample` sends one live sample of it. */
export function watched(pool: pg.Pool, state: NodeState, sample: (w: Watched, sentAt: number) => Promise<Sample>): Watched {
  const w: Watched = {
    state,
    pool,
    timer: undefined,
    inflight: undefined,
    samples: new SharedRoundTrip((sentAt) => sample(w, sentAt)),
    systemIdAsked: false,
    layout: undefined,
    processId: undefined,
    started: undefined,
    replayedAt: undefined,
  };
  return w;
}

/**
 * A node's monitor connection (see `monitorPoolConfig`) and state. A connection error of its idle
 * connection goes to `onConnectionError` at once (the node may reopen below its cached position,
 * so it leaves rotation now, not at the next poll); the process id its connection was given is
 * kept, to tell a pooler in between (see `NodeState.pooled`).
 */
export function watchNode(
  node: NodeConfig,
  timeoutMs: number,
  onConnectionError: (err: unknown) => void,
  sample: (w: Watched, sentAt: number) => Promise<Sample>,
): Watched {
  const pool = new pg.Pool(monitorPoolConfig(node.config, timeoutMs));
  pool.on('error', (err) => {
    if (isConnectionError(err)) onConnectionError(err);
  });
  const w = watched(pool, newNodeState(node.name, node.role), sample);
  pool.on('connect', (client) => {
    // A second 'error' of one connection (a FATAL, then the lost socket) must not go unheard.
    client.on('error', () => {});
    w.processId = (client as pg.Client & { processID?: number | null }).processID ?? undefined;
  });
  return w;
}

/**
 * After a primary poll (its insert position `insert`, asked for at `sentAt`), judges a replica by
 * its last polled replay position, read before `sentAt`: past `insert`, it is on another history
 * (true, and so marked). Not past it, a verdict given under other circumstances (a server
 * restarted since, a new timeline) is dropped; one given under these stands (the primary may
 * have written past the replica since, which does not make it follow the primary's history).
 */
export function judgeAhead(replica: Watched, primary: Watched, insert: Lsn | undefined, sentAt: number): boolean {
  const polled = replica.polled;
  if (replica.state.role !== 'replica' || insert === undefined || polled === undefined || polled.answeredAt >= sentAt) return false;
  const key = historyKey(replica.started, replica.state.timeline, primary.started);
  if (aheadOfPrimary(polled, insert, sentAt)) {
    replica.state.divergedKey = key;
    if (replica.state.status !== 'not-replica') replica.state.status = 'other-history';
    return true;
  }
  if (replica.state.divergedKey !== undefined && replica.state.divergedKey !== key) replica.state.divergedKey = undefined;
  return false;
}

/** A replica's replay position as this poll read it, and when its answer came (for {@link judgeAhead}). */
export function polledReplay(row: PollRow): Watched['polled'] {
  const replay = tryParseLsn(row.replay ?? undefined);
  return replay === undefined ? undefined : { replay, answeredAt: performance.now() };
}

/**
 * One of the monitor's own queries on its connection to a node, with tracing suppressed. Not
 * `untraced(() => pool.query(sql))`: while the connection runs a request's live sample, pg-pool
 * queues the query and runs it from that sample's callback, in the request's context, where
 * instrumentation-pg traced it as part of the request. Awaiting the checkout keeps this context.
 */
export function untracedQuery<R extends pg.QueryResultRow>(pool: pg.Pool, sql: string): Promise<pg.QueryResult<R>> {
  return untraced(async () => {
    const client = await pool.connect();
    try {
      const result = await client.query<R>(sql);
      client.release();
      return result;
    } catch (err) {
      client.release(err instanceof Error ? err : true); // as pool.query does: a failed connection is not reused
      throw err;
    }
  });
}

/** One poll of a node: its row of {@link POLL_SQL}. */
export async function pollNode(watched: Watched): Promise<PollRow | undefined> {
  return (await untracedQuery<PollRow>(watched.pool, POLL_SQL)).rows[0];
}

/**
 * Asked once per node (again after a failed poll): its system identifier and WAL layout. What
 * the server refuses this time (some managed services restrict `pg_control_*()`) stays as last known.
 */
export async function askIdentity(watched: Watched): Promise<void> {
  watched.systemIdAsked = true;
  const firstRow = (sql: string) =>
    untracedQuery<Record<string, unknown>>(watched.pool, sql).then(
      (r) => r.rows[0],
      () => undefined,
    );
  const ids = await firstRow(SYSTEM_ID_SQL);
  if (typeof ids?.system_id === 'string') watched.state.systemId = ids.system_id;
  watched.layout = walLayoutOf(await firstRow(WAL_LAYOUT_SQL)) ?? watched.layout;
}

/** A primary's insert position as an end of record, comparable with replay positions (see `endOfInserted`); a replica's as it is. */
export function asReplayed(watched: Watched, lsn: Lsn | undefined): Lsn | undefined {
  return lsn !== undefined && watched.state.role === 'primary' ? endOfInserted(lsn, watched.layout) : lsn;
}
