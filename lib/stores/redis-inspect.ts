import type { StoreInspection } from './store.js';

/** What `redisStore`'s `inspect()` asks of its client (ioredis has both). */
export interface RedisInspectLike {
  info?(section: string): Promise<string>;
  /** `CONFIG GET save` (may be renamed or refused on managed Redis: then persistence is judged from INFO alone). */
  call?(command: string, ...args: string[]): Promise<unknown>;
}

/** `name:value` from an INFO reply. */
function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(\\S*)`, 'm').exec(info)?.[1];
}

/**
 * The Redis server behind a store, as `router.doctor()` reports it: its eviction policy (a
 * store that can forget) and whether it persists (AOF on, or RDB `save` points configured).
 * Rejects when the server does not answer.
 */
export async function inspectRedis(client: RedisInspectLike): Promise<StoreInspection> {
  if (typeof client.info !== 'function') return { kind: 'redis', shared: true, expires: true };
  const [memory, persistence] = await Promise.all([client.info('memory'), client.info('persistence')]);
  const aof = field(persistence, 'aof_enabled') === '1';
  let rdb: boolean | undefined;
  if (typeof client.call === 'function') {
    const reply = await client.call('CONFIG', 'GET', 'save').catch(() => undefined);
    if (Array.isArray(reply) && typeof reply[1] === 'string') rdb = reply[1].trim() !== '';
  }
  return {
    kind: 'redis',
    shared: true,
    eviction: field(memory, 'maxmemory_policy'),
    expires: true,
    persistent: aof || rdb === true ? true : rdb === false ? false : undefined,
  };
}
