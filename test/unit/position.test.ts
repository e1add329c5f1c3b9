import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergePosition } from 'pg-replica-router';
import { decodePosition, encodePosition, type StoredPosition } from '../../lib/position.js';
import { decodeToken, encodeToken } from '../../lib/token.js';

const pos = (lsn: bigint, node?: string, timeline = 1, systemId = '42'): StoredPosition => ({ lsn, node, systemId, timeline });
const secret = Buffer.from('0123456789abcdef0123456789abcdef');

describe('mergePosition', () => {
  it.each([
    ['nothing stored', undefined, pos(5n, 'r1'), undefined, pos(5n, 'r1')],
    ['unchanged since loaded', pos(9n, 'r1'), pos(9n), pos(9n, 'r1'), pos(9n)],
    ['concurrent: max, same node', pos(9n, 'r1'), pos(7n, 'r1'), pos(1n), pos(9n, 'r1')],
    ['concurrent: union of replicas', pos(9n, 'r2'), pos(11n, 'r1'), pos(1n), pos(11n, 'r1,r2')],
    ['concurrent: union of lists', pos(9n, 'r1,r3'), pos(11n, 'r2,r3'), pos(1n), pos(11n, 'r1,r2,r3')],
    ['concurrent: the primary absorbs the rest', pos(9n, 'r1,r2'), pos(11n, 'primary'), pos(1n), pos(11n, 'primary')],
    ['concurrent: too long a list becomes the primary', pos(9n, 'a'.repeat(40)), pos(11n, 'b'.repeat(30)), pos(1n), pos(11n, 'primary')],
    ['concurrent: node kept from either side', pos(9n), pos(7n, 'r2'), undefined, pos(9n, 'r2')],
    ['older timeline loses', pos(9n, 'r1', 3), pos(100n, 'r2', 2), undefined, pos(9n, 'r1', 3)],
    ['newer timeline wins', pos(900n, 'r1', 2), pos(100n, undefined, 3), undefined, pos(100n, undefined, 3)],
    ['unknown identity never lowers', pos(900n, 'r1', 2), { lsn: 100n }, undefined, pos(900n, 'r1', 2)],
  ] as const)('%s', (_name, current, next, loaded, expected) => {
    expect(mergePosition(current, next, loaded)).toEqual(expected);
  });

  it('is a max-register within one history: commutative, associative, idempotent on LSNs', () => {
    const p = fc.record({
      lsn: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      node: fc.constantFrom(undefined, 'r1', 'r2', 'r3', 'r1,r2', 'r2,r3', 'primary'),
    });
    fc.assert(
      fc.property(p, p, p, (a, b, c) => {
        const [A, B, C] = [pos(a.lsn, a.node), pos(b.lsn, b.node), pos(c.lsn, c.node)];
        const m = (x: StoredPosition, y: StoredPosition) => mergePosition(x, y, undefined);
        expect(m(A, B)).toEqual(m(B, A));
        expect(m(m(A, B), C)).toEqual(m(A, m(B, C)));
        expect(m(A, A)).toEqual(A);
        expect(m(A, B).lsn >= A.lsn && m(A, B).lsn >= B.lsn).toBe(true);
      }),
    );
  });
});

describe('position encoding and tokens', () => {
  it('round-trips positions and rejects junk', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(undefined, 'r1', 'east-1', 'r1,r2'), (lsn, node) => {
        const p = pos(lsn, node);
        expect(decodePosition(encodePosition(p))).toEqual(p);
      }),
    );
    for (const junk of [
      '',
      'x',
      '0|1|2|r',
      `${'0'.repeat(16)}|x|1|r`,
      `${'0'.repeat(16)}|1|1|bad node`,
      `${'0'.repeat(16)}|1|1|r1,,r2`,
      `${'0'.repeat(16)}|1|1|,r1`,
      `${'0'.repeat(16)}|1|1|r1,`,
      `${'0'.repeat(16)}|1|1|${'r'.repeat(65)}`,
      42,
      null,
    ]) {
      expect(decodePosition(junk)).toBeUndefined();
    }
  });

  it('signs tokens and rejects every kind of bad one', () => {
    const token = encodeToken(pos(123n, 'r1'), secret);
    expect(decodeToken(token, [secret])).toEqual({ position: pos(123n, 'r1') });
    const [version, payload, signature] = token.split('.') as [string, string, string];
    const forgedPayload = Buffer.from(encodePosition(pos(1n))).toString('base64url');
    expect(decodeToken(`${version}.${forgedPayload}.${signature}`, [secret])).toEqual({ rejected: 'forged' });
    expect(decodeToken(encodeToken(pos(1n), Buffer.from('another secret, 32 bytes long!!!')), [secret])).toEqual({ rejected: 'forged' });
    expect(decodeToken(`2.${payload}.${signature}`, [secret])).toEqual({ rejected: 'version' });
    expect(decodeToken('x'.repeat(600), [secret])).toEqual({ rejected: 'oversized' });
    for (const junk of ['', 'abc', 'a.b', `${token}.x`, `1.${payload}.!!`, 42, undefined, {}]) {
      expect(decodeToken(junk, [secret])).toEqual({ rejected: 'malformed' });
    }
    // rotation: verified by any listed secret
    const old = Buffer.from('the old secret, also 32 bytes!!!');
    expect(decodeToken(encodeToken(pos(5n), old), [secret, old])).toEqual({ position: pos(5n) });
  });
});
