import { describe, expect, it } from 'vitest';
import { formatLsn, memoryStore, type Router, type StoredPosition } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { cachedAtLeast, naivePool, nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

// What still works while the primary is down, one session at a time. (test/faults/primary.test.ts
// runs the same under load.)
type Replica = Cluster['replicas'][number];
let cluster: Cluster;
let router: Router;
const store = memoryStore();
useRoutedCluster(
  {
    router: { store, logger: false },
    setup: ['create table notes (id int primary key, body text)', "insert into notes values (1, 'one')"],
  },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

const READ = 'select body, inet_server_port() as port from notes where id = 1';
/** How stored positions name a replica: by its server id (local names mean nothing outside the process). */
const id = (name: string) => engineOf(router)!.monitor.serverIdOf(name)!;
const ids = (...names: string[]) => names.map(id).sort().join(',');
const read = (session: string) => router.withSession(session, () => router.query(READ)).then((r) => nodeByPort(cluster, r.rows[0]!.port));

/** Note 1's body on `replica`, read straight from it (the naive path). */
async function naiveBody(replica: Replica): Promise<string> {
  const pool = naivePool(replica.connectionString);
  try {
    return (await pool.query('select body from notes where id = 1')).rows[0].body;
  } finally {
    await pool.end();
  }
}

/** Gives `session` a stored position (after a write of its own) with the uncovered reads `node`. */
async function storedWith(session: string, node: string | undefined, body = 'two'): Promise<void> {
  await router.withSession(session, () => router.query('update notes set body = $1 where id = 1', [body]));
  const loaded = (await store.get(session)) as StoredPosition;
  await store.raise(session, { ...loaded, node }, loaded);
}

describe('uncovered reads in the store', () => {
  it('a stored list of replicas or "primary" is covered by the next request, and not stored again', async () => {
    await storedWith('list', ids('r1', 'r2'));
    await storedWith('primary-reads', 'primary');
    await cluster.waitForReplicas();
    const node = await read('list');
    // Both replicas have replayed everything: sampling each covers the list, and either may serve.
    // The primary would mean the list was not covered by replica samples.
    expect(node).toMatch(/^r[12]$/);
    expect((await store.get('list'))?.node).toBe(id(node)); // just the replica it read on
    const other = await read('primary-reads');
    // A read on the primary is covered right after the request, once a primary sample arrives.
    await expect
      .poll(async () => (await store.get('primary-reads'))?.node, { timeout: 5000 })
      .toBe(other === 'primary' ? undefined : id(other));
  });
});

describe('the primary is down', () => {
  it('sessions whose reads ran only on replicas keep reading from replicas; a write refused at connect changes nothing', async () => {
    const [r1, r2] = cluster.replicas as [Replica, Replica];
    await storedWith('on-both-replicas', ids('r1', 'r2')); // reads on two replicas, not covered yet
    await storedWith('on-the-primary', 'primary'); // reads on the primary, not covered yet
    await cluster.waitForReplicas();
    // r2 stops replaying, so the replicas differ: the writer's write reaches r1 only.
    await r2.pauseReplay();
    try {
      await storedWith('writer', undefined, 'by the writer');
      const writerFloor = (await store.get('writer'))!.lsn;
      await r1.waitForReplay();
      await cachedAtLeast(router, 'r1', formatLsn(writerFloor));
      expect([await naiveBody(r1), await naiveBody(r2)], 'r2 is really behind r1').toEqual(['by the writer', 'two']);
      // No 'error' listener on the pool: idle primary connections dying must not crash the process.
      expect(router.pool.listenerCount('error')).toBe(0);
      await cluster.primary.stop();
      try {
        // Covered by sampling r1 and r2, not the primary, and by the higher sample: r1's, past the
        // writer's write, which r2 has not replayed. The session's reads on r1 may have seen that
        // write, so r2 would be a step back: r1 serves.
        expect(await read('on-both-replicas')).toBe('r1');
        // Only the primary can cover reads made on it: fails, with pg's connection error.
        await expect(read('on-the-primary')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
        // The write never reached a server, so the session's reads need no position from the
        // primary: its floor is its earlier write, which only r1 has replayed.
        await expect(
          router.withSession('writer', () => router.query("update notes set body = 'three' where id = 1")),
        ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
        expect(await read('writer')).toBe('r1');
        expect(await store.get('writer')).toMatchObject({ lsn: writerFloor, node: id('r1') });
      } finally {
        await cluster.primary.start();
      }
    } finally {
      await r2.resumeReplay();
    }
    // Back: the session that read on the primary is covered by a primary sample again. Once both
    // replicas have replayed the primary's position, either may serve it (the primary would mean
    // no primary sample covered those reads), and the store no longer says "primary".
    await settle(router, cluster);
    const back = await read('on-the-primary');
    expect(back).toMatch(/^r[12]$/);
    expect((await store.get('on-the-primary'))?.node).toBe(id(back));
  });
});
