import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';

/** The OS identity a child process runs as; undefined fields mean "this process's". */
export interface RunAs {
  uid?: number;
  gid?: number;
  user?: string;
  home?: string;
}

/**
 * PostgreSQL refuses to run as root. When this process is root, pick an unprivileged user
 * (the one asked for, else `postgres`, else `nobody`) from /etc/passwd.
 */
export function unprivilegedUser(wanted: string | undefined): RunAs {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'));
  const names = wanted ? [wanted] : ['postgres', 'nobody'];
  for (const name of names) {
    const entry = passwd.find((fields) => fields[0] === name);
    if (entry && entry[2] !== '0') {
      return { user: name, uid: Number(entry[2]), gid: Number(entry[3]), home: entry[5] };
    }
  }
  throw new ReplicaRouterError(
    ErrorCodes.INVALID_OPTION,
    `startCluster: running as root, and no unprivileged user ${names.join(' or ')} to run PostgreSQL as; pass osUser`,
  );
}

function childEnv(as: RunAs): NodeJS.ProcessEnv {
  // libpq and PostgreSQL read these; the user's own settings must not leak into the cluster.
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key];
  if (as.user) Object.assign(env, { USER: as.user, LOGNAME: as.user, HOME: as.home ?? '/' });
  return env;
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(command: string, args: string[], opts: { as: RunAs; cwd: string; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: childEnv(opts.as),
      uid: opts.as.uid,
      gid: opts.as.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (err) => reject(processError(`${command} could not be started`, output, err)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(processError(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`, output));
    });
  });
}

export function processError(message: string, output: string, cause?: unknown): ReplicaRouterError {
  const tail = output.trim().split('\n').slice(-15).join('\n');
  return new ReplicaRouterError(ErrorCodes.CLUSTER_PROCESS, tail ? `${message}:\n${tail}` : message, { cause });
}

/** A long-running server process in its own process group, its output appended to a log file. */
export interface Daemon {
  readonly pid: number;
  /** Resolves when the process has exited; keeps the event loop alive while awaited. */
  exited(): Promise<void>;
  isRunning(): boolean;
}

export function spawnDaemon(command: string, args: string[], opts: { as: RunAs; cwd: string; logFile: string }): Daemon {
  const log = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      cwd: opts.cwd,
      env: childEnv(opts.as),
      uid: opts.as.uid,
      gid: opts.as.gid,
      stdio: ['ignore', log, log],
      // Own process group: kill() takes the server and all its children at once, and a
      // Ctrl-C meant for the test runner is handled by our cleanup, not half-delivered.
      detached: true,
    });
  } finally {
    closeSync(log);
  }
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false;
      resolve();
    });
    child.once('error', () => {
      running = false;
      resolve();
    });
  });
  // Unreferenced: a cluster nobody stopped must not keep the process alive (the exit hook
  // cleans it up). Referenced again only while someone waits for the exit.
  child.unref();
  if (child.pid === undefined) running = false;
  return {
    pid: child.pid ?? -1,
    isRunning: () => running,
    exited: async () => {
      if (!running) return;
      child.ref();
      try {
        await exited;
      } finally {
        child.unref();
      }
    },
  };
}

/** Sends a signal to a daemon's whole process group; no error if it is gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already exited
  }
}

/**
 * PIDs of a process's direct children. PostgreSQL's children each call setsid(), so they are
 * not in the postmaster's process group and must be found this way.
 */
export function childPids(pid: number): number[] {
  if (existsSync('/proc/self/stat')) {
    const children: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry));
      } catch {
        // exited while we looked
      }
    }
    return children;
  }
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Whether a process exists (and is not a zombie, where /proc can tell). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/**
 * A free TCP port on the loopback interface, below the kernel's ephemeral range (where outgoing
 * connections and other programs' `listen(0)` take their ports). So a port handed out here is not
 * taken by a connection before the server binds it, nor handed to another program while the server
 * is stopped for a test (only another caller picking at random from the same 20 000 ports could).
 * Falls back to a kernel-chosen port.
 */
export async function freePort(): Promise<number> {
  const bottom = 10_000;
  const top = ephemeralLow() - 1;
  for (let attempt = 0; top - bottom > 1000 && attempt < 50; attempt++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom + 1));
    if ((await bindable(port)) === port) return port;
  }
  return bindable(0);
}

/** The lowest port of the kernel's ephemeral range (32768 when it cannot be read). */
export function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 1024 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Binds `port` (0: any) on 127.0.0.1 and lets it go: the port, or undefined when it is taken. */
function bindable(port: 0): Promise<number>;
function bindable(port: number): Promise<number | undefined>;
function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => (port === 0 ? reject(err) : resolve(undefined)));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

/** Blocks the thread (only for exit hooks, where nothing asynchronous can run any more). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new ReplicaRouterError(ErrorCodes.CLUSTER_PROCESS, `timed out after ${timeoutMs} ms waiting for ${what}${reason}`, {
        cause: lastError,
      });
    }
    await sleep(intervalMs);
  }
}

/** Something that can be torn down synchronously when the process is about to die. */
export interface Reapable {
  reapSync(): void;
}

const live = new Set<Reapable>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function reapAll(): void {
  for (const item of [...live]) {
    try {
      item.reapSync();
    } catch {
      // best effort while dying
    }
  }
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  reapAll();
  uninstall();
  // Re-raise so the default action (or the application's own handlers) still run.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function uninstall(): void {
  process.off('exit', reapAll);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

/** Registers a cluster for clean-up on exit, SIGINT, SIGTERM and SIGHUP. */
export function track(item: Reapable): void {
  if (live.size === 0) {
    process.on('exit', reapAll);
    for (const signal of SIGNALS) process.on(signal, onSignal);
  }
  live.add(item);
}

/** Removes a cluster from clean-up (it was stopped normally). */
export function untrack(item: Reapable): void {
  live.delete(item);
  if (live.size === 0) uninstall();
}

/** Removes a directory tree, retrying while killed processes release it. */
export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}
