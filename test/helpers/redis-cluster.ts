// A Redis Cluster of masters on loopback, for tests of the Redis store against a real Cluster:
// Debian's redis-server, one directory per node, slots assigned by `redis-cli --cluster create`.
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findRedisServer } from 'pg-replica-router/testing';
import { freePort, removeTree, signalGroup, spawnDaemon, track, untrack, waitFor, type Daemon } from '../../lib/testing/processes.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';

/** One master of the Cluster: its own port, directory (nodes.conf, dump.rdb) and process. */
export class ClusterNode {
  #daemon: Daemon | undefined;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly bin: string,
  ) {}

  get running(): boolean {
    return this.#daemon?.isRunning() ?? false;
  }

  /** Starts (or restarts) the node; it loads dump.rdb and nodes.conf from its directory if there are any. */
  async start(): Promise<void> {
    if (this.running) return;
    const args = ['--port', String(this.port), '--bind', HOST, '--protected-mode', 'no', '--daemonize', 'no'];
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, 'nodes.conf'), '--cluster-node-timeout', '5000');
    args.push('--dir', this.dir, '--save', '', '--appendonly', 'no');
    this.#daemon = spawnDaemon(this.bin, args, { as: {}, cwd: this.dir, logFile: join(this.dir, 'redis.log') });
    await waitFor(`redis node ${this.port} to answer`, 15_000, async () => ((await this.cli('ping')).trim() === 'PONG' ? true : undefined));
  }

  /** SIGKILL at once, without waiting (exit hooks). */
  killSync(): void {
    if (this.#daemon?.isRunning()) signalGroup(this.#daemon.pid, 'SIGKILL');
  }

  /** SIGKILL: nothing is saved (save points are off); a restart brings back the last `SAVE`. */
  async kill(): Promise<void> {
    const daemon = this.#daemon;
    if (!daemon?.isRunning()) return;
    signalGroup(daemon.pid, 'SIGKILL');
    await daemon.exited();
  }

  /** One redis-cli command against this node only (no redirection); its raw reply. */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', ['-h', HOST, '-p', String(this.port), ...args], { timeout: 10_000 });
    return stdout;
  }

  /** `cluster_state` from this node's `CLUSTER INFO`. */
  async state(): Promise<string | undefined> {
    return /cluster_state:(\w+)/.exec(await this.cli('cluster', 'info'))?.[1];
  }
}

/** A running Redis Cluster of masters without replicas. */
export interface RedisCluster {
  readonly nodes: ClusterNode[];
  /** `{ host, port }` of every master: the start-up nodes for `new Redis.Cluster()`. */
  readonly startupNodes: Array<{ host: string; port: number }>;
  /** The master serving the slot of `key` (`CLUSTER KEYSLOT`, then the slot ranges of `CLUSTER SLOTS`). */
  nodeFor(key: string): Promise<ClusterNode>;
  /** Waits until every running node reports cluster_state:ok. */
  waitOk(): Promise<void>;
  stop(): Promise<void>;
}

/** A port whose cluster bus port (+10 000) is free too, below 55 536. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port < 55_536 - 10_000 && !taken.has(port) && !taken.has(port + 10_000) && (await bindable(port + 10_000))) return port;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/**
 * Starts `masters` redis-server processes in cluster mode and joins them (`redis-cli --cluster
 * create`, no replicas); resolves once every node says cluster_state:ok.
 *
 * @example
 * ```ts
 * const redis = await startRedisCluster(3);
 * const client = new Redis.Cluster(redis.startupNodes);
 * await redis.stop();
 * ```
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const bin = findRedisServer(undefined);
  const root = mkdtempSync(join(tmpdir(), 'pgrr-redis-cluster-'));
  const taken = new Set<number>();
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < masters; i++) {
    const port = await clusterPort(taken);
    taken.add(port).add(port + 10_000);
    const dir = join(root, `n${i}`);
    mkdirSync(dir);
    nodes.push(new ClusterNode(port, dir, bin));
  }
  // Killed and removed if the test process dies without stopping it (the nodes are detached).
  const reaper = {
    reapSync: () => {
      nodes.forEach((n) => n.killSync());
      removeTree(root);
    },
  };
  track(reaper);
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    removeTree(root);
    untrack(reaper);
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const addresses = nodes.map((n) => `${HOST}:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 60_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  const waitOk = async (): Promise<void> => {
    await waitFor('cluster_state:ok on every node', 30_000, async () => {
      const states = await Promise.all(nodes.filter((n) => n.running).map((n) => n.state()));
      return states.every((s) => s === 'ok') ? true : undefined;
    });
  };
  await waitOk();
  return {
    nodes,
    startupNodes: nodes.map((n) => ({ host: HOST, port: n.port })),
    async nodeFor(key) {
      const slot = Number((await nodes[0]!.cli('cluster', 'keyslot', key)).trim());
      for (const node of nodes) {
        const mine = (await node.cli('cluster', 'nodes')).split('\n').find((line) => line.includes('myself'));
        const owned = (mine ?? '').split(' ').slice(8);
        for (const range of owned) {
          const [from, to = from] = range.split('-').map(Number);
          if (slot >= from! && slot <= to!) return node;
        }
      }
      throw new Error(`no node serves slot ${slot} of ${key}`);
    },
    waitOk,
    stop,
  };
}
