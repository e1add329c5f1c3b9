#!/usr/bin/env node
// The `pg-replica-router` command: picks a command by its words and runs it. Each command lives
// in lib/cli/ in a file of its own.
import { ReplicaRouterError } from './errors.js';
import { clusterDelay, clusterPause, clusterResume } from './cli/cluster-control.js';
import { clusterStatus } from './cli/cluster-status.js';
import { clusterUp } from './cli/cluster-up.js';
import { doctor } from './cli/doctor.js';
import { UsageError, type Command } from './cli/command.js';
import { commandUsage, usage } from './cli/usage.js';

/** Every command, in the order the usage text lists them. */
const COMMANDS: readonly Command[] = [
  clusterUp,
  clusterStatus,
  clusterPause,
  clusterResume,
  clusterDelay,
  doctor,
  // A new command: a Command in a file of lib/cli/, imported above, one line here.
];

function find(argv: string[]): Command | undefined {
  return COMMANDS.find((command) => command.name.split(' ').every((word, i) => argv[i] === word));
}

/** node:util parseArgs reports unknown options and missing values as TypeErrors with these codes. */
const isArgumentError = (err: unknown) => err instanceof TypeError && String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');

async function main(argv: string[]): Promise<number> {
  const command = find(argv);
  if (!command || argv.includes('--help') || argv.includes('-h')) {
    const help = argv.includes('--help') || argv.includes('-h');
    (help ? console.log : console.error)(command && help ? commandUsage(command) : usage(COMMANDS));
    return help ? 0 : 2;
  }
  try {
    return await command.run(argv.slice(command.name.split(' ').length));
  } catch (err) {
    if (!(err instanceof UsageError) && !isArgumentError(err)) throw err;
    console.error(`${(err as Error).message}\n\nUsage: ${commandUsage(command)}`);
    return 2;
  }
}

// Output to a terminal or pipe that closed (its reader ended first) must not stop the clean-up.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ReplicaRouterError ? `${err.code}: ${err.message}` : err);
    process.exit(1);
  },
);
