import type pg from 'pg';
import { ErrorCodes, ReplicaRouterError } from './errors.js';
import type { NodePool } from './nodes.js';

type Json = unknown;

/**
 * A statement that signals one backend by pid: which node's backend it means is the router's to
 * work out ({@link Backends.target}). `pid`: a literal, or the 1-based number of the parameter
 * holding it.
 */
export interface BackendSignal {
  readonly fn: 'pg_cancel_backend' | 'pg_terminate_backend';
  readonly pid: number | { readonly param: number };
  /** The result column's name (the alias, else the function's name). */
  readonly column: string;
}

/** A node and the pid of one of the router's connections to it. */
export interface Backend {
  readonly node: NodePool;
  readonly pid: number;
  /** Told before a terminate is sent to it (a read it fails is not retried elsewhere then). */
  readonly terminating?: () => void;
}

/**
 * Something that revealed a backend pid (a checked-out client, through `processID` or
 * `pg_backend_pid()`): the backend that runs its statements now, for a signal sent to `pid`.
 */
export interface BackendHolder {
  current(pid: number): Backend | undefined;
}

/** The pid of a pg client's backend (pg's `processID`, missing from its types), once connected. */
export function pidOf(client: object): number | undefined {
  const pid = (client as { processID?: unknown }).processID;
  return typeof pid === 'number' && pid > 0 ? pid : undefined;
}

const SIGNALS = new Set(['pg_cancel_backend', 'pg_terminate_backend']);
/** A SELECT with nothing but its target list (pg's defaults for the rest). */
const BARE_SELECT = new Set(['targetList', 'limitOption', 'op']);

/**
 * `SELECT pg_cancel_backend(<pid>) [AS x]` (or `pg_terminate_backend`, optionally `pg_catalog.`),
 * and nothing else, with the pid a literal or a parameter (cast or not): the signal, with the
 * classification the dispatch routes by it (`backend-signal`); otherwise undefined.
 */
export function backendSignal(node: Json): { kind: 'write'; detail: 'backend-signal'; signal: BackendSignal } | undefined {
  const select = node as Record<string, Json> & { targetList?: Json[] };
  if (!Object.keys(select).every((key) => BARE_SELECT.has(key)) || select.targetList?.length !== 1) return undefined;
  const target = (select.targetList[0] as { ResTarget?: { name?: string; val?: { FuncCall?: Json } } }).ResTarget;
  const call = target?.val?.FuncCall as { args?: Json[]; funcname?: Json[]; over?: Json; agg_filter?: Json } | undefined;
  const parts = (call?.funcname ?? []).map((p) => (p as { String?: { sval?: string } }).String?.sval?.toLowerCase());
  const fn = parts[parts.length - 1];
  if (!call || !fn || !SIGNALS.has(fn) || call.args?.length !== 1 || call.over || call.agg_filter) return undefined;
  if (parts.length > 2 || (parts.length === 2 && parts[0] !== 'pg_catalog')) return undefined;
  let arg = call.args[0] as { TypeCast?: { arg?: Json }; A_Const?: { ival?: { ival?: number } }; ParamRef?: { number?: number } };
  if (arg.TypeCast) arg = (arg.TypeCast.arg ?? {}) as typeof arg;
  let pid: BackendSignal['pid'] | undefined;
  if (arg.A_Const?.ival) pid = arg.A_Const.ival.ival ?? 0;
  else if (arg.ParamRef?.number !== undefined) pid = { param: arg.ParamRef.number };
  if (pid === undefined) return undefined;
  const signal: BackendSignal = Object.freeze({ fn: fn as BackendSignal['fn'], pid, column: target?.name ?? fn });
  return Object.freeze({ kind: 'write', detail: 'backend-signal', signal });
}

/** Whether a parse tree calls `pg_backend_pid()`. */
export function revealsBackend(node: Json): boolean {
  return JSON.stringify(node).includes('"pg_backend_pid"');
}

/** The pid a signal names, given the statement's values; undefined when it is not an integer. */
export function signalledPid(signal: BackendSignal, values: readonly unknown[] | undefined): number | undefined {
  const raw = typeof signal.pid === 'number' ? signal.pid : values?.[signal.pid.param - 1];
  const pid = typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : typeof raw === 'bigint' ? Number(raw) : raw;
  return typeof pid === 'number' && Number.isSafeInteger(pid) ? pid : undefined;
}

/**
 * The backends behind the router's connections: which node each pid of its pools belongs to,
 * and which checked-out clients revealed which pids. A pid alone does not name a server (every
 * node numbers its backends on its own), so a signal by pid is sent where it means something:
 * to the backend now running the statements of the client that revealed it, else to the one
 * node where the router holds a connection with that pid; otherwise it is refused.
 */
export class Backends {
  readonly #connections = new Map<NodePool, Set<object>>();
  readonly #revealed = new Map<number, Set<BackendHolder>>();

  constructor(nodes: readonly NodePool[]) {
    for (const node of nodes) this.add(node);
  }

  /** Tracks `node`'s connections from now on (every node at start; a replica added later). */
  add(node: NodePool): void {
    const open = new Set<object>();
    this.#connections.set(node, open);
    node.pool.on('connect', (client: object) => open.add(client));
    node.pool.on('remove', (client: object) => open.delete(client));
  }

