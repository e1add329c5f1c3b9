import pg from 'pg';
import { Backends } from './backends.js';
import { Fences } from './fences.js';
import { isPoolFull } from './pg-args.js';

/** `primary` or `replica`: what a node is to the router. */
export type NodeRole = 'primary' | 'replica';

/**
 * The subset of `pg.Pool` the router uses for a node (a real `pg.Pool` in production; a fake in
 * database-free tests, as pg-pool accepts a `Client` class).
 */
export type NodeConnectionPool = Pick<
  pg.Pool,
  'query' | 'connect' | 'on' | 'end' | 'totalCount' | 'idleCount' | 'waitingCount' | 'expiredCount'
>;

/** Makes the application's pool to one node. Default: `new pg.Pool(config)`. */
export type PoolFactory = (config: pg.PoolConfig, node: { name: string; role: NodeRole }) => NodeConnectionPool;

export const defaultPoolFactory: PoolFactory = (config) => new pg.Pool(config);

/**
 * How long the application's pool to a node waits on a server that does not answer, unless its
 * config says otherwise (pg's own default is for ever): a partitioned or hung replica must not
 * hold a read, which then goes elsewhere; a hung primary must not hold a write for as long as
 * TCP allows (it fails with a timeout, its outcome unknown, and the session is then treated as
 * having written: see `Dispatch#note`).
 */
export interface NodeBounds {
  /** `connectionTimeoutMillis` (in pg-pool it also bounds waiting for a free connection). */
  readonly connectMs: number;
  /** How long a statement waits for its answer when the config has no `statement_timeout`. */
  readonly readMs: number;
}

/** The former name of {@link NodeBounds} (the bounds apply to the primary too now). */
export type ReplicaBounds = NodeBounds;

/** The longest a statement waits for a node's answer when nothing else bounds it, in ms. */
export const DEFAULT_ANSWER_MS = 30_000;
/** The former name of {@link DEFAULT_ANSWER_MS}. */
export const DEFAULT_REPLICA_READ_MS = DEFAULT_ANSWER_MS;

/** The bounds derived from the monitor's `timeoutMs`: a connect may take twice what a poll may. */
export function nodeBounds(monitorTimeoutMs: number): NodeBounds {
  return { connectMs: 2 * monitorTimeoutMs, readMs: DEFAULT_ANSWER_MS };
}

/** The former name of {@link nodeBounds}. */
export const replicaBounds = nodeBounds;

/**
 * A node's pool config with the bounds its user did not set (a value of 0, "none", is kept),
 * for the primary as for replicas:
 * - `connectionTimeoutMillis`: `bounds.connectMs` (always safe: nothing was sent);
 * - a client-side bound on each statement's answer (pg's `query_timeout`, given per statement):
 *   with the user's own `statement_timeout` the server cancels slow statements itself, so the
 *   client gives up only `connectMs` after it, on a server that does not answer at all; without
 *   one, after `bounds.readMs`. Cursors and streams (submittables) are left unbounded: they may
 *   stay open for as long as their reader likes. Not added when the config sets `query_timeout`
 *   or brings its own `Client` class.
 * On the primary a write cut off by the client-side bound may still commit (or commit later,
 * when its bytes reach a healed server): the dispatch counts it as a write of its session. Long
 * migrations through the router need `statement_timeout` or `query_timeout: 0` on the primary.
 */
export function boundedConfig(config: pg.PoolConfig, _role: NodeRole, bounds: NodeBounds | undefined): pg.PoolConfig {
  if (!bounds) return config;
  const bounded: pg.PoolConfig = { ...config };
  bounded.connectionTimeoutMillis ??= bounds.connectMs;
  if (config.query_timeout === undefined && config.Client === undefined) {
    const statement = config.statement_timeout;
    bounded.Client = boundedReads(typeof statement === 'number' && statement > 0 ? statement + bounds.connectMs : bounds.readMs);
  }
  return bounded;
}

/**
 * A `pg.Client` that gives each plain statement (not a cursor or stream) a `query_timeout` of
 * `ms`, unless the statement or the connection string sets one. A statement whose answer does
 * not come in time fails with pg's "Query read timeout", and pg-pool drops its connection.
 */
