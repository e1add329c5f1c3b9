import type { Lsn } from './lsn.js';

/**
 * A session's position: what its reads must observe.
 *
 * - `lsn` covers every write of the session and everything its reads observed up to the moment
 *   it was sampled.
 * - `node` names the node of reads made *after* that sample (not covered by `lsn`). Staying on
 *   it is monotonic for free; moving away first samples it (or the primary). `r1,r2` means reads
 *   on several replicas: sample each. `'primary'` means reads on the primary: sample the primary
 *   before using a replica.
 * - `systemId` and `timeline` say which WAL history `lsn` belongs to: LSNs are only comparable
 *   within one history.
 */
export interface StoredPosition {
  readonly lsn: Lsn;
  readonly node?: string | undefined;
  readonly systemId?: string | undefined;
  readonly timeline?: number | undefined;
}

/**
 * Two sets of uncovered reads together: the replicas of both as a sorted comma-separated list
 * (`r1,r2`: sample each before moving), or `'primary'` when either side read on the primary or
 * the list would not fit in 64 characters.
 */
export function unionNode(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined || a === b) return a;
  const names = new Set([...a.split(','), ...b.split(',')]);
  if (names.has('primary')) return 'primary';
  const joined = [...names].sort().join(',');
  return joined.length > 64 ? 'primary' : joined;
}

/**
 * The merge rule every store applies atomically in `raise` (the Redis store runs the same rule in
 * Lua):
 * - nothing stored, or the stored value is still the one the caller loaded: store `next` as is
 *   (the caller started from it, so it only moved forward, and it knows which reads it covered);
 * - otherwise (a concurrent writer): in the same history (or where either side's history is
 *   unknown), the larger LSN and the union of nodes; from an older timeline of the same system,
 *   keep the current value; else `next` wins.
 *
 * @example
 * ```ts
 * // inside your store's atomic section:
 * const merged = mergePosition(current, next, loaded);
 * ```
 */
export function mergePosition(
  current: StoredPosition | undefined,
  next: StoredPosition,
  loaded: StoredPosition | undefined,
): StoredPosition {
  if (current === undefined || (loaded !== undefined && encodePosition(current) === encodePosition(loaded))) return next;
  // An unknown identity on either side counts as the same history: merged by maximum, never
  // allowed to replace (and so lower) a known one.
  const sameSystem = current.systemId === undefined || next.systemId === undefined || current.systemId === next.systemId;
  const sameTimeline = current.timeline === undefined || next.timeline === undefined || current.timeline === next.timeline;
  if (sameSystem && sameTimeline) {
    return {
      lsn: current.lsn > next.lsn ? current.lsn : next.lsn,
      node: unionNode(current.node, next.node),
      systemId: next.systemId ?? current.systemId,
      timeline: next.timeline ?? current.timeline,
    };
  }
  if (current.systemId !== undefined && current.systemId === next.systemId && (current.timeline ?? 0) > (next.timeline ?? 0))
    return current;
  return next;
}

const ENCODED = /^([0-9a-f]{16})\|([0-9]{0,20})\|([0-9]{0,10})\|((?:[A-Za-z0-9_.:-]+(?:,[A-Za-z0-9_.:-]+)*)?)$/;

/** `<lsn: 16 hex>|<systemId>|<timeline>|<node>`: fixed-width hex so strings compare like numbers. */
export function encodePosition(p: StoredPosition): string {
  return `${p.lsn.toString(16).padStart(16, '0')}|${p.systemId ?? ''}|${p.timeline ?? ''}|${p.node ?? ''}`;
}

/** Undefined for anything that is not a well-formed encoded position. */
export function decodePosition(text: unknown): StoredPosition | undefined {
  if (typeof text !== 'string') return undefined;
  const m = ENCODED.exec(text);
  if (!m || m[4]!.length > 64) return undefined;
  return {
    lsn: BigInt(`0x${m[1]}`),
    systemId: m[2] || undefined,
    timeline: m[3] ? Number(m[3]) : undefined,
    node: m[4] || undefined,
  };
}
