import type { ClusterProvider } from './options.js';

/** A row as returned by {@link NodeHandle.query}. */
export type Row = Record<string, unknown>;

/** One PostgreSQL server of a test cluster. */
export interface NodeHandle {
  /** `primary`, `r1`, `r2`, … */
  readonly name: string;
  /** `replica` until {@link ReplicaHandle.promote} succeeds, then `primary`. */
  readonly role: 'primary' | 'replica';
  readonly host: string;
  readonly port: number;
  /** `postgresql://postgres@127.0.0.1:<port>/<database>`; a pg `connectionString`. */
  readonly connectionString: string;
  /**
   * The same with the application role as user (`postgresql://app:app@…`) when the cluster was
   * started with `appRole: true`; otherwise undefined. `query()` and the controls keep using the
   * superuser.
   */
  readonly appConnectionString: string | undefined;
  /** Whether the server process is running (as far as this handle knows). */
  readonly running: boolean;
  /** PID of the server process (its process group holds all its processes); native provider only. */
  readonly pid: number | undefined;
  /** Runs one statement on this node over a fresh connection and returns its rows. */
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Fast shutdown (SIGINT); resolves once the process has exited. */
  stop(): Promise<void>;
  /** Starts the server again; resolves once it accepts connections (a replica: and streams). */
  start(): Promise<void>;
  /** SIGKILL to the server and all its processes, as in a machine crash; resolves once gone. */
  kill(): Promise<void>;
}

/** The primary. */
export interface PrimaryHandle extends NodeHandle {
  /** `pg_current_wal_insert_lsn()` as text (`X/Y`). */
  insertLsn(): Promise<string>;
}

/** A physical streaming replica (hot standby). */
export interface ReplicaHandle extends NodeHandle {
  /** `pg_wal_replay_pause()`; resolves once replay is actually paused. */
  pauseReplay(): Promise<void>;
  /** `pg_wal_replay_resume()`; resolves once replay is running again. */
  resumeReplay(): Promise<void>;
  /** Sets `recovery_min_apply_delay` (ms) and resolves once the server runs with the new value. */
  setApplyDelay(ms: number): Promise<void>;
  /** `pg_promote()`; resolves once the node has left recovery and accepts writes. */
  promote(): Promise<void>;
  /** `pg_last_wal_replay_lsn()` as text (`X/Y`). */
  replayLsn(): Promise<string>;
  /**
   * Resolves once this replica has replayed up to `lsn` (default: the primary's current flush
   * LSN, i.e. everything committed so far).
   */
  waitForReplay(lsn?: string, timeoutMs?: number): Promise<void>;
}

/** A Redis server. */
export interface RedisHandle {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly running: boolean;
  /** PID of redis-server; native provider only. */
  readonly pid: number | undefined;
  /** SIGTERM; resolves once the process has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  /** SIGKILL; resolves once the process has exited. */
  kill(): Promise<void>;
}

/** A running test cluster: a primary, its replicas and, optionally, Redis. */
export interface Cluster {
  readonly provider: Exclude<ClusterProvider, 'auto'>;
  readonly primary: PrimaryHandle;
  readonly replicas: readonly ReplicaHandle[];
  /** Present when started with `redis: true`. */
  readonly redis: RedisHandle | undefined;
  /** The temporary directory holding data directories and logs (native provider). */
  readonly dir: string | undefined;
  /** How long start-up took, in ms. */
  readonly startupMs: number;
  /** Resolves once every running, non-paused replica has replayed everything committed so far. */
  waitForReplicas(timeoutMs?: number): Promise<void>;
  /** Stops every process and removes every directory the cluster made. Idempotent. */
  stop(): Promise<void>;
  /** `await using cluster = await startCluster()` stops it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>;
}