function boundedReads(ms: number): typeof pg.Client {
  const send = pg.Client.prototype.query as (this: pg.Client, ...args: unknown[]) => unknown;
  class BoundedReadsClient extends pg.Client {
    /** The bound is the connection's own (pg reads it per statement): the statement itself is passed on untouched, as pg gets it from a raw pool. */
    readonly #bounded: boolean;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      // pg's own default is `false`; a connection string's `query_timeout` is the user's.
      const params = (this as unknown as { connectionParameters: { query_timeout?: unknown } }).connectionParameters;
      this.#bounded = params.query_timeout === undefined || params.query_timeout === false;
      if (this.#bounded) params.query_timeout = ms;
    }

    override query(...args: unknown[]): never {
      const config = args[0];
      if (!this.#bounded || typeof config === 'string' || isPlainStatement(config)) return send.apply(this, args) as never;
      // A cursor or stream, or a statement with its own query_timeout (0: none): not bounded by ours.
      const params = (this as unknown as { connectionParameters: { query_timeout?: unknown } }).connectionParameters;
      params.query_timeout = false;
      try {
        return send.apply(this, args) as never;
      } finally {
        params.query_timeout = ms;
      }
    }
  }
  return BoundedReadsClient;
}

/** A query config object (not a submittable, not one with its own query_timeout). */
function isPlainStatement(config: unknown): boolean {
  if (typeof config !== 'object' || config === null) return false;
  const fields = config as { submit?: unknown; query_timeout?: unknown };
  return typeof fields.submit !== 'function' && fields.query_timeout === undefined;
}

/** One server and the application's pool to it. */
export interface NodePool {
  readonly name: string;
  readonly role: NodeRole;
  readonly pool: NodeConnectionPool;
  /** Statements this router sent to the node (routing decisions, not monitor polls). */
  served: number;
  /**
   * A full pool's wait ends at the router's own bound (the config set no
   * `connectionTimeoutMillis`; pg would have waited on): a statement or checkout that waited that
   * long on a replica goes to the primary instead, and on the primary it waits again
   * ({@link waitingAtMax}). Past the user's own bound, it fails as on pg.
   */
  readonly ownWaitBound?: boolean;
  /** Whether the monitor has the node down (set by the engine once its monitor exists). */
  isDown?: () => boolean;
}

/**
 * Runs `send` (a checkout, or a statement on the pool, which is not sent while it waits for a
 * connection) and, on the primary with the router's own wait bound, runs it again each time that
 * bound ends its wait for a free connection: the primary waits at `max` as pg.Pool does by
 * default, since nothing else can serve it. A failure to connect still fails at once, and once
 * the monitor has the primary down (its connections hang: the pool stays full of connects that
 * never complete) the wait ends with the pool's error too.
 */
export function waitingAtMax<T>(node: NodePool, send: () => Promise<T>): Promise<T> {
  if (node.role !== 'primary' || node.ownWaitBound !== true) return send();
  const attempt = (): Promise<T> =>
    send().catch((err: unknown) => (isPoolFull(err) && node.isDown?.() !== true ? attempt() : Promise.reject(err)));
  return attempt();
}

/** A node's configuration: its name, role and pg settings. */
export interface NodeConfig {
  readonly name: string;
  readonly role: NodeRole;
  readonly config: pg.PoolConfig;
}

/** The application's pools: one per server, the primary first. */
export class NodePools {
  readonly primary: NodePool;
  readonly #replicas: Map<string, NodePool>;
  readonly #make: (node: NodeConfig) => NodePool;

  /** The router's connections' backends (which pid is on which node, who revealed it). */
  readonly backends: Backends;
  /** Primary backends whose last statement's outcome is unknown, to end before trusting a position. */
  readonly fences: Fences;

  /** `bounds`: what pools get where their config sets no timeout (see {@link boundedConfig}). */
  constructor(nodes: readonly NodeConfig[], factory: PoolFactory = defaultPoolFactory, bounds?: NodeBounds) {
    this.#make = ({ name, role, config }) => ({
      name,
      role,
      pool: factory(boundedConfig(config, role, bounds), { name, role }),
      served: 0,
      ownWaitBound: bounds !== undefined && config.connectionTimeoutMillis === undefined,
    });
    const made = nodes.map(this.#make);
    this.primary = made.find((n) => n.role === 'primary')!;
    this.#replicas = new Map(made.filter((n) => n.role === 'replica').map((n) => [n.name, n]));
    this.backends = new Backends(this.all);
    this.fences = new Fences(this.primary, bounds?.connectMs ?? 2000);
  }

  /** The replicas in rotation, by name (a removed one is gone at once; see {@link remove}). */
  get replicas(): ReadonlyMap<string, NodePool> {
    return this.#replicas;
  }

  /** The primary, then the replicas. */
  get all(): readonly NodePool[] {
    return [this.primary, ...this.#replicas.values()];
  }

  /** A new replica's pool (`router.setReplicas()`), in rotation once the monitor has seen it up. */
  add(node: NodeConfig): NodePool {
    const made = this.#make(node);
    this.#replicas.set(node.name, made);
    this.backends.add(made);
    return made;
  }

  /**
   * Takes a replica out of rotation at once; its statements in flight finish on it. Its pool is
   * the caller's to end (pg-pool ends checked-out connections as they are released).
   */
  remove(name: string): NodePool | undefined {
    const node = this.#replicas.get(name);
    this.#replicas.delete(name);
    return node;
  }

  /** A count summed over every node's pool. */
  sum(key: 'totalCount' | 'idleCount' | 'waitingCount' | 'expiredCount'): number {
    let total = this.primary.pool[key] ?? 0; // no array per call: pool counts are read often
    for (const node of this.#replicas.values()) total += node.pool[key] ?? 0;
    return total;
  }

  end(): Promise<void> {
    return Promise.all(this.all.map((n) => n.pool.end().catch(() => {}))).then(() => {});
  }
}
