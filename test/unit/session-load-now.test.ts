// The no-I/O path stays synchronous with the in-process store: a keyed session's stored position
// is loaded in the same turn, so a read on a replica known to be ready is planned without a
// promise. Database-free: fake pools and monitor (test/helpers/fake-parts.ts).
import { describe, expect, it } from 'vitest';
import { memoryStore } from '../../lib/index.js';
import { makeScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { fakeEngine, HISTORY } from '../helpers/fake-parts.js';

describe('session loads in the same turn (in-process store)', () => {
  it('plans a keyed read synchronously with memoryStore(), honouring the stored floor', async () => {
    const store = memoryStore();
    const { engine, monitor } = fakeEngine({ store });
    monitor.set('r1', { replayLsn: 500n });
    monitor.set('r2', { replayLsn: 200n });
    await store.raise('user:1', { lsn: 300n, ...HISTORY }, undefined);
    const session = new Session('user:1');
    const route = engine.planner.planSync('read', makeScope(session, undefined));
    expect(session.loaded).toBe(true);
    expect(session.floor).toBe(300n);
    expect(route?.node.name).toBe('r1'); // r2 (200) is behind the stored floor
    expect(engine.counters.storeReads).toBe(1);
  });

  it('a store that answers only asynchronously is loaded by plan(), not in the same turn', async () => {
    const { engine, store, monitor } = fakeEngine(); // a recording store: async only
    monitor.set('r1', { replayLsn: 500n });
    store.values.set('user:1', { lsn: 300n, ...HISTORY });
    const session = new Session('user:1');
    expect(engine.planner.planSync('read', makeScope(session, undefined))).toBeUndefined();
    expect(session.loaded).toBe(false);
    const route = await engine.planner.plan('read', makeScope(session, undefined));
    expect([session.floor, route.node.name]).toEqual([300n, 'r1']);
  });

  it('after a sign that the store may have lost positions, the load waits for the recovery floor', async () => {
    const store = memoryStore();
    const { engine, monitor, primary } = fakeEngine({ store });
    monitor.set('r1', { replayLsn: 500n });
    primary.lsn = 450n;
    await store.raise('user:1', { lsn: 100n, ...HISTORY }, undefined);
    engine.sessions.storeMayHaveLost();
    const session = new Session('user:1');
    expect(engine.planner.planSync('read', makeScope(session, undefined)), 'not in the same turn').toBeUndefined();
    await engine.planner.plan('read', makeScope(session, undefined));
    expect(session.floor).toBe(450n); // raised to the primary position read after the loss
    // Once the floor is sampled, later loads are synchronous again (and raised to it).
    const later = new Session('user:1');
    expect(engine.planner.planSync('read', makeScope(later, undefined))?.node.name).toBe('r1');
    expect(later.floor).toBe(450n);
  });

  it('a store made from memoryStore() (its methods spread into another object) is not taken for it: guarded, loaded asynchronously', async () => {
    const base = memoryStore();
    let gets = 0;
    const store = { ...base, get: (key: string) => (gets++, base.get(key)) };
    const { engine, monitor } = fakeEngine({ store });
    monitor.set('r1', { replayLsn: 500n });
    await base.raise('user:1', { lsn: 300n, ...HISTORY }, undefined);
    const session = new Session('user:1');
    expect(engine.planner.planSync('read', makeScope(session, undefined))).toBeUndefined();
    await engine.planner.plan('read', makeScope(session, undefined));
    expect([gets, session.floor]).toEqual([1, 300n]); // its own get was used
  });
});
