import type pg from 'pg';
import { markTerminated, pidOf } from './backends.js';
import type { NodePool } from './nodes.js';
import { connectionOf, isConnectionError, isNotSent } from './pg-args.js';
import type { Session } from './session.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Ends the listed backends that are older than the given ages (a pid reused by a backend started
 * since is not ours) and lists those still there. `pg_terminate_backend` needs the same role
 * (or `pg_signal_backend`): the router's own connections are of its role.
 */
const FENCE_SQL = `select a.pid, pg_terminate_backend(a.pid) as signalled
  from pg_stat_activity a join unnest($1::int[], $2::float8[]) as f(pid, age) on a.pid = f.pid
  where a.backend_start <= statement_timestamp() - make_interval(secs => f.age)`;

/**
 * Behind a pooler (PgBouncer hands clients process ids of its own: none names a backend), the
 * statement's backend cannot be told apart: lists the transactions of the router's role, on
 * any backend but this one, that were already open at least `$1` seconds ago, so begun before
 * the failure. Ends none of them (they are other clients' too): a fence waits until none is left.
 */
const POOLED_FENCE_SQL = `select a.pid from pg_stat_activity a
  where a.usename = current_user and a.pid <> pg_backend_pid() and a.state <> 'idle'
    and a.xact_start <= statement_timestamp() - make_interval(secs => $1::float8)`;

/** The pending key of a statement whose backend no pid names (see {@link POOLED_FENCE_SQL}); never a real pid. */
const POOLED = -1;

/**
 * Primary backends whose last statement's outcome is unknown: its answer timed out, or the
 * connection failed after it was sent. A write there may have committed, or may still commit
 * later (a partition holds its bytes and delivers them when it heals; a slow statement runs on
 * after the client gave up). Until such a backend is gone, no primary position is sure to cover
 * it. Fencing terminates them and waits until the server no longer lists them; a primary
 * position sampled after {@link clearedAt} covers whatever they committed. Behind a pooler
 * (PgBouncer), where no pid names a backend, fencing waits instead until every transaction of the
 * router's role that was open before the failure has ended (see {@link POOLED_FENCE_SQL}).
 *
 * @example
 * ```ts
 * fences.add(pid);                    // a write on backend `pid` timed out
 * if (await fences.settle()) sampleAfter(fences.clearedAt);
 * ```
 */
export class Fences {
  /** pid → `performance.now()` when its statement failed. */
  readonly #pending = new Map<number, number>();
  #running: Promise<boolean> | undefined;
  #clearedAt = 0;

  /**
   * Whether the primary's connections come through a pooler (`NodeState.pooled`), set by the
   * engine once the monitor exists; until a poll has told, assumed so (waiting ends nothing).
   */
  pooled: () => boolean | undefined = () => undefined;

  constructor(
    readonly primary: NodePool,
    /** How long one fence may take on a server that does not answer (ms). */
    readonly timeoutMs: number,
  ) {}

  /** A statement on primary backend `pid` failed with its outcome unknown. */
  add(pid: number): void {
    this.#pending.set(pid, performance.now());
  }

  get pending(): boolean {
    return this.#pending.size > 0;
  }

  /** `performance.now()` once the last fenced backends were seen gone: samples sent after it cover them. */
  get clearedAt(): number {
    return this.#clearedAt;
  }

  /**
   * After a statement that may have written failed on the primary: when its outcome is unknown
   * (sent, then a timeout or a lost connection), fences its backend for `session` and returns a
   * promise rejecting with `err` once that fence is done or gave up (bounded). Otherwise undefined.
   */
  after(err: unknown, session: Session): Promise<never> | undefined {
    const connection = !isNotSent(err) && isConnectionError(err) ? connectionOf(err) : undefined;
    const pid = connection && (this.pooled() === false ? pidOf(connection) : POOLED);
    if (!connection || !pid) return undefined;
    markTerminated(connection); // its end is ours: no sign that the primary is down
    this.add(pid);
    session.fenced = true;
    return this.#settleFor(pid).then(() => Promise.reject(err));
  }

  /**
   * Fences until `pid` is no longer pending: a fence already running when it failed did not
   * list it (found by review), so another follows. Gives up after `timeoutMs` (the primary does
   * not answer: it stays pending).
   */
  async #settleFor(pid: number): Promise<void> {
    const deadline = performance.now() + this.timeoutMs;
    while (this.#pending.has(pid) && performance.now() < deadline) {
      await this.settle();
      if (this.#pending.has(pid)) await sleep(10);
    }
  }

  /** Fences every pending backend (one fence at a time, shared); true once none is pending. */
  settle(): Promise<boolean> {
    if (!this.pending) return Promise.resolve(true);
    this.#running ??= this.#fence().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #fence(): Promise<boolean> {
    const fenced = [...this.#pending];
    const deadline = performance.now() + this.timeoutMs;
    let client: pg.PoolClient;
    try {
      client = await this.primary.pool.connect();
    } catch {
      return false;
    }
    let failed: Error | undefined;
    try {
      const age = (failedAt: number) => Math.max(0, (performance.now() - failedAt) / 1000 - 0.25);
      const byPid = fenced.filter(([pid]) => pid !== POOLED);
      const pooled = fenced.find(([pid]) => pid === POOLED);
      for (;;) {
        let left = 0;
        if (byPid.length > 0) {
          const values = [byPid.map(([pid]) => pid), byPid.map(([, failedAt]) => age(failedAt))];
          left += (await client.query({ text: FENCE_SQL, values, query_timeout: this.timeoutMs } as pg.QueryConfig)).rows.length;
        }
        if (pooled) {
          const values = [age(pooled[1])];
          left += (await client.query({ text: POOLED_FENCE_SQL, values, query_timeout: this.timeoutMs } as pg.QueryConfig)).rows.length;
        }
        if (left === 0) break;
        if (performance.now() > deadline) return false;
        await sleep(10);
      }
      for (const [pid, failedAt] of fenced) if (this.#pending.get(pid) === failedAt) this.#pending.delete(pid);
      if (!this.pending) this.#clearedAt = performance.now();
      return !this.pending;
    } catch (err) {
      failed = err instanceof Error ? err : new Error(String(err));
      return false;
    } finally {
      client.release(failed);
    }
  }
}
