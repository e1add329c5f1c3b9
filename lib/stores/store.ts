import type { Lsn } from '../lsn.js';

/** A session's position as a store keeps it. */
export interface StoredPosition {
  /** The WAL position the session must observe (the max of everything recorded). */
  readonly lsn: Lsn;
}

/**
 * Where session positions live between requests. Implement it to keep positions elsewhere.
 *
 * Rules every store must keep:
 * - `raise` never lowers a stored position: the stored value becomes max(old, new), atomically
 *   with respect to concurrent `raise` calls for the same key (a max-register).
 * - `get` returns what was raised, or `undefined` for an unknown or expired key.
 * - Errors are thrown (or the promise rejects); the router decides what is safe to do.
 *
 * @example
 * ```ts
 * const store: LsnStore = {
 *   async get(key) { return positions.get(key) },
 *   async raise(key, position) {
 *     const old = positions.get(key);
 *     if (!old || position.lsn > old.lsn) positions.set(key, position);
 *   },
 * };
 * ```
 */
export interface LsnStore {
  get(key: string): Promise<StoredPosition | undefined>;
  raise(key: string, position: StoredPosition): Promise<void>;
  /** Called by `router.close()`. Must not close a client the user passed in. */
  close?(): Promise<void>;
}
