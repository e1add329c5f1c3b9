import { ErrorCodes, ReplicaRouterError } from './errors.js';

/**
 * A PostgreSQL WAL position (`pg_lsn`) as an unsigned 64-bit integer.
 * Always a `bigint`: LSNs pass 2^53 on long-lived clusters, where `Number` would round.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/**
 * Parses PostgreSQL's `X/Y` text form (as returned by `pg_current_wal_insert_lsn()`).
 *
 * @throws ReplicaRouterError `ERR_PGRR_INVALID_LSN` for anything else.
 * @example
 * ```ts
 * import { parseLsn } from 'pg-replica-router';
 *
 * parseLsn('16/B374D848'); // 97500059720n
 * ```
 */
export function parseLsn(text: string): Lsn {
  const match = typeof text === 'string' ? LSN_TEXT.exec(text) : null;
  if (!match) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_LSN, `not a PostgreSQL LSN: ${JSON.stringify(text)}`);
  }
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Like {@link parseLsn}, but returns `undefined` instead of throwing. */
export function tryParseLsn(text: unknown): Lsn | undefined {
  if (typeof text !== 'string') return undefined;
  const match = LSN_TEXT.exec(text);
  return match ? (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`) : undefined;
}

/**
 * Formats an LSN the way PostgreSQL prints it (upper-case hex, no padding).
 *
 * @example
 * ```ts
 * import { formatLsn } from 'pg-replica-router';
 *
 * formatLsn(97500059720n); // '16/B374D848'
 * ```
 */
export function formatLsn(lsn: Lsn): string {
  if (lsn < 0n || lsn > 0xffff_ffff_ffff_ffffn) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_LSN, `LSN out of range: ${lsn}`);
  }
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** The larger of two positions: how positions merge (a max-register). */
export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}
