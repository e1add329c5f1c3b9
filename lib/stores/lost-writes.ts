import { LRUCache } from 'lru-cache';
import { mergePosition, type StoredPosition } from '../position.js';

/** How many keys' lost positions a process keeps by default before it falls back to a global floor. */
export const LOST_WRITES_CAPACITY = 10_000;

/**
 * One key's positions that this process failed to store: what the store would hold had every
 * failed `raise` been applied (the store's own merge, with no loaded copy: max and union).
 */
export interface LostWrite {
  readonly position: StoredPosition;
}

/**
 * The positions this process's failed store writes tried to store, per key (`SessionStore`). A
 * failed `raise(key, next, loaded)` loses exactly `next`: a later load of that key merges it as it
 * merges a stored value, so no other key needs a primary position for it. An entry goes once a
 * raise of that key succeeds that carried it (made by a session that loaded it); a failed raise
 * that is applied late is harmless (the store's merge never lowers a position).
 *
 * Bounded: when more keys failed than it holds, the least recently used entry is dropped and
 * `onEvicted` runs at once (the caller then treats every key as possibly lost: a global floor).
 *
 * @example
 * ```ts
 * const lost = new LostWrites(10_000, () => sessions.storeMayHaveLost());
 * lost.record('user:1', next); // its raise failed
 * const entry = lost.peek('user:1'); // merged into the next load of user:1
 * lost.carried('user:1', entry); // a raise that carried it succeeded
 * ```
 */
export class LostWrites {
  readonly #entries: LRUCache<string, LostWrite>;

  constructor(capacity: number = LOST_WRITES_CAPACITY, onEvicted: () => void = () => {}) {
    this.#entries = new LRUCache<string, LostWrite>({
      max: capacity,
      // Only an entry pushed out loses something; replacing (merged) or deleting (carried) does not.
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') onEvicted();
      },
    });
  }

  /** Keys held. */
  get size(): number {
    return this.#entries.size;
  }

  /** A raise of `key` storing `next` failed: keep `next`, merged with what was already lost for `key`. */
  record(key: string, next: StoredPosition): void {
    const earlier = this.#entries.get(key);
    // A new object each time: a raise that carried only the earlier entry does not clear this one.
    this.#entries.set(key, { position: earlier ? mergePosition(earlier.position, next, undefined) : next });
  }

  /** What was lost for `key` (to merge into a load of it), without changing its recency. */
  peek(key: string): LostWrite | undefined {
    return this.#entries.peek(key);
  }

  /** A raise of `key` that carried `entry` succeeded: it is stored now (unless lost again since). */
  carried(key: string, entry: LostWrite): void {
    if (this.#entries.peek(key) === entry) this.#entries.delete(key);
  }
}
