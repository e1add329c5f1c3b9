import pg from 'pg';
import { tryParseLsn, type Lsn } from './lsn.js';

/** Monitor settings (all optional in {@link RouterOptions}). */
export interface MonitorOptions {
  /** Mean time between polls of each node, in ms (each poll is jittered ±20%). Default 500. */
  intervalMs: number;
  /** `statement_timeout` and connect timeout of monitor queries, in ms. Default 1000. */
  timeoutMs: number;
  /** Consecutive failed polls before a node is marked down. Default 2. */
  downAfter: number;
  /** Consecutive good polls before a down node is marked up again. Default 2. */
  upAfter: number;
}

/** A node's state as the monitor last saw it. */
export interface NodeState {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  /**
   * `up`; `down` after `downAfter` failed polls (or a connection error on a query);
   * `not-replica` when a replica left recovery (promoted) — out of rotation for good;
   * `unknown` before the first poll.
   */
  status: 'unknown' | 'up' | 'down' | 'not-replica';
  replayLsn: Lsn | undefined;
  receiveLsn: Lsn | undefined;
  /** Primary only: `pg_current_wal_insert_lsn()`. */
  insertLsn: Lsn | undefined;
  lagBytes: number | undefined;
  /** 0 when receive = replay; otherwise time since the last replayed transaction. */
  lagMs: number | undefined;
  lastPollAt: number | undefined;
  lastError: string | undefined;
  failures: number;
  successes: number;
}

// One round trip answers everything, on a primary or a replica alike.
const POLL_SQL = `select pg_is_in_recovery() as in_recovery,
  pg_last_wal_replay_lsn()::text as replay,
  pg_last_wal_receive_lsn()::text as receive,
  case when pg_is_in_recovery() then null else pg_current_wal_insert_lsn()::text end as insert,
  case when pg_last_wal_receive_lsn() is null or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0
       else extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000 end as lag_ms`;

interface PollRow {
  in_recovery: boolean;
  replay: string | null;
  receive: string | null;
  insert: string | null;
  lag_ms: string | number | null;
}

interface Watched {
  state: NodeState;
  pool: pg.Pool;
  timer: NodeJS.Timeout | undefined;
  inflight: Promise<void> | undefined;
  live: Promise<Lsn | undefined> | undefined;
}

/**
 * Polls every node in the background (one small connection each, short timeouts) and keeps
 * the cached view the routing policy reads. Timers are unreferenced: the monitor never keeps
 * a process alive.
 */
export class Monitor {
  readonly #nodes = new Map<string, Watched>();
  readonly #options: MonitorOptions;
  #closed = false;
  /** Resolves when every node has been polled once (successfully or not). */
  readonly ready: Promise<void>;

