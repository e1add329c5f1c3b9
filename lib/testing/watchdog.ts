import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

/**
 * What the watchdog process runs (CommonJS, for `node -e`: the same text works from the sources
 * and from dist, with no loader). Its stdin is a pipe whose only write end is held by the process
 * that started the cluster; the kernel closes that end when the process ends, however it ends
 * (SIGKILL, a crash, an exit with the hooks skipped), and the watchdog then removes what is left.
 *
 * The servers are found from their pid files in the cluster directory (PostgreSQL's own
 * postmaster.pid in each data directory; redis.pid). A file left by a killed server may name a
 * pid reused since, so on Linux a process counts only if it works in the cluster directory
 * (PostgreSQL and Redis both chdir into it).
 */
const SCRIPT = String.raw`'use strict';
const fs = require('node:fs');
const path = require('node:path');
let dir;
try { dir = fs.realpathSync(process.argv[1]); } catch { process.exit(0); }
const linux = fs.existsSync('/proc/self/stat');
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function running(pid) {
  try { process.kill(pid, 0); } catch (err) { if (err.code !== 'EPERM') return false; }
  if (!linux) return true;
  try {
    const stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch { return false; }
}

function ours(pid) {
  if (!running(pid)) return false;
  if (!linux) return true;
  try {
    const cwd = fs.readlinkSync('/proc/' + pid + '/cwd');
    return cwd === dir || cwd.startsWith(dir + path.sep);
  } catch { return false; }
}

// [pid, signal]: PostgreSQL gets an immediate shutdown (which still frees its shared memory).
function servers() {
  let entries;
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return []; }
  const found = [];
  for (const entry of entries) {
    const postgres = entry.isDirectory();
    if (!postgres && !entry.name.endsWith('.pid')) continue;
    const file = postgres ? path.join(dir, entry.name, 'postmaster.pid') : path.join(dir, entry.name);
    let pid;
    try { pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]); } catch { continue; }
    if (Number.isInteger(pid) && pid > 1 && ours(pid)) found.push([pid, postgres ? 'SIGQUIT' : 'SIGTERM']);
  }
  return found;
}

function signal(pid, sig) {
  try { process.kill(sig === 'SIGKILL' ? -pid : pid, sig); } catch {}
  try { process.kill(pid, sig); } catch {}
}

function reap() {
  for (const [pid, sig] of servers()) signal(pid, sig);
  const deadline = Date.now() + 5000;
  let left = servers();
  while (left.length > 0 && Date.now() < deadline) { sleep(50); left = servers(); }
  for (const [pid] of left) signal(pid, 'SIGKILL');
  try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }); } catch {}
  process.exit(0);
}

process.stdin.on('data', () => {});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
`;

/** A watchdog process for one cluster directory. */
export interface Watchdog {
  /** The cluster was stopped: the watchdog finds nothing left to remove and exits. Idempotent. */
  release(): void;
}

/**
 * Starts a process that removes the cluster in `dir` (its servers, then the directory) once this
 * process has ended without doing so, e.g. killed with SIGKILL. It runs in a session of its own,
 * so a Ctrl-C or a signal to this process group does not reach it. Where it cannot be started
 * (Windows, or the spawn fails), clusters work as before, with the exit hooks only.
 */
export function startWatchdog(dir: string): Watchdog {
  if (process.platform === 'win32') return { release: () => {} };
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // no loaders or preloads of the parent in a 60-line script
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ['-e', SCRIPT, dir], { cwd: '/', env, detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    return { release: () => {} };
  }
  child.on('error', () => {});
  const pipe = child.stdin as Writable & { unref?: () => void };
  pipe.on('error', () => {});
  // Neither the process nor the pipe keeps this process alive.
  child.unref();
  pipe.unref?.();
  return { release: () => pipe.destroy() };
}
