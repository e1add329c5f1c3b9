import { describe, expect, it } from 'vitest';
import { drill, expectDrillHeld, isConnectionFailure, sleep, useDrillCluster } from './drill.js';

const env = useDrillCluster();

describe('fault drills: replicas', () => {
  it('the checker sees the stale reads of naive routing under the same load (so it can fail)', async () => {
    const { cluster } = env();
    const replica = cluster.replicas[0]!;
    const report = await drill(env(), 'naive-replica-paused', {
      load: { level: () => 'eventual' },
      fault: async () => {
        await replica.pauseReplay();
        await sleep(2000);
      },
      heal: () => replica.resumeReplay(),
      recoveredMs: 500,
    });
    expect(report.violations.ryw).toBeGreaterThan(0);
    expect(report.violations.mr).toBeGreaterThan(0);
    expect(report.violations.handoff).toBeGreaterThan(0);
  });

  it('a replica paused for 2 s (maxWaitMs is 200): reads wait or go elsewhere, none stale, none failed', async () => {
    const { cluster } = env();
    const replica = cluster.replicas[0]!;
    const report = await drill(env(), 'replica-paused', {
      fault: async () => {
        await replica.pauseReplay();
        await sleep(2000);
      },
      heal: () => replica.resumeReplay(),
    });
    expectDrillHeld(report);
    expect(report.phases.fault!.replicaReads, 'the other replica kept serving').toBeGreaterThan(0);
  });

  it('a replica killed (SIGKILL) for 2 s and restarted: in-flight reads retried elsewhere, none stale, back in rotation', async () => {
    const { cluster, router } = env();
    const replica = cluster.replicas[1]!;
    const report = await drill(env(), 'replica-killed', {
      fault: async () => {
        await replica.kill();
        await sleep(2000);
      },
      heal: () => replica.start(),
    });
    // A read on the killed replica is retried once on another node; only a read whose retry also
    // hit a dead connection may fail, with a connection error.
    expectDrillHeld(report, (f) => f.kind === 'read' && f.phase === 'fault' && isConnectionFailure(f));
    expect(router.topology().nodes.find((n) => n.name === replica.name)?.status).toBe('up');
    expect(report.phases.fault!.replicaReads).toBeGreaterThan(0);
  });
});
