import { describe, expect, it } from 'vitest';
import { isConnectionError, isNotSent, markNotSent } from '../../lib/pg-args.js';

const error = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

describe('connection errors', () => {
  it('an error is "never sent" only when marked so (raised while opening its connection), whatever its code', () => {
    const refused = error('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED');
    expect(isNotSent(refused)).toBe(false);
    markNotSent(refused);
    expect(isNotSent(refused)).toBe(true);
    expect(isNotSent(error('the database system is shutting down', '57P03'))).toBe(false); // can also come after a COMMIT in the same query
    expect(isNotSent('ECONNREFUSED')).toBe(false);
    expect(isNotSent(undefined)).toBe(false);
  });

  it('tells errors that make a node suspect', () => {
    expect(isConnectionError(error('terminating connection due to administrator command', '57P01'))).toBe(true);
    expect(isConnectionError(error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(error('syntax error', '42601'))).toBe(false);
  });
});
