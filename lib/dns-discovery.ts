import { Resolver } from 'node:dns/promises';
import type pg from 'pg';
import { ErrorCodes, ReplicaRouterError } from './errors.js';
import type { ReplicaConfig } from './options.js';
import type { Router } from './router.js';

/** Options for {@link discoverReplicas}. */
export interface DnsDiscoveryOptions {
  /** The DNS name that lists the replicas, e.g. `replicas.db.internal` or `_postgresql._tcp.replicas.db.internal`. */
  name: string;
  /**
   * `A` (default): each IPv4 address is one replica, on `port`; `SRV`: each record names a
   * replica's host and port.
   */
  record?: 'A' | 'SRV';
  /** The replicas' port for `A` records. Default 5432. */
  port?: number;
  /** pg settings every discovered replica gets besides its host and port (user, password, database, ssl, max…). */
  config?: Omit<pg.PoolConfig, 'host' | 'port' | 'connectionString'>;
  /** How often the name is resolved again, in ms, ± 20 % jitter (so instances do not ask at once). Default 30 000. */
  intervalMs?: number;
  /** DNS servers to ask (`host` or `host:port`); default the system's. */
  servers?: string[];
  /** Told of each failed lookup (the replica set is then left as it was). */
  onError?: (err: unknown) => void;
}

/** A running discovery. */
export interface ReplicaDiscovery {
  /** Resolves the name now and applies the answer; resolves once the router has the new set. */
  refresh(): Promise<void>;
  /** Stops re-resolving (the replicas stay as they are). */
  stop(): void;
}

/**
 * Keeps the router's replicas in step with a DNS name, as GitLab's database load balancer does:
 * resolved now and then again every `intervalMs` (± 20 % jitter); each answer becomes the replica
 * set through `router.setReplicas()` (a replica that left is drained, a new one joins once polled
 * up). Replicas are named `host:port`. A failed lookup leaves the set as it was: only an answer
 * changes it, and an answer with no records empties it.
 *
 * Each record must be one server: a name whose every lookup may land on another server (a load
 * balancer's address) breaks the replay check (see docs/pgbouncer.md, "The rules").
 *
 * @example
 * ```ts
 * import { createRouter, discoverReplicas } from 'pg-replica-router';
 *
 * const router = createRouter({ primary: { connectionString: process.env.PRIMARY_URL } });
 * const discovery = discoverReplicas(router, {
 *   name: '_postgresql._tcp.replicas.db.internal',
 *   record: 'SRV',
 *   config: { user: 'app', password: process.env.PGPASSWORD, database: 'app' },
 * });
 * await discovery.refresh(); // the first answer, before serving
 * ```
 */
export function discoverReplicas(router: Router, options: DnsDiscoveryOptions): ReplicaDiscovery {
  const record = options.record ?? 'A';
  if (typeof options.name !== 'string' || options.name.length === 0) throw invalid('name must be a DNS name');
  if (record !== 'A' && record !== 'SRV') throw invalid(`record must be 'A' or 'SRV', got ${JSON.stringify(record)}`);
  const port = options.port ?? 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw invalid('port must be an integer from 1 to 65535');
  const intervalMs = options.intervalMs ?? 30_000;
  if (!Number.isFinite(intervalMs) || intervalMs < 100) throw invalid('intervalMs must be at least 100');
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  if (options.servers) resolver.setServers(options.servers);

  const lookUp = async (): Promise<Array<{ host: string; port: number }>> =>
    record === 'SRV'
      ? (await resolver.resolveSrv(options.name)).map((r) => ({ host: r.name, port: r.port }))
      : (await resolver.resolve4(options.name)).map((host) => ({ host, port }));
  let applied: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const resolveAndApply = async (): Promise<void> => {
    let found: Array<{ host: string; port: number }>;
    try {
      found = await lookUp();
    } catch (err) {
      if (!isEmptyAnswer(err)) {
        options.onError?.(err);
        return;
      }
      found = [];
    }
    const replicas: ReplicaConfig[] = found
      .map(({ host, port: p }) => ({ host: host.replace(/\.$/, ''), port: p })) // a fully qualified name's last dot
      .map(({ host, port: p }) => ({ ...options.config, name: `${host}:${p}`, host, port: p }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const key = JSON.stringify(replicas.map((r) => r.name));
    if (key === applied || stopped) return;
    await router.setReplicas(replicas);
    applied = key;
  };

  // One lookup at a time: an older answer applied after a newer one would undo it.
  let running: Promise<void> = Promise.resolve();
  const refresh = (): Promise<void> => {
    const next = running.then(resolveAndApply, resolveAndApply);
    running = next.catch(() => {});
    return next;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(
      () =>
        void refresh()
          .catch((err: unknown) => options.onError?.(err))
          .finally(schedule),
      intervalMs * (0.8 + Math.random() * 0.4),
    );
    timer.unref();
  };
  void refresh()
    .catch((err: unknown) => options.onError?.(err))
    .finally(schedule);
  return {
    refresh,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The name exists with no such records, or does not exist: an answer, not a failure. */
function isEmptyAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ENODATA' || code === 'ENOTFOUND';
}

function invalid(message: string): ReplicaRouterError {
  return new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `discoverReplicas: ${message}`);
}
