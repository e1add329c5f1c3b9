// Session state and its rules (pure), and tokens absorbed into sessions (no database).
import { describe, expect, it } from 'vitest';
import { Session } from '../../lib/session.js';
import { encodeToken } from '../../lib/token.js';
import { fakeEngine, HISTORY } from '../helpers/fake-parts.js';

const SECRET = 'a-test-secret-of-enough-bytes';

describe('session (pure)', () => {
  it('fold: writes, resyncs and floors of an inner scope reach the outer one', () => {
    const outer = new Session(undefined);
    const inner = new Session('k');
    inner.noteWrite();
    inner.floor = 500n;
    inner.stamp(HISTORY);
    outer.fold(inner);
    expect(outer.writePending).toBe(true);
    expect(outer.floor).toBe(500n);

    const other = new Session('k');
    other.floor = 900n;
    other.stamp({ systemId: HISTORY.systemId, timeline: 2 });
    outer.fold(other);
    expect(outer.resync).toBe(true); // another timeline: not comparable, resync
    expect(outer.floor).toBe(500n);
  });

  it('fold: uncovered reads of an inner scope without a floor are unioned', () => {
    const outer = new Session(undefined);
    outer.noteRead('r1', 10);
    const inner = new Session('k');
    inner.noteRead('r2', 20);
    outer.fold(inner);
    expect(outer.uncovered).toEqual(['r1', 'r2']);
    expect(outer.lastReadEndedAt).toBe(20);
    outer.noteRead('primary', 30);
    expect(outer.uncovered).toBe('primary');
  });

  it('cover clears the uncovered reads only with a sample taken after them', () => {
    const s = new Session(undefined);
    s.noteRead('r1', 100);
    s.cover({ lsn: 50n, sentAt: 90 }, HISTORY);
    expect(s.uncovered).toEqual(['r1']);
    expect(s.floor).toBe(50n);
    s.cover({ lsn: 60n, sentAt: 110 }, HISTORY);
    expect(s.uncovered).toBeUndefined();
    expect(s.floor).toBe(60n);
  });

  it('never lowers its floor', () => {
    const s = new Session(undefined);
    s.raise(100n);
    s.raise(50n);
    s.absorb({ lsn: 20n }, 0);
    expect(s.floor).toBe(100n);
  });
});

describe('node names across processes (database-free)', () => {
  it("a position names servers by id: another process's own name for a different server is never taken as ours", () => {
    const { engine, monitor } = fakeEngine({ tokenSecret: SECRET });
    const secret = Buffer.from(SECRET);
    // A token from another service that used local names (or an older version): 'r1' there is not our r1.
    const named = new Session(undefined);
    engine.tokens.absorb(named, encodeToken({ lsn: 10n, node: 'r1', ...HISTORY }, secret));
    expect(named.uncovered).toBe('primary'); // sample the primary before any replica
    // A server id we do not know stays foreign: it names no server of ours.
    const foreign = new Session(undefined);
    engine.tokens.absorb(foreign, encodeToken({ lsn: 10n, node: 'x.0123456789ab', ...HISTORY }, secret));
    expect(foreign.uncovered).toEqual(['x.0123456789ab']);
    expect(foreign.stickyReplica).toBe('x.0123456789ab');
    expect(engine.nodes.replicas.has('x.0123456789ab')).toBe(false);
    // Our own server, by id, is our name again.
    const ours = new Session(undefined);
    engine.tokens.absorb(ours, encodeToken({ lsn: 10n, node: monitor.serverIdOf('r2'), ...HISTORY }, secret));
    expect(ours.uncovered).toEqual(['r2']);
  });
});

describe('tokens absorbed into sessions (database-free)', () => {
  it('a genuine token raises the floor; forged, malformed and foreign ones are counted and change nothing', () => {
    const { engine, monitor } = fakeEngine({ tokenSecret: SECRET });
    const secret = Buffer.from(SECRET);
    const s = new Session(undefined);
    engine.tokens.absorb(s, encodeToken({ lsn: 400n, node: monitor.serverIdOf('r1'), ...HISTORY }, secret)); // tokens name servers by id
    expect(s.floor).toBe(400n);
    expect(s.uncovered).toEqual(['r1']);
    engine.tokens.absorb(s, encodeToken({ lsn: 999n, ...HISTORY }, Buffer.from('another-secret-of-enough-bytes')));
    engine.tokens.absorb(s, 'not.a.token');
    engine.tokens.absorb(s, encodeToken({ lsn: 999n, systemId: '42', timeline: 1 }, secret));
    expect(s.floor).toBe(400n);
    expect(engine.counters.tokensAccepted).toBe(1);
    expect(engine.counters.tokensRejected).toMatchObject({ forged: 1, malformed: 1, foreign: 1 });
  });

  it('a token of an older timeline means "the current primary position"', async () => {
    const { engine, primary } = fakeEngine({ tokenSecret: SECRET });
    primary.lsn = 1200n;
    const s = new Session(undefined);
    engine.tokens.absorb(s, encodeToken({ lsn: 5000n, systemId: HISTORY.systemId, timeline: 0 }, Buffer.from(SECRET)));
    expect(s.resync).toBe(true);
    await engine.sessions.floorFor(s);
    expect(s.floor).toBe(1200n);
  });

  it('a token issued while the store cannot be read carries the current primary position, never floor 0', async () => {
    const { engine, primary, store } = fakeEngine({ tokenSecret: SECRET });
    store.failing = true;
    primary.lsn = 4242n;
    const s = new Session('user:1');
    const receiver = new Session(undefined);
    engine.tokens.absorb(receiver, await engine.tokens.issue(s, Buffer.from(SECRET), true));
    expect(s.floorUnknown).toBe(true);
    expect(receiver.floor).toBe(4242n);
  });

  it('an issued token carries pending writes positioned, or "primary" when the primary cannot be read', async () => {
    const { engine, primary } = fakeEngine({ tokenSecret: SECRET });
    const secret = Buffer.from(SECRET);
    const s = new Session(undefined);
    s.noteWrite();
    primary.lsn = 777n;
    const receiver = new Session(undefined);
    engine.tokens.absorb(receiver, await engine.tokens.issue(s, secret, false));
    expect(receiver.floor).toBe(777n);

    const t = new Session(undefined);
    t.noteWrite();
    primary.down = true;
    const second = new Session(undefined);
    engine.tokens.absorb(second, await engine.tokens.issue(t, secret, false));
    expect(second.uncovered).toBe('primary');
  });
});
