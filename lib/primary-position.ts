import type pg from 'pg';
import type { Counters } from './counters.js';
import { parseLsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { NodeConnectionPool } from './nodes.js';
import { PRIMARY_POSITION_SQL } from './position-sql.js';
import type { PositionSample, Session } from './session.js';
import { SharedRoundTrip } from './shared-round-trip.js';

/**
 * Reads the primary's position on the application's primary pool: the one place this is done.
 * Each read is bounded by `timeoutMs` (waiting for a connection included), so a primary that
 * stops answering without closing its connections cannot hold a response: the read fails, and
 * callers fall back to "at the primary position" (see `SessionStore.persist`).
 */
export class PrimaryPositions {
  constructor(
    readonly pool: Pick<NodeConnectionPool, 'query'>,
    readonly monitor: MonitorView,
    readonly counters: Counters,
    /** The longest a read may take, connect included, in ms (the monitor's `timeoutMs`). */
    readonly timeoutMs: number,
  ) {}

  /** Reads shared by concurrent callers (see {@link read}). */
  readonly #reads = new SharedRoundTrip((sentAt) => this.#readNow(sentAt));

  /**
   * The primary's insert LSN, read by a round trip sent at or after `notBefore` (default: now) —
   * so past every write acknowledged before it — shared by concurrent callers (see
   * {@link SharedRoundTrip}: at most two reads in flight or queued, however many scopes wrote).
   * Also kept by the monitor to date floors. Rejects after `timeoutMs`; a connection whose answer
   * never came is not reused (pg's `query_timeout` makes the pool drop it).
   */
  read(notBefore = performance.now()): Promise<PositionSample> {
    return this.#reads.get(notBefore);
  }

  #readNow(sentAt: number): Promise<PositionSample> {
    this.counters.positionReads++;
    // pg reads `query_timeout` from a query config too (its types list it for clients only).
    const config: pg.QueryConfig & { query_timeout: number } = { text: PRIMARY_POSITION_SQL, query_timeout: this.timeoutMs };
    return within(this.pool.query<{ lsn: string }>(config), this.timeoutMs).then(({ rows }) => {
      const lsn = this.monitor.notePrimaryPosition(parseLsn(rows[0]!.lsn), sentAt);
      return { lsn, sentAt };
    });
  }

  /**
   * Turns the session's pending write (or resync) into a floor: the primary's position read
   * *after* its writes were acknowledged (and after its earlier reads ended), so at least every
   * commit record they made and ahead of whatever those reads observed. On failure the session
   * keeps what was pending.
   */
  async positionSession(session: Session): Promise<void> {
    const wasPending = session.writePending;
    const wasResync = session.resync;
    session.writePending = false;
    session.resync = false;
    try {
      const sample = await this.read();
      session.applyPrimaryPosition(sample, this.monitor.primaryIdentity(), wasResync);
    } catch (err) {
      session.writePending ||= wasPending;
      session.resync ||= wasResync;
      throw err;
    }
  }
}

/**
 * `promise`, or a rejection after `ms` if it has not settled by then. It is left running (pg
 * cannot abandon a connect in progress); its outcome is then ignored.
 */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the primary did not answer the position read within ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