  constructor(nodes: Array<{ name: string; role: 'primary' | 'replica'; config: pg.PoolConfig }>, options: MonitorOptions) {
    this.#options = options;
    for (const node of nodes) {
      const pool = new pg.Pool({
        ...node.config,
        max: 1,
        idleTimeoutMillis: 0,
        connectionTimeoutMillis: options.timeoutMs,
        statement_timeout: options.timeoutMs,
        query_timeout: options.timeoutMs * 2,
        application_name: 'pg-replica-router monitor',
      });
      pool.on('error', () => {}); // an idle monitor connection dying is just a failed poll
      this.#nodes.set(node.name, {
        pool,
        timer: undefined,
        inflight: undefined,
        live: undefined,
        state: {
          name: node.name,
          role: node.role,
          status: 'unknown',
          replayLsn: undefined,
          receiveLsn: undefined,
          insertLsn: undefined,
          lagBytes: undefined,
          lagMs: undefined,
          lastPollAt: undefined,
          lastError: undefined,
          failures: 0,
          successes: 0,
        },
      });
    }
    this.ready = Promise.all([...this.#nodes.values()].map((w) => this.#poll(w))).then(() => {
      for (const watched of this.#nodes.values()) this.#schedule(watched);
    });
  }

  state(name: string): NodeState | undefined {
    return this.#nodes.get(name)?.state;
  }

  states(): NodeState[] {
    return [...this.#nodes.values()].map((w) => w.state);
  }

  /** Polls a node now (coalesced with a poll already running). */
  pollNow(name: string): Promise<void> {
    const watched = this.#nodes.get(name);
    return watched ? this.#poll(watched) : Promise.resolve();
  }

  /**
   * Reads a replica's replay LSN now (one round trip, shared by concurrent callers) and folds it
   * into the cache. Undefined when the node cannot answer.
   */
  replayLsnNow(name: string): Promise<Lsn | undefined> {
    const watched = this.#nodes.get(name);
    if (!watched) return Promise.resolve(undefined);
    watched.live ??= (async () => {
      try {
        const { rows } = await watched.pool.query<{ replay: string | null }>('select pg_last_wal_replay_lsn()::text as replay');
        const lsn = tryParseLsn(rows[0]?.replay ?? undefined);
        if (lsn !== undefined) this.#raiseReplay(watched.state, lsn);
        return lsn;
      } catch {
        return undefined;
      } finally {
        watched.live = undefined;
      }
    })();
    return watched.live;
  }

  /** A query on this node failed with a connection error: take it out of rotation now. */
  reportConnectionFailure(name: string, error: unknown): void {
    const state = this.#nodes.get(name)?.state;
    if (!state || state.status === 'not-replica') return;
    state.status = 'down';
    state.successes = 0;
    state.failures = Math.max(state.failures, this.#options.downAfter);
    state.lastError = error instanceof Error ? error.message : String(error);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const watched of this.#nodes.values()) clearTimeout(watched.timer);
    await Promise.all([...this.#nodes.values()].map((w) => w.pool.end().catch(() => {})));
  }

  #schedule(watched: Watched): void {
    if (this.#closed) return;
    const delay = this.#options.intervalMs * (0.8 + Math.random() * 0.4);
    watched.timer = setTimeout(() => {
      void this.#poll(watched).then(() => this.#schedule(watched));
    }, delay);
    watched.timer.unref();
  }

  #poll(watched: Watched): Promise<void> {
    watched.inflight ??= this.#pollOnce(watched).finally(() => {
      watched.inflight = undefined;
    });
    return watched.inflight;
  }

  async #pollOnce(watched: Watched): Promise<void> {
    if (this.#closed) return;
    const state = watched.state;
    let row: PollRow | undefined;
    try {
      row = (await watched.pool.query<PollRow>(POLL_SQL)).rows[0];
    } catch (err) {
      state.lastError = err instanceof Error ? err.message : String(err);
    }
    state.lastPollAt = Date.now();
    if (!row) {
      state.successes = 0;
      state.failures++;
      if (state.status !== 'not-replica' && (state.status === 'unknown' || state.failures >= this.#options.downAfter)) state.status = 'down';
      return;
    }
    state.failures = 0;
    state.successes++;
    state.lastError = undefined;
    if (state.role === 'replica' && !row.in_recovery) {
      // Promoted (or misconfigured): it follows its own history now. Never route to it again.
      state.status = 'not-replica';
      return;
    }
    if (state.status === 'not-replica') return;
    if (state.status !== 'up' && (state.status === 'unknown' || state.successes >= this.#options.upAfter)) state.status = 'up';

    if (state.role === 'primary') {
      state.insertLsn = tryParseLsn(row.insert ?? undefined) ?? state.insertLsn;
      for (const other of this.#nodes.values()) this.#updateLagBytes(other.state);
      return;
    }
    const replay = tryParseLsn(row.replay ?? undefined);
    if (replay !== undefined) this.#raiseReplay(state, replay);
    state.receiveLsn = tryParseLsn(row.receive ?? undefined);
    state.lagMs = row.lag_ms === null ? undefined : Math.max(0, Math.round(Number(row.lag_ms)));
    this.#updateLagBytes(state);
  }

  #raiseReplay(state: NodeState, lsn: Lsn): void {
    // Replay only moves forward on one server; never let a slow answer lower the cache.
    if (state.replayLsn === undefined || lsn > state.replayLsn) state.replayLsn = lsn;
    this.#updateLagBytes(state);
  }

  #updateLagBytes(state: NodeState): void {
    if (state.role !== 'replica') return;
    const primaryLsn = [...this.#nodes.values()].find((w) => w.state.role === 'primary')?.state.insertLsn;
    if (primaryLsn === undefined || state.replayLsn === undefined) return;
    state.lagBytes = primaryLsn > state.replayLsn ? Number(primaryLsn - state.replayLsn) : 0;
  }
}
