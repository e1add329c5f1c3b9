// Compare-and-merge compares the version of the stored copy, not its value (issue 14, case 7).
// Two overlapping requests of one session load the same value and both store `{L, 'primary'}`
// (reads on the primary, not covered yet); the first one's background cover then raises against
// what it stored. Compared by value, the cover takes the second request's value for its own and
// replaces it: the second request's reads on the primary are lost, and a later read of the
// session may observe less than they did.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryStore, mergePosition, parseLsn, redisKeyFor, redisStore, type LsnStore, type StoredPosition } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { startTestCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let redis: Redis;
let systemId: string;
let timeline: number;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 0, redis: true });
  redis = new Redis(cluster.redis!.url);
  const [row] = await cluster.primary.query<{ system_identifier: string; timeline_id: number }>(
    'select system_identifier::text, timeline_id from pg_control_system(), pg_control_checkpoint()',
  );
  systemId = row!.system_identifier;
  timeline = row!.timeline_id;
  await cluster.primary.query('create table if not exists notes (id int primary key, body text)');
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const at = (lsn: bigint, node?: string, version?: string): StoredPosition => ({ lsn, node, systemId, timeline, version });
/** A write on the primary; its position afterwards. */
async function write(body: string): Promise<bigint> {
  await cluster.primary.query('insert into notes values (1, $1) on conflict (id) do update set body = $1', [body]);
  return parseLsn(await cluster.primary.insertLsn());
}
/** The stored position still covers a read that observed the primary at `observed`. */
const covers = (p: StoredPosition | null | undefined, observed: bigint) => p != null && (p.node === 'primary' || p.lsn >= observed);

const makeStore = (kind: 'redis' | 'memory'): LsnStore =>
  kind === 'redis' ? redisStore(redis, { prefix: `versions:${Math.random()}:` }) : memoryStore();

describe.each(['redis', 'memory'] as const)('%s store: a cover never replaces a value it did not store', (kind) => {
  it("two requests store equal values; the first one's cover raises against its stale copy", async () => {
    const store = makeStore(kind);
    const key = 'user:1';
    const l0 = await write('v0');
    await store.raise(key, at(l0, undefined, 'v0'), undefined);
    const l = await write('v1');

    // Requests A and B of the session load the same value.
    const loadedA = await store.get(key);
    const loadedB = await store.get(key);
    // A reads on the primary and ends: stored as {L, 'primary'} (no primary sample after its reads yet).
    const storedA = at(l, 'primary', 'a1');
    await store.raise(key, storedA, loadedA ?? undefined);
    // A's cover: a primary sample taken after A's reads...
    const sampleA = parseLsn(await cluster.primary.insertLsn());
    // ...then B reads on the primary, observing a later write, and ends with an equal value.
    const observedByB = await write('v2');
    const storedB = at(l, 'primary', 'b1');
    expect({ ...storedB, version: 'same' }).toEqual({ ...storedA, version: 'same' }); // the same value: only the version tells them apart
    await store.raise(key, storedB, loadedB ?? undefined);
    // A's cover arrives, raising against what A stored.
    await store.raise(key, at(sampleA > l ? sampleA : l, undefined, 'a2'), storedA);

    const final = await store.get(key);
    expect(sampleA).toBeLessThan(observedByB); // so a replica at A's sample would be stale for B
    expect(covers(final, observedByB), `stored ${JSON.stringify(final, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`).toBe(true);

    // The next request loads it, covers it with a sample taken after B's reads, and replaces it.
    const next = await store.get(key);
    const sample = parseLsn(await cluster.primary.insertLsn());
    await store.raise(key, at(sample, 'r1', 'c1'), next ?? undefined);
    expect(await store.get(key)).toEqual(at(sample, 'r1'));
    expect((await store.get(key))?.version).toBe('c1');
  });
});

describe('versions in Redis', () => {
  it('a value of the old format (no version) decodes, and a raise against it merges', async () => {
    const store = redisStore(redis, { prefix: 'old-format:' });
    const l = await write('old');
    await redis.set(redisKeyFor('s', 'old-format:'), `${l.toString(16).padStart(16, '0')}|${systemId}|${timeline}|primary`);
    const loaded = await store.get('s');
    expect(loaded).toEqual(at(l, 'primary'));
    expect(loaded?.version).toBeUndefined();
    await store.raise('s', at(l + 1n, undefined, 'x1'), loaded ?? undefined);
    expect(await store.get('s')).toEqual(at(l + 1n, 'primary')); // merged: the safe path
    // From then on it has a version, and a raise from it replaces.
    const versioned = await store.get('s');
    expect(versioned?.version).toMatch(/^[0-9a-f]{16}$/);
    await store.raise('s', at(l + 2n, undefined, 'x2'), versioned ?? undefined);
    expect(await store.get('s')).toEqual(at(l + 2n));
  });

  it('the Lua script and mergePosition agree, versions included', async () => {
    const l = 0x1_0000_0001n;
    const cases: Array<[string, StoredPosition | undefined, StoredPosition, StoredPosition | undefined]> = [
      ['nothing stored', undefined, at(l, 'r1', 'n1'), undefined],
      ['loaded version still stored: replaced', at(l, 'primary', 'c1'), at(l, undefined, 'n1'), at(l, 'primary', 'c1')],
      ['equal value, other version: merged', at(l, 'primary', 'c1'), at(l, undefined, 'n1'), at(l, 'primary', 'zz')],
      ['loaded without version: merged', at(l, 'primary', 'c1'), at(l, undefined, 'n1'), at(l, 'primary')],
      ['stored without version: merged', at(l, 'primary'), at(l + 5n, 'r2', 'n1'), at(l, 'primary')],
      ['next without version over a matched one: replaced, fresh version', at(l, 'r1', 'c1'), at(l + 5n, 'r2'), at(l, 'r1', 'c1')],
      ['merged without any version', at(l, 'r1'), at(l + 5n, 'r2'), undefined],
      ['older timeline kept, new version', at(l, 'r1', 'c1'), { ...at(l + 9n, 'r2', 'n1'), timeline: timeline - 1 }, undefined],
    ];
    for (const [name, current, next, loaded] of cases) {
      const prefix = `agree:${Math.random()}:`;
      const store = redisStore(redis, { prefix });
      const memory = memoryStore();
      if (current) {
        // Stores the exact current value (its version included), as an earlier raise would have.
        const encoded = `${current.lsn.toString(16).padStart(16, '0')}|${current.systemId}|${current.timeline}|${current.node ?? ''}`;
        await redis.set(redisKeyFor('k', prefix), current.version ? `${encoded}|${current.version}` : encoded);
        await memory.raise('k', current, undefined);
      }
      const expected = mergePosition(current, next, loaded);
      await store.raise('k', next, loaded);
      await memory.raise('k', next, loaded);
      const fromRedis = await store.get('k');
      expect(fromRedis, name).toEqual(expected);
      expect(fromRedis?.version, name).toBe(expected.version);
      const fromMemory = await memory.get('k');
      expect(fromMemory, name).toEqual(expected);
      expect(fromMemory?.version, name).toBe(expected.version);
    }
  });
});
