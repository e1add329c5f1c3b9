import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { APP_ROLE, withCredentials } from './app-role.js';
import { alive, childPids, processError, signalGroup, sleep, spawnDaemon, waitFor, type Daemon, type RunAs } from './processes.js';
import { primarySql, querySql, replicaSql } from './sql.js';
import type { PrimaryHandle, ReplicaHandle, Row } from './types.js';

/** What every native node of one cluster shares. */
export interface NativeContext {
  postgresBin: string;
  as: RunAs;
  /** Cluster directory: data directories, logs and Unix sockets live here. */
  dir: string;
  database: string;
  timeoutMs: number;
  /** Whether the cluster has the application role (see app-role.ts). */
  appRole: boolean;
}

const HOST = '127.0.0.1';

/** Errors that mean "the previous server's processes have not quite gone yet": retry. */
const TRANSIENT_START = /already in use|lock file .* already exists|could not bind|Address already in use/i;

/** A PostgreSQL server process on this machine. */
export class NativePostgres {
  readonly host = HOST;
  role: 'primary' | 'replica';
  #daemon: Daemon | undefined;

  constructor(
    readonly name: string,
    role: 'primary' | 'replica',
    readonly port: number,
    readonly dataDir: string,
    protected readonly ctx: NativeContext,
  ) {
    this.role = role;
  }

  get connectionString(): string {
    return `postgresql://postgres@${HOST}:${this.port}/${this.ctx.database}`;
  }

  get appConnectionString(): string | undefined {
    return this.ctx.appRole ? withCredentials(this.connectionString, APP_ROLE.name, APP_ROLE.password) : undefined;
  }

  /** Control connections always use the `postgres` database, which exists from initdb. */
  protected get adminConnectionString(): string {
    return `postgresql://postgres@${HOST}:${this.port}/postgres`;
  }

  get running(): boolean {
    return this.#daemon?.isRunning() ?? false;
  }

  get pid(): number | undefined {
    return this.running ? this.#daemon?.pid : undefined;
  }

  get logFile(): string {
    return join(this.ctx.dir, `${this.name}.log`);
  }

  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R[]> {
    return querySql<R>(this.connectionString, sql, params);
  }

  async start(): Promise<void> {
    if (this.running) return;
    const deadline = Date.now() + this.ctx.timeoutMs;
    for (;;) {
      const logStart = this.#logSize();
      const daemon = spawnDaemon(
        this.ctx.postgresBin,
        ['-D', this.dataDir, '-p', String(this.port), '-c', `listen_addresses=${HOST}`, '-c', `unix_socket_directories=${this.ctx.dir}`],
        { as: this.ctx.as, cwd: this.ctx.dir, logFile: this.logFile },
      );
      this.#daemon = daemon;
      const ready = await Promise.race([
        this.#waitReady(deadline).then(() => 'ready' as const),
        daemon.exited().then(() => 'exited' as const),
      ]);
      if (ready === 'ready') return;
      const log = this.#logSince(logStart);
      if (TRANSIENT_START.test(log) && Date.now() < deadline) {
        await sleep(200);
        continue;
      }
      throw processError(`PostgreSQL node ${this.name} exited during start-up (log: ${this.logFile})`, log);
    }
  }

