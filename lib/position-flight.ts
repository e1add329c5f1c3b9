import pg from 'pg';
import { tryParseLsn, type Lsn } from './lsn.js';
import { INSERT_LSN, REPLAY_LSN } from './position-sql.js';

/**
 * Which position a flight reads beside its statement:
 * - `replay-before`: a replica's replay LSN, just before the statement — the live check of a read
 *   folded into the read (as MaxScale's causal reads do), so it costs no round trip of its own;
 * - `insert-after`: the primary's insert LSN, just after the statement.
 */
export type FlightMode = 'replay-before' | 'insert-after';

/** What a flight read beside its statement, filled in as its answer arrives. */
export interface FlightPosition {
  readonly mode: FlightMode;
  /** `performance.now()` when the flight was sent. */
  sentAt: number;
  /** The position read; undefined when none was (the statement failed first, the node had none). */
  lsn: Lsn | undefined;
  /** The server's postmaster start time (`replay-before`): which server answered. */
  started: string | undefined;
  /** `replay-before`: the statement ran under READ COMMITTED, so in a snapshot taken after the position was read. */
  ownSnapshot: boolean;
  /** The session's count of writes when the flight was planned (see `Session.writes`). */
  readonly writesBefore: number;
}

export function flightPosition(mode: FlightMode, writesBefore: number): FlightPosition {
  return { mode, sentAt: 0, lsn: undefined, started: undefined, ownSnapshot: false, writesBefore };
}

const POSITION_SQL: Record<FlightMode, string> = {
  'replay-before': `select ${REPLAY_LSN}::text, pg_postmaster_start_time()::text, current_setting('transaction_isolation')`,
  'insert-after': `select ${INSERT_LSN}::text`,
};

/**
 * Whether a query can fly with a position: one pg sends with the extended protocol anyway (it has
 * values, or `queryMode: 'extended'`), so one statement; SQL text or a plain config (no name, no
 * row count, no submittable, no timeout of its own).
 */
export function canFly(arg: unknown, values: unknown): boolean {
  if (values !== undefined && !Array.isArray(values)) return false;
  if (typeof arg === 'string') return arg !== '' && values !== undefined && values.length > 0;
  if (typeof arg !== 'object' || arg === null) return false;
  const c = arg as {
    text?: unknown;
    name?: unknown;
    rows?: unknown;
    submit?: unknown;
    query_timeout?: unknown;
    values?: unknown;
    queryMode?: unknown;
  };
  if (typeof c.text !== 'string' || c.text === '' || c.name !== undefined || c.rows !== undefined) return false;
  if (c.submit !== undefined || c.query_timeout !== undefined) return false;
  const effective = values ?? c.values; // as pg reads them: the argument, even empty, over the config's
  if (effective !== undefined && !Array.isArray(effective)) return false;
  return c.queryMode === 'extended' || (effective !== undefined && effective.length > 0);
}

/** The parts of pg's connection a flight writes with. */
interface Wire {
  parse(query: { text: string }): void;
  bind(config: object): void;
  execute(config: object): void;
  sync(): void;
  readonly stream: { cork?(): void; uncork?(): void };
}

/** The handlers of pg's Query that pg's Client calls on the active query. */
interface Handlers {
  callback: ((err: Error | null, result?: pg.QueryResult) => void) | undefined;
  binary?: boolean;
  readonly _result?: unknown;
  submit(wire: Wire): Error | null;
  handleRowDescription(msg: unknown): void;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown, wire: Wire): void;
  handleEmptyQuery(wire: Wire): void;
  handleError(err: Error, wire: Wire): void;
  handleReadyForQuery(wire: Wire): void;
  handleCopyInResponse(wire: Wire): void;
  handleCopyData(msg: unknown, wire: Wire): void;
}

/**
 * One statement and a read of its node's position in one flight: one socket write, one round trip,
 * one implicit transaction (a single Sync). A submittable for pg's `client.query()`; the statement
 * itself is pg's own `Query`, given every message of its own.
 *
 * `replay-before` runs the position first: under READ COMMITTED the statement then takes a
 * snapshot of its own after it, so it observes at least that replay position (under REPEATABLE
 * READ both would share the first one's snapshot, taken before the position was read:
 * `ownSnapshot` says which). `insert-after` runs it last: past every commit acknowledged before
 * the flight was sent, and past what the statement observed.
 */
class Flight {
  callback: ((err: Error | null, result?: pg.QueryResult) => void) | undefined;
  readonly text: string;
  readonly #statement: Handlers;
  readonly #position: FlightPosition;
  #phase: 'position-before' | 'statement' | 'position-after' | 'done';
  #finished = false;

