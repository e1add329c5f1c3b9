import { levelName, type Consistency } from './consistency.js';
import { formatLsn } from './lsn.js';
import type { Route } from './route.js';

/** One routing decision, as the opt-in debug log gives it (`createRouter({ debug })`). */
export interface DebugDecision {
  /** The node that serves the statement (`primary`, a replica's name). */
  readonly node: string;
  readonly role: 'primary' | 'replica';
  /** Why it went there (`caught-up`, `replica-behind`, `write`, …; see docs/observability.md). */
  readonly reason: string;
  /** The session floor the decision was made for (`0/0`: none). */
  readonly floor: string;
  readonly consistency: string;
  /** `read`, `write`, … (the classifier's kind). */
  readonly statement: string;
  readonly waitedMs: number;
}

/** What `debug` becomes: a function called per decision, or nothing (the default: no cost). */
export type DebugSink = ((decision: DebugDecision) => void) | undefined;

/** The `DEBUG` environment variable names this library (`pg-replica-router`, `pg-replica-router:*`, `*`), as the `debug` package reads it. */
export function debugFromEnv(value: string | undefined): boolean {
  if (!value) return false;
  return value
    .split(/[\s,]+/)
    .some((name) => name === '*' || name === 'pg-replica-router' || name === 'pg-replica-router:*' || name === 'pg-replica-router*');
}

/** A decision as one line, e.g. `pg-replica-router route r1 (replica) caught-up floor=0/3000060 session read`. */
export function formatDecision(d: DebugDecision): string {
  const waited = d.waitedMs > 0 ? ` waited=${Math.round(d.waitedMs)}ms` : '';
  return `pg-replica-router route ${d.node} (${d.role}) ${d.reason} floor=${d.floor} ${d.consistency} ${d.statement}${waited}`;
}

/**
 * The `debug` option resolved: `true` writes each decision as a line to stderr; a function gets
 * each decision; `false` nothing; undefined follows `DEBUG` (see {@link debugFromEnv}).
 */
export function debugSink(option: boolean | ((decision: DebugDecision) => void) | undefined, env = process.env.DEBUG): DebugSink {
  if (typeof option === 'function') return option;
  if (option === true || (option === undefined && debugFromEnv(env))) return (d) => process.stderr.write(`${formatDecision(d)}\n`);
  return undefined;
}

/** The decision of a route as the debug log gives it. */
export function decisionOf(route: Route, statement: string, level: Consistency): DebugDecision {
  return {
    node: route.node.name,
    role: route.node.role,
    reason: route.decision.reason,
    floor: formatLsn(route.floor),
    consistency: levelName(level),
    statement,
    waitedMs: route.waitedMs,
  };
}
