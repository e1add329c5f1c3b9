// discoverReplicas(): the replica set follows a DNS name, re-resolved on an interval, against a
// DNS server run here on loopback (test/helpers/dns-server.ts). SRV records name each replica's
// host and port; A records its address (on one port). A failed lookup leaves the set as it was;
// an answer without records empties it. Read-your-writes holds over discovered replicas, and a
// plain pool on a paused one reads stale.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverReplicas, type ReplicaDiscovery, type Router } from 'pg-replica-router';
import type { Cluster, ReplicaHandle } from 'pg-replica-router/testing';
import { eventualReadNodes, naivePool, nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';

const NAME = '_postgresql._tcp.replicas.test';
let cluster: Cluster;
let r1: ReplicaHandle;
let r2: ReplicaHandle;
let dns: DnsServer;
let router: Router;
let discovery: ReplicaDiscovery;
const errors: unknown[] = [];

const replicaNames = () =>
  router
    .topology()
    .nodes.filter((n) => n.role === 'replica' && n.status === 'up')
    .map((n) => n.name)
    .sort();
const eventualReads = (count: number) => eventualReadNodes(router, cluster, count);

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  [r1, r2] = cluster.replicas as [ReplicaHandle, ReplicaHandle];
  await cluster.primary.query('create table notes (id serial primary key, author text)');
  await cluster.waitForReplicas();
  dns = await startDnsServer();
  dns.srv.set(NAME, [{ target: 'localhost', port: r1.port }]);
  router = routerFor(cluster, { replicas: [] });
  await settle(router, cluster);
  discovery = discoverReplicas(router, {
    name: NAME,
    record: 'SRV',
    config: { user: 'app', password: 'app', database: 'postgres' },
    intervalMs: 200,
    servers: [dns.address],
    onError: (err) => errors.push(err),
  });
});

afterAll(async () => {
  discovery?.stop();
  await router?.close();
  await dns?.close();
  await cluster?.stop();
});

describe('replicas discovered from DNS', () => {
  it('SRV records become the replica set, followed as they change', async () => {
    await discovery.refresh();
    await expect.poll(replicaNames, { timeout: 5000 }).toEqual([`localhost:${r1.port}`]);
    expect(await eventualReads(5)).toEqual(new Set(['r1']));
    dns.srv.set(NAME, [
      { target: 'localhost', port: r1.port },
      { target: 'localhost', port: r2.port },
    ]);
    await expect.poll(replicaNames, { timeout: 5000 }).toEqual([`localhost:${r1.port}`, `localhost:${r2.port}`].sort());
    await expect.poll(() => eventualReads(20), { timeout: 5000 }).toEqual(new Set(['r1', 'r2']));
    dns.srv.set(NAME, [{ target: 'localhost', port: r2.port }]);
    await expect.poll(replicaNames, { timeout: 5000 }).toEqual([`localhost:${r2.port}`]);
    expect(await eventualReads(10)).toEqual(new Set(['r2']));
    expect(dns.asked.filter((q) => q === `SRV ${NAME}`).length).toBeGreaterThan(3); // re-resolved on its interval
  });

  it('a dead DNS server leaves the set as it was; an answer without records empties it', async () => {
    const before = replicaNames();
    dns.silent = true;
    await discovery.refresh();
    expect(errors.length).toBeGreaterThan(0);
    expect(replicaNames()).toEqual(before);
    dns.silent = false;
    dns.srv.set(NAME, []);
    await discovery.refresh();
    expect(replicaNames()).toEqual([]);
    expect(await eventualReads(3)).toEqual(new Set(['primary']));
    dns.srv.set(NAME, [
      { target: 'localhost', port: r1.port },
      { target: 'localhost', port: r2.port },
    ]);
    await discovery.refresh();
    await expect.poll(replicaNames, { timeout: 5000 }).toHaveLength(2);
  });

  it('read-your-writes over discovered replicas; a plain pool on the paused one reads stale', async () => {
    await r2.pauseReplay();
    try {
      await router.withSession('ann', () => router.query("insert into notes (author) values ('ann')"));
      const naive = naivePool(urlAs(r2));
      try {
        expect((await naive.query("select count(*)::int as n from notes where author = 'ann'")).rows[0].n).toBe(0);
      } finally {
        await naive.end();
      }
      for (let i = 0; i < 10; i++) {
        const { rows } = await router.withSession('ann', () =>
          router.query<{ n: number; port: number }>(
            "select count(*)::int as n, inet_server_port() as port from notes where author = 'ann'",
          ),
        );
        expect(rows[0]!.n).toBe(1);
        expect(nodeByPort(cluster, rows[0]!.port)).not.toBe('r2');
      }
    } finally {
      await r2.resumeReplay();
    }
  });

  it('A records: each address is a replica on the given port', async () => {
    dns.a.set('replica-a.test', ['127.0.0.1']);
    const other = routerFor(cluster, { replicas: [] });
    const byAddress = discoverReplicas(other, {
      name: 'replica-a.test',
      port: r1.port,
      config: { user: 'app', password: 'app', database: 'postgres' },
      servers: [dns.address],
    });
    try {
      await byAddress.refresh();
      await expect
        .poll(
          () =>
            other
              .topology()
              .nodes.filter((n) => n.role === 'replica')
              .map((n) => [n.name, n.status]),
          { timeout: 5000 },
        )
        .toEqual([[`127.0.0.1:${r1.port}`, 'up']]);
    } finally {
      byAddress.stop();
      await other.close();
    }
  });

  it('bad options are refused with a stable code', () => {
    expect(() => discoverReplicas(router, { name: '' })).toThrow(expect.objectContaining({ code: 'ERR_PGRR_INVALID_OPTION' }));
    expect(() => discoverReplicas(router, { name: 'x', record: 'MX' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_PGRR_INVALID_OPTION' }),
    );
    expect(() => discoverReplicas(router, { name: 'x', intervalMs: 5 })).toThrow(
      expect.objectContaining({ code: 'ERR_PGRR_INVALID_OPTION' }),
    );
  });
});
