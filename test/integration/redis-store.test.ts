import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryStore, mergePosition, redisKeyFor, redisStore, type LsnStore, type StoredPosition } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { startTestCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let redis: Redis;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 0, redis: true });
  redis = new Redis(cluster.redis!.url);
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const pos = (lsn: bigint, node?: string, timeline = 1, systemId = '7000000000000000001'): StoredPosition => ({
  lsn,
  node,
  systemId,
  timeline,
});

describe('redisStore against a real Redis', () => {
  it('hashes session keys: no raw id in Redis', async () => {
    const store = redisStore(redis, { prefix: 'hash-test:' });
    await store.raise('user:alice@example.com', pos(10n), undefined);
    const keys = await redis.keys('hash-test:*');
    expect(keys).toEqual([redisKeyFor('user:alice@example.com', 'hash-test:')]);
    expect(keys[0]).not.toContain('alice');
    expect(await redis.get(keys[0]!)).not.toContain('alice');
    expect(await store.get('user:alice@example.com')).toEqual(pos(10n));
    expect(await store.get('user:bob')).toBeUndefined();
  });

  it('sets the TTL and refreshes it on every raise', async () => {
    const store = redisStore(redis, { prefix: 'ttl-test:', ttlSeconds: 100 });
    await store.raise('s', pos(10n), undefined);
    const key = redisKeyFor('s', 'ttl-test:');
    await redis.expire(key, 5);
    expect(await redis.ttl(key)).toBeLessThanOrEqual(5);
    await store.raise('s', pos(5n), undefined); // lower: value kept, TTL refreshed
    expect(await redis.ttl(key)).toBeGreaterThan(90);
    expect((await store.get('s'))?.lsn).toBe(10n);
  });

  it('recovers from NOSCRIPT (script cache flushed) with one reload', async () => {
    const store = redisStore(redis, { prefix: 'noscript:' });
    await store.raise('s', pos(1n), undefined);
    await redis.script('FLUSH');
    await store.raise('s', pos(2n), undefined);
    expect((await store.get('s'))?.lsn).toBe(2n);
    await store.raise('s', pos(3n), undefined); // and EVALSHA works again afterwards
    expect((await store.get('s'))?.lsn).toBe(3n);
  });

  it('never lowers a position under many concurrent raises', async () => {
    const store = redisStore(redis, { prefix: 'race:' });
    const values = Array.from({ length: 200 }, (_, i) => BigInt(i + 1) * 0x1_0000_0001n); // beyond 2^32 and 2^53
    values.sort(() => Math.random() - 0.5);
    await Promise.all(values.map((lsn) => store.raise('s', pos(lsn), undefined)));
    expect((await store.get('s'))?.lsn).toBe(200n * 0x1_0000_0001n);
    // and an LSN above 2^53 compares exactly
    await store.raise('big', pos(0x20_0000_0000_0001n), undefined);
    await store.raise('big', pos(0x20_0000_0000_0000n), undefined);
    expect((await store.get('big'))?.lsn).toBe(0x20_0000_0000_0001n);
  });

  it('returns null for a corrupt stored value', async () => {
    const store = redisStore(redis, { prefix: 'corrupt:' });
    await redis.set(redisKeyFor('s', 'corrupt:'), 'not a position');
    expect(await store.get('s')).toBeNull();
    await store.raise('s', pos(7n), undefined); // a raise repairs it
    expect((await store.get('s'))?.lsn).toBe(7n);
  });

  it('a value of the wrong type (a hash under the key) counts as corrupt, and a raise replaces it', async () => {
    const store = redisStore(redis, { prefix: 'wrongtype:' });
    await redis.hset(redisKeyFor('s', 'wrongtype:'), 'field', 'value');
    expect(await store.get('s')).toBeNull();
    await store.raise('s', pos(7n), undefined);
    expect((await store.get('s'))?.lsn).toBe(7n);
  });

  // The same merge rules in Lua (Redis) and TypeScript (memory store, mergePosition).
  const cases: Array<[string, StoredPosition | undefined, StoredPosition, StoredPosition | undefined]> = [
    ['empty: next as is', undefined, pos(5n, 'r1'), undefined],
    ['unchanged since loaded: next replaces (node cleared)', pos(9n, 'r1'), pos(9n), pos(9n, 'r1')],
    ['unchanged since loaded: next replaces (moved)', pos(9n, 'r1'), pos(12n, 'r2'), pos(9n, 'r1')],
    ['concurrent writer: max lsn, same node kept', pos(9n, 'r1'), pos(7n, 'r1'), pos(1n)],
    ['concurrent writer: one node set', pos(9n), pos(7n, 'r2'), pos(1n)],
    ['concurrent writer: two replicas -> both, sorted', pos(9n, 'r2'), pos(11n, 'r1'), pos(1n)],
    ['concurrent writer: lists -> sorted union without repeats', pos(9n, 'r1,r3'), pos(11n, 'r2,r3'), pos(1n)],
    ['concurrent writer: with the primary -> primary', pos(9n, 'r1,r2'), pos(11n, 'primary'), pos(1n)],
    [
      'concurrent writer: a union longer than 64 characters -> primary',
      pos(9n, `${'a'.repeat(40)}`),
      pos(11n, `${'b'.repeat(30)}`),
      pos(1n),
    ],
    ['no loaded value: merge', pos(9n, 'r1'), pos(3n), undefined],
    ['older timeline of the same system: current kept', pos(9n, 'r1', 3), pos(100n, 'r2', 2), undefined],
    ['newer timeline: next wins', pos(900n, 'r1', 2), pos(100n, undefined, 3), undefined],
    ['other system: next wins', pos(900n, 'r1', 2, '1'), pos(100n, undefined, 1, '2'), undefined],
    ['unknown identity on one side: merged by max, never lowered', pos(900n, 'r1', 2, '1'), { lsn: 100n }, undefined],
    ['unknown identity stored: merged, identity filled in', { lsn: 900n }, pos(100n, 'r2', 3, '5'), undefined],
  ];

  it.each(cases)('merge rule: %s', async (_name, current, next, loaded) => {
    const stores: Array<[string, LsnStore]> = [
      ['redis', redisStore(redis, { prefix: `merge:${Math.random()}:` })],
      ['memory', memoryStore()],
    ];
    const expected = mergePosition(current, next, loaded);
    for (const [kind, store] of stores) {
      if (current) await store.raise('k', current, undefined);
      await store.raise('k', next, loaded);
      expect(await store.get('k'), kind).toEqual(expected);
    }
  });
});