  /** Stops tracking a removed replica's connections (once its pool has ended). */
  remove(node: NodePool): void {
    this.#connections.delete(node);
  }

  /** `holder` revealed `pid`: signals to it reach `holder.current(pid)` until {@link forget}. */
  reveal(pid: number, holder: BackendHolder): void {
    let holders = this.#revealed.get(pid);
    if (!holders) this.#revealed.set(pid, (holders = new Set()));
    holders.add(holder);
  }

  forget(pid: number, holder: BackendHolder): void {
    const holders = this.#revealed.get(pid);
    holders?.delete(holder);
    if (holders?.size === 0) this.#revealed.delete(pid);
  }

  /**
   * Where a signal to `pid` goes. Throws `ERR_PGRR_BACKEND_AMBIGUOUS` when the pid could mean
   * backends on several nodes, `ERR_PGRR_BACKEND_UNKNOWN` when it is none of the router's.
   */
  target(pid: number): Backend {
    const holders = [...(this.#revealed.get(pid) ?? [])];
    if (holders.length > 1) throw ambiguous(pid, 'clients checked out now');
    const held = holders[0]?.current(pid);
    if (held) return held;
    const owners = [...this.#connections].filter(([, open]) => [...open].some((c) => pidOf(c) === pid)).map(([node]) => node);
    if (owners.length > 1) throw ambiguous(pid, `nodes (${owners.map((n) => n.name).join(', ')})`);
    if (owners.length === 1) return { node: owners[0]!, pid };
    throw new ReplicaRouterError(
      ErrorCodes.BACKEND_UNKNOWN,
      `no connection of this router has backend pid ${pid}: a pid alone does not say which server it is on; ` +
        'signal it through a connection of its own server',
    );
  }
}

const terminated = new WeakSet<object>();
const endedAlone = new WeakSet<object>();

/** A pg client whose backend the router was asked to terminate: what it ran must not run again. */
export function wasTerminated(client: object): boolean {
  return terminated.has(client);
}

/**
 * A pg client whose loss is no sign that its node is down: terminated through the router, or
 * ended alone by its server ({@link watchEndedAlone}).
 */
export function lossIsNoOutage(client: object): boolean {
  return terminated.has(client) || endedAlone.has(client);
}

/** SQLSTATEs of a FATAL that a server sends every connection when it goes: shutdown, crash, not accepting. */
const SERVER_GOING = /^(57P0[123]|08)/;

/**
 * Watches `client` for a FATAL that ends its connection alone while the server runs on — a
 * recovery conflict (40001), an idle-in-transaction, idle-session or transaction timeout — so
 * that the lost socket after it is not taken for an outage ({@link lossIsNoOutage}); the
 * statement it ended may still run again elsewhere. A shutdown's or a crash's FATAL
 * (57P01–57P03) still is an outage. (The severity is read from the localized field: with
 * non-English server messages nothing matches, and the loss counts as an outage, as before.)
 */
export function watchEndedAlone(client: pg.ClientBase): void {
  const connection = (client as { connection?: { on?: (event: string, listener: (msg: unknown) => void) => void } }).connection;
  connection?.on?.('errorMessage', (msg) => {
    const { severity, code } = msg as { severity?: string; code?: string };
    if (severity === 'FATAL' && !SERVER_GOING.test(code ?? '08')) endedAlone.add(client);
  });
}

/**
 * `client`'s connection is ended on this side, its node not known to be down: pg's pipeline mode
 * ends a connection whose statement passed its read bound (see lib/position-flight.ts), where
 * pg otherwise only fails the statement and pg-pool then drops the connection.
 */
export function markEndedHere(client: object): void {
  endedAlone.add(client);
}

/** Marks `client` as {@link wasTerminated} (before the terminate is sent). */
export function markTerminated(client: object): void {
  terminated.add(client);
}

/**
 * Sends `signal` to `target` on another connection of its node's pool. Handed the target itself
 * (it was idle in the pool: nothing of it runs), a cancel has nothing to stop and a terminate
 * closes that connection; either answers true, as PostgreSQL would.
 */
export async function sendSignal(target: Backend, signal: BackendSignal): Promise<pg.QueryResult> {
  const column = `"${signal.column.replace(/"/g, '""')}"`;
  if (signal.fn === 'pg_terminate_backend') target.terminating?.();
  const client = await target.node.pool.connect();
  const itself = pidOf(client) === target.pid;
  let failed: unknown;
  try {
    return await client.query(
      itself ? `select true as ${column}` : `select ${signal.fn}($1::integer) as ${column}`,
      itself ? [] : [target.pid],
    );
  } catch (err) {
    failed = err;
    throw err;
  } finally {
    client.release(failed instanceof Error ? failed : itself && signal.fn === 'pg_terminate_backend');
  }
}

function ambiguous(pid: number, where: string): ReplicaRouterError {
  return new ReplicaRouterError(
    ErrorCodes.BACKEND_AMBIGUOUS,
    `backend pid ${pid} names connections on several ${where}: the router cannot tell which one the signal means`,
  );
}
