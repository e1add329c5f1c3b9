// Scale benchmark, parts 2 and 3: what a stored session position costs. The positions are the
// ones a real router stores: a session scope that wrote, run through a router over the cluster,
// gives the template; then `raise(key, position, undefined)` — the store call the router makes at
// the end of a scope (SessionStore.persist, for a session with nothing loaded) — for N keys, each
// with its own LSN and a fresh version, as persist gives every raise.
import { Redis } from 'ioredis';
import { createRouter, memoryStore, redisKeyFor, redisStore, type LsnStore, type StoredPosition } from '../../lib/index.js';
import { engineOf } from '../../lib/internal.js';
import { encodeStored, newVersion, withVersion } from '../../lib/position.js';
import type { Cluster } from '../../lib/testing/index.js';
import { waitFor } from '../../lib/testing/processes.js';
import { clusterNodes, fixed, gcMode, median, memoryAfterGc } from './scale-util.js';

export interface MemoryStoreFigures {
  sessions: number;
  /** Session keys used (the memory store keeps them as given). */
  keyFormat: string;
  /** The writer template as a store would serialise it (`encodeStored`). */
  position: string;
  /** Heap (and ArrayBuffer) bytes per stored session over the empty store (median of rounds). */
  perSessionBytes: { heap: number; arrayBuffers: number };
  /** What `memoryStore()` takes before its first session (lru-cache preallocates for `maxSessions`, 100 000). */
  emptyStoreBytes: { heap: number; arrayBuffers: number };
  /** Milliseconds to raise every session once (median). */
  fillMs: number;
  rounds: number;
  gc: 'expose-gc' | 'runtime-flag';
}

export interface RedisFigures {
  keys: number;
  /** The raw values a router stored: after a scope that wrote, and after one that only read on a replica. */
  storedValue: { writer: string; reader: string };
  /** `MEMORY USAGE <key> SAMPLES 0` of a key written as the writer template, and of the router's reader key. */
  memoryUsageBytes: { writer: number; reader: number };
  /** `INFO memory` used_memory after writing `keys` keys minus before, per key. */
  usedMemoryPerKeyBytes: number;
  /** `TTL` of a key right after its raise (the store's default `ttlSeconds` is 86 400). */
  ttlSeconds: number;
  redisVersion: string;
}

interface Templates {
  writer: StoredPosition;
  reader: StoredPosition;
}

/** Runs one scope that writes and one that only reads through a router on `store`; returns what it stored. */
async function routerPositions(cluster: Cluster, store: LsnStore): Promise<Templates> {
  const router = createRouter({ ...clusterNodes(cluster), store, monitor: { intervalMs: 100 } });
  try {
    await engineOf(router)!.monitor.ready;
    await waitFor('every node up', 30_000, async () => (router.topology().nodes.every((n) => n.status === 'up') ? true : undefined));
    await router.withSession('template:writer', () => router.query('insert into scale_writes (k) values ($1)', ['template']));
    await cluster.waitForReplicas();
    await router.withSession('template:reader', () => router.query('select id from bench where id = 1'));
    const [writer, reader] = await Promise.all([store.get('template:writer'), store.get('template:reader')]);
    if (!writer || !reader) throw new Error(`the router stored no position: ${String(writer)} / ${String(reader)}`);
    return { writer, reader };
  } finally {
    await router.close();
  }
}

/** The writer template for the i-th session: its own LSN and a fresh version, as `persist` raises it. */
const positionFor = (template: StoredPosition, i: number): StoredPosition =>
  withVersion(
    { lsn: template.lsn + BigInt(i), node: template.node, systemId: template.systemId, timeline: template.timeline },
    newVersion(),
  );

export async function measureMemoryStore(cluster: Cluster, { sessions = 100_000, rounds = 3 } = {}): Promise<MemoryStoreFigures> {
  const { writer } = await routerPositions(cluster, memoryStore());
  const heap: number[] = [];
  const buffers: number[] = [];
  const emptyHeap: number[] = [];
  const emptyBuffers: number[] = [];
  const fill: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const before = await memoryAfterGc();
    let store: LsnStore | undefined = memoryStore({ maxSessions: Math.max(100_000, sessions) });
    const empty = await memoryAfterGc();
    const started = performance.now();
    for (let i = 0; i < sessions; i++) await store.raise(`user:${i}`, positionFor(writer, i), undefined);
    fill.push(performance.now() - started);
    const full = await memoryAfterGc();
    if ((await store.get('user:0')) === undefined) throw new Error('the memory store forgot a session: the figure would be wrong');
    heap.push((full.heapUsed - empty.heapUsed) / sessions);
    buffers.push((full.arrayBuffers - empty.arrayBuffers) / sessions);
    emptyHeap.push(empty.heapUsed - before.heapUsed);
    emptyBuffers.push(empty.arrayBuffers - before.arrayBuffers);
    store = undefined; // garbage before the next round
  }
  return {
    sessions,
    keyFormat: 'user:<i>',
    position: encodeStored(writer),
    perSessionBytes: { heap: Math.round(median(heap)), arrayBuffers: Math.round(median(buffers)) },
    emptyStoreBytes: { heap: Math.round(median(emptyHeap)), arrayBuffers: Math.round(median(emptyBuffers)) },
    fillMs: Math.round(median(fill)),
    rounds,
    gc: gcMode(),
  };
}

const usedMemory = async (client: Redis): Promise<number> => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);

export async function measureRedis(cluster: Cluster, { keys = 10_000, batch = 500 } = {}): Promise<RedisFigures> {
  const client = new Redis(cluster.redis!.url);
  try {
    const store = redisStore(client);
    const { writer } = await routerPositions(cluster, store); // also loads the store's script into Redis
    const raw = async (key: string) => (await client.get(redisKeyFor(key)))!;
    const storedValue = { writer: await raw('template:writer'), reader: await raw('template:reader') };
    const before = await usedMemory(client);
    for (let from = 0; from < keys; from += batch) {
      const writes: Array<Promise<void>> = [];
      for (let i = from; i < Math.min(keys, from + batch); i++) writes.push(store.raise(`user:${i}`, positionFor(writer, i), undefined));
      await Promise.all(writes);
    }
    const after = await usedMemory(client);
    const usage = async (key: string) => Number(await client.call('MEMORY', 'USAGE', redisKeyFor(key), 'SAMPLES', '0'));
    const version = /redis_version:(\S+)/.exec(await client.info('server'))?.[1] ?? 'unknown';
    return {
      keys,
      storedValue,
      memoryUsageBytes: { writer: await usage('user:0'), reader: await usage('template:reader') },
      usedMemoryPerKeyBytes: fixed((after - before) / keys),
      ttlSeconds: await client.ttl(redisKeyFor(`user:${keys - 1}`)),
      redisVersion: version,
    };
  } finally {
    client.disconnect();
  }
}
