import { LRUCache } from 'lru-cache';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { mergePosition, type StoredPosition } from '../position.js';
import { inProcessReads } from './guard.js';
import type { LsnStore } from './store.js';

export interface MemoryStoreOptions {
  /** Most sessions kept; the least recently used are forgotten first. Default 100 000. */
  maxSessions?: number;
  /** Forget a session this long after its last raise, in seconds. Default 86 400 (a day). */
  ttlSeconds?: number;
}

/**
 * Keeps positions in this process's memory (bounded LRU with a TTL). The default store:
 * right for one process; with several app instances use a shared store ({@link redisStore}).
 *
 * @example
 * ```ts
 * import { createRouter, memoryStore } from 'pg-replica-router';
 *
 * const router = createRouter({
 *   primary: { connectionString: process.env.PRIMARY_URL },
 *   replicas: [{ name: 'r1', connectionString: process.env.REPLICA1_URL }],
 *   store: memoryStore({ maxSessions: 10_000 }),
 * });
 * ```
 */
export function memoryStore(options: MemoryStoreOptions = {}): LsnStore {
  const max = options.maxSessions ?? 100_000;
  const ttlSeconds = options.ttlSeconds ?? 86_400;
  if (!Number.isInteger(max) || max < 1) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `memoryStore: maxSessions must be a positive integer, got ${max}`);
  }
  if (typeof ttlSeconds !== 'number' || !(ttlSeconds > 0)) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `memoryStore: ttlSeconds must be a positive number, got ${ttlSeconds}`);
  }
  const cache = new LRUCache<string, StoredPosition>({ max, ttl: ttlSeconds * 1000 });
  const store: LsnStore = {
    async get(key) {
      return cache.get(key);
    },
    async inspect() {
      return { kind: 'memory', shared: false, eviction: 'lru', expires: true, persistent: false };
    },
    async raise(key, next, loaded) {
      // One thread: this read-merge-write cannot interleave with another raise. The merged
      // position carries its version (compared with the loaded one's by the next raise).
      cache.set(key, mergePosition(cache.get(key), next, loaded));
    },
  };
  inProcessReads.set(store, (key) => cache.get(key));
  return store;
}
