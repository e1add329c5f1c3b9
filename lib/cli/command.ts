import { ErrorCodes, ReplicaRouterError } from '../errors.js';

/**
 * One command of the `pg-replica-router` CLI. The dispatcher (lib/cli.ts) picks it by the words
 * of its name and hands it the arguments after them.
 *
 * @example
 * ```ts
 * const hello: Command = {
 *   name: 'hello',
 *   synopsis: '[--loud]',
 *   summary: 'Says hello.',
 *   async run(args) {
 *     console.log(args.includes('--loud') ? 'HELLO' : 'hello');
 *     return 0;
 *   },
 * };
 * ```
 */
export interface Command {
  /** The words that select it, e.g. `cluster up`. */
  readonly name: string;
  /** Its arguments as the usage text shows them, e.g. `<replica> [--state FILE]`. */
  readonly synopsis: string;
  /** What it does, in a line or two. */
  readonly summary: string;
  /** Runs it with the arguments after its name; resolves to the process's exit code. */
  run(args: string[]): Promise<number>;
}

/** Wrong arguments for a command (missing, extra): the dispatcher prints its usage and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `text` as a whole number, or undefined when absent; `what` names it in the error. Ranges are the API's to check. */
export function wholeNumber(what: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `${what} takes a whole number, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}
