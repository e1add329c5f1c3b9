import { describe, expect, it } from 'vitest';
import { memoryStore, type Router, type StoredPosition } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, useRoutedCluster } from '../helpers/cluster.js';

// What still works while the primary is down, one session at a time. (test/faults/primary.test.ts
// runs the same under load.)
let cluster: Cluster;
let router: Router;
const store = memoryStore();
useRoutedCluster({ router: { store, logger: false }, setup: ['create table notes (id int primary key, body text)', "insert into notes values (1, 'one')"] }, (c, r) => {
  [cluster, router] = [c, r];
});

const READ = 'select body, inet_server_port() as port from notes where id = 1';
const read = (session: string) => router.withSession(session, () => router.query(READ)).then((r) => nodeByPort(cluster, r.rows[0]!.port));

/** Gives `session` a stored position (after a write of its own) with the uncovered reads `node`. */
async function storedWith(session: string, node: string | undefined): Promise<void> {
  await router.withSession(session, () => router.query("update notes set body = 'two' where id = 1"));
  const loaded = (await store.get(session)) as StoredPosition;
  await store.raise(session, { ...loaded, node }, loaded);
}

describe('uncovered reads in the store', () => {
  it('a stored list of replicas or "primary" is covered by the next request, and not stored again', async () => {
    await storedWith('list', 'r1,r2');
    await storedWith('primary-reads', 'primary');
    await cluster.waitForReplicas();
    const node = await read('list');
    expect((await store.get('list'))?.node).toBe(node); // just the replica it read on
    const other = await read('primary-reads');
    // A read on the primary is covered right after the request, once a primary sample arrives.
    await expect.poll(async () => (await store.get('primary-reads'))?.node, { timeout: 5000 }).toBe(other === 'primary' ? undefined : other);
  });
});

describe('the primary is down', () => {
  it('sessions whose reads ran only on replicas keep reading from replicas; a write refused at connect changes nothing', async () => {
    await storedWith('on-both-replicas', 'r1,r2'); // reads on two replicas, not covered yet
    await storedWith('on-the-primary', 'primary'); // reads on the primary, not covered yet
    await storedWith('writer', undefined);
    await cluster.waitForReplicas();
    // No 'error' listener on the pool: idle primary connections dying must not crash the process.
    expect(router.pool.listenerCount('error')).toBe(0);
    await cluster.primary.stop();
    try {
      // Covered by sampling r1 and r2, not the primary.
      expect(await read('on-both-replicas')).toMatch(/^r[12]$/);
      // Only the primary can cover reads made on it: fails, with pg's connection error.
      await expect(read('on-the-primary')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      // The write never reached a server, so the session's reads need no position from the primary.
      await expect(router.withSession('writer', () => router.query("update notes set body = 'three' where id = 1"))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(await read('writer')).toMatch(/^r[12]$/);
      expect((await store.get('writer'))?.node).not.toBe('primary');
    } finally {
      await cluster.primary.start();
    }
    // Back: the session that read on the primary is covered by a primary sample again.
    expect(await read('on-the-primary')).toMatch(/^(primary|r1|r2)$/);
  });
});
