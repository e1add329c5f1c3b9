// The monitor's "ahead of the primary" verdict (lib/node-poll.ts judgeAhead), without a database:
// a replica whose polled replay position is past the primary's insert position asked for after
// that poll is on another history, and stays out until a primary poll re-judges it under new
// circumstances (found by review: a restart used to clear the verdict and let the replica in at
// its next poll, before any re-judgement).
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { judgeAhead, type Watched } from '../../lib/node-poll.js';
import { SharedRoundTrip } from '../../lib/shared-round-trip.js';
import { clusterHistory, newNodeState, sameHistory } from '../../lib/node-state.js';

function watched(role: 'primary' | 'replica', started: string): Watched {
  return {
    state: { ...newNodeState(role === 'primary' ? 'primary' : 'r1', role), status: 'up', timeline: 1 },
    pool: undefined as unknown as pg.Pool,
    timer: undefined,
    inflight: undefined,
    samples: new SharedRoundTrip(async (sentAt) => ({ lsn: undefined, sentAt })),
    systemIdAsked: true,
    layout: undefined,
    processId: undefined,
    started,
    replayedAt: undefined,
  };
}

describe('judgeAhead: a replica seen past the primary is on another history', () => {
  it('marks a replica whose replay, read before the primary was asked, is past its insert position', () => {
    const primary = watched('primary', 'p-start-1');
    const r1 = watched('replica', 'r-start-1');
    r1.polled = { replay: 500n, answeredAt: 10 };
    expect(judgeAhead(r1, primary, 400n, 11)).toBe(true);
    expect(r1.state.status).toBe('other-history');
    expect(sameHistory(r1.state, primary.state)).toBe(false);
  });

  it('never judges from a replica answer that came after the primary was asked (no order, no verdict)', () => {
    const primary = watched('primary', 'p-start-1');
    const r1 = watched('replica', 'r-start-1');
    r1.polled = { replay: 500n, answeredAt: 12 };
    expect(judgeAhead(r1, primary, 400n, 11)).toBe(false);
    expect(r1.state.divergedKey).toBeUndefined();
  });

  it('a restarted replica keeps its verdict until a primary poll after its new answer re-judges it', () => {
    const primary = watched('primary', 'p-start-1');
    const r1 = watched('replica', 'r-start-1');
    r1.polled = { replay: 500n, answeredAt: 10 };
    judgeAhead(r1, primary, 400n, 11);
    r1.started = 'r-start-2'; // restarted: still on the other history
    expect(sameHistory(r1.state, primary.state), 'out of rotation until re-judged').toBe(false);
    r1.polled = { replay: 520n, answeredAt: 20 };
    expect(judgeAhead(r1, primary, 410n, 21), 'still ahead: the verdict stands').toBe(true);
    expect(sameHistory(r1.state, primary.state)).toBe(false);
  });

  it('a verdict given under other circumstances is dropped once a primary poll finds the replica not ahead', () => {
    const primary = watched('primary', 'p-start-1');
    const r1 = watched('replica', 'r-start-1');
    r1.polled = { replay: 500n, answeredAt: 10 };
    judgeAhead(r1, primary, 400n, 11);
    r1.started = 'r-start-2'; // rebuilt from the primary, say
    r1.polled = { replay: 300n, answeredAt: 20 };
    expect(judgeAhead(r1, primary, 450n, 21)).toBe(false);
    expect(sameHistory(r1.state, primary.state)).toBe(true);
  });

  it('under the same circumstances the verdict stands even once the primary has written past the replica', () => {
    const primary = watched('primary', 'p-start-1');
    const r1 = watched('replica', 'r-start-1');
    r1.polled = { replay: 500n, answeredAt: 10 };
    judgeAhead(r1, primary, 400n, 11);
    r1.polled = { replay: 510n, answeredAt: 20 };
    expect(judgeAhead(r1, primary, 900n, 21)).toBe(false);
    expect(sameHistory(r1.state, primary.state)).toBe(false);
  });
});

describe('clusterHistory: the WAL history while the primary has not answered', () => {
  const replica = (name: string, systemId: string | undefined) => ({ ...newNodeState(name, 'replica'), systemId, timeline: 1 });
  it('is the system identifier the replicas agree on, with no timeline', () => {
    expect(clusterHistory([newNodeState('primary', 'primary'), replica('r1', '7'), replica('r2', '7'), replica('r3', undefined)])).toEqual({
      systemId: '7',
      timeline: undefined,
    });
  });
  it('is unknown when replicas disagree or none answered', () => {
    expect(clusterHistory([replica('r1', '7'), replica('r2', '8')]).systemId).toBeUndefined();
    expect(clusterHistory([newNodeState('primary', 'primary'), replica('r1', undefined)]).systemId).toBeUndefined();
  });
});
