import { parseArgs } from 'node:util';
import { startCluster, type Cluster, type ClusterProvider } from '../testing/index.js';
import { claimState, stateFile, STATE_OPTION, type ClusterInfo } from './cluster-state.js';
import { wholeNumber, type Command } from './command.js';
import { onStopSignal, watchLifetime, type StopCause } from './lifetime.js';
import { ancestors } from './process-identity.js';

function describe(cluster: Cluster, state: string): ClusterInfo {
  const servers: Record<string, number> = {};
  for (const node of [cluster.primary, ...cluster.replicas]) if (node.pid !== undefined) servers[node.name] = node.pid;
  if (cluster.redis?.pid !== undefined) servers.redis = cluster.redis.pid;
  return {
    provider: cluster.provider,
    startupMs: cluster.startupMs,
    primary: cluster.primary.connectionString,
    replicas: Object.fromEntries(cluster.replicas.map((r) => [r.name, r.connectionString])),
    redis: cluster.redis?.url ?? null,
    dir: cluster.dir ?? null,
    pid: process.pid,
    pids: cluster.provider === 'native' ? servers : null,
    state,
  };
}

function printText(info: ClusterInfo): void {
  console.log(`Cluster up in ${(info.startupMs / 1000).toFixed(1)} s (${info.provider}).`);
  console.log(`  primary  ${info.primary}`);
  for (const [name, url] of Object.entries(info.replicas)) console.log(`  ${name.padEnd(8)} ${url}`);
  if (info.redis) console.log(`  redis    ${info.redis}`);
  console.log(`Press Ctrl-C to stop and remove everything. Control it with \`pg-replica-router cluster status|pause|resume|delay\`.`);
}

const CAUSES: Record<StopCause, string> = {
  SIGINT: 'SIGINT',
  SIGTERM: 'SIGTERM',
  SIGHUP: 'SIGHUP',
  'parent exited': 'the process that started it has ended',
};

/** `cluster up`: starts a cluster and holds it until a signal or the end of the processes it runs under. */
export const clusterUp: Command = {
  name: 'cluster up',
  synopsis: '[--replicas N] [--apply-delay MS] [--redis] [--provider P] [--json] [--state FILE]',
  summary: `Starts a local PostgreSQL primary with streaming replicas (and Redis), prints their URLs, and
keeps them up until Ctrl-C, SIGTERM or SIGHUP, or until the process that started it ends
(npm, npx, a shell, a test runner); then removes everything.
  --replicas N       number of streaming replicas (default 2)
  --apply-delay MS   recovery_min_apply_delay of every replica (default 0)
  --redis            also start a Redis server
  --provider P       native | containers | auto (default auto)
  --json             print one JSON object instead of text (for scripts)`,

  async run(args) {
    // First, before a parent can end unseen: the processes this one runs under.
    const chain = ancestors();
    const { values } = parseArgs({
      args,
      options: {
        replicas: { type: 'string' },
        'apply-delay': { type: 'string' },
        redis: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        provider: { type: 'string' },
        ...STATE_OPTION,
      },
    });
    const options = {
      replicas: wholeNumber('--replicas', values.replicas),
      applyDelayMs: wholeNumber('--apply-delay', values['apply-delay']),
      redis: values.redis,
      provider: values.provider as ClusterProvider | undefined, // checked by startCluster
    };
    const state = claimState(stateFile(values.state));
    // A signal while it starts ends the process (the harness removes what it started); not the file.
    const stopCleanup = onStopSignal(() => state.release());
    let cluster: Cluster;
    try {
      cluster = await startCluster(options);
    } catch (err) {
      state.release();
      throw err;
    } finally {
      stopCleanup();
    }
    const lifetime = watchLifetime(chain);
    try {
      const info = describe(cluster, state.path);
      state.publish(info);
      if (values.json) console.log(JSON.stringify(info));
      else printText(info);
      const cause = await lifetime.ended;
      if (!values.json) console.log(`Stopping (${CAUSES[cause]}).`);
    } finally {
      try {
        await cluster.stop();
      } finally {
        state.release();
        lifetime.dispose();
      }
    }
    if (!values.json) console.log('Cluster stopped and removed.');
    return 0;
  },
};
