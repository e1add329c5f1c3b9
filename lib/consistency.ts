/**
 * How fresh a read must be.
 * - `primary`: always the primary.
 * - `session` (default): a replica that has replayed past the session's floor (its own writes,
 *   and — with monotonic reads — what it has already seen), else the primary.
 * - `read-your-writes`: like `session`, but the floor only rises on writes.
 * - `eventual`: any healthy replica.
 * - `{ maxStalenessMs }`: a replica lagging at most this much that also satisfies the session floor.
 */
export type Consistency = 'primary' | 'session' | 'read-your-writes' | 'eventual' | { readonly maxStalenessMs: number };

export const LEVELS = ['primary', 'session', 'read-your-writes', 'eventual'] as const;

/** True when `value` is a valid consistency level. */
export function isConsistency(value: unknown): value is Consistency {
  if (typeof value === 'string') return (LEVELS as readonly string[]).includes(value);
  if (value === null || typeof value !== 'object') return false;
  const keys = Object.keys(value);
  const ms = (value as { maxStalenessMs?: unknown }).maxStalenessMs;
  return keys.length === 1 && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0;
}

/** The level's name, for spans and logs. */
export function levelName(level: Consistency): string {
  return typeof level === 'string' ? level : `max-staleness:${level.maxStalenessMs}`;
}

/** Levels whose reads keep monotonic reads (and so record where they read). */
export function isMonotonic(level: Consistency): boolean {
  return level === 'session' || typeof level === 'object';
}
