import type { Lsn } from './lsn.js';
import type { NodePool } from './nodes.js';
import type { FlightMode } from './position-flight.js';
import type { Decision } from './routing-policy.js';

/** What the planner routes: a read (a routable read or `BEGIN READ ONLY`) or anything else. */
export type RoutedStatement = 'read' | 'other';

/** Where a statement goes, and why. */
export interface Route {
  readonly node: NodePool;
  readonly decision: Exclude<Decision, { target: 'check' }>;
  /** The session floor the decision was made for. */
  readonly floor: Lsn;
  /** How long the read waited for a replica, in ms. */
  readonly waitedMs: number;
  /**
   * `replay-before`: the replica is not known to have replayed `floor`; the read goes with a live
   * read of its replay position in the same flight, and its answer stands only if that is at or
   * past `floor` (see lib/position-flight.ts).
   */
  readonly flight?: FlightMode;
}
