import { createHash } from 'node:crypto';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { decodeStored, encodePosition } from '../position.js';
import { lossWatch, type RedisEventsLike } from './redis-loss.js';
import { inspectRedis, type RedisInspectLike } from './redis-inspect.js';
import type { LsnStore, StoredPosition } from './store.js';

/**
 * The subset of an ioredis client (`Redis` or `Cluster`) the store uses. Any client with these
 * promise-returning methods works; without events (`on`/`off`) it cannot report a reconnect as
 * a possible loss (see lib/stores/redis-loss.ts).
 */
export interface RedisClientLike extends RedisEventsLike, RedisInspectLike {
  get(key: string): Promise<string | null>;
  evalsha(...args: [sha1: string, numkeys: number, ...args: Array<string | number>]): Promise<unknown>;
  eval(...args: [script: string, numkeys: number, ...args: Array<string | number>]): Promise<unknown>;
}

export interface RedisStoreOptions {
  /** Key prefix. Default `pgrr:pos:`. */
  prefix?: string;
  /** Each session key expires this long after its last raise, in seconds. Default 86 400. */
  ttlSeconds?: number;
  /**
   * Every this many ms, read the server's `run_id` and `master_replid` (two INFO commands, in
   * the background, never on a request's path); a change means the server may have lost what it
   * acknowledged, without the connection closing (a proxy that keeps client connections across
   * a failover; a master made a replica of another). 0 turns it off. Not for a `Cluster`.
   * Default 1000.
   */
  identityCheckMs?: number;
}

/**
 * `mergePosition` (lib/position.ts) in Lua, so that read-merge-write is atomic in Redis.
 * Values are `<16 hex lsn>|<systemId>|<timeline>|<node>|<version>` (`|<version>` absent in
 * values of older releases: they merge, never replace); the LSN is compared as two 32-bit halves
 * (exact in Lua's doubles). KEYS[1]: the key; ARGV: next (without version), the loaded version
 * ('' if none), ttl, next's version ('' if none). Derived versions are `mergePosition`'s (SHA-1).
 */
const RAISE_SCRIPT = `
-- A node part: empty, or names of [A-Za-z0-9_.:-] joined by single commas, at most 64 bytes.
local function valid_node(n)
  if n == '' then return true end
  if #n > 64 or string.find(n, ',,', 1, true) or string.sub(n, 1, 1) == ',' or string.sub(n, -1) == ',' then return false end
  return true
end
-- Byte order, as JavaScript sorts (Lua's < on strings follows the server's locale).
local function byte_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function derived(kind, cv, nv, value)
  return string.sub(redis.sha1hex(kind .. '|' .. cv .. '|' .. nv .. '|' .. value), 1, 16)
end
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' then cur = false end -- not a string (WRONGTYPE): corrupt, overwritten below
local nxt, lv, nv = ARGV[1], ARGV[2], ARGV[4]
local cv = ''
if cur then
  local value, version = string.match(cur, '^([^|]*|[^|]*|[^|]*|[^|]*)|([A-Za-z0-9_%-]+)$')
  if value and #version <= 40 then cur, cv = value, version end
end
local result, version = nxt, nv
if cur and cv ~= '' and cv == lv then
  if nv == '' then version = derived('replaced', cv, '', nxt) end
elseif cur then
  local pattern = '^(%x%x%x%x%x%x%x%x)(%x%x%x%x%x%x%x%x)|(%d*)|(%d*)|([A-Za-z0-9_.:,%-]*)$'
  local ch, cl, cs, ct, cn = string.match(cur, pattern)
  local nh, nl, ns, nt, nn = string.match(nxt, pattern)
  if ch and nh and valid_node(cn) and valid_node(nn) then
    if (cs == ns or cs == '' or ns == '') and (ct == nt or ct == '' or nt == '') then
      local cur_hi, cur_lo, nxt_hi, nxt_lo = tonumber(ch, 16), tonumber(cl, 16), tonumber(nh, 16), tonumber(nl, 16)
      local lsn = ch .. cl
      if nxt_hi > cur_hi or (nxt_hi == cur_hi and nxt_lo > cur_lo) then lsn = nh .. nl end
      local node = cn
      if cn ~= nn then
        if cn == '' then node = nn elseif nn ~= '' then
          local set, names, primary = {}, {}, false
          for name in string.gmatch(cn .. ',' .. nn, '[^,]+') do
            if name == 'primary' then primary = true end
            if not set[name] then set[name] = true; names[#names + 1] = name end
          end
          table.sort(names, byte_less)
          node = table.concat(names, ',')
          if primary or #node > 64 then node = 'primary' end
        end
      end
      local sys, tli = ns, nt
      if sys == '' then sys = cs end
      if tli == '' then tli = ct end
      result = lsn .. '|' .. sys .. '|' .. tli .. '|' .. node
    elseif cs ~= '' and cs == ns and (tonumber(ct) or 0) > (tonumber(nt) or 0) then
      result = cur
    end
    if cv ~= '' or nv ~= '' then version = derived('merged', cv, nv, result) else version = '' end
  end
end
if version ~= '' then result = result .. '|' .. version end
redis.call('SET', KEYS[1], result, 'EX', tonumber(ARGV[3]))
return result
`;
const RAISE_SHA = createHash('sha1').update(RAISE_SCRIPT).digest('hex');

