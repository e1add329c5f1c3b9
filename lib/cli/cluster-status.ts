import { parseArgs } from 'node:util';
import { runningCluster, stateFile, STATE_OPTION } from './cluster-state.js';
import type { Command } from './command.js';
import { readStatus, type ClusterStatus, type ReplicaStatus } from './status-report.js';

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function replicaLine(r: ReplicaStatus): string {
  if (r.error !== null) return `${r.name.padEnd(8)} unreachable: ${r.error}`;
  const lag = r.lagBytes === null ? 'lag unknown' : `lag ${bytes(r.lagBytes)}, ${r.lagMs === null ? '? ms' : duration(r.lagMs)}`;
  const replay = r.paused === null ? 'not in recovery' : r.paused ? 'replay paused' : 'replaying';
  return `${r.name.padEnd(8)} replay ${String(r.replayLsn).padEnd(11)} ${lag.padEnd(24)} ${replay.padEnd(14)} apply delay ${duration(r.applyDelayMs ?? 0)}`;
}

function printText(status: ClusterStatus): void {
  const { primary } = status;
  console.log(`${'primary'.padEnd(8)} ${primary.error === null ? `insert ${primary.insertLsn}` : `unreachable: ${primary.error}`}`);
  for (const replica of status.replicas) console.log(replicaLine(replica));
}

/** `cluster status`: positions, lag, replay state and apply delay of every node. */
export const clusterStatus: Command = {
  name: 'cluster status',
  synopsis: '[--json] [--state FILE]',
  summary: `Shows the primary's insert LSN and, for each replica, its replay LSN, its lag in bytes and
time, whether replay is paused, and its apply delay. Exits 1 if a node cannot be read.
  --json             print one JSON object instead of text`,

  async run(args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false }, ...STATE_OPTION } });
    const status = await readStatus(runningCluster(stateFile(values.state)));
    if (values.json) console.log(JSON.stringify(status));
    else printText(status);
    const unreadable = status.primary.error !== null || status.replicas.some((r) => r.error !== null);
    return unreadable ? 1 : 0;
  },
};
