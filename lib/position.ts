import { createHash, randomBytes } from 'node:crypto';
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
 * - `version` names one stored copy (see {@link mergePosition}), not part of the value: it is
 *   not enumerable on the positions the router and the built-in stores make (equality, spreads
 *   and JSON ignore it: a position built from another is not that stored copy). Read it as
 *   `p.version`.
 */
export interface StoredPosition {
  readonly lsn: Lsn;
  readonly node?: string | undefined;
  readonly systemId?: string | undefined;
  readonly timeline?: number | undefined;
  /**
   * The version of the stored copy: returned by `get`, compared by `raise` with the `loaded`
   * one. Up to 40 of `[A-Za-z0-9_-]`; the router writes a fresh one (unique across processes) with every raise.
   * Undefined for a value stored without one (an older release, a store that drops it): a raise
   * against it merges, never replaces.
   */
  readonly version?: string | undefined;
}

const VERSION = /^[A-Za-z0-9_-]{1,40}$/;

/** A copy of `p`'s value with `version` (not enumerable; dropped when not well-formed). */
export function withVersion(p: StoredPosition, version: string | undefined): StoredPosition {
  const copy: StoredPosition = { lsn: p.lsn, node: p.node, systemId: p.systemId, timeline: p.timeline };
  if (version !== undefined && VERSION.test(version)) Object.defineProperty(copy, 'version', { value: version, enumerable: false });
  return copy;
}

/** This process's versions start with 16 random hex digits (drawn once: no process shares them)... */
const VERSION_PREFIX = randomBytes(8).toString('hex');
let versions = 0;

/** ...and end with a count (base 36): a fresh version for a raise, unique across processes, without a random draw per raise. */
export function newVersion(): string {
  return `${VERSION_PREFIX}${(++versions).toString(36)}`;
}

/**
 * The version of a value a raise made without storing `next` as is (merged, or `next` without a
 * version of its own): one that no caller holds, the same in Lua (`redis.sha1hex`).
 */
export function derivedVersion(kind: 'merged' | 'replaced', currentVersion: string, nextVersion: string, value: StoredPosition): string {
  return createHash('sha1')
    .update(`${kind}|${currentVersion}|${nextVersion}|${encodePosition(value)}`)
    .digest('hex')
    .slice(0, 16);
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
 * - nothing stored, or the stored copy is still the one the caller loaded (its `version` is the
 *   loaded one's; never for a copy without a version): store `next` as is (the caller started
 *   from it, so it only moved forward, and it knows which reads it covered). Versions are
 *   compared, not values: two requests of a session can store equal values, and the first one
 *   must not take the second one's copy for its own;
 * - otherwise (a concurrent writer): in the same history (or where either side's history is
 *   unknown), the larger LSN and the union of nodes; from an older timeline of the same system,
 *   keep the current value; else `next` wins.
 *
 * The result carries the version to store with it: `next.version` when `next` is stored as is,
 * else a derived one no caller holds (so the merging caller, holding `next.version`, merges
 * again rather than replacing what another request stored). A custom store keeps it by storing
 * the result and returning `version` from `get` (the object itself, or the field serialised
 * with the value). A store that drops it stays safe, but every raise then merges: reads on the
 * primary, once stored, are never cleared, and each later request of the session samples the
 * primary before it may use a replica.
 *
 * @example
 * ```ts
 * import { mergePosition, type StoredPosition } from 'pg-replica-router';
 *
 * // What your store's raise(key, next, loaded) was given, what it holds now, and how it saves.
 * declare const key: string;
 * declare const next: StoredPosition;
 * declare const loaded: StoredPosition | undefined;
 * declare const current: StoredPosition | undefined;
 * declare function save(key: string, value: StoredPosition): void;
 *
 * // inside your store's atomic section:
 * const merged = mergePosition(current, next, loaded);
 * save(key, { ...merged, version: merged.version }); // `version` is not enumerable: copy it, `get` returns it again
 * ```
 */
export function mergePosition(
  current: StoredPosition | undefined,
  next: StoredPosition,
  loaded: StoredPosition | undefined,
): StoredPosition {
  if (current === undefined) return withVersion(next, next.version);
  if (current.version !== undefined && loaded?.version === current.version) {
    // Stored as is; a `next` without a version of its own still gets one no earlier loader holds.
    return withVersion(next, next.version ?? derivedVersion('replaced', current.version, '', next));
  }
  const merged = mergeValues(current, next);
  const versions = current.version ?? next.version;
  return withVersion(
    merged,
    versions === undefined ? undefined : derivedVersion('merged', current.version ?? '', next.version ?? '', merged),
  );
}

/** The concurrent-writer rule on values. */
function mergeValues(current: StoredPosition, next: StoredPosition): StoredPosition {
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

/** Whether `a` and `b` hold the same value (what {@link encodePosition} writes; the version aside), without encoding either. */
export function samePosition(a: StoredPosition, b: StoredPosition): boolean {
  return a.lsn === b.lsn && (a.node ?? '') === (b.node ?? '') && (a.systemId ?? '') === (b.systemId ?? '') && a.timeline === b.timeline;
}

/** What a store keeps: the encoded position, then `|<version>` when it has one. */
export function encodeStored(p: StoredPosition): string {
  const version = p.version !== undefined && VERSION.test(p.version) ? `|${p.version}` : '';
  return `${encodePosition(p)}${version}`;
}

/** {@link encodeStored}'s inverse; a value without a version (the older format) decodes without one. */
export function decodeStored(text: unknown): StoredPosition | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^([^|]*\|[^|]*\|[^|]*\|[^|]*)\|([A-Za-z0-9_-]{1,40})$/.exec(text);
  const position = decodePosition(m ? m[1] : text);
  return position && withVersion(position, m?.[2]);
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
