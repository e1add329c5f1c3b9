import { unionNode } from './position.js';

/**
 * Reads of a session that its floor does not cover yet (they ran after the floor was sampled):
 * `'primary'` — reads on the primary (sample the primary before using a replica); or the sorted
 * names of the replicas they ran on (sample each before moving away). Stores and tokens keep it
 * in its text form (`StoredPosition.node`: `r1,r2` or `primary`).
 */
export type UncoveredReads = 'primary' | readonly string[];

/** The text form kept by stores and tokens. */
export function formatUncovered(reads: UncoveredReads | undefined): string | undefined {
  if (reads === undefined) return undefined;
  if (reads === 'primary') return 'primary';
  return reads.length === 1 ? reads[0] : reads.join(',');
}

/** From the text form (a validated `StoredPosition.node`); any list naming the primary is `'primary'`. */
export function parseUncovered(node: string | undefined): UncoveredReads | undefined {
  if (node === undefined || node === '') return undefined;
  if (!node.includes(',')) return node === 'primary' ? 'primary' : single(node);
  const names = node.split(',');
  if (names.includes('primary')) return 'primary';
  // Sorted and without duplicates, whatever the source wrote (stores and tokens come from outside).
  return [...new Set(names)].sort();
}

/** Both sets together, by the stores' rule ({@link unionNode}): a list too long becomes `'primary'`. */
export function unionUncovered(a: UncoveredReads | undefined, b: UncoveredReads | undefined): UncoveredReads | undefined {
  if (a === undefined) return b;
  if (b === undefined || a === b) return a;
  if (a === 'primary' || b === 'primary') return 'primary';
  if (b.length === 1 && a.includes(b[0]!)) return a; // the hot case: one more read on a known replica
  return parseUncovered(unionNode(formatUncovered(a), formatUncovered(b)));
}

/** The one replica the reads ran on, if they ran on exactly one (staying there is monotonic). */
export function onlyReplica(reads: UncoveredReads | undefined): string | undefined {
  return reads !== undefined && reads !== 'primary' && reads.length === 1 ? reads[0] : undefined;
}

const singles = new Map<string, readonly string[]>();

/** `[name]`, made once per node name (reads note one on every statement). */
export function single(name: string): readonly string[] {
  let list = singles.get(name);
  if (!list) {
    list = Object.freeze([name]);
    if (singles.size < 10_000) singles.set(name, list); // names from stores and tokens are bounded by their format, not by us
  }
  return list;
}
