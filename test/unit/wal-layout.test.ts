// endOfInserted: the primary's insert position as an end of record (where replay positions stand).
import { describe, expect, it } from 'vitest';
import { endOfInserted, walLayoutOf, type WalLayout } from '../../lib/wal-layout.js';

const MB16 = 16 * 1024 * 1024;
const x64: WalLayout = { blockSize: 8192, segmentSize: MB16, maxAlign: 8 };

describe('endOfInserted', () => {
  it('a position just past a page header is the page boundary (the last record ended there)', () => {
    expect(endOfInserted(0x174e018n, x64)).toBe(0x174e000n); // seen on PostgreSQL 18, idle after a record ending at a page
    expect(endOfInserted(0x3000028n, x64)).toBe(0x3000000n); // a segment's first page: the long header, 40 bytes
    expect(endOfInserted((5n << 32n) + 24n + 8192n, x64)).toBe((5n << 32n) + 8192n); // past 4 GiB too
  });

  it('leaves every other position as it is', () => {
    for (const lsn of [0x174e000n, 0x174e010n, 0x174e020n, 0x174e030n, 0x3000018n, 0x3000030n, 0x30001f8n]) {
      expect(endOfInserted(lsn, x64), lsn.toString(16)).toBe(lsn);
    }
    expect(endOfInserted(0x174e018n, undefined)).toBe(0x174e018n); // layout unknown: raw
  });

  it('follows the server layout: block and segment sizes, and the platform alignment of the headers', () => {
    const big: WalLayout = { blockSize: 32768, segmentSize: 64 * 1024 * 1024, maxAlign: 8 };
    expect(endOfInserted(0x2018n, big)).toBe(0x2018n); // mid-page with 32 KiB pages
    expect(endOfInserted(0x8018n, big)).toBe(0x8000n);
    expect(endOfInserted(0x1000028n, big)).toBe(0x1000028n); // 16 MiB is no segment start with 64 MiB segments: mid-page
    const i386: WalLayout = { blockSize: 8192, segmentSize: MB16, maxAlign: 4 };
    expect(endOfInserted(0x2014n, i386)).toBe(0x2000n); // headers of 20 and 36 bytes
    expect(endOfInserted(0x2018n, i386)).toBe(0x2018n);
    expect(endOfInserted(0x1000024n, i386)).toBe(0x1000000n);
  });

  it('takes a layout only from plausible values', () => {
    expect(walLayoutOf({ wal_block_size: 8192, bytes_per_wal_segment: MB16, max_data_alignment: 8 })).toEqual(x64);
    expect(walLayoutOf({ wal_block_size: '8192', bytes_per_wal_segment: String(MB16), max_data_alignment: '8' })).toEqual(x64);
    expect(walLayoutOf(undefined)).toBeUndefined();
    expect(walLayoutOf({ wal_block_size: 8000, bytes_per_wal_segment: MB16, max_data_alignment: 8 })).toBeUndefined();
    expect(walLayoutOf({ wal_block_size: 8192, bytes_per_wal_segment: 4096, max_data_alignment: 8 })).toBeUndefined();
    expect(walLayoutOf({ wal_block_size: 8192, bytes_per_wal_segment: MB16, max_data_alignment: null })).toBeUndefined();
  });
});