  async #waitReady(deadline: number): Promise<void> {
    await waitFor(`${this.name} to accept connections`, Math.max(0, deadline - Date.now()), async () => {
      if (!this.running) return true; // the race in start() reports the exit
      await querySql(this.adminConnectionString, 'select 1');
      return true;
    });
  }

  async stop(): Promise<void> {
    await this.#shutdown('SIGINT'); // fast shutdown: roll back, checkpoint, exit
  }

  async kill(): Promise<void> {
    const daemon = this.#daemon;
    if (!daemon?.isRunning()) return;
    // As in a machine crash, every process of the server dies at once (the children are
    // their own process groups, so they are signalled one by one).
    const children = childPids(daemon.pid);
    signalGroup(daemon.pid, 'SIGKILL');
    for (const pid of children) signalGroup(pid, 'SIGKILL');
    await daemon.exited();
    await waitFor(`${this.name}'s processes to exit`, 10_000, async () => (children.some(alive) ? undefined : true));
  }

  /** Immediate shutdown (SIGQUIT): no checkpoint, but shared memory is released. */
  async halt(): Promise<void> {
    await this.#shutdown('SIGQUIT');
  }

  /** For process exit: ask for an immediate shutdown and do not wait. */
  haltSync(): void {
    const daemon = this.#daemon;
    if (daemon?.isRunning()) {
      try {
        process.kill(daemon.pid, 'SIGQUIT');
      } catch {
        // gone
      }
    }
  }

  async #shutdown(signal: 'SIGINT' | 'SIGQUIT'): Promise<void> {
    const daemon = this.#daemon;
    if (!daemon?.isRunning()) return;
    try {
      process.kill(daemon.pid, signal);
    } catch {
      // gone already
    }
    const timer = setTimeout(() => signalGroup(daemon.pid, 'SIGKILL'), this.ctx.timeoutMs);
    try {
      await daemon.exited();
    } finally {
      clearTimeout(timer);
    }
  }

  #logSize(): number {
    try {
      return readFileSync(this.logFile).length;
    } catch {
      return 0;
    }
  }

  #logSince(offset: number): string {
    try {
      return readFileSync(this.logFile).subarray(offset).toString();
    } catch {
      return '';
    }
  }
}

export class NativePrimary extends NativePostgres implements PrimaryHandle {
  constructor(port: number, dataDir: string, ctx: NativeContext) {
    super('primary', 'primary', port, dataDir, ctx);
  }

  insertLsn(): Promise<string> {
    return primarySql.insertLsn(this.adminConnectionString);
  }

  flushLsn(): Promise<string> {
    return primarySql.flushLsn(this.adminConnectionString);
  }
}

export class NativeReplica extends NativePostgres implements ReplicaHandle {
  #paused = false;

  constructor(
    name: string,
    port: number,
    dataDir: string,
    ctx: NativeContext,
    private readonly primary: NativePrimary,
  ) {
    super(name, 'replica', port, dataDir, ctx);
  }

  /** Paused by {@link pauseReplay} (a restart resumes replay, as in PostgreSQL). */
  get paused(): boolean {
    return this.#paused && this.running;
  }

  override async start(): Promise<void> {
    if (this.running) return;
    await super.start();
    this.#paused = false;
    if (this.role === 'replica' && this.primary.running) {
      await waitFor(`${this.name} to stream from the primary`, this.ctx.timeoutMs, async () =>
        (await replicaSql.streaming(this.adminConnectionString)) ? true : undefined,
      );
    }
  }

  async pauseReplay(): Promise<void> {
    this.#requireReplica('pauseReplay');
    await replicaSql.pauseReplay(this.adminConnectionString, this.ctx.timeoutMs);
    this.#paused = true;
  }

  async resumeReplay(): Promise<void> {
    this.#requireReplica('resumeReplay');
    await replicaSql.resumeReplay(this.adminConnectionString, this.ctx.timeoutMs);
    this.#paused = false;
  }

  async setApplyDelay(ms: number): Promise<void> {
    this.#requireReplica('setApplyDelay');
    await replicaSql.setApplyDelay(this.adminConnectionString, ms, this.ctx.timeoutMs);
  }

  async promote(): Promise<void> {
    this.#requireReplica('promote');
    await replicaSql.promote(this.adminConnectionString, this.ctx.timeoutMs);
    this.role = 'primary';
  }

  replayLsn(): Promise<string> {
    return replicaSql.replayLsn(this.adminConnectionString);
  }

  async waitForReplay(lsn?: string, timeoutMs = this.ctx.timeoutMs): Promise<void> {
    const target = lsn ?? (await this.primary.flushLsn());
    await replicaSql.waitForReplay(this.adminConnectionString, target, timeoutMs);
  }

  #requireReplica(what: string): void {
    if (this.role !== 'replica') {
      throw new ReplicaRouterError(ErrorCodes.NODE_STATE, `${what}: ${this.name} was promoted and is no longer a replica`);
    }
  }
}
