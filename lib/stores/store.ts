import type { StoredPosition } from '../position.js';

export type { StoredPosition } from '../position.js';

/**
 * Where session positions live between scopes (requests, jobs). Implement it to keep positions
 * somewhere else; `memoryStore()` and `redisStore()` are the built-in ones.
 *
 * Rules every store must keep:
 * - `raise(key, next, loaded)` replaces the stored value by `mergePosition(current, next, loaded)`
 *   **atomically** with respect to other `raise` calls for the same key. The merge never lowers a
 *   position within one WAL history (a max-register), and lets a session that started from the
 *   stored copy (same `version`) record where it now reads.
 * - `raise` refreshes the key's time to live; `get` returns what was raised, `version` included
 *   (the result of `mergePosition` carries the one to keep), or `undefined` for an unknown or
 *   expired key. A store that loses `version` stays safe, but every raise then merges: reads on
 *   the primary, once stored, are never cleared.
 * - Failures reject (or throw); the router decides what is safe (reads go to the primary).
 * - `get` returns `null` for a stored value it cannot decode (corrupt data): the router then
 *   treats the session as being at "the current primary position", never as having no floor.
 * - A store that can lose what it acknowledged without an error (restarted from an older
 *   snapshot, failed over to a replica that had not received everything, reconnected to another
 *   server) implements `onLoss` and calls the listener as soon as it sees a sign of it; the
 *   router then raises floors loaded from then on to a primary position observed after the
 *   sign. A value that is simply gone (flushed, evicted, expired) needs no signal: a session's
 *   missing position already counts as the primary's position at load time.
 *
 * @example
 * ```ts
 * import { mergePosition, type LsnStore, type StoredPosition } from 'pg-replica-router';
 *
 * const positions = new Map<string, StoredPosition>();
 * const store: LsnStore = {
 *   async get(key) { return positions.get(key); },
 *   async raise(key, next, loaded) {
 *     // single-threaded, so this read-merge-write is atomic; the result carries its `version`
 *     positions.set(key, mergePosition(positions.get(key), next, loaded));
 *   },
 * };
 * ```
 */
export interface LsnStore {
  /** The stored position with its `version`, `undefined` if none, or `null` if the stored value is corrupt. */
  get(key: string): Promise<StoredPosition | undefined | null>;
  /** Atomically stores `mergePosition(current, next, loaded)` (with its version), refreshing the TTL. */
  raise(key: string, next: StoredPosition, loaded: StoredPosition | undefined): Promise<void>;
  /**
   * Optional: subscribes `listener` to signs that positions this store acknowledged may be gone
   * or older now; returns a function that unsubscribes (called by `router.close()`). Call the
   * listener *before* any `get` answered from the changed store resolves. Since a subscriber
   * cannot know what happened before it subscribed, a store that can lose data also calls it
   * once at subscription. `memoryStore()` never loses (and has no `onLoss`); `redisStore()`
   * signals connection closes (a restart or failover drops every client).
   *
   * @example
   * ```ts
   * import { EventEmitter } from 'node:events';
   * import type { LsnStore, StoredPosition } from 'pg-replica-router';
   *
   * declare const myClient: {
   *   get(key: string): Promise<StoredPosition | undefined | null>;
   *   raise(key: string, next: StoredPosition, loaded: StoredPosition | undefined): Promise<void>;
   * };
   * const events = new EventEmitter(); // your client's "reconnected" / "failed over" events
   * const store: LsnStore = {
   *   get: (key) => myClient.get(key),
   *   raise: (key, next, loaded) => myClient.raise(key, next, loaded),
   *   onLoss(listener) {
   *     listener('first use'); // what the store lost before this process started is unknown
   *     const onFailover = () => listener('failover');
   *     events.on('failover', onFailover);
   *     return () => events.off('failover', onFailover);
   *   },
   * };
   * ```
   */
  onLoss?(listener: (reason: string) => void): () => void;
  /** Called by `router.close()`. Must not close a client the user passed in. */
  close?(): Promise<void>;
  /**
   * Optional: what `router.doctor()` reports of the store: whether it is shared between
   * processes, whether it may evict or forget positions. Rejects when the store is unreachable.
   */
  inspect?(): Promise<StoreInspection>;
}

/** What a store says of itself to `router.doctor()` ({@link LsnStore.inspect}). */
export interface StoreInspection {
  /** `memory`, `redis`, or a custom store's name. */
  readonly kind: string;
  /** Whether every app instance (process) reads the same positions. */
  readonly shared: boolean;
  /**
   * How it makes room when full: Redis's `maxmemory-policy` (`noeviction`, `allkeys-lru`, …), or
   * `lru` for a bounded in-process store. A position evicted is as if never stored: the session's
   * reads then need the primary's position (safe, at the primary's cost).
   */
  readonly eviction?: string | undefined;
  /** Whether its positions expire (a TTL): a `volatile-*` eviction policy can then evict them. */
  readonly expires?: boolean | undefined;
  /** Whether what it holds survives its restart (Redis: AOF or RDB snapshots on). Undefined: not known. */
  readonly persistent?: boolean | undefined;
}
