import { describe, expect, it } from 'vitest';
import { check, type Op } from '../workload/history.js';

const op = (session: string, kind: Op['kind'], start: number, end: number, version: number, row = 'a'): Op => ({
  session,
  kind,
  row,
  start,
  end,
  version,
  node: kind === 'handoff' ? '' : 'r1',
  transport: 'direct',
  phase: 'p',
});

describe('the history checker', () => {
  it('counts a read that misses an acknowledged write of its own session (read-your-writes)', () => {
    expect(check([op('s', 'write', 0, 1, 5), op('s', 'read', 2, 3, 4)])).toEqual({ ryw: 1, mr: 0, handoff: 0 });
    expect(check([op('s', 'write', 0, 1, 5), op('s', 'read', 2, 3, 5)])).toEqual({ ryw: 0, mr: 0, handoff: 0 });
  });

  it('counts a read older than an earlier read of the session (monotonic reads)', () => {
    expect(check([op('s', 'read', 0, 1, 7), op('s', 'read', 2, 3, 6)])).toEqual({ ryw: 0, mr: 1, handoff: 0 });
  });

  it('counts a read that misses what a handed-over token promised', () => {
    expect(check([op('s', 'handoff', 1, 1, 3), op('s', 'read', 2, 3, 2)])).toEqual({ ryw: 0, mr: 0, handoff: 1 });
  });

  it('does not order overlapping operations, other sessions, or other rows', () => {
    expect(check([op('s', 'write', 0, 5, 5), op('s', 'read', 2, 3, 4)])).toEqual({ ryw: 0, mr: 0, handoff: 0 });
    expect(check([op('s', 'write', 0, 1, 5), op('t', 'read', 2, 3, 4)])).toEqual({ ryw: 0, mr: 0, handoff: 0 });
    expect(check([op('s', 'write', 0, 1, 5, 'a'), op('s', 'read', 2, 3, 4, 'b')])).toEqual({ ryw: 0, mr: 0, handoff: 0 });
  });
});