/**
 * Keeps session positions in Redis, shared by every instance of the application. Takes your
 * ioredis client (a `Redis` or a `Cluster`: each operation touches one key) and never closes it.
 * Session keys are hashed (SHA-256): no user id or cookie value is stored in Redis. Raising a
 * position is one atomic Lua script (EVALSHA, reloaded once on NOSCRIPT) that never lowers it,
 * and refreshes the TTL.
 *
 * Redis can lose what it acknowledged without an error (a restart from an older snapshot, a
 * failover after asynchronous replication). The store reports signs of it (`onLoss`): its first
 * use in this process, every closed connection, for a Cluster every node change and every
 * connect or close of a node's connection, and a changed `run_id` or
 * `master_replid` (`identityCheckMs`); the router then raises loaded floors to a primary position
 * observed after the sign. See docs/reliability.md for what holds and what does not.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { createRouter, redisStore } from 'pg-replica-router';
 *
 * const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
 * redis.on('error', (err) => console.error('redis:', err.message)); // else ioredis logs "Unhandled error event" on every retry
 * const router = createRouter({
 *   primary: { connectionString: process.env.PRIMARY_URL },
 *   replicas: [{ name: 'r1', connectionString: process.env.REPLICA1_URL }],
 *   store: redisStore(redis, { ttlSeconds: 3600 }),
 * });
 * ```
 */
export function redisStore(client: RedisClientLike, options: RedisStoreOptions = {}): LsnStore {
  if (!client || typeof client.get !== 'function' || typeof client.evalsha !== 'function' || typeof client.eval !== 'function') {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, 'redisStore: pass an ioredis client (new Redis(url) or new Cluster(nodes))');
  }
  const scaleReads = (client.options as { scaleReads?: unknown } | undefined)?.scaleReads ?? 'master';
  if (client.isCluster && scaleReads !== 'master') {
    // Redis replicas copy from their master asynchronously: a read there can return a position
    // older than one acknowledged a moment ago, with no error and no sign of loss.
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      `redisStore: a Cluster with scaleReads '${String(scaleReads)}' reads positions from Redis replicas, which lag behind what was acknowledged; use scaleReads 'master' (the default) for this client`,
    );
  }
  const prefix = options.prefix ?? 'pgrr:pos:';
  const ttlSeconds = options.ttlSeconds ?? 86_400;
  if (typeof prefix !== 'string') throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, 'redisStore: prefix must be a string');
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `redisStore: ttlSeconds must be a positive integer, got ${ttlSeconds}`);
  }
  const identityCheckMs = options.identityCheckMs ?? 1000;
  if (!Number.isInteger(identityCheckMs) || identityCheckMs < 0) {
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      `redisStore: identityCheckMs must be a non-negative integer, got ${identityCheckMs}`,
    );
  }
  const keyOf = (sessionKey: string) => redisKeyFor(sessionKey, prefix);
  const watch = lossWatch(client, identityCheckMs);

  return {
    onLoss: watch,
    inspect: () => inspectRedis(client),
    async get(sessionKey) {
      let raw: string | null;
      try {
        raw = await client.get(keyOf(sessionKey));
      } catch (err) {
        // Something that is not a string under our key: as corrupt as a bad string (the next raise overwrites it).
        if (err instanceof Error && err.message.startsWith('WRONGTYPE')) return null;
        throw err;
      }
      if (raw === null) return undefined;
      return decodeStored(raw) ?? null; // corrupt: the router treats it as the primary position
    },
    async raise(sessionKey, next, loaded) {
      const args: [number, string, string, string, number, string] = [
        1,
        keyOf(sessionKey),
        encodePosition(next),
        versionOf(loaded),
        ttlSeconds,
        versionOf(next),
      ];
      try {
        await client.evalsha(RAISE_SHA, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        await client.eval(RAISE_SCRIPT, ...args); // loads the script on that server, once
      }
    },
  };
}

/** A position's well-formed version, or '' (none: what `encodeStored` would leave out). */
function versionOf(p: StoredPosition | undefined): string {
  return p?.version !== undefined && /^[A-Za-z0-9_-]{1,40}$/.test(p.version) ? p.version : '';
}

/** The Redis key a session key is stored under (for tests and operations). */
export function redisKeyFor(sessionKey: string, prefix = 'pgrr:pos:'): string {
  return `${prefix}${createHash('sha256').update(sessionKey).digest('base64url')}`;
}
