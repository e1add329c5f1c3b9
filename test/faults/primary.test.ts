import { describe, expect, it } from 'vitest';
import { drill, expectDrillHeld, isConnectionFailure, sleep, useDrillCluster } from './drill.js';
import { readsFailedWithoutNeedingThePrimary } from './primary-need.js';

// A store call that times out while the primary is down sends every later load to the primary
// (known gap 2 in primary-cut-gaps.test.ts); on a busy machine 50 ms store timeouts do happen, so
// this drill, about the primary, gives the store more time.
const env = useDrillCluster({ router: { storeTimeoutMs: 1000 } });

describe('fault drills: the primary', () => {
  it('the primary stopped for 3 s and started: writes fail at once with a connection error, reads keep going on replicas', async () => {
    const { cluster, router } = env();
    const storeTrouble = () => {
      const { timeouts, errors, shortCircuits } = router.topology().store;
      return timeouts + errors + shortCircuits;
    };
    const troubleBefore = storeTrouble();
    let stopping = 0; // stop() called
    let down = 0; // stop() returned: the server has exited
    let starting = 0; // start() called
    const report = await drill(env(), 'primary-stopped', {
      fault: async () => {
        stopping = performance.now();
        await cluster.primary.stop();
        down = performance.now();
        await sleep(3000);
      },
      heal: () => {
        starting = performance.now();
        return cluster.primary.start();
      },
    });
    // On record: a store call that failed during the run makes every load afterwards wait for a
    // primary position (the recovery floor), which a stopped primary cannot give.
    console.log(`[drill] primary-stopped: store trouble ${storeTrouble() - troubleBefore}, ${JSON.stringify(router.topology().store)}`);
    // Writes have nowhere to go. A read fails only if its session's last reads ran on the primary
    // (no replica is known to cover them) or it was running there when the primary went away.
    expectDrillHeld(report, (f) => f.endPhase !== 'before' && f.phase !== 'recovered' && isConnectionFailure(f));
    const fault = report.phases.fault!;
    expect(report.failures['write ECONNREFUSED'] ?? 0, 'writes failed with ECONNREFUSED').toBeGreaterThan(0);
    expect(fault.replicaReads, 'replicas kept serving').toBeGreaterThan(0);

    // What must hold for the operations run while the primary was down (started after it had
    // exited, ended before it was started again):
    const whileDown = (op: { start: number; end: number }) => op.start >= down && op.end <= starting;
    const { history, failures } = report.result;
    // - nothing can be written, and no read can be served by the primary;
    expect(history.filter((op) => whileDown(op) && op.kind === 'write')).toEqual([]);
    expect(history.filter((op) => whileDown(op) && op.kind === 'read' && op.node === 'primary')).toEqual([]);
    expect(history.filter((op) => whileDown(op) && op.kind === 'read').length, 'reads served while the primary was down').toBeGreaterThan(
      0,
    );
    // - every operation that fails, fails because it went to the primary, which refuses
    //   connections (a failing replica would give another error);
    const failedWrites = failures.filter((f) => whileDown(f) && f.kind === 'write');
    expect(failedWrites.length, 'writes tried while the primary was down').toBeGreaterThan(0);
    expect(failures.filter((f) => whileDown(f) && f.code !== 'ECONNREFUSED')).toEqual([]);
    // - and a read fails only if its session needed the primary (see readsFailedWithoutNeedingThePrimary);
    //   every other read has a floor all replicas have replayed and must succeed on one. Only the
    //   position store failing can add to them: a store read that fails sends its read to the
    //   primary, a store write that is lost leaves an older position behind — one session per
    //   store failure at most. (With a healthy store, as usual, that allows none.)
    const unexplained = readsFailedWithoutNeedingThePrimary(history, failures, {
      stopping,
      whileDown,
      reachedNoServer: (f) => f.code === 'ECONNREFUSED',
    });
    const unexplainedSessions = new Set(unexplained.map((f) => f.session));
    expect(
      unexplainedSessions.size,
      `reads that failed although no primary was needed: ${JSON.stringify(unexplained.slice(0, 5))}`,
    ).toBeLessThanOrEqual(storeTrouble() - troubleBefore);
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
