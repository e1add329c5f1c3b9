import { describe, expect, it } from 'vitest';
import { debugFromEnv, formatDecision } from '../../lib/debug-log.js';

describe('debug log (pure)', () => {
  it('DEBUG names the library as the debug package reads it', () => {
    for (const on of ['pg-replica-router', '*', 'express:*,pg-replica-router', 'pg-replica-router:*', 'a b pg-replica-router*']) {
      expect(debugFromEnv(on)).toBe(true);
    }
    for (const off of [undefined, '', 'express:*', 'pg-replica', 'pg-replica-router-other']) expect(debugFromEnv(off)).toBe(false);
  });

  it('one line per decision', () => {
    const line = formatDecision({
      node: 'r1',
      role: 'replica',
      reason: 'caught-up',
      floor: '0/3000060',
      consistency: 'session',
      statement: 'read',
      waitedMs: 4.2,
    });
    expect(line).toBe('pg-replica-router route r1 (replica) caught-up floor=0/3000060 session read waited=4ms');
  });
});
