import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { APP_ROLE, withCredentials } from './app-role.js';
import type { ResolvedClusterOptions } from './options.js';
import { clusterSettings, confArgs, standbyLines } from './postgres-config.js';
import { ping } from './redis.js';
import { primarySql, querySql, replicaSql } from './sql.js';
import { waitFor } from './processes.js';
import type { Cluster, PrimaryHandle, RedisHandle, ReplicaHandle, Row } from './types.js';

// The containers provider is deliberately thin: the PostgreSQL configuration and every
// SQL-level control are shared with the native provider; only process control differs.
// CI has no Docker engine, so this file is type-checked there but never run.

/** The subset of testcontainers' StartedTestContainer used here. */
interface Started {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(options?: { timeout?: number; remove?: boolean }): Promise<unknown>;
  restart(options?: { timeout?: number }): Promise<void>;
}

const PASSWORD = 'postgres';
const PGDATA = '/var/lib/postgresql/data';

async function load() {
  try {
    const [tc, pgModule] = await Promise.all([import('testcontainers'), import('@testcontainers/postgresql')]);
    return { ...tc, PostgreSqlContainer: pgModule.PostgreSqlContainer };
  } catch (cause) {
    throw new ReplicaRouterError(
      ErrorCodes.CONTAINERS_UNAVAILABLE,
      "provider 'containers' needs the optional packages testcontainers and @testcontainers/postgresql: npm install -D testcontainers @testcontainers/postgresql",
      { cause },
    );
  }
}

class ContainerNode {
  running = true;
  readonly pid = undefined;
  constructor(
    readonly name: string,
    public role: 'primary' | 'replica',
    protected readonly container: Started,
    protected readonly database: string,
    protected readonly timeoutMs: number,
    protected readonly appRole: boolean,
  ) {}
  get host(): string {
    return this.container.getHost();
  }
  get port(): number {
    return this.container.getMappedPort(5432);
  }
  get connectionString(): string {
    return `postgresql://postgres:${PASSWORD}@${this.host}:${this.port}/${this.database}`;
  }
  get appConnectionString(): string | undefined {
    return this.appRole ? withCredentials(this.connectionString, APP_ROLE.name, APP_ROLE.password) : undefined;
  }
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R[]> {
    return querySql<R>(this.connectionString, sql, params);
  }
  async stop(): Promise<void> {
    await this.container.stop({ remove: false });
    this.running = false;
  }
  async kill(): Promise<void> {
    await this.container.stop({ remove: false, timeout: 0 });
    this.running = false;
  }
  async start(): Promise<void> {
    await this.container.restart();
    await waitFor(`${this.name} to accept connections`, this.timeoutMs, async () => {
      await querySql(this.connectionString, 'select 1');
      return true;
    });
    this.running = true;
  }
  async remove(): Promise<void> {
    await this.container.stop({ remove: true, timeout: 0 }).catch(() => {});
  }
}

class ContainerPrimary extends ContainerNode implements PrimaryHandle {
  insertLsn(): Promise<string> {
    return primarySql.insertLsn(this.connectionString);
  }
  flushLsn(): Promise<string> {
    return primarySql.flushLsn(this.connectionString);
  }
}

class ContainerReplica extends ContainerNode implements ReplicaHandle {
  paused = false;
  constructor(
    name: string,
    container: Started,
    database: string,
    timeoutMs: number,
    appRole: boolean,
    private readonly primary: ContainerPrimary,
  ) {
    super(name, 'replica', container, database, timeoutMs, appRole);
  }
  async pauseReplay() {
    await replicaSql.pauseReplay(this.connectionString, this.timeoutMs);
    this.paused = true;
  }
  async resumeReplay() {
    await replicaSql.resumeReplay(this.connectionString, this.timeoutMs);
    this.paused = false;
  }
  setApplyDelay(ms: number) {
    return replicaSql.setApplyDelay(this.connectionString, ms, this.timeoutMs);
  }
  async promote() {
    await replicaSql.promote(this.connectionString, this.timeoutMs);
    this.role = 'primary';
  }
  replayLsn() {
    return replicaSql.replayLsn(this.connectionString);
  }
  async waitForReplay(lsn?: string, timeoutMs = this.timeoutMs) {
    await replicaSql.waitForReplay(this.connectionString, lsn ?? (await this.primary.flushLsn()), timeoutMs);
  }
}

