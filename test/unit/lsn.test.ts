import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatLsn, maxLsn, parseLsn, tryParseLsn } from 'pg-replica-router';

const lsn = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });

describe('LSN', () => {
  it('parses and formats PostgreSQL text', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe(0x16_b374d848n);
    expect(parseLsn('16/b374d848')).toBe(0x16_b374d848n);
    expect(formatLsn(0x16_b374d848n)).toBe('16/B374D848');
    expect(formatLsn(0xffff_ffff_ffff_ffffn)).toBe('FFFFFFFF/FFFFFFFF');
  });

  it('round-trips every 64-bit value', () => {
    fc.assert(fc.property(lsn, (value) => parseLsn(formatLsn(value)) === value));
  });

  it('orders like the numbers it stands for, beyond 2^53', () => {
    fc.assert(
      fc.property(lsn, lsn, (a, b) => {
        const [pa, pb] = [parseLsn(formatLsn(a)), parseLsn(formatLsn(b))];
        return pa < pb === a < b && maxLsn(pa, pb) === (a > b ? a : b);
      }),
    );
    expect(parseLsn('200000/1') > parseLsn('200000/0')).toBe(true); // 2^53 + 1 vs 2^53
  });

  it('rejects junk with a stable code', () => {
    for (const junk of ['', '/', '0/', '/0', '0-0', '0/0/0', '123456789/0', '0/123456789', 'g/0', ' 0/0', '0/0 ', '-1/0', '0x1/0']) {
      expect(() => parseLsn(junk), junk).toThrow(expect.objectContaining({ code: 'ERR_PGRR_INVALID_LSN' }));
      expect(tryParseLsn(junk)).toBeUndefined();
    }
    fc.assert(
      fc.property(fc.string(), (text) => {
        const parsed = tryParseLsn(text);
        return parsed === undefined ? !/^[0-9a-f]{1,8}\/[0-9a-f]{1,8}$/i.test(text) : parseLsn(formatLsn(parsed)) === parsed;
      }),
    );
    expect(tryParseLsn(42)).toBeUndefined();
    expect(() => formatLsn(-1n)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_INVALID_LSN' }));
    expect(() => formatLsn(1n << 64n)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_INVALID_LSN' }));
  });
});
