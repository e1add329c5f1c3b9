// Issue 14, case 2, without a disconnect: the Redis server the instances talk to is made a
// replica of another one that holds older data (as a demoted master behind a proxy that keeps
// client connections across a failover): it resynchronises, and answers with the older values
// on the same connections. Only its identity says so: its `master_replid` changed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyFor } from 'pg-replica-router';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { findRedisServer } from '../../lib/testing/binaries.js';
import { freePort } from '../../lib/testing/processes.js';
import { NativeRedis } from '../../lib/testing/redis.js';
import { nodeByPort } from '../helpers/cluster.js';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { StoreInstance, type NodeList } from '../fixtures/store-instances.js';

let cluster: Cluster;
let other: NativeRedis;
let otherDir: string;
let main: Redis; // the server the instances use
let older: Redis; // the one it will follow
let nodes: NodeList;
const instances: StoreInstance[] = [];

/** Waits until `test` holds; after `timeoutMs`, throws (or just returns, when `orReturn`). */
async function until(what: string, test: () => Promise<boolean>, timeoutMs = 20_000, orReturn = false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline && orReturn) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const linkUp = async (client: Redis) => /master_link_status:up/.test(await client.info('replication'));

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table notes (id int primary key, body text)');
  await createAppRole(cluster, ['select, insert, update on notes']);
  nodes = {
    primary: asAppRole(cluster.primary.connectionString),
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: asAppRole(r.connectionString) })),
  };
  otherDir = mkdtempSync(join(tmpdir(), 'pgrr-redis-'));
  other = new NativeRedis(await freePort(), findRedisServer(undefined), otherDir, 20_000);
  await other.start();
  main = new Redis(cluster.redis!.url);
  older = new Redis(other.url);
  for (const client of [main, older]) client.on('error', () => {});
});

afterAll(async () => {
  for (const replica of cluster?.replicas ?? []) if (replica.running) await replica.resumeReplay();
  await Promise.all(instances.map((i) => i.close()));
  main?.disconnect();
  older?.disconnect();
  await other?.stop();
  if (otherDir) rmSync(otherDir, { recursive: true, force: true });
  await cluster?.stop();
});

describe('a store resynchronised from older data on open connections', () => {
  it("instances notice the server's new replication history and read the session's last write", async () => {
    const start = async (options: { naive?: boolean } = {}) => {
      const started = await StoreInstance.start(nodes, cluster.redis!.url, { storeTimeoutMs: 2000, ...options });
      instances.push(started);
      await started.settle();
      return started;
    };
    const [a, b, naive] = await Promise.all([start(), start(), start({ naive: true })]);
    const keys = [redisKeyFor('user:1'), redisKeyFor('user:2')];
    await a.write('user:1', 1, 'first');
    await a.write('user:2', 2, 'first');
    await cluster.waitForReplicas();
    await Promise.all([a.settle(), b.settle(), naive.settle()]);
    // Each instance has loaded before (a process's first load is raised anyway: see store-rollback.test.ts).
    for (const instance of [a, b, naive]) await instance.read('warm-up', 0);

    // The other server takes a copy of today's data, then leaves: it holds the positions of 'first'.
    await older.replicaof(cluster.redis!.host, cluster.redis!.port);
    await until('the copy', async () => (await linkUp(older)) && (await older.get(keys[1]!)) === (await main.get(keys[1]!)));
    await older.replicaof('NO', 'ONE');
    const copied = await Promise.all(keys.map((k) => older.get(k)));

    await Promise.all(cluster.replicas.map((r) => r.pauseReplay()));
    await a.write('user:1', 1, 'second');
    await a.write('user:2', 2, 'second');
    expect(await main.get(keys[0]!)).not.toBe(copied[0]); // acknowledged

    const lossesBefore = (await b.stats()).losses.length;
    // The instances' server follows the other one (it discards its data for the older copy), and
    // takes writes again: the same process, the same open connections, another history.
    await main.replicaof(other.host, other.port);
    await until('the resync', async () => (await linkUp(main)) && (await main.get(keys[0]!)) === copied[0]);
    await main.replicaof('NO', 'ONE');
    // Within a few identity checks (one a second) — and if it never does, the read below shows it.
    await until('b to notice', async () => (await b.stats()).losses.length > lossesBefore, 5000, true);
    const reasons = (await b.stats()).losses.slice(lossesBefore);
    expect(reasons).not.toContain('redis close'); // no connection was cut
    expect.soft(reasons.some((r) => r.includes('identity'))).toBe(true);

    // Naive: without the identity check, the old position of 'first' and a paused replica.
    const stale = await naive.read('user:2', 2);
    expect(stale.body).toBe('first');
    expect(nodeByPort(cluster, stale.port)).toMatch(/^r[12]$/);
    expect(await b.read('user:1', 1)).toEqual({ body: 'second', port: cluster.primary.port });
  });
});
