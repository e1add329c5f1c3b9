// The oracle strategy for the benchmarks: the most replica reads any correct router can get,
// ignoring what its own round trips cost. It keeps each session's floor itself and, before EVERY
// read, reads `pg_last_wal_replay_lsn()` live on every replica (in parallel, on pools of its own),
// then reads on a random replica at or past the floor, else on the primary.
//
// Floors: after a write, the primary's `pg_current_wal_insert_lsn()` read after the write was
// acknowledged (it covers everything the session read before, too). After a read on a node, the
// read is "uncovered": what it saw is bounded only by a position of that node sampled after it,
// which the next read's live samples are (for a read on the primary, the next read samples the
// primary's position too, in parallel). A position sampled *before* the read would not do: the
// read may see a commit replayed (or made) between the sample and its snapshot.
import pg from 'pg';
import { formatLsn, parseLsn, type Lsn } from '../../lib/index.js';
import type { Cluster } from '../../lib/testing/index.js';
import { asAppRole } from '../helpers/app-role.js';
import type { Outcome, PairOutcome, Target } from '../workload/driver.js';
import { SELECT, UPDATE } from '../workload/http-target.js';

export interface OracleStats {
  reads: number;
  replicaReads: number;
  /** Reads of `pg_last_wal_replay_lsn()` (one per replica per read). */
  replayChecks: number;
  /** Reads of the primary's position (after each write; before a read following one on the primary). */
  positionReads: number;
  /** Reads for which no replica was at the session's floor. */
  noReplicaReady: number;
}

export interface OracleTarget extends Target {
  readonly stats: OracleStats;
  close(): Promise<void>;
}

interface SessionState {
  floor: Lsn;
  /** The node of the last read, until a position of it sampled after that read raises the floor. */
  uncovered: string | undefined;
}

const max = (a: Lsn, b: Lsn) => (a > b ? a : b);

/**
 * The oracle over `cluster`, connecting as the application role. `max`: each data pool's size
 * (as the router's); the position pools are extra, `positionMax` each.
 */
export function oracleTarget(cluster: Cluster, { max: poolMax = 20, positionMax = 10 } = {}): OracleTarget {
  const pool = (url: string, size: number) => new pg.Pool({ connectionString: asAppRole(url), max: size });
  const primary = { name: 'primary', data: pool(cluster.primary.connectionString, poolMax) };
  const primaryPosition = pool(cluster.primary.connectionString, positionMax);
  const replicas = cluster.replicas.map((r) => ({
    name: r.name,
    data: pool(r.connectionString, poolMax),
    position: pool(r.connectionString, positionMax),
  }));
  const stats: OracleStats = { reads: 0, replicaReads: 0, replayChecks: 0, positionReads: 0, noReplicaReady: 0 };
  const sessions = new Map<string, SessionState>();
  const stateOf = (key: string) => {
    let state = sessions.get(key);
    if (!state) sessions.set(key, (state = { floor: 0n, uncovered: undefined }));
    return state;
  };

  const lsnOf = async (p: pg.Pool, sql: string): Promise<Lsn | undefined> => {
    try {
      const { rows } = await p.query<{ lsn: string | null }>(sql);
      return rows[0]?.lsn ? parseLsn(rows[0].lsn) : undefined;
    } catch {
      return undefined; // a replica that cannot answer is not ready
    }
  };
  const primaryLsn = async (): Promise<Lsn> => {
    stats.positionReads++;
    const { rows } = await primaryPosition.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
    return parseLsn(rows[0]!.lsn);
  };

  async function write(session: string, row: string): Promise<Outcome> {
    const state = stateOf(session);
    const { rows } = await primary.data.query<{ v: number; port: number }>(UPDATE, [row]);
    state.floor = max(state.floor, await primaryLsn());
    state.uncovered = undefined;
    return { version: rows[0]!.v, port: rows[0]!.port };
  }

  async function read(session: string, row: string, token: string | undefined): Promise<Outcome> {
    const state = stateOf(session);
    if (token !== undefined) state.floor = max(state.floor, parseLsn(token));
    stats.reads++;
    stats.replayChecks += replicas.length;
    const [replays, primaryNow] = await Promise.all([
      Promise.all(replicas.map((r) => lsnOf(r.position, 'select pg_last_wal_replay_lsn()::text as lsn'))),
      state.uncovered === 'primary' ? primaryLsn() : undefined,
    ]);
    if (state.uncovered !== undefined) {
      // Cover the last read with a position of its node sampled now, after it ended.
      const i = replicas.findIndex((r) => r.name === state.uncovered);
      const bound = state.uncovered === 'primary' ? primaryNow : (replays[i] ?? (await primaryLsn()));
      state.floor = max(state.floor, bound!);
      state.uncovered = undefined;
    }
    const ready = replicas.filter((_, i) => replays[i] !== undefined && replays[i] >= state.floor);
    if (ready.length === 0) stats.noReplicaReady++;
    const node = ready.length > 0 ? ready[Math.floor(Math.random() * ready.length)]! : primary;
    const { rows } = await node.data.query<{ v: number; port: number }>(SELECT, [row]);
    if (node !== primary) stats.replicaReads++;
    state.uncovered = node.name;
    return { version: rows[0]!.v, port: rows[0]!.port };
  }

  return {
    transport: 'direct',
    stats,
    async write(session, row, { wantToken }) {
      const outcome = await write(session, row);
      return wantToken ? { ...outcome, token: formatLsn(stateOf(session).floor) } : outcome;
    },
    read: (session, row, { token }) => read(session, row, token),
    async writeAndRead(session, row): Promise<PairOutcome> {
      const written = await write(session, row);
      const writtenAt = performance.now();
      const readAt = performance.now();
      return { write: written, writtenAt, read: await read(session, row, undefined), readAt };
    },
    async close() {
      await Promise.all([primary.data, primaryPosition, ...replicas.flatMap((r) => [r.data, r.position])].map((p) => p.end()));
    },
  };
}
