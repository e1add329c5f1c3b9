import pg from 'pg';

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

/** One server and the application's pool to it. */
export interface NodePool {
  readonly name: string;
  readonly role: NodeRole;
  readonly pool: NodeConnectionPool;
  /** Statements this router sent to the node (routing decisions, not monitor polls). */
  served: number;
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
  readonly replicas: ReadonlyMap<string, NodePool>;
  /** The primary, then the replicas. */
  readonly all: readonly NodePool[];

  constructor(nodes: readonly NodeConfig[], factory: PoolFactory = defaultPoolFactory) {
    const made = nodes.map(({ name, role, config }) => ({ name, role, pool: factory(config, { name, role }), served: 0 }));
    this.primary = made.find((n) => n.role === 'primary')!;
    this.replicas = new Map(made.filter((n) => n.role === 'replica').map((n) => [n.name, n]));
    this.all = [this.primary, ...this.replicas.values()];
  }

  /** A count summed over every node's pool. */
  sum(key: 'totalCount' | 'idleCount' | 'waitingCount' | 'expiredCount'): number {
    let total = 0;
    for (const node of this.all) total += node.pool[key] ?? 0;
    return total;
  }

  end(): Promise<void> {
    return Promise.all(this.all.map((n) => n.pool.end().catch(() => {}))).then(() => {});
  }
}