class ContainerRedis implements RedisHandle {
  running = true;
  readonly pid = undefined;
  constructor(
    private readonly container: Started,
    private readonly timeoutMs: number,
  ) {}
  get host() {
    return this.container.getHost();
  }
  get port() {
    return this.container.getMappedPort(6379);
  }
  get url() {
    return `redis://${this.host}:${this.port}`;
  }
  async stop() {
    await this.container.stop({ remove: false });
    this.running = false;
  }
  async kill() {
    await this.container.stop({ remove: false, timeout: 0 });
    this.running = false;
  }
  async start() {
    await this.container.restart();
    await waitFor('redis to answer PING', this.timeoutMs, async () => ((await ping(this.host, this.port)) ? true : undefined));
    this.running = true;
  }
  async remove() {
    await this.container.stop({ remove: true, timeout: 0 }).catch(() => {});
  }
}

/** Starts the same topology as the native provider in Docker containers, via testcontainers. */
export async function startContainerCluster(options: ResolvedClusterOptions): Promise<Cluster> {
  const began = performance.now();
  const { GenericContainer, Network, Wait, PostgreSqlContainer } = await load();
  const network = await new Network().start();
  const args = confArgs(clusterSettings(options.settings));
  const started: Array<{ remove(): Promise<void> }> = [];
  try {
    const primaryContainer = await new PostgreSqlContainer(options.image)
      .withNetwork(network)
      .withNetworkAliases('primary')
      .withUsername('postgres')
      .withPassword(PASSWORD)
      .withDatabase(options.database)
      .withCopyContentToContainer([
        {
          content: `echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"\n`,
          target: '/docker-entrypoint-initdb.d/10-replication.sh',
        },
      ])
      .withCommand(['postgres', ...args])
      .start();
    const primary = new ContainerPrimary('primary', 'primary', primaryContainer, options.database, options.startTimeoutMs, options.appRole);
    started.push(primary);

    const replicas: ContainerReplica[] = [];
    for (let i = 1; i <= options.replicas; i++) {
      const name = `r${i}`;
      const standby = standbyLines({
        host: 'primary',
        port: 5432,
        user: 'postgres',
        password: PASSWORD,
        slot: name,
        applyDelayMs: options.applyDelayMs,
      });
      const script = [
        'set -e',
        `if [ ! -s "${PGDATA}/PG_VERSION" ]; then`,
        `  mkdir -p "${PGDATA}" && chown postgres "${PGDATA}" && chmod 700 "${PGDATA}"`,
        `  gosu postgres pg_basebackup -h primary -U postgres -D "${PGDATA}" -X stream -c fast -C -S ${name}`,
        `  gosu postgres touch "${PGDATA}/standby.signal"`,
        `  cat >> "${PGDATA}/postgresql.conf" <<'CONF'\n${standby}CONF`,
        'fi',
        `exec gosu postgres postgres -D "${PGDATA}" ${args.map((a) => `'${a}'`).join(' ')}`,
      ].join('\n');
      const container = await new GenericContainer(options.image)
        .withNetwork(network)
        .withNetworkAliases(name)
        .withEnvironment({ PGPASSWORD: PASSWORD })
        .withExposedPorts(5432)
        .withEntrypoint(['bash', '-c', script])
        .withWaitStrategy(Wait.forLogMessage(/ready to accept read-only connections/))
        .withStartupTimeout(options.startTimeoutMs)
        .start();
      const replica = new ContainerReplica(name, container, options.database, options.startTimeoutMs, options.appRole, primary);
      replicas.push(replica);
      started.push(replica);
      await waitFor(`${name} to stream`, options.startTimeoutMs, async () =>
        (await replicaSql.streaming(replica.connectionString)) ? true : undefined,
      );
    }

    let redis: ContainerRedis | undefined;
    if (options.redis) {
      const container = await new GenericContainer(options.redisImage)
        .withExposedPorts(6379)
        .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
        .start();
      redis = new ContainerRedis(container, options.startTimeoutMs);
      started.push(redis);
    }

    let stopped = false;
    const cluster: Cluster = {
      provider: 'containers',
      primary,
      replicas,
      redis,
      dir: undefined,
      startupMs: Math.round(performance.now() - began),
      async waitForReplicas(timeoutMs) {
        const target = await primary.flushLsn();
        await Promise.all(
          replicas.filter((r) => r.running && r.role === 'replica' && !r.paused).map((r) => r.waitForReplay(target, timeoutMs)),
        );
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await Promise.all(started.map((s) => s.remove()));
        await network.stop().catch(() => {});
      },
      async [Symbol.asyncDispose]() {
        await cluster.stop();
      },
    };
    return cluster;
  } catch (err) {
    await Promise.all(started.map((s) => s.remove()));
    await network.stop().catch(() => {});
    throw err;
  }
}
