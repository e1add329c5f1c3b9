// Loading, positioning and storing session positions, without a database: a fake primary pool
// answers position reads, a recording store keeps what is stored.
import { describe, expect, it } from 'vitest';
import { encodePosition } from '../../lib/position.js';
import { makeScope, runInScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { fakeEngine, HISTORY } from '../helpers/fake-parts.js';

const stored = (lsn: bigint, node?: string) => ({ lsn, node, ...HISTORY });

describe('session store (database-free)', () => {
  it('loads once per session, shared by concurrent reads', async () => {
    const { engine, store } = fakeEngine();
    const s = new Session('user:1');
    await Promise.all([engine.sessions.floorFor(s), engine.sessions.floorFor(s), engine.sessions.floorFor(s)]);
    expect(store.gets).toBe(1);
    expect(s.storeOutcome).toBe('miss');
  });

  it('a miss is owed the primary position at the load (the store may have forgotten); a brand-new session owes nothing', async () => {
    const { engine, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 900n });
    monitor.set('r2', { replayLsn: 400n });
    monitor.live.set('primary', 800n);
    const s = new Session('user:1');
    const route = await engine.planner.plan('read', makeScope(s, undefined));
    expect(monitor.sampled).toEqual(['primary']); // one sample of the primary taken after the load
    expect(s.floor).toBe(800n);
    expect(route.node.name).toBe('r1'); // only the replica past it

    const fresh = new Session('cookie:new', true);
    const freshRoute = await engine.planner.plan('read', makeScope(fresh, undefined));
    expect(fresh.floor).toBe(0n);
    expect(freshRoute.decision.reason).toBe('no-floor');
    expect(monitor.sampled).toEqual(['primary']);
  });

  it('a stored position becomes the floor', async () => {
    const { engine, store, monitor } = fakeEngine();
    store.values.set('user:1', stored(500n, monitor.serverIdOf('r1'))); // stores name servers by id
    const s = new Session('user:1');
    await engine.sessions.floorFor(s);
    expect(s.floor).toBe(500n);
    expect(s.uncovered).toEqual(['r1']);
    expect(s.storeOutcome).toBe('hit');
  });

  it('a corrupt or foreign stored value counts as the current primary position, never as no floor', async () => {
    const { engine, store, primary } = fakeEngine();
    primary.lsn = 900n;
    store.values.set('corrupt', null);
    store.values.set('foreign', { lsn: 5n, systemId: '42', timeline: 1 });
    for (const key of ['corrupt', 'foreign']) {
      const s = new Session(key);
      await engine.sessions.floorFor(s);
      expect(s.floor, key).toBe(900n);
    }
    expect(engine.counters.corruptPositions).toBe(1);
    expect(engine.counters.foreignPositions).toBe(1);
  });

  it('a position of another timeline of our system means "the current primary position"', async () => {
    const { engine, store, primary } = fakeEngine();
    primary.lsn = 700n;
    store.values.set('user:1', { lsn: 9000n, systemId: HISTORY.systemId, timeline: 0 });
    const s = new Session('user:1');
    await engine.sessions.floorFor(s);
    expect(s.floor).toBe(700n); // the old history's 9000 does not compare: dropped for the primary's now
    expect(s.timeline).toBe(HISTORY.timeline);
  });

  it('store unreachable: the floor is unknown and reads that need one go to the primary', async () => {
    const { engine, store, monitor } = fakeEngine();
    monitor.set('r1', { replayLsn: 1000n });
    store.failing = true;
    const s = new Session('user:1');
    const route = await engine.planner.plan('read', makeScope(s, undefined));
    expect(s.floorUnknown).toBe(true);
    expect(s.storeOutcome).toBe('unavailable');
    expect(route.node.name).toBe('primary');
    expect(route.decision.reason).toBe('floor-unknown');
    // ... while reads that need no floor still use replicas
    expect((await engine.planner.plan('read', makeScope(s, 'eventual'))).node.role).toBe('replica');
  });

  it('persist: a write is positioned on the primary after it, then stored against what was loaded', async () => {
    const { engine, store, primary } = fakeEngine();
    store.values.set('user:1', stored(100n));
    const s = new Session('user:1');
    await engine.sessions.floorFor(s);
    s.noteWrite();
    primary.lsn = 480n;
    await engine.sessions.persist(s);
    expect(store.raises).toHaveLength(1);
    expect(store.raises[0]!.next.lsn).toBe(480n);
    expect(store.raises[0]!.loaded).toEqual(stored(100n));
    expect(store.values.get('user:1')?.lsn).toBe(480n);
  });

  it('persist: nothing changed, nothing stored', async () => {
    const { engine, store } = fakeEngine();
    store.values.set('user:1', stored(100n));
    const s = new Session('user:1');
    await engine.sessions.floorFor(s);
    await engine.sessions.persist(s);
    expect(store.raises).toHaveLength(0);
    const fresh = new Session('user:2');
    await engine.sessions.persist(fresh);
    expect(store.raises).toHaveLength(0);
  });

  it('persist keeps the loaded replica among the uncovered ones when the session read elsewhere', async () => {
    const { engine, store, monitor } = fakeEngine();
    store.values.set('user:1', stored(100n, monitor.serverIdOf('r1')));
    const s = new Session('user:1');
    await engine.sessions.floorFor(s);
    s.uncovered = ['r2']; // this request moved (covered r1 up to a sample), then read r2
    s.raise(150n);
    await engine.sessions.persist(s);
    expect(store.raises[0]!.next.node).toBe([monitor.serverIdOf('r1'), monitor.serverIdOf('r2')].sort().join(','));
  });

  it('persist: when the write position cannot be read, the stored position sends the next read to sample the primary first', async () => {
    const { engine, store, primary } = fakeEngine();
    const s = new Session('user:1');
    s.noteWrite();
    primary.down = true;
    await engine.sessions.persist(s);
    expect(engine.counters.positionErrors).toBe(1);
    expect(store.values.get('user:1')?.node).toBe('primary');
  });

  it('reads on the primary: covered at once by a known later primary position, else stored as "primary" and covered in the background', async () => {
    const { engine, store, monitor } = fakeEngine();
    const a = new Session('user:a');
    a.noteRead('primary', performance.now());
    monitor.notePrimaryPosition(640n, performance.now() + 1);
    await engine.sessions.persist(a);
    expect(store.raises.map((r) => encodePosition(r.next))).toEqual([encodePosition(stored(640n))]);

    const b = new Session('user:b');
    b.noteRead('primary', performance.now() + 10);
    monitor.live.set('primary', 700n);
    await engine.sessions.persist(b);
    expect(store.raises[1]!.next.node).toBe('primary');
    await engine.sessions.drain();
    expect(store.values.get('user:b')).toEqual(stored(700n));
  });

  it('fold: a nested scope hands its writes, floor and reads to the scope around it', async () => {
    const { engine } = fakeEngine();
    const outer = new Session(undefined);
    await runInScope(makeScope(outer, undefined), () =>
      engine.withSession('job:1', async () => {
        const inner = engine.scopes.current().session;
        inner.noteWrite();
        inner.raise(800n);
        inner.stamp(HISTORY);
      }),
    );
    expect(outer.writePending).toBe(false); // positioned by the inner scope's persist...
    expect(outer.floor).toBeGreaterThanOrEqual(800n); // ...and its floor handed out
  });
});
