import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, settle, useRoutedCluster } from '../helpers/cluster.js';

let cluster: Cluster;
let router: Router;

useRoutedCluster({ router: { monitor: { intervalMs: 100, downAfter: 2, upAfter: 3 } }, setup: ['create table m (id int)'] }, (c, r) => {
  [cluster, router] = [c, r];
});

const node = (name: string) => router.topology().nodes.find((n) => n.name === name)!;
async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(router.topology().nodes)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('monitor', () => {
  it('reports lag 0 for caught-up replicas, and growing lag for a paused one', async () => {
    expect(node('r1')).toMatchObject({ status: 'up', lagBytes: 0, lagMs: 0 });
    expect(node('primary').status).toBe('up');
    const r1 = cluster.replicas[0]!;
    await r1.pauseReplay();
    try {
      await router.query('insert into m select generate_series(1, 1000)');
      await until('r1 to lag', () => (node('r1').lagBytes ?? 0) > 0 && (node('r1').lagMs ?? 0) > 0);
      const first = node('r1').lagMs!;
      await new Promise((resolve) => setTimeout(resolve, 300));
      await until('lag to grow', () => node('r1').lagMs! > first);
      expect(node('r2')).toMatchObject({ lagBytes: 0, lagMs: 0 }); // r2 is unaffected
    } finally {
      await r1.resumeReplay();
    }
    await until('r1 to catch up', () => node('r1').lagBytes === 0 && node('r1').lagMs === 0);
  });

  it('marks a stopped replica down, and up again only after several good polls', async () => {
    const r2 = cluster.replicas[1]!;
    await r2.stop();
    await until('r2 down', () => node('r2').status === 'down');
    expect(node('r2').lastError).toBeTruthy();
    await r2.start();
    const startedAt = Date.now();
    await until('r2 up', () => node('r2').status === 'up');
    // upAfter: 3 polls at ~100 ms each: not the very first good poll
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(150);
  });

  it('takes a promoted replica out of rotation for good', async () => {
    await settle(router, cluster);
    const r2 = cluster.replicas[1]!;
    await r2.promote();
    await until('r2 excluded', () => node('r2').status === 'not-replica');
    const nodes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const res = await router.withSession(`s${i}`, () => router.query('select inet_server_port() as port'));
      nodes.add(nodeByPort(cluster, res.rows[0]!.port));
    }
    expect(nodes.has('r2')).toBe(false);
    expect(nodes.has('r1')).toBe(true);
  });
});
