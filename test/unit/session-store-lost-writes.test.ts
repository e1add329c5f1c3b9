// Positions a failed store write could not take (kept per key, given to the next load), without a
// database: a fake primary pool answers position reads, a recording store keeps what is stored.
import { describe, expect, it } from 'vitest';
import { makeScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { SessionStore } from '../../lib/session-store.js';
import { fakeEngine, HISTORY } from '../helpers/fake-parts.js';

const stored = (lsn: bigint, node?: string) => ({ lsn, node, ...HISTORY });

describe('session store: positions a failed store write could not take (database-free)', () => {
  it('after a failed store write, the next load of that key gets the lost position; other keys need no primary position', async () => {
    const { engine, store, primary, monitor } = fakeEngine();
    store.values.set('user:1', stored(100n)); // stored before: older than the write whose store failed
    store.values.set('user:2', stored(10n));
    monitor.set('r1', { replayLsn: 400n });
    monitor.set('r2', { replayLsn: 200n });
    primary.lsn = 300n;
    const writer = new Session('user:1');
    writer.noteWrite();
    store.failing = true;
    await expect(engine.sessions.persist(writer)).rejects.toThrow();
    store.failing = false;
    primary.down = true; // the primary unreachable from now on
    const reads = primary.queries.length;

    const owed = new Session('user:1');
    const route = await engine.planner.plan('read', makeScope(owed, undefined));
    expect(owed.floor).toBe(300n); // the position the failed write tried to store
    expect(route.node.name).toBe('r1'); // r2 (200) would be stale for it

    const other = new Session('user:2');
    const otherRoute = await engine.planner.plan('read', makeScope(other, undefined));
    expect(other.floor).toBe(10n); // not raised to any primary position
    expect(otherRoute.node.role).toBe('replica');
    expect(primary.queries.length - reads, 'no primary round trip for either').toBe(0);
    expect(monitor.sampled).not.toContain('primary');
  });

  it('a lost position whose write position was unknown needs the primary, for that key only', async () => {
    const { engine, store, primary, monitor } = fakeEngine();
    store.values.set('user:1', stored(100n));
    store.values.set('user:2', stored(100n));
    const writer = new Session('user:1');
    writer.noteWrite();
    primary.down = true; // position read fails: stored as "primary"
    store.failing = true;
    await engine.sessions.persist(writer).catch(() => {});
    store.failing = false;
    const owed = new Session('user:1');
    await engine.sessions.floorFor(owed);
    expect(owed.uncovered).toBe('primary');
    const other = new Session('user:2');
    await engine.sessions.floorFor(other);
    expect(other.uncovered).toBeUndefined();
    expect(monitor.sampled).toEqual([]);
  });

  it('a raise that carried the lost position clears it; one that did not (loaded before the failure) keeps it', async () => {
    const { engine, store, primary } = fakeEngine();
    store.values.set('user:1', stored(100n));
    const early = new Session('user:1');
    await engine.sessions.floorFor(early); // loaded before the failure: does not carry it
    primary.lsn = 300n;
    const writer = new Session('user:1');
    writer.noteWrite();
    store.failing = true;
    await expect(engine.sessions.persist(writer)).rejects.toThrow();
    store.failing = false;
    early.noteRead('r1', performance.now());
    await engine.sessions.persist(early);
    expect(store.values.get('user:1')?.lsn).toBe(100n);
    expect(engine.sessions.lostKeys).toBe(1);

    const later = new Session('user:1');
    await engine.sessions.floorFor(later);
    expect(later.floor).toBe(300n);
    await engine.sessions.persist(later);
    expect(store.values.get('user:1')?.lsn).toBe(300n); // stored now
    expect(engine.sessions.lostKeys).toBe(0);
  });

  it('two failed writes of one key: the load gets both (max); a raise carrying only the first keeps the second', async () => {
    const { engine, store, primary } = fakeEngine();
    store.values.set('user:1', stored(100n));
    const fail = async (lsn: bigint) => {
      primary.lsn = lsn;
      const writer = new Session('user:1');
      writer.noteWrite();
      store.failing = true;
      await engine.sessions.persist(writer).catch(() => {});
      store.failing = false;
    };
    await fail(300n);
    const carrier = new Session('user:1');
    await engine.sessions.floorFor(carrier); // carries 300
    await fail(500n);
    carrier.noteRead('r1', performance.now());
    await engine.sessions.persist(carrier);
    expect(engine.sessions.lostKeys).toBe(1);
    const next = new Session('user:1');
    await engine.sessions.floorFor(next);
    expect(next.floor).toBe(500n);
  });

  it('more failed keys than kept: the one pushed out makes every later load take a primary position sampled after it', async () => {
    const { engine, store, primary } = fakeEngine();
    const s = engine.sessions;
    const sessions = new SessionStore(s.store, s.primary, s.monitor, s.isReplica, s.counters, s.warn, 2);
    store.values.set('user:9', stored(10n));
    store.failing = true;
    for (const [key, lsn] of [
      ['user:1', 100n],
      ['user:2', 200n],
    ] as const) {
      primary.lsn = lsn;
      const writer = new Session(key);
      writer.noteWrite();
      await sessions.persist(writer).catch(() => {});
    }
    store.failing = false;
    const before = new Session('user:9');
    await sessions.floorFor(before);
    expect(before.floor, 'two kept: no global floor yet').toBe(10n);
    store.failing = true;
    primary.lsn = 300n;
    const third = new Session('user:3');
    third.noteWrite();
    await sessions.persist(third).catch(() => {}); // pushes user:1 out
    store.failing = false;
    expect(sessions.lostKeys).toBe(2);
    primary.lsn = 350n;
    const reads = primary.positionReads;
    const loads = ['user:1', 'user:9', 'user:3'].map((key) => new Session(key));
    await Promise.all(loads.map((l) => sessions.floorFor(l)));
    expect(loads.map((l) => l.floor)).toEqual([350n, 350n, 350n]);
    expect(primary.positionReads - reads, 'one read for concurrent loads').toBe(1);
    await sessions.floorFor(new Session('user:4'));
    expect(primary.positionReads - reads, 'once sampled, later loads reuse it').toBe(1);
  });

  it('a write not sent because the circuit is open is kept the same way', async () => {
    const { engine, store, primary } = fakeEngine({ storeBreaker: { failures: 1, cooldownMs: 30 } });
    store.values.set('user:1', stored(100n));
    store.failing = true;
    await engine.sessions.floorFor(new Session('user:0')); // fails: opens the circuit
    store.failing = false; // reachable again, but the circuit is still open
    primary.lsn = 300n;
    const writer = new Session('user:1');
    writer.noteWrite();
    const raises = store.raises.length;
    await expect(engine.sessions.persist(writer)).rejects.toThrow(/circuit-open/);
    expect(store.raises.length, 'not sent').toBe(raises);
    await new Promise((resolve) => setTimeout(resolve, 60)); // the cooldown
    const owed = new Session('user:1');
    await engine.sessions.floorFor(owed);
    expect(owed.storeOutcome).toBe('hit');
    expect(owed.floor).toBe(300n);
    expect(engine.sessions.lostKeys).toBe(1); // until a raise carries it
  });
});
