#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ReplicaRouterError } from './errors.js';
import { startCluster, type Cluster } from './testing/index.js';

const USAGE = `Usage: pg-replica-router cluster up [--replicas N] [--apply-delay MS] [--redis] [--json]

Starts a local PostgreSQL primary with streaming replicas (and Redis with --redis),
prints their URLs, and keeps them up until Ctrl-C.

  --replicas N       number of streaming replicas (default 2)
  --apply-delay MS   recovery_min_apply_delay of every replica (default 0)
  --redis            also start a Redis server
  --json             print one JSON object instead of text (for scripts)
  --provider P       native | containers | auto (default auto)`;

function describe(cluster: Cluster) {
  return {
    provider: cluster.provider,
    startupMs: cluster.startupMs,
    primary: cluster.primary.connectionString,
    replicas: Object.fromEntries(cluster.replicas.map((r) => [r.name, r.connectionString])),
    redis: cluster.redis?.url ?? null,
    dir: cluster.dir ?? null,
  };
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      replicas: { type: 'string' },
      'apply-delay': { type: 'string' },
      redis: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      provider: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.join(' ') !== 'cluster up') {
    (values.help ? console.log : console.error)(USAGE);
    return values.help ? 0 : 2;
  }
  const integer = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text))
      throw new ReplicaRouterError('ERR_PGRR_INVALID_OPTION', `--${name} takes a whole number, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  const cluster = await startCluster({
    replicas: integer('replicas', values.replicas),
    applyDelayMs: integer('apply-delay', values['apply-delay']),
    redis: values.redis,
    provider: values.provider as 'native' | 'containers' | 'auto' | undefined,
  });
  const info = describe(cluster);
  if (values.json) {
    console.log(JSON.stringify(info));
  } else {
    console.log(`Cluster up in ${(info.startupMs / 1000).toFixed(1)} s (${info.provider}).`);
    console.log(`  primary  ${info.primary}`);
    for (const [name, url] of Object.entries(info.replicas)) console.log(`  ${name.padEnd(8)} ${url}`);
    if (info.redis) console.log(`  redis    ${info.redis}`);
    console.log('Press Ctrl-C to stop and remove everything.');
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await cluster.stop();
  if (!values.json) console.log('Cluster stopped and removed.');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ReplicaRouterError ? `${err.code}: ${err.message}` : err);
    process.exit(1);
  },
);
