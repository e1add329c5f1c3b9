// The route planner without a database: the monitor's view and live answers are set by the test.
import { describe, expect, it } from 'vitest';
import { makeScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { fakeEngine, HISTORY } from '../helpers/fake-parts.js';

/** A session in memory (no store) with a floor and, optionally, uncovered reads. */
function session(floor: bigint, uncovered?: 'primary' | string[], readEndedAt = performance.now()): Session {
  const s = new Session(undefined);
  s.floor = floor;
  s.stamp(HISTORY);
  if (uncovered) {
    s.uncovered = uncovered;
    s.lastReadEndedAt = readEndedAt;
  }
  return s;
}

describe('route planner (database-free)', () => {
  it('routes a read to a replica known caught up without any I/O, and sticks to the node of uncovered reads', () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 200n });
    monitor.set('r2', { replayLsn: 200n });
    const route = engine.planner.planSync('read', makeScope(session(100n, ['r2']), undefined));
    expect(route?.node.name).toBe('r2');
    expect(route?.decision.reason).toBe('caught-up');
    expect(monitor.sampled).toEqual([]);
  });

  it('checks the replicas live, in parallel, when none is known ready, and uses one that has the floor', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 50n });
    monitor.set('r2', { replayLsn: 90n });
    monitor.live.set('r2', 120n);
    const scope = makeScope(session(100n), undefined);
    expect(engine.planner.planSync('read', scope)).toBeUndefined();
    const route = await engine.planner.plan('read', scope);
    expect(monitor.sampled).toEqual(['r2', 'r1']); // the most advanced first, both at once
    expect(route.node.name).toBe('r2');
    expect(route.decision.reason).toBe('caught-up-live');
  });

  it('a replica that does not answer its live check holds nobody up: the round ends a little after the first answer', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 90n });
    monitor.set('r2', { replayLsn: 50n }); // e.g. blackholed, still up in the cache
    monitor.live.set('r1', 95n);
    const sample = monitor.sample.bind(monitor);
    monitor.sample = (name: string) =>
      name === 'r2'
        ? new Promise((resolve) => setTimeout(() => resolve({ lsn: undefined, sentAt: performance.now() }), 3000))
        : sample(name);
    const started = performance.now();
    const route = await engine.planner.plan('read', makeScope(session(100n), undefined));
    expect([route.node.name, route.decision.reason]).toEqual(['primary', 'replica-behind']);
    expect(performance.now() - started, 'a liveness bound, not a speed target').toBeLessThan(1500);
  });

  it('a replica the cache puts further behind may be the one that caught up: the live checks find it', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 50n }); // e.g. paused until a moment ago
    monitor.set('r2', { replayLsn: 90n });
    monitor.live.set('r1', 130n);
    monitor.live.set('r2', 95n);
    const route = await engine.planner.plan('read', makeScope(session(100n), undefined));
    expect([route.node.name, route.decision.reason]).toEqual(['r1', 'caught-up-live']);
  });

  it('falls back to the primary when the replica checked live is still behind', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 50n });
    monitor.set('r2', { replayLsn: 50n });
    monitor.live.set('r1', 60n);
    const route = await engine.planner.plan('read', makeScope(session(100n), undefined));
    expect(route.node.name).toBe('primary');
    expect(route.decision.reason).toBe('replica-behind');
  });

  it('covers uncovered reads on a replica with a sample of that replica taken after them before moving away', async () => {
    const { engine, monitor } = fakeEngine();
    const readsEnded = performance.now();
    monitor.set('r1', { replayLsn: 150n, sampledAt: readsEnded - 1 }); // cached before the reads: not enough
    monitor.set('r2', { replayLsn: 300n });
    monitor.live.set('r1', 250n); // what r1 had replayed after the reads (so they saw at most this)
    const s = session(100n, ['r1'], readsEnded);
    // The read must leave r1 (as a retry after a failure there does).
    const route = await engine.planner.plan('read', makeScope(s, undefined), undefined, new Set(['r1']));
    expect(monitor.sampled).toEqual(['r1']);
    expect(s.floor).toBe(250n);
    expect(s.uncovered).toBeUndefined();
    expect(route.node.name).toBe('r2');
  });

  it('covers with the cached sample when the monitor took one after the reads (free)', async () => {
    const { engine, monitor } = fakeEngine();
    const readsEnded = performance.now() - 10;
    monitor.set('r1', { replayLsn: 180n, sampledAt: readsEnded + 1, status: 'up' });
    monitor.set('r2', { replayLsn: 300n });
    const s = session(100n, ['r1'], readsEnded);
    // r1 is behind r2 for this session's next read only because of stickiness; exclude r1 to force the move.
    const route = await engine.planner.plan('read', makeScope(s, undefined), undefined, new Set(['r1']));
    expect(monitor.sampled).toEqual([]);
    expect(s.floor).toBe(180n);
    expect(route.node.name).toBe('r2');
  });

  it('covers reads on the primary with the earliest primary position known after them, else a live one', async () => {
    const { engine, monitor } = fakeEngine();
    const readsEnded = performance.now();
    monitor.notePrimaryPosition(100n, readsEnded - 5); // before the reads: does not cover them
    monitor.notePrimaryPosition(220n, readsEnded + 1);
    monitor.notePrimaryPosition(260n, readsEnded + 2);
    monitor.set('r1', { replayLsn: 230n });
    monitor.set('r2', { replayLsn: 230n });
    const s = session(100n, 'primary', readsEnded);
    const route = await engine.planner.plan('read', makeScope(s, undefined));
    expect(s.floor).toBe(220n); // the lowest that covers them: r1/r2 at 230 qualify, 260 would not
    expect(monitor.sampled).toEqual([]);
    expect(route.node.role).toBe('replica');

    const { engine: e2, monitor: m2 } = fakeEngine();
    m2.set('r1', { replayLsn: 500n });
    m2.live.set('primary', 400n);
    const s2 = session(100n, 'primary', performance.now());
    const r2 = await e2.planner.plan('read', makeScope(s2, undefined));
    expect(m2.sampled).toEqual(['primary']);
    expect(s2.floor).toBe(400n);
    expect(r2.node.name).toBe('r1');
  });

  it('does not cover with a replica restarted since the reads: the primary covers them instead', async () => {
    const { engine, monitor } = fakeEngine();
    const readsEnded = performance.now() - 10;
    monitor.set('r1', { replayLsn: 180n, sampledAt: readsEnded + 5, resetAt: readsEnded + 1 });
    monitor.set('r2', { replayLsn: 300n });
    monitor.live.set('primary', 290n);
    const s = session(100n, ['r1'], readsEnded);
    await engine.planner.plan('read', makeScope(s, undefined), undefined, new Set(['r1']));
    expect(monitor.sampled).toEqual(['primary']);
    expect(s.floor).toBe(290n);
  });

  it('reads on the primary when no sample can cover the reads (nothing answers)', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 300n });
    monitor.set('r2', { replayLsn: 300n });
    const s = session(100n, 'primary', performance.now());
    const route = await engine.planner.plan('read', makeScope(s, undefined));
    expect(route.node.name).toBe('primary');
    expect(route.decision.reason).toBe('replica-behind');
    expect(s.uncovered).toBe('primary');
  });

  it('read-your-writes does not cover reads on a replica (no monotonic reads promised)', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 300n });
    monitor.set('r2', { status: 'down' });
    // Uncovered 'primary' may stand for a write whose position read failed, which this level
    // does cover (see the next test); a read on r2 is only a read.
    const s = session(100n, ['r2'], performance.now());
    const route = engine.planner.planSync('read', makeScope(s, 'read-your-writes'));
    expect(route?.node.name).toBe('r1');
    expect(monitor.sampled).toEqual([]);
  });

  it('read-your-writes covers a write whose position read failed (stored as primary) before a replica read', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 300n });
    monitor.set('r2', { status: 'down' });
    monitor.live.set('primary', 400n); // where the write may have committed, at most
    monitor.live.set('r1', 300n);
    const scope = makeScope(session(100n, 'primary', performance.now()), 'read-your-writes');
    expect(engine.planner.planSync('read', scope)).toBeUndefined(); // needs a primary position first
    const route = await engine.planner.plan('read', scope);
    expect(monitor.sampled).toEqual(['primary', 'r1']); // then r1 checked live against 400
    expect(route.node.name).toBe('primary'); // r1 has replayed 300, below where the write may be
  });
});
