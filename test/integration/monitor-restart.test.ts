import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { routerFor, startTestCluster } from '../helpers/cluster.js';

// A replica that restarted may replay from behind where it was (crash recovery starts at its last
// restartpoint): a live sample taken before the next poll must not pass for a position after the
// reads it is meant to cover.
let cluster: Cluster;
let router: Router;
beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  router = routerFor(cluster, { monitor: { intervalMs: 600_000 }, logger: false }); // no poll during the test
  await router.query('select 1');
});
afterAll(async () => {
  await router?.close();
  await cluster?.stop();
});

describe('live samples of a restarted node', () => {
  it('are refused, and the cached position is dropped, until a poll takes the node up again', async () => {
    const monitor = engineOf(router)!.monitor;
    const before = await monitor.sample('r1');
    expect(before.lsn).toBeDefined();
    const state = monitor.state('r1')!;
    expect(state.replayLsn).toBeDefined();
    await cluster.replicas[0]!.stop();
    await cluster.replicas[0]!.start();
    const after = await monitor.sample('r1', performance.now());
    expect(after.lsn).toBeUndefined();
    expect(state.replayLsn).toBeUndefined();
    expect(state.resetAt).toBeGreaterThan(before.sentAt);
  });
});
