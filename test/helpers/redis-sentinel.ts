// A replicated Redis with Sentinel on loopback, for tests of the Redis store across a failover:
// Debian's redis-server as master, as replica (replicating through a fault proxy, so that a test
// can cut replication and make the replica miss acknowledged writes, as asynchronous replication
// does) and as three sentinels (`--sentinel`), quorum 2, a master down after 500 ms.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findRedisServer, startFaultProxy, type FaultProxy } from 'pg-replica-router/testing';
import { freePort, removeTree, signalGroup, spawnDaemon, track, untrack, waitFor, type Daemon } from '../../lib/testing/processes.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';
export const SENTINEL_MASTER = 'pgrr';

class RedisProcess {
  #daemon: Daemon | undefined;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly bin: string,
    private readonly args: string[],
  ) {}

  async start(): Promise<void> {
    this.#daemon = spawnDaemon(this.bin, this.args, { as: {}, cwd: this.dir, logFile: join(this.dir, 'redis.log') });
    await waitFor(`redis ${this.port} to answer`, 15_000, async () =>
      (await this.cli('ping').catch(() => '')).trim() === 'PONG' ? true : undefined,
    );
  }

  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', ['-h', HOST, '-p', String(this.port), ...args], { timeout: 10_000 });
    return stdout;
  }

  async kill(): Promise<void> {
    const daemon = this.#daemon;
    if (!daemon?.isRunning()) return;
    signalGroup(daemon.pid, 'SIGKILL');
    await daemon.exited();
  }

  killSync(): void {
    if (this.#daemon?.isRunning()) signalGroup(this.#daemon.pid, 'SIGKILL');
  }
}

export interface RedisSentinel {
  /** For `new Redis({ sentinels, name: SENTINEL_MASTER })`. */
  readonly sentinels: Array<{ host: string; port: number }>;
  readonly master: RedisProcess;
  readonly replica: RedisProcess;
  /** Between the replica and the master: `setMode('blackhole')` holds replication. */
  readonly replication: FaultProxy;
  /** The port of the master as the sentinels report it now. */
  masterPort(): Promise<number>;
  /** Resolves once the replica has everything the master has (replication offsets). */
  replicated(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the master, its replica and three sentinels; resolves once the sentinels know the replica. */
export async function startRedisSentinel(): Promise<RedisSentinel> {
  const bin = findRedisServer(undefined);
  const root = mkdtempSync(join(tmpdir(), 'pgrr-redis-sentinel-'));
  const dir = (name: string) => {
    const path = join(root, name);
    mkdirSync(path);
    return path;
  };
  const base = ['--bind', HOST, '--protected-mode', 'no', '--daemonize', 'no', '--save', '', '--appendonly', 'no'];
  const masterPort = await freePort();
  const master = new RedisProcess(masterPort, dir('master'), bin, ['--port', String(masterPort), ...base]);
  const processes: RedisProcess[] = [master];
  const reaper = {
    reapSync: () => {
      processes.forEach((p) => p.killSync());
      removeTree(root);
    },
  };
  track(reaper);
  let replication: FaultProxy | undefined;
  const stop = async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await replication?.close();
    removeTree(root);
    untrack(reaper);
  };
  try {
    await master.start();
    replication = await startFaultProxy({ host: HOST, port: masterPort });
    const replicaPort = await freePort();
    const replica = new RedisProcess(replicaPort, dir('replica'), bin, [
      '--port',
      String(replicaPort),
      ...base,
      '--replicaof',
      HOST,
      String(replication.port),
    ]);
    processes.push(replica);
    await replica.start();
    await waitFor('the replica to sync', 15_000, async () =>
      /master_link_status:up/.test(await replica.cli('info', 'replication')) ? true : undefined,
    );
    const sentinels: RedisProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const home = dir(`sentinel${i}`);
      const conf = join(home, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          'protected-mode no',
          `sentinel monitor ${SENTINEL_MASTER} ${HOST} ${masterPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 500`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
          '',
        ].join('\n'),
      );
      const sentinel = new RedisProcess(port, home, bin, [conf, '--sentinel', '--daemonize', 'no']);
      processes.push(sentinel);
      sentinels.push(sentinel);
    }
    await Promise.all(sentinels.map((s) => s.start()));
    await waitFor('the sentinels to know the replica and each other', 30_000, async () => {
      const known = await Promise.all(
        sentinels.map(async (s) => {
          const info = await s.cli('sentinel', 'master', SENTINEL_MASTER);
          const field = (name: string) => Number(new RegExp(`(?:^|\\n)${name}\\n(\\d+)`).exec(info)?.[1] ?? 0);
          return field('num-slaves') >= 1 && field('num-other-sentinels') >= 2;
        }),
      );
      return known.every(Boolean) ? true : undefined;
    });
    return {
      sentinels: sentinels.map((s) => ({ host: HOST, port: s.port })),
      master,
      replica,
      replication,
      async replicated() {
        const offset = (info: string, field: string) => Number(new RegExp(`${field}:(\\d+)`).exec(info)?.[1] ?? -1);
        await waitFor('the replica to catch up', 10_000, async () => {
          const wanted = offset(await master.cli('info', 'replication'), 'master_repl_offset');
          return offset(await replica.cli('info', 'replication'), 'slave_repl_offset') >= wanted ? true : undefined;
        });
      },
      async masterPort() {
        const reply = await sentinels[0]!.cli('sentinel', 'get-master-addr-by-name', SENTINEL_MASTER);
        return Number(reply.trim().split('\n')[1]);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
