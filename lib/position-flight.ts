import type pg from 'pg';
import { markEndedHere } from './backends.js';
import { tryParseLsn, type Lsn } from './lsn.js';
import { isConnectionError, isTimeout } from './pg-args.js';
import { INSERT_LSN, REPLAY_LSN, STARTED } from './position-sql.js';

/**
 * Which position a flight reads beside its statement:
 * - `replay-before`: a replica's replay LSN, just before the statement — the live check of a read
 *   folded into the read's round trip (as MaxScale's causal reads do);
 * - `insert-after`: the primary's insert LSN, just after the statement.
 */
export type FlightMode = 'replay-before' | 'insert-after';

/** What a flight read beside its statement, filled in as its answer arrives. */
export interface FlightPosition {
  readonly mode: FlightMode;
  /** `performance.now()` when the flight was sent. */
  sentAt: number;
  /** The position read; undefined when none was (the node had none, or did not answer). */
  lsn: Lsn | undefined;
  /** The server's postmaster start time (`replay-before`, as `STARTED` reads it): which server answered. */
  started: string | undefined;
  /** The session's count of writes when the flight was planned (see `Session.writes`). */
  readonly writesBefore: number;
}

export function flightPosition(mode: FlightMode, writesBefore: number): FlightPosition {
  return { mode, sentAt: 0, lsn: undefined, started: undefined, writesBefore };
}

const POSITION_SQL: Record<FlightMode, string> = {
  'replay-before': `select ${REPLAY_LSN}::text as lsn, ${STARTED} as started`,
  'insert-after': `select ${INSERT_LSN}::text as lsn`,
};

/**
 * Whether a query can fly with a position: SQL text, or a plain config (no name, no row count, no
 * submittable, no timeout or callback of its own), with an array of values or none.
 */
export function canFly(arg: unknown, values: unknown): boolean {
  if (values !== undefined && !Array.isArray(values)) return false;
  if (typeof arg === 'string') return true;
  if (typeof arg !== 'object' || arg === null) return false;
  const c = arg as { text?: unknown; name?: unknown; rows?: unknown; submit?: unknown; query_timeout?: unknown; callback?: unknown };
  if (typeof c.text !== 'string' || c.name !== undefined || c.rows !== undefined) return false;
  return c.submit === undefined && c.query_timeout === undefined && c.callback === undefined;
}

/** The fields of pg's Client a flight sets or reads (`pipeline`: pg's pipeline mode, as in 8.23; a pg without one ignores it). */
interface PipelinedClient {
  pipeline?: boolean;
  readonly connection?: { readonly stream?: { cork?(): void; uncork?(): void } };
  query(config: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult>;
}

/**
 * Runs `arg` on `client` with the position `position` asks for, read on the same connection: in one
 * socket write and one round trip, each in its own implicit transaction (a Sync of its own), through
 * pg's own queries and its pipeline mode. So `replay-before`'s statement takes its snapshot after the
 * position was read, whatever the isolation level, and `insert-after`'s position is read after the
 * statement committed. A pg without pipeline mode sends the second once the first is answered: the
 * same order, one more round trip. Resolves with the statement's outcome; `position` is filled in as
 * its answer arrives (left undefined if it fails).
 */
export async function flyOn(
  client: pg.PoolClient,
  arg: string | pg.QueryConfig,
  values: unknown[] | undefined,
  position: FlightPosition,
): Promise<pg.QueryResult> {
  const c = client as unknown as PipelinedClient;
  const pipelined = c.pipeline;
  const stream = c.connection?.stream;
  c.pipeline = true;
  stream?.cork?.();
  let statement: Promise<pg.QueryResult>;
  let read: Promise<void>;
  try {
    position.sentAt = performance.now();
    // A position that failed with the connection (its read bound, a lost connection) leaves the
    // connection spent: pg ends it, and the pool must not hand it out again.
    const spend = (err: unknown) => void (connectionGoesOn(err) || (markEndedHere(client), spent.add(client)));
    const readPosition = () => c.query(POSITION_SQL[position.mode]).then((r) => note(position, r), spend);
    if (position.mode === 'replay-before') {
      read = readPosition();
      statement = c.query(arg, values);
    } else {
      statement = c.query(arg, values);
      read = readPosition();
    }
  } finally {
    stream?.uncork?.();
  }
  // pg dispatches answers by `pipeline` until the last one is in: set back only then.
  try {
    await Promise.all([statement.catch((err: unknown) => isTimeout(err) && markEndedHere(client)), read]);
  } finally {
    c.pipeline = pipelined;
  }
  return statement;
}

/** Connections whose flight's position read failed with them (see {@link flyOn}): released as failed. */
const spent = new WeakSet<object>();

/** Why `client` must not go back to its pool after a flight, if it must not. */
export function spentConnection(client: object): Error | undefined {
  return spent.has(client) ? new Error('the connection failed reading a position') : undefined;
}

/** An error the server answered with (the connection goes on), not a lost connection or a timeout. */
function connectionGoesOn(err: unknown): boolean {
  return !isTimeout(err) && !isConnectionError(err);
}

function note(position: FlightPosition, { rows }: pg.QueryResult): void {
  const row = rows[0] as { lsn?: string | null; started?: string | null } | undefined;
  position.lsn = tryParseLsn(row?.lsn ?? undefined);
  position.started = row?.started ?? undefined;
}
