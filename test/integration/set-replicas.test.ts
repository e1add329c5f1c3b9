// router.setReplicas(): the replica set changes at run time without failing a statement in
// flight. A new replica serves reads once polled up; a removed one leaves rotation at once,
// finishes what runs on it, then its pool ends; read-your-writes holds across the changes (and a
// plain pool on a paused replica reads stale).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster, ReplicaHandle } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { eventualReadNodes, naivePool, nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

let cluster: Cluster;
let r1: ReplicaHandle;
let r2: ReplicaHandle;
let router: Router;

const entry = (replica: ReplicaHandle) => ({ name: replica.name, connectionString: urlAs(replica) });
const replicaStatus = () =>
  Object.fromEntries(
    router
      .topology()
      .nodes.filter((n) => n.role === 'replica')
      .map((n) => [n.name, n.status]),
  );
const eventualReads = (count: number) => eventualReadNodes(router, cluster, count);

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  [r1, r2] = cluster.replicas as [ReplicaHandle, ReplicaHandle];
  await cluster.primary.query('create table notes (id serial primary key, author text)');
  await cluster.waitForReplicas();
  router = routerFor(cluster, { replicas: [entry(r1)] });
  await settle(router, cluster);
});

afterAll(async () => {
  await router?.close();
  await cluster?.stop();
});

describe('router.setReplicas()', () => {
  it('adds a replica: polled, then in rotation', async () => {
    expect(replicaStatus()).toEqual({ r1: 'up' });
    await router.setReplicas([entry(r1), entry(r2)]);
    await expect.poll(replicaStatus, { timeout: 5000 }).toEqual({ r1: 'up', r2: 'up' });
    await expect.poll(() => eventualReads(20), { timeout: 5000 }).toEqual(new Set(['r1', 'r2']));
  });

  it('removes a replica while a statement runs on it: the statement finishes, the replica leaves rotation, its connections close', async () => {
    const held = [];
    let client = await router.withConsistency('eventual', () => router.pool.connect());
    for (let tries = 0; client.node !== 'r1' && tries < 20; tries++) {
      held.push(client);
      client = await router.withConsistency('eventual', () => router.pool.connect());
    }
    for (const other of held) other.release();
    expect(client.node).toBe('r1');
    const running = client.query<{ port: number }>('select pg_sleep(0.6), inet_server_port() as port');
    let changed = false;
    const change = router.setReplicas([entry(r2)]).then(() => (changed = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(replicaStatus()).toEqual({ r2: 'up' }); // out of rotation at once
    expect(await eventualReads(10)).toEqual(new Set(['r2']));
    const { rows } = await running; // the statement in flight is not failed
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
    expect(changed).toBe(false); // its pool ends only once the connection is released
    client.release();
    await change;
    const left = await r1.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where usename = 'app'");
    expect(left[0]!.n).toBe(0); // neither the pool nor the monitor keeps a connection to r1
  });

  it('read-your-writes across the changes: a paused r2 is read past; a re-added, caught-up r1 serves the session', async () => {
    await r2.pauseReplay();
    try {
      await router.withSession('ann', () => router.query("insert into notes (author) values ('ann')"));
      const naive = naivePool(urlAs(r2));
      try {
        expect((await naive.query("select count(*)::int as n from notes where author = 'ann'")).rows[0].n).toBe(0);
      } finally {
        await naive.end();
      }
      const read = () =>
        router.withSession('ann', () =>
          router
            .query<{ n: number; port: number }>("select count(*)::int as n, inet_server_port() as port from notes where author = 'ann'")
            .then(({ rows }) => ({ n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) })),
        );
      expect(await read()).toEqual({ n: 1, node: 'primary' });
      await router.setReplicas([entry(r1), entry(r2)]);
      await expect.poll(read, { timeout: 5000, interval: 100 }).toEqual({ n: 1, node: 'r1' });
    } finally {
      await r2.resumeReplay();
    }
  });

  it('monotonic reads across a removal: a session that read on the removed replica is covered by the primary before it reads on one that is behind', async () => {
    await r1.pauseReplay();
    try {
      await cluster.primary.query("insert into notes (author) values ('dee')");
      await r2.waitForReplay();
      const read = () =>
        router.withSession('dee', () =>
          router
            .query<{ n: number; port: number }>("select count(*)::int as n, inet_server_port() as port from notes where author = 'dee'")
            .then(({ rows }) => ({ n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) })),
        );
      await expect.poll(read, { timeout: 5000 }).toEqual({ n: 1, node: 'r2' }); // the session has seen the row on r2
      await router.setReplicas([entry(r1)]);
      const naive = naivePool(urlAs(r1));
      try {
        expect((await naive.query("select count(*)::int as n from notes where author = 'dee'")).rows[0].n).toBe(0); // r1 would go back in time
      } finally {
        await naive.end();
      }
      for (let i = 0; i < 5; i++) expect(await read()).toEqual({ n: 1, node: 'primary' });
    } finally {
      await r1.resumeReplay();
      await router.setReplicas([entry(r1), entry(r2)]);
    }
  });

  it('calls in a row take effect in order; a replica listed with other settings gets a new pool', async () => {
    const poolOf = (name: string) => engineOf(router)!.nodes.replicas.get(name)?.pool;
    const before = poolOf('r1');
    expect(before).toBeDefined();
    await Promise.all([
      router.setReplicas([entry(r2)]),
      router.setReplicas([{ ...entry(r1), max: 3 }, entry(r2)]), // r1 back, with another pool size
    ]);
    const after = poolOf('r1');
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect((after as unknown as { options: { max: number } }).options.max).toBe(3); // pg.Pool's own options
    await expect.poll(replicaStatus, { timeout: 5000 }).toEqual({ r1: 'up', r2: 'up' });
    await router.setReplicas([entry(r1), entry(r2)]);
  });

  it('a bad list is refused with a stable code and changes nothing', async () => {
    const before = replicaStatus();
    await expect(router.setReplicas([{ name: 'primary', connectionString: urlAs(r1) }])).rejects.toMatchObject({
      code: 'ERR_PGRR_INVALID_OPTION',
    });
    await expect(router.setReplicas([entry(r1), entry(r1)])).rejects.toMatchObject({ code: 'ERR_PGRR_INVALID_OPTION' });
    await expect(router.setReplicas('r1' as never)).rejects.toMatchObject({ code: 'ERR_PGRR_INVALID_OPTION' });
    expect(replicaStatus()).toEqual(before);
  });
});
