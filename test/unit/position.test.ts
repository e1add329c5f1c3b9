import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergePosition } from 'pg-replica-router';
import { decodePosition, decodeStored, encodePosition, encodeStored, withVersion, type StoredPosition } from '../../lib/position.js';
import { decodeToken, encodeToken } from '../../lib/token.js';

const pos = (lsn: bigint, node?: string, timeline = 1, systemId = '42'): StoredPosition => ({ lsn, node, systemId, timeline });
const v = (p: StoredPosition, version: string): StoredPosition => ({ ...p, version });
const secret = Buffer.from('0123456789abcdef0123456789abcdef');

describe('mergePosition', () => {
  it.each([
    ['nothing stored', undefined, pos(5n, 'r1'), undefined, pos(5n, 'r1')],
    ['unchanged since loaded (same version)', v(pos(9n, 'r1'), 'a'), pos(9n), v(pos(9n, 'r1'), 'a'), pos(9n)],
    ['an equal value without a version is not the loaded copy', pos(9n, 'r1'), pos(9n), pos(9n, 'r1'), pos(9n, 'r1')],
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

describe('mergePosition compares versions, not values', () => {
  const primaryReads = pos(9n, 'primary');
  const cover = v(pos(12n), 'a2');

  it('a cover replaces the copy it stored, and only that one', () => {
    const storedA = mergePosition(undefined, v(primaryReads, 'a1'), undefined);
    expect(storedA.version).toBe('a1');
    expect(mergePosition(storedA, cover, v(primaryReads, 'a1'))).toEqual(pos(12n));
    expect(mergePosition(storedA, cover, v(primaryReads, 'a1')).version).toBe('a2');
  });

  it("an equal value stored by another request is merged into, never replaced (B's reads on the primary stay)", () => {
    const storedA = v(primaryReads, 'a1');
    const storedB = mergePosition(storedA, v(primaryReads, 'b1'), v(pos(5n), 'v0')); // B loaded what A loaded
    expect(storedB).toEqual(primaryReads);
    // B's copy is a merge: neither A nor B holds its version, so neither cover replaces it.
    expect([undefined, 'a1', 'b1']).not.toContain(storedB.version);
    expect(mergePosition(storedB, cover, storedA)).toEqual(pos(12n, 'primary'));
    expect(mergePosition(storedB, v(pos(12n), 'b2'), v(primaryReads, 'b1'))).toEqual(pos(12n, 'primary'));
    // The next request loads it (version included) and replaces it.
    expect(mergePosition(storedB, v(pos(13n, 'r1'), 'c1'), storedB)).toEqual(pos(13n, 'r1'));
  });

  it('without versions (an older format, a store that drops them) every raise merges: the safe path', () => {
    expect(mergePosition(primaryReads, pos(12n), primaryReads)).toEqual(pos(12n, 'primary'));
    expect(mergePosition(primaryReads, pos(12n), primaryReads).version).toBeUndefined();
    expect(mergePosition(primaryReads, cover, primaryReads).version).toMatch(/^[0-9a-f]{16}$/); // versioned from then on
    expect(mergePosition(v(primaryReads, 'a1'), cover, primaryReads)).toEqual(pos(12n, 'primary')); // loaded without one
  });

  it('derived versions are deterministic (Lua computes the same) and differ from the inputs', () => {
    const a = mergePosition(v(pos(9n, 'r1'), 'c1'), v(pos(7n, 'r2'), 'n1'), undefined);
    const b = mergePosition(v(pos(9n, 'r1'), 'c1'), v(pos(7n, 'r2'), 'n1'), undefined);
    expect(a.version).toBe(b.version);
    expect(a.version).not.toBe('n1');
    // a next without a version over the loaded copy: stored as is, under a version no earlier loader holds
    const replaced = mergePosition(v(pos(9n, 'r1'), 'c1'), pos(10n, 'r2'), v(pos(9n, 'r1'), 'c1'));
    expect(replaced).toEqual(pos(10n, 'r2'));
    expect(replaced.version).toMatch(/^[0-9a-f]{16}$/);
  });

  it('the version is not part of the value: not enumerable, dropped when malformed', () => {
    const p = withVersion(pos(9n, 'r1'), 'abc');
    expect(p.version).toBe('abc');
    expect(Object.keys(p)).not.toContain('version');
    expect({ ...p }.version).toBeUndefined();
    expect(withVersion(pos(9n), 'bad version!').version).toBeUndefined();
    expect(withVersion(pos(9n), 'x'.repeat(41)).version).toBeUndefined();
  });
});

describe('stored encoding', () => {
  it('round-trips versions; values of the older format decode without one', () => {
    const p = withVersion(pos(0x1_0000_0001n, 'r1,r2'), 'f00d');
    expect(encodeStored(p)).toBe(`${encodePosition(p)}|f00d`);
    const back = decodeStored(encodeStored(p));
    expect(back).toEqual(p);
    expect(back?.version).toBe('f00d');
    const old = decodeStored(encodePosition(pos(5n, 'primary')));
    expect(old).toEqual(pos(5n, 'primary'));
    expect(old?.version).toBeUndefined();
    expect(encodeStored(pos(5n))).toBe(encodePosition(pos(5n))); // no version: the older format
    expect(encodeStored(v(pos(5n), 'bad|one'))).toBe(encodePosition(pos(5n)));
    for (const junk of [`${encodePosition(p)}|`, `${encodePosition(p)}|${'x'.repeat(41)}`, `${encodePosition(p)}|a|b`, `x|f00d`, 7]) {
      expect(decodeStored(junk)).toBeUndefined();
    }
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
