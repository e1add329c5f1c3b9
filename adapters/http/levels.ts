import { isConsistency, type Consistency } from '../../lib/consistency.js';

/**
 * eventual < read-your-writes < session < { maxStalenessMs } < primary: a staleness bound comes
 * on top of the session's floor and monotonic reads, so it is stronger than `session` alone.
 */
export function strength(level: Consistency): number {
  if (typeof level === 'object') return 3;
  return { eventual: 0, 'read-your-writes': 1, session: 2, primary: 4 }[level];
}

/** The stronger of two levels (the first on a tie). */
export function stronger(a: Consistency, b: Consistency | undefined): Consistency {
  return b !== undefined && strength(b) > strength(a) ? b : a;
}

/** A level a client may name in a header or query string (`primary`, `session`, …), or undefined. */
export function parseClientLevel(value: unknown): Consistency | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== 'string') return undefined;
  const level = text.trim().toLowerCase();
  return isConsistency(level) ? level : undefined;
}
