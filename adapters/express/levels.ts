import { isConsistency, type Consistency } from '../../lib/consistency.js';

/** eventual < { maxStalenessMs } < read-your-writes < session < primary */
export function strength(level: Consistency): number {
  if (typeof level === 'object') return 1;
  return { eventual: 0, 'read-your-writes': 2, session: 3, primary: 4 }[level];
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
