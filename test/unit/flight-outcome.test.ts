// What a flight's position means for its session and route (lib/flight-outcome.ts), without I/O.
import { afterAll, describe, expect, it } from 'vitest';
import type { Classification } from '../../lib/classifier.js';
import { flightFor, positioned } from '../../lib/flight-outcome.js';
import { flightPosition } from '../../lib/position-flight.js';
import type { Route } from '../../lib/route.js';
import { makeScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { fakeEngine } from '../helpers/fake-parts.js';

const READ: Classification = { kind: 'read', detail: 'select' };
const { engine, monitor } = fakeEngine();
afterAll(() => engine.close());
const primaryRoute = (reason: 'wrote-in-scope' | 'replica-behind'): Route => ({
  node: engine.nodes.primary,
  decision: { target: 'primary', reason },
  floor: 0n,
  waitedMs: 0,
});

describe('flightFor', () => {
  it("only a read the session's own write sent to the primary carries the primary's position, and not while a write is fenced", () => {
    const session = new Session('k');
    session.noteWrite();
    const scope = makeScope(session, undefined);
    expect(flightFor(primaryRoute('wrote-in-scope'), READ, scope, () => true)).toMatchObject({ mode: 'insert-after', writesBefore: 1 });
    expect(flightFor(primaryRoute('wrote-in-scope'), READ, scope, () => false)).toBeUndefined();
    expect(flightFor(primaryRoute('replica-behind'), READ, scope, () => true)).toBeUndefined();
    expect(flightFor(primaryRoute('wrote-in-scope'), { kind: 'write', detail: 'update' }, scope, () => true)).toBeUndefined();
    session.fenced = true;
    expect(flightFor(primaryRoute('wrote-in-scope'), READ, scope, () => true)).toBeUndefined();
  });
});

describe('positioned', () => {
  it('raises the floor, covers the reads that ended before the flight, and positions the writes planned before it', () => {
    const session = new Session('k');
    session.noteWrite();
    session.noteRead('primary', 10);
    const position = flightPosition('insert-after', session.writes);
    position.sentAt = 20;
    position.lsn = 900n;
    expect(positioned(monitor, session, position)).toBe(true);
    expect(session).toMatchObject({ floor: 900n, uncovered: undefined, writePending: false });
  });

  it('leaves pending a write acknowledged while the flight was out (its position may be before it)', () => {
    const session = new Session('k');
    session.noteWrite();
    const position = flightPosition('insert-after', session.writes);
    session.noteWrite(); // acknowledged meanwhile
    position.sentAt = 20;
    position.lsn = 900n;
    positioned(monitor, session, position);
    expect(session.writePending).toBe(true);
    expect(session.floor).toBe(900n);
  });

  it('a nested scope that wrote counts as a write of the outer session', () => {
    const outer = new Session('k');
    outer.noteWrite();
    const position = flightPosition('insert-after', outer.writes);
    const inner = new Session('j');
    inner.noteWrite();
    outer.fold(inner);
    position.lsn = 900n;
    positioned(monitor, outer, position);
    expect(outer.writePending).toBe(true);
  });

  it('without a position (the read after the statement failed) changes nothing', () => {
    const session = new Session('k');
    session.noteWrite();
    expect(positioned(monitor, session, flightPosition('insert-after', session.writes))).toBe(false);
    expect(session).toMatchObject({ floor: 0n, writePending: true });
  });
});
