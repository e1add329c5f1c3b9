import { parseArgs } from 'node:util';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { suggest } from '../suggest.js';
import { MAX_APPLY_DELAY_MS, replicaSql } from '../testing/sql.js';
import { runningCluster, stateFile, STATE_OPTION, type ClusterInfo } from './cluster-state.js';
import { UsageError, wholeNumber, type Command } from './command.js';

/** How long a control may take to show its effect. */
const CONTROL_TIMEOUT_MS = 10_000;

/** The connection string of replica `name` of `cluster`, or `ERR_PGRR_UNKNOWN_REPLICA`. */
export function replicaUrl(cluster: ClusterInfo, name: string): string {
  const names = Object.keys(cluster.replicas);
  if (Object.hasOwn(cluster.replicas, name)) return cluster.replicas[name]!;
  const hint = suggest(name, names);
  throw new ReplicaRouterError(
    ErrorCodes.UNKNOWN_REPLICA,
    `the cluster has no replica ${JSON.stringify(name)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}; its replicas: ${names.join(', ') || 'none'}`,
  );
}

/**
 * A command on one replica of the running cluster: `cluster <verb> <replica> <more…>`. `act`
 * gets the replica's URL and the further positional arguments, and returns the line to print.
 */
function replicaCommand(verb: string, more: string[], summary: string, act: (url: string, args: string[]) => Promise<string>): Command {
  return {
    name: `cluster ${verb}`,
    synopsis: ['<replica>', ...more.map((m) => `<${m}>`), '[--state FILE]'].join(' '),
    summary,
    async run(args) {
      const { values, positionals } = parseArgs({ args, options: STATE_OPTION, allowPositionals: true });
      if (positionals.length !== 1 + more.length) {
        throw new UsageError(`cluster ${verb} takes ${['a replica name', ...more].join(' and ')}`);
      }
      const [name, ...rest] = positionals as [string, ...string[]];
      const url = replicaUrl(runningCluster(stateFile(values.state)), name);
      console.log(`${name}: ${await act(url, rest)}`);
      return 0;
    },
  };
}

export const clusterPause = replicaCommand(
  'pause',
  [],
  'Pauses WAL replay on a replica: it keeps answering reads, from the snapshot it has.',
  async (url) => {
    await replicaSql.pauseReplay(url, CONTROL_TIMEOUT_MS);
    return `replay paused at ${await replicaSql.replayLsn(url)}`;
  },
);

export const clusterResume = replicaCommand('resume', [], 'Resumes WAL replay on a replica.', async (url) => {
  await replicaSql.resumeReplay(url, CONTROL_TIMEOUT_MS);
  return 'replay resumed';
});

export const clusterDelay = replicaCommand(
  'delay',
  ['ms'],
  `Sets a replica's recovery_min_apply_delay (0 to ${MAX_APPLY_DELAY_MS} ms) and reloads it: it applies each\ntransaction that long after the primary committed it.`,
  async (url, [ms]) => {
    const delay = wholeNumber('cluster delay <ms>', ms)!;
    await replicaSql.setApplyDelay(url, delay, CONTROL_TIMEOUT_MS);
    return `recovery_min_apply_delay is ${delay} ms`;
  },
);
