import { describe, expect, it } from 'vitest';
import { isConnectionError, isNotSent } from '../../lib/pg-args.js';

const error = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

describe('connection errors', () => {
  it('tells errors raised before a statement was sent (a failed write there cannot have committed)', () => {
    for (const e of [error('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), error('the database system is starting up', '57P03'), error('password authentication failed', '28P01'), error('timeout exceeded when trying to connect')]) {
      expect(isNotSent(e), e.message).toBe(true);
    }
    for (const e of [error('terminating connection due to administrator command', '57P01'), error('Connection terminated unexpectedly'), error('read ECONNRESET', 'ECONNRESET'), error('syntax error', '42601'), 'ECONNREFUSED']) {
      expect(isNotSent(e), String(e)).toBe(false);
    }
  });

  it('tells errors that make a node suspect', () => {
    expect(isConnectionError(error('terminating connection due to administrator command', '57P01'))).toBe(true);
    expect(isConnectionError(error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(error('syntax error', '42601'))).toBe(false);
  });
});
