import { existsSync, readFileSync } from 'node:fs';
import { alive } from '../testing/processes.js';

/**
 * A process as seen at one moment: its pid and, on Linux, its start time (clock ticks after boot,
 * field 22 of /proc/<pid>/stat), so that a later process given the same pid is not taken for it.
 */
export interface ProcessIdentity {
  readonly pid: number;
  readonly start: string | undefined;
}

const hasProc = existsSync('/proc/self/stat');

/** State, parent and start time from /proc/<pid>/stat; undefined when it is gone or there is no /proc. */
function stat(pid: number): { state: string; ppid: number; start: string } | undefined {
  if (!hasProc) return undefined;
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields 3… follow the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]), start: fields[19]! };
  } catch {
    return undefined;
  }
}

/** `pid` as it is now. */
export function identify(pid: number): ProcessIdentity {
  return { pid, start: stat(pid)?.start };
}

/** Whether the process still runs: alive, not a zombie, and (where known) the same start time. */
export function stillRunning(process: ProcessIdentity): boolean {
  if (!hasProc || process.start === undefined) return alive(process.pid);
  const now = stat(process.pid);
  return now !== undefined && now.state !== 'Z' && now.state !== 'X' && now.start === process.start;
}

/**
 * The processes this one runs under, nearest first, up to but not including init (pid 1): e.g.
 * the shell npm runs a command in, npm, the test runner that started npm. Without /proc (macOS),
 * only the parent.
 */
export function ancestors(): ProcessIdentity[] {
  if (!hasProc) return process.ppid > 1 ? [{ pid: process.ppid, start: undefined }] : [];
  const chain: ProcessIdentity[] = [];
  for (let pid = process.ppid; pid > 1 && chain.length < 64;) {
    const info = stat(pid);
    if (!info) break;
    chain.push({ pid, start: info.start });
    pid = info.ppid;
  }
  return chain;
}
