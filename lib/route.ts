import type { Lsn } from './lsn.js';
import type { NodePool } from './nodes.js';
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
}
