import { STATE_ENV } from './cluster-state.js';
import type { Command } from './command.js';

const indent = (text: string, by: string) => text.replace(/^/gm, by);

/** One command's usage: its synopsis and what it does. */
export function commandUsage(command: Command): string {
  return `pg-replica-router ${command.name} ${command.synopsis}\n${indent(command.summary, '    ')}`;
}

/** The whole CLI's usage text. */
export function usage(commands: readonly Command[]): string {
  return `Usage: pg-replica-router <command> [options]

${commands.map(commandUsage).join('\n\n')}

The cluster commands find the running cluster through a state file that \`cluster up\` writes
and removes: --state FILE, else $${STATE_ENV}, else <tmpdir>/pg-replica-router-<uid>/cluster.json.`;
}
