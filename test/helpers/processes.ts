import { alive, childPids } from '../../lib/testing/processes.js';

/** The given server PIDs and all their direct children (PostgreSQL's backends and workers). */
export function processTree(pids: number[]): number[] {
  return pids.flatMap((pid) => [pid, ...childPids(pid)]);
}

/** Those of `pids` still alive. */
export function stillAlive(pids: number[]): number[] {
  return pids.filter(alive);
}
