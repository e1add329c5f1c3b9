import { connect } from 'node:net';
import { join } from 'node:path';
import { processError, signalGroup, spawnDaemon, waitFor, type Daemon } from './processes.js';
import type { RedisHandle } from './types.js';

const HOST = '127.0.0.1';

/** Sends PING over a raw socket; resolves true on +PONG. */
export function ping(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/**
 * A redis-server process on this machine. It saves nothing by itself (no save points, no AOF),
 * so a restart comes back empty; but a snapshot taken on request (`SAVE`, `BGSAVE`) stays in its
 * directory and is loaded at the next `start()`: a stop or kill after `SAVE` brings back the
 * data as it was then (a restart from an older snapshot).
 */
export class NativeRedis implements RedisHandle {
  readonly host = HOST;
  #daemon: Daemon | undefined;

  constructor(
    readonly port: number,
    private readonly bin: string,
    private readonly dir: string,
    private readonly timeoutMs: number,
  ) {}

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get running(): boolean {
    return this.#daemon?.isRunning() ?? false;
  }

  get pid(): number | undefined {
    return this.running ? this.#daemon?.pid : undefined;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const args = [
      '--port',
      String(this.port),
      '--bind',
      HOST,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
      // Read by the cluster's watchdog (see watchdog.ts) should this process be killed.
      '--pidfile',
      join(this.dir, 'redis.pid'),
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
    ];
    const logFile = join(this.dir, 'redis.log');
    const daemon = spawnDaemon(this.bin, args, { as: {}, cwd: this.dir, logFile });
    this.#daemon = daemon;
    const outcome = await Promise.race([
      waitFor('redis to answer PING', this.timeoutMs, async () => ((await ping(HOST, this.port)) ? true : undefined)).then(
        () => 'ready' as const,
      ),
      daemon.exited().then(() => 'exited' as const),
    ]);
    if (outcome === 'exited') throw processError(`redis-server exited during start-up (log: ${logFile})`, '');
  }

  async stop(): Promise<void> {
    await this.#signal('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  killSync(): void {
    if (this.#daemon?.isRunning()) signalGroup(this.#daemon.pid, 'SIGKILL');
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const daemon = this.#daemon;
    if (!daemon?.isRunning()) return;
    signalGroup(daemon.pid, signal);
    const timer = setTimeout(() => signalGroup(daemon.pid, 'SIGKILL'), this.timeoutMs);
    try {
      await daemon.exited();
    } finally {
      clearTimeout(timer);
    }
  }
}
