import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, nodeByPort, routerFor, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;
const READ = 'select inet_server_port() as port, count(*)::int as n from jobs where name = $1';

useRoutedCluster({ router: { maxWaitMs: 3000 }, setup: ['create table jobs (name text)'] }, (c, r) => {
  [cluster, router] = [c, r];
});

describe('waiting for a replica (maxWaitMs)', () => {
  it('succeeds on a replica when replay resumes within maxWaitMs', async () => {
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    await r1.pauseReplay();
    await r2.pauseReplay();
    await router.query("insert into jobs values ('a')");
    const naive = naivePool(r1.connectionString);
    expect((await naive.query(READ, ['a'])).rows[0].n).toBe(0); // paused: the naive read is stale
    await naive.end();

    const started = performance.now();
    const read = router.query(READ, ['a']);
    setTimeout(() => void r1.resumeReplay(), 400);
    const res = await read;
    const waited = performance.now() - started;
    expect(res.rows[0]!.n).toBe(1);
    expect(nodeByPort(cluster, res.rows[0]!.port)).toBe('r1'); // waited for it rather than using the primary
    expect(waited).toBeGreaterThanOrEqual(350);
    await r2.resumeReplay();
  });

  it('falls back to the primary when replay does not resume in time', async () => {
    await settle(router, cluster);
    const short = routerFor(cluster, { maxWaitMs: 300 });
    try {
      await settle(short, cluster);
      for (const replica of cluster.replicas) await replica.pauseReplay();
      await short.query("insert into jobs values ('b')");
      const started = performance.now();
      const res = await short.query(READ, ['b']);
      const waited = performance.now() - started;
      expect(res.rows[0]!.n).toBe(1);
      expect(nodeByPort(cluster, res.rows[0]!.port)).toBe('primary');
      expect(waited).toBeGreaterThanOrEqual(280); // it did wait before giving up
    } finally {
      for (const replica of cluster.replicas) await replica.resumeReplay();
      await short.close();
    }
  });
});