  constructor(arg: string | pg.QueryConfig, values: unknown[] | undefined, position: FlightPosition) {
    this.#statement = new pg.Query(arg as pg.QueryConfig, values) as unknown as Handlers;
    this.#statement.callback = (err, result) => this.#finish(err, result);
    this.text = typeof arg === 'string' ? arg : arg.text;
    this.#position = position;
    this.#phase = position.mode === 'replay-before' ? 'position-before' : 'statement';
  }

  /** pg's Client gives its type parsers to the query's result, and switches it to binary. */
  get _result(): unknown {
    return this.#statement._result;
  }

  get binary(): boolean | undefined {
    return this.#statement.binary;
  }

  set binary(value: boolean | undefined) {
    this.#statement.binary = value;
  }

  submit(connection: unknown): Error | null {
    const wire = connection as Wire;
    wire.stream.cork?.();
    try {
      this.#position.sentAt = performance.now();
      if (this.#position.mode === 'replay-before') this.#sendPosition(wire);
      // After the statement, its Sync is held back: the position joins its implicit transaction.
      const failed = this.#statement.submit(this.#position.mode === 'insert-after' ? withoutSync(wire) : wire);
      if (failed) {
        this.#phase = 'done';
        this.#finish(failed);
      } else if (this.#position.mode === 'insert-after' && !this.#finished) this.#sendPosition(wire);
      if (this.#position.mode === 'insert-after' || failed) wire.sync();
    } finally {
      wire.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(msg: unknown): void {
    if (this.#phase === 'statement') this.#statement.handleRowDescription(msg);
  }

  handleDataRow(msg: { fields: Array<string | null> }): void {
    if (this.#phase === 'statement') return this.#statement.handleDataRow(msg);
    const [lsn, started, isolation] = msg.fields;
    this.#position.lsn = tryParseLsn(lsn ?? undefined);
    this.#position.started = started ?? undefined;
    this.#position.ownSnapshot = isolation === 'read committed';
  }

  handleCommandComplete(msg: unknown, wire: Wire): void {
    if (this.#phase === 'position-before') this.#phase = 'statement';
    else if (this.#phase === 'statement') {
      this.#statement.handleCommandComplete(msg, wire);
      this.#phase = this.#position.mode === 'insert-after' ? 'position-after' : 'done';
    }
  }

  handleEmptyQuery(wire: Wire): void {
    if (this.#phase !== 'statement') return;
    this.#statement.handleEmptyQuery(wire);
    this.#phase = this.#position.mode === 'insert-after' ? 'position-after' : 'done';
  }

  /** pg's Client calls this on an error response (no ReadyForQuery follows for the query) or a lost connection. */
  handleError(err: Error, wire: Wire): void {
    // The statement had its answer; only the position after it failed: the statement stands.
    if (this.#phase === 'position-after') {
      this.#phase = 'done';
      return this.#statement.handleReadyForQuery(wire);
    }
    this.#phase = 'done';
    if (this.#finished) return;
    this.#statement.handleError(err, wire); // the statement's own error, or the flight's: the statement's outcome
  }

  handleReadyForQuery(wire: Wire): void {
    this.#phase = 'done';
    if (!this.#finished) this.#statement.handleReadyForQuery(wire);
  }

  handleCopyInResponse(wire: Wire): void {
    this.#statement.handleCopyInResponse(wire);
  }

  handleCopyData(msg: unknown, wire: Wire): void {
    this.#statement.handleCopyData(msg, wire);
  }

  #sendPosition(wire: Wire): void {
    wire.parse({ text: POSITION_SQL[this.#position.mode] });
    wire.bind({});
    wire.execute({});
  }

  #finish(err: Error | null, result?: pg.QueryResult): void {
    if (this.#finished) return;
    this.#finished = true;
    this.callback?.(err, result);
  }
}

/** `wire` with its Sync held back (pg's Query sends one after its Execute). */
function withoutSync(wire: Wire): Wire {
  return Object.create(wire, { sync: { value: () => {} } }) as Wire;
}

/** Runs `arg` on `client` with the position `position` asks for, read in the same flight. */
export function flyOn(
  client: pg.PoolClient,
  arg: string | pg.QueryConfig,
  values: unknown[] | undefined,
  position: FlightPosition,
): Promise<pg.QueryResult> {
  const flight = new Flight(arg, values, position);
  return new Promise((resolve, reject) => {
    flight.callback = (err, result) => (err ? reject(err) : resolve(result!));
    client.query(flight as unknown as pg.QueryConfig);
  });
}
