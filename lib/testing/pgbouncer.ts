import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import {
  freePort,
  processError,
  removeTree,
  signalGroup,
  spawnDaemon,
  track,
  unprivilegedUser,
  untrack,
  waitFor,
  type Daemon,
  type Reapable,
} from './processes.js';
import { querySql } from './sql.js';
import type { NodeHandle } from './types.js';

/** Options for {@link startPgBouncer}. */
export interface PgBouncerOptions {
  /** `transaction` (default: what makes a pooler a pooler), `session` or `statement`. */
  poolMode?: 'transaction' | 'session' | 'statement';
  /** Server connections per user and database. Default 20. */
  poolSize?: number;
  /** Path of the `pgbouncer` binary. Default: `PGBOUNCER` or `pgbouncer` on the PATH (Debian: /usr/sbin). */
  bin?: string;
  /** The unprivileged OS user that runs it when this process is root (PgBouncer refuses root). Default as for clusters. */
  osUser?: string;
  /** Time allowed to become ready, in ms. Default 30000. */
  startTimeoutMs?: number;
}

/** A PgBouncer in front of one server of a test cluster. */
export interface PgBouncerHandle {
  readonly host: string;
  readonly port: number;
  /** The node's `connectionString` with this PgBouncer's address (superuser). */
  readonly connectionString: string;
  /** The same as the application role, when the cluster has it. */
  readonly appConnectionString: string | undefined;
  readonly pid: number;
  /** SIGINT (PgBouncer's safe shutdown); resolves once it has exited. Removes its directory. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

/**
 * Starts one PgBouncer in front of `node` (one per server, never one spreading over several: see
 * docs/testing.md), listening on a free loopback port, pooling `poolMode`. Clients log in with
 * the node's users (`postgres`, and `app` when the cluster has the application role); the server
 * logins are the same users. Stopped by `stop()` or at the end of the process.
 *
 * @example
 * ```ts
 * import { startCluster, startPgBouncer } from 'pg-replica-router/testing';
 *
 * const cluster = await startCluster({ replicas: 1, appRole: true });
 * const bouncers = await Promise.all([cluster.primary, ...cluster.replicas].map((node) => startPgBouncer(node)));
 * // route through bouncers[i].appConnectionString instead of the node's own
 * ```
 */
export async function startPgBouncer(node: NodeHandle, options: PgBouncerOptions = {}): Promise<PgBouncerHandle> {
  const bin = options.bin ?? process.env.PGBOUNCER ?? findPgBouncer();
  const as = unprivilegedUser(options.osUser);
  const dir = mkdtempSync(join(tmpdir(), 'pgrr-bouncer-'));
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid ?? as.uid);
  const port = await freePort();
  const database = new URL(node.connectionString).pathname.slice(1) || 'postgres';
  const users = ['"postgres" ""', ...(node.appConnectionString ? ['"app" "app"'] : [])];
  const owned = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    if (as.uid !== undefined) chownSync(path, as.uid, as.gid ?? as.uid);
    return path;
  };
  owned('userlist.txt', `${users.join('\n')}\n`);
  const ini = owned(
    'pgbouncer.ini',
    [
      '[databases]',
      `${database} = host=${node.host} port=${node.port} dbname=${database}`,
      '[pgbouncer]',
      `listen_addr = ${HOST}`,
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `pool_mode = ${options.poolMode ?? 'transaction'}`,
      `default_pool_size = ${options.poolSize ?? 20}`,
      'max_client_conn = 500',
      'ignore_startup_parameters = extra_float_digits,options',
      'admin_users = postgres',
      '',
    ].join('\n'),
  );
  const daemon = spawnDaemon(bin, [ini], { as, cwd: dir, logFile: join(dir, 'pgbouncer.log') });
  const handle = new NativePgBouncer(port, node, daemon, dir, options.startTimeoutMs ?? 30_000);
  track(handle);
  try {
    await handle.ready();
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

class NativePgBouncer implements PgBouncerHandle, Reapable {
  readonly host = HOST;

  constructor(
    readonly port: number,
    readonly node: NodeHandle,
    readonly daemon: Daemon,
    readonly dir: string,
    readonly timeoutMs: number,
  ) {}

  get pid(): number {
    return this.daemon.pid;
  }

  get connectionString(): string {
    return viaBouncer(this.node.connectionString, this.port);
  }

  get appConnectionString(): string | undefined {
    return this.node.appConnectionString && viaBouncer(this.node.appConnectionString, this.port);
  }

  async ready(): Promise<void> {
    const outcome = await Promise.race([
      waitFor('pgbouncer to serve a query', this.timeoutMs, async () =>
        (await querySql(this.connectionString, 'select 1 as ok').then(
          () => true,
          () => undefined,
        ))
          ? true
          : undefined,
      ).then(() => 'ready' as const),
      this.daemon.exited().then(() => 'exited' as const),
    ]);
    if (outcome === 'exited') throw processError(`pgbouncer exited during start-up (log: ${join(this.dir, 'pgbouncer.log')})`, '');
  }

  async stop(): Promise<void> {
    if (this.daemon.isRunning()) {
      signalGroup(this.daemon.pid, 'SIGINT');
      const timer = setTimeout(() => signalGroup(this.daemon.pid, 'SIGKILL'), this.timeoutMs);
      try {
        await this.daemon.exited();
      } finally {
        clearTimeout(timer);
      }
    }
    removeTree(this.dir);
    untrack(this);
  }

  reapSync(): void {
    if (this.daemon.isRunning()) signalGroup(this.daemon.pid, 'SIGKILL');
    removeTree(this.dir);
  }
}

function viaBouncer(connectionString: string, port: number): string {
  const url = new URL(connectionString);
  url.host = `${HOST}:${port}`;
  return url.toString();
}

function findPgBouncer(): string {
  for (const candidate of ['pgbouncer', '/usr/sbin/pgbouncer', '/usr/local/bin/pgbouncer', '/opt/homebrew/bin/pgbouncer']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // next
    }
  }
  throw new ReplicaRouterError(
    ErrorCodes.PGBOUNCER_NOT_FOUND,
    'pgbouncer not found (tried PGBOUNCER, pgbouncer on the PATH, /usr/sbin, /usr/local/bin, /opt/homebrew/bin): install it (Debian: apt-get install pgbouncer)',
  );
}
