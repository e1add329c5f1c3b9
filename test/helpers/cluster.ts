import pg from 'pg';
import { createRouter, parseLsn, type Router, type RouterOptions } from 'pg-replica-router';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startCluster, type Cluster, type ClusterOptions, type NodeHandle } from 'pg-replica-router/testing';

/**
 * Who a test router connects as. `app` (the default): the application role of the cluster
 * (`appRole: true`: a login that is not superuser and has no pg_monitor), as real deployments
 * do. `superuser`: only for tests about privileges or that need superuser through the router;
 * the caller says why in a comment.
 */
export type ConnectAs = 'app' | 'superuser';

/**
 * A cluster as this project's tests use it: with the application role (see {@link ConnectAs}).
 * The handles' `query()` and controls stay superuser.
 */
export function startTestCluster(options: ClusterOptions = {}): Promise<Cluster> {
  return startCluster({ appRole: true, ...options });
}

/**
 * A node's connection string as `as`. A cluster started without the application role (not
 * through {@link startTestCluster}) has only its superuser.
 */
export function urlAs(node: NodeHandle, as: ConnectAs = 'app'): string {
  return as === 'app' ? (node.appConnectionString ?? node.connectionString) : node.connectionString;
}

/** A router over a test cluster, polling fast so tests do not wait on the monitor; connects `as` (default the application role). */
export function routerFor(cluster: Cluster, options: Partial<RouterOptions> = {}, as: ConnectAs = 'app'): Router {
  return createRouter({
    primary: { connectionString: urlAs(cluster.primary, as) },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: urlAs(r, as) })),
    monitor: { intervalMs: 100 },
    ...options,
  });
}

/** The node that served a query which selected `inet_server_port() as port`. */
export function nodeByPort(cluster: Cluster, port: unknown): string {
  const all = [cluster.primary, ...cluster.replicas];
  return all.find((n) => n.port === Number(port))?.name ?? `unknown:${String(port)}`;
}

/** A plain pg.Pool straight to one node: the naive path, for showing staleness. */
export function naivePool(connectionString: string): pg.Pool {
  return new pg.Pool({ connectionString, max: 2 });
}

/** The rows of one statement through a {@link naivePool} (opened and ended for it). */
export async function naiveQuery<R extends pg.QueryResultRow>(connectionString: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const pool = naivePool(connectionString);
  try {
    return (await pool.query<R>(sql, params)).rows;
  } finally {
    await pool.end();
  }
}

/** The nodes `count` reads at level `eventual` ran on (by `select inet_server_port()`). */
export async function eventualReadNodes(router: Router, cluster: Cluster, count: number): Promise<Set<string>> {
  const nodes = new Set<string>();
  for (let i = 0; i < count; i++) {
    const { rows } = await router.withConsistency('eventual', () => router.query<{ port: number }>('select inet_server_port() as port'));
    nodes.add(nodeByPort(cluster, rows[0]!.port));
  }
  return nodes;
}

/** Waits until the router's monitor sees every running replica at or past the primary. */
export async function settle(router: Router, cluster: Cluster): Promise<void> {
  await cluster.waitForReplicas();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const nodes = router.topology().nodes;
    const primary = nodes.find((n) => n.role === 'primary');
    const behind = nodes.filter((n) => n.role === 'replica' && n.status !== 'not-replica' && (n.status !== 'up' || (n.lagBytes ?? 1) > 0));
    if (primary?.status === 'up' && behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`replicas not settled: ${JSON.stringify(nodes)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the router's cached replay LSN of `name` is at or past `lsn` (X/Y text). */
export async function cachedAtLeast(router: Router, name: string, lsn: string): Promise<void> {
  const wanted = parseLsn(lsn);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const node = router.topology().nodes.find((n) => n.name === name);
    if (node?.status === 'up' && node.lsn !== undefined && parseLsn(node.lsn) >= wanted) return;
    if (Date.now() > deadline) throw new Error(`${name} not cached at ${lsn}: ${JSON.stringify(node)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The usual test-file set-up: a cluster, a router over it (as the application role unless `as`
 * says otherwise), some SQL run through the router, the monitor settled — and everything closed after the file. `ready` receives the cluster and router.
 */
export function useRoutedCluster(
  options: { cluster?: ClusterOptions; router?: Partial<RouterOptions>; setup?: string[]; resumeAfterEach?: boolean; as?: ConnectAs },
  ready: (cluster: Cluster, router: Router) => void,
): void {
  let cluster: Cluster | undefined;
  let router: Router | undefined;
  beforeAll(async () => {
    cluster = await startTestCluster({ replicas: 2, ...options.cluster });
    router = routerFor(cluster, options.router, options.as);
    for (const statement of options.setup ?? []) await router.query(statement);
    await settle(router, cluster);
    ready(cluster, router);
  });
  if (options.resumeAfterEach) {
    afterEach(async () => {
      for (const replica of cluster?.replicas ?? []) if (replica.running) await replica.resumeReplay();
    });
  }
  afterAll(async () => {
    await router?.close();
    await cluster?.stop();
  });
}
