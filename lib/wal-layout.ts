import type { Lsn } from './lsn.js';

/**
 * How a server lays out its WAL (fixed when the cluster is made, the same on every node of it):
 * what it takes to tell where a record may end. From `pg_control_init()`, readable by any role.
 */
export interface WalLayout {
  /** `wal_block_size`: bytes per WAL page (8192 unless PostgreSQL was built otherwise). */
  readonly blockSize: number;
  /** `wal_segment_size` in bytes (16 MiB unless initdb was told otherwise). */
  readonly segmentSize: number;
  /** `MAXALIGN` of the server's platform (8 on 64-bit machines). */
  readonly maxAlign: number;
}

/** Asked once per node, beside its system identifier; a server that refuses it just keeps raw positions. */
export const WAL_LAYOUT_SQL = 'select wal_block_size, bytes_per_wal_segment, max_data_alignment from pg_control_init()';

/** A row of {@link WAL_LAYOUT_SQL} as a layout; undefined for anything implausible. */
export function walLayoutOf(
  row: { wal_block_size?: unknown; bytes_per_wal_segment?: unknown; max_data_alignment?: unknown } | undefined,
): WalLayout | undefined {
  const blockSize = Number(row?.wal_block_size);
  const segmentSize = Number(row?.bytes_per_wal_segment);
  const maxAlign = Number(row?.max_data_alignment);
  const powerOfTwo = (n: number) => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!powerOfTwo(blockSize) || !powerOfTwo(segmentSize) || !powerOfTwo(maxAlign) || segmentSize < blockSize || blockSize < 1024)
    return undefined;
  return { blockSize, segmentSize, maxAlign };
}

const align = (n: number, to: number) => Math.ceil(n / to) * to;

/**
 * The primary's insert position (`pg_current_wal_insert_lsn()`, where the *next* record starts)
 * as the end of the last record inserted, the form replay positions take. They differ only when
 * the last record ended exactly at a page boundary: the next one then starts past the new page's
 * header (24 bytes on 64-bit machines; 40 at a segment's first page), while a replica that
 * replayed everything reports the boundary itself. Compared raw, such a replica looks behind, and
 * a floor read there stays out of its reach, until more WAL is written — for as long as the
 * primary is idle. No record can end inside a page header, so both forms cover exactly the same
 * records: nothing a floor must cover is given up.
 *
 * @example
 * ```ts
 * const layout = { blockSize: 8192, segmentSize: 16 * 1024 * 1024, maxAlign: 8 };
 * endOfInserted(0x174e018n, layout); // 0x174e000n: the last record ended at the page boundary
 * endOfInserted(0x174e020n, layout); // 0x174e020n: mid-page, unchanged
 * ```
 */
export function endOfInserted(insert: Lsn, layout: WalLayout | undefined): Lsn {
  if (layout === undefined) return insert;
  // SizeOfXLogShortPHD and SizeOfXLogLongPHD: MAXALIGN(20) and that plus 16 (PostgreSQL's xlog_internal.h).
  const shortHeader = align(20, layout.maxAlign);
  const longHeader = align(shortHeader + 16, layout.maxAlign);
  if (insert % BigInt(layout.segmentSize) === BigInt(longHeader)) return insert - BigInt(longHeader);
  const inPage = insert % BigInt(layout.blockSize);
  if (inPage === BigInt(shortHeader) && insert % BigInt(layout.segmentSize) !== inPage) return insert - BigInt(shortHeader);
  return insert;
}
