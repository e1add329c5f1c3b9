import { describe, expect, it } from 'vitest';
import { drill, expectDrillHeld, isConnectionFailure, sleep, useDrillCluster } from './drill.js';

const env = useDrillCluster();

describe('fault drills: the primary', () => {
  it('the primary stopped for 3 s and started: writes fail at once with a connection error, reads keep going on replicas', async () => {
    const { cluster, router } = env();
    const report = await drill(env(), 'primary-stopped', {
      fault: async () => {
        await cluster.primary.stop();
        await sleep(3000);
      },
      heal: () => cluster.primary.start(),
    });
    // Writes have nowhere to go. A read fails only if its session's last reads ran on the primary
    // (no replica is known to cover them) or it was running there when the primary went away.
    expectDrillHeld(report, (f) => f.endPhase !== 'before' && f.phase !== 'recovered' && isConnectionFailure(f));
    const fault = report.phases.fault!;
    expect(report.failures['write ECONNREFUSED'] ?? 0, 'writes failed with ECONNREFUSED').toBeGreaterThan(0);
    expect(fault.replicaReads, 'replicas kept serving').toBeGreaterThan(0);
    // Most reads kept working. (How many fail depends on how many sessions had just read on the
    // primary, which depends on how loaded the machine is; test/integration/primary-down.test.ts
    // checks the rules themselves, one session at a time.)
    const failedReads = report.result.failures.filter((f) => f.kind === 'read' && f.endPhase === 'fault').length;
    expect(failedReads, 'reads kept working').toBeLessThan(fault.reads);
    expect(router.topology().nodes.find((n) => n.name === 'primary')?.status).toBe('up');
  });

  it('a replica promoted while the primary is up: it leaves the read rotation', async () => {
    const { cluster, router } = env();
    const promoted = cluster.replicas[1]!;
    const report = await drill(env(), 'replica-promoted', {
      fault: async () => {
        await promoted.promote();
        await sleep(2000);
      },
      replicas: [cluster.replicas[0]!.name],
    });
    expectDrillHeld(report);
    expect(router.topology().nodes.find((n) => n.name === promoted.name)?.status).toBe('not-replica');
    const afterwards = report.result.history.filter((op) => op.phase === 'recovered' && op.kind === 'read');
    expect(afterwards.filter((op) => op.node === promoted.name)).toEqual([]);
  });
});
