import type pg from 'pg';
import { ErrorCodes } from './errors.js';
import { promised } from './callback.js';

/** Something pg can run: SQL text, a QueryConfig, or a submittable (pg-cursor, pg-query-stream). */
export type QueryArg = string | pg.QueryConfig | Submittable;

/** pg's submittable protocol (`client.query(submittable)` returns it). */
export interface Submittable {
  submit(connection: unknown): void;
  text?: string;
  cursor?: { text?: string };
}

export type Callback = (err: Error | null, result?: pg.QueryResult) => void;

export interface NormalizedQuery {
  arg: QueryArg;
  values: unknown[] | undefined;
  callback: Callback | undefined;
  submittable: Submittable | undefined;
  text: string | undefined;
}

export function isSubmittable(value: unknown): value is Submittable {
  return typeof value === 'object' && value !== null && typeof (value as Submittable).submit === 'function';
}

/**
 * Reads pg's `query` overloads — (text, values?, cb?), (config, values?, cb?), (submittable) —
 * without copying or changing the caller's config object.
 */
export function normalizeQuery(arg: unknown, values: unknown, callback: unknown): NormalizedQuery {
  if (typeof values === 'function') {
    callback = values;
    values = undefined;
  }
  if (arg === null || arg === undefined || (typeof arg !== 'string' && typeof arg !== 'object')) {
    throw new TypeError('Client was passed a null or undefined query');
  }
  const submittable = isSubmittable(arg) ? arg : undefined;
  let text: string | undefined;
  if (typeof arg === 'string') text = arg;
  else if (submittable) text = submittable.text ?? submittable.cursor?.text;
  else text = (arg as pg.QueryConfig).text;
  return {
    arg: arg as QueryArg,
    values: values as unknown[] | undefined,
    callback: typeof callback === 'function' ? (callback as Callback) : undefined,
    submittable,
    text: typeof text === 'string' ? text : undefined,
  };
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  '57P01',
  '57P02',
  '57P03',
  ErrorCodes.NODE_TIMEOUT,
]);

/** The server is unreachable or went away: the node is suspect. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|Query read timeout/i.test(
    err.message,
  );
}

/**
 * pg-pool gave up waiting for a free connection (`connectionTimeoutMillis` with every connection
 * checked out): the pool was full, which says nothing about the server.
 */
export function isPoolFull(err: unknown): boolean {
  return err instanceof Error && /timeout exceeded when trying to connect/.test(err.message);
}

const TIMEOUT = /Query read timeout|timeout exceeded when trying to connect|Connection terminated due to connection timeout/i;

/** A node did not answer in time: pg's `query_timeout`, or a connect past `connectionTimeoutMillis`. */
export function isTimeout(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return code === ErrorCodes.NODE_TIMEOUT || (code === undefined && TIMEOUT.test(err.message));
}

/** Gives a timeout from pg the stable code `ERR_PGRR_NODE_TIMEOUT` (its class and message stay pg's). */
export function tagTimeout(err: unknown): void {
  if (isTimeout(err)) (err as { code?: unknown }).code = ErrorCodes.NODE_TIMEOUT;
}

const failedOn = new WeakMap<object, object>();

/** Notes the connection (a pg client) a statement failed on. */
export function markBackend(err: unknown, client: object): void {
  if (typeof err === 'object' && err !== null) failedOn.set(err, client);
}

/** The connection a statement failed on, when its runner noted it. */
export function connectionOf(err: unknown): object | undefined {
  return typeof err === 'object' && err !== null ? failedOn.get(err) : undefined;
}

const notSent = new WeakSet<object>();

/** Marks an error raised while opening the connection for a statement: the statement was never sent. */
export function markNotSent(err: unknown): void {
  if (typeof err === 'object' && err !== null) notSent.add(err);
}

/**
 * The statement never reached the server: its connection could not be opened (server down,
 * starting up or shutting down, refused login, connect timeout). Such a failed write cannot have
 * committed.
 */
export function isNotSent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && notSent.has(err);
}

/** A hot standby cancelled the query because replay needed to proceed (SQLSTATE 40001/40P01). */
export function isRecoveryConflict(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return (code === '40001' || code === '40P01') && /conflict with recovery/i.test(err.message);
}

/**
 * The server refused the statement as a write in a read-only transaction (SQLSTATE 25006): on a
 * hot standby, a statement that writes after all (a function with side effects, dblink, …). By
 * code only: the message is translated (lc_messages).
 */
export function isReadOnlyRefusal(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (err as { code?: unknown }).code === '25006';
}

/** pg's rule for `release(arg)`: any truthy argument destroys the connection. */
export function releaseArg(arg: unknown): Error | true | undefined {
  if (!arg) return undefined;
  return arg instanceof Error ? arg : true;
}

/** pg's way of failing a query that cannot run: the submittable's error, the callback, or a rejection. */
export function failQuery(
  submittable: Submittable | undefined,
  callback: ((err: Error) => void) | undefined,
  err: Error,
  Class?: PromiseConstructorLike,
): unknown {
  if (submittable) {
    process.nextTick(() => (submittable as unknown as { handleError?: (e: Error) => void }).handleError?.(err));
    return submittable;
  }
  if (callback) return void process.nextTick(() => callback(err));
  return promised(Class, Promise.reject(err));
}
