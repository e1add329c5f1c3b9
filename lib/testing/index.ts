import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { provisionAppRole } from './app-role.js';
import { findPostgresBinaries } from './binaries.js';
import { startContainerCluster } from './containers-cluster.js';
import { dockerReachable } from './docker.js';
import { startNativeCluster } from './native-cluster.js';
import { resolveClusterOptions, type ClusterOptions, type ResolvedClusterOptions } from './options.js';
import type { Cluster } from './types.js';

export type { ClusterOptions, ClusterProvider, SettingValue } from './options.js';
export type { Cluster, NodeHandle, PrimaryHandle, RedisHandle, ReplicaHandle, Row } from './types.js';
export { APP_ROLE } from './app-role.js';
export { startPgBouncer, type PgBouncerHandle, type PgBouncerOptions } from './pgbouncer.js';
export { findPostgresBinaries, findRedisServer, type DiscoveryHost, type PostgresBinaries } from './binaries.js';

/**
 * Starts a real PostgreSQL primary with `replicas` physical streaming replicas (hot standbys),
 * and optionally Redis, on free loopback ports in a temporary directory. Every control awaits
 * its effect. `cluster.stop()` removes every process and directory it made; so does the end of
 * the process (exit, SIGINT, SIGTERM) if a test forgets.
 *
 * @example
 * ```ts
 * import { startCluster } from 'pg-replica-router/testing';
 *
 * const cluster = await startCluster({ replicas: 2, redis: true });
 * try {
 *   const [r1] = cluster.replicas;
 *   await r1.pauseReplay();                      // r1 now serves an old snapshot
 *   await cluster.primary.query('insert into t values (1)');
 *   await r1.query('select * from t');            // does not see the row
 *   await r1.resumeReplay();
 *   await r1.waitForReplay();                     // now it does
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { startCluster } from 'pg-replica-router/testing';
 *
 * // The application connects as a plain role (`app`), as in production; the handles stay superuser.
 * const cluster = await startCluster({ appRole: true });
 * await cluster.primary.query('create table t (id int)');   // made by the superuser, usable by app
 * const pool = new pg.Pool({ connectionString: cluster.primary.appConnectionString });
 * await pool.query('insert into t values (1)');             // as app
 * ```
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const resolved = resolveClusterOptions(options);
  const cluster = await startProvider(resolved);
  if (!resolved.appRole) return cluster;
  try {
    await provisionAppRole(cluster);
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}

async function startProvider(resolved: ResolvedClusterOptions): Promise<Cluster> {
  if (resolved.provider === 'native') return startNativeCluster(resolved);
  if (resolved.provider === 'containers') return startContainerCluster(resolved);

  // auto: native binaries when there are any, else a Docker engine if one answers.
  let nativeError: ReplicaRouterError | undefined;
  try {
    findPostgresBinaries(resolved.pgBin);
    return startNativeCluster(resolved);
  } catch (err) {
    if (!(err instanceof ReplicaRouterError) || err.code !== ErrorCodes.PG_NOT_FOUND) throw err;
    nativeError = err;
  }
  if (await dockerReachable()) return startContainerCluster(resolved);
  throw new ReplicaRouterError(
    ErrorCodes.PG_NOT_FOUND,
    `${nativeError.message}\nNo Docker engine is reachable either, so provider 'containers' cannot be used.`,
  );
}
export { proxyNode, startFaultProxy, type FaultMode, type FaultProxy, type ProxiedEndpoint, type ProxyTarget } from './fault-proxy.js';
